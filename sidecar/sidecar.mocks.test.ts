/**
 * The sidecar with the real SDKs against the mocks over real HTTPS: the
 * bundled process as a child, with its image's NODE_OPTIONS (trusting the
 * mocks' CA through NODE_EXTRA_CA_CERTS, as a user behind a private CA
 * would). The fault cases that need short timeouts run `runSidecar` in
 * process, in sidecar.in-process.test.ts.
 *
 * Over 400 lines on purpose: the sidecar's process against the mocks, end to end; its cases share one mock world and one build of the bundle, which are slow to start.
 */
import { spawn, type ChildProcessByStdio } from "node:child_process";
import type { Readable } from "node:stream";
import { X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as certs from "../certs/index.ts";
import { ErrorCode } from "../common/errors.ts";
import { SidecarEnv } from "../common/names.ts";
import { parseTemplate } from "../common/refs.ts";
import type { FileSpec, SyncSpec } from "../common/spec.ts";
import { readDockerfile } from "../e2e/cluster/images.ts";
import { trustCaInThisProcess } from "../mocks/tls.ts";
import { sidecarBuildOptions } from "../scripts/sidecar-bundle.ts";
import {
  CLIENT_ID,
  rawFiles,
  readSet,
  startMockWorld,
  type MockWorld,
  waitFor,
} from "../testing/sidecar-world.ts";
import { canMountTmpfs, tmpfsTestMode, TMPFS_UNAVAILABLE } from "../testing/sidecar.ts";

let world: MockWorld;
let bundle: string;
/** Node flags as the sidecar image sets them (`--jitless`: no WebAssembly, for one). */
const IMAGE_NODE_OPTIONS =
  readDockerfile(join(import.meta.dirname, "../Dockerfile.sidecar")).spec.env?.NODE_OPTIONS ?? "";
/** Every line any sidecar printed in this file: checked for values and tokens at the end. */
const allOutput: string[] = [];
const values = new Map<string, string>();
const secret = (name: string, value: string): string => {
  values.set(name, value);
  world.vault.setSecret(name, value);
  return value;
};

beforeAll(async () => {
  world = await startMockWorld();
  trustCaInThisProcess(world.caPem);
  const outdir = join(world.dir, "dist");
  await build({
    ...sidecarBuildOptions(outdir, join(import.meta.dirname, "main.ts")),
    sourcemap: false,
    logLevel: "error",
  });
  bundle = join(outdir, "sidecar.mjs");
}, 60_000);

afterAll(async () => {
  await world.close();
});

interface Exit {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly lines: Record<string, unknown>[];
}

/** Where a child runs: on a real tmpfs of `size` mounted at `dir` in a mount namespace of its own. */
interface OnTmpfs {
  readonly dir: string;
  readonly size: string;
}

function startChild(
  env: Record<string, string>,
  nodeOptions = IMAGE_NODE_OPTIONS,
  tmpfs?: OnTmpfs,
): {
  child: ChildProcessByStdio<null, Readable, Readable>;
  done: Promise<Exit>;
} {
  const command = [process.execPath, bundle, "run"];
  const [file = "", ...args] =
    tmpfs === undefined
      ? command
      : [
          ...["unshare", "-m", "--propagation", "private", "--", "sh", "-c"],
          'mount -t tmpfs -o "size=$1" tmpfs "$2" && shift 2 && exec "$@"',
          ...["sh", tmpfs.size, tmpfs.dir, ...command],
        ];
  const child = spawn(file, args, {
    env: {
      PATH: process.env.PATH ?? "",
      NODE_EXTRA_CA_CERTS: world.caFile,
      NODE_OPTIONS: nodeOptions,
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Exit>((resolve) =>
    child.on("exit", (code) => {
      allOutput.push(stdout, stderr);
      const lines = stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code, stdout, stderr, lines });
    }),
  );
  return { child, done };
}

const runChild = (env: Record<string, string>, nodeOptions?: string): Promise<Exit> =>
  startChild(env, nodeOptions).done;
const outputDirOf = (env: Record<string, string>): string =>
  (JSON.parse(env[SidecarEnv.spec] ?? "{}") as SyncSpec).outputDir;

describe("the bundled sidecar against mock Entra ID and Key Vault", () => {
  it("probe fails before the first sync and passes after it", async () => {
    secret("probe-a", "A");
    const env = world.env({
      files: [{ file: "a", format: "raw", source: { kind: "secret", ref: { name: "probe-a" } } }],
    });
    const probe = (): Promise<number | null> =>
      new Promise((resolve) =>
        spawn(process.execPath, [bundle, "probe"], {
          env: { [SidecarEnv.spec]: env[SidecarEnv.spec] ?? "", NODE_OPTIONS: IMAGE_NODE_OPTIONS },
        }).on("exit", resolve),
      );
    expect(await probe()).toBe(1);
    expect((await runChild(env)).code).toBe(0);
    expect(await probe()).toBe(0);
  });

  it("init mode: every format, pinned versions and templates in one sync of N+1 Key Vault requests and one token", async () => {
    secret("db-password", "p@ss word\n");
    const old = world.vault.setSecret("api-key", "key-v1");
    secret("api-key", "key-v2");
    const blob = Buffer.from([0, 1, 2, 254, 255]);
    secret("blob", blob.toString("base64"));
    const now = new Date();
    const ca = certs.createCertificateAuthority({ commonName: "app-ca", now });
    const leaf = certs.createServingCertificate(ca, { dnsNames: ["app.example"], now });
    world.vault.addCertificate("tls-p12", {
      keyPem: leaf.keyPem,
      certPems: [leaf.certPem, ca.certPem],
    });
    world.vault.addCertificate("tls-pem", {
      keyPem: leaf.keyPem,
      certPems: [leaf.certPem, ca.certPem],
      format: "pem",
    });
    const template = parseTemplate(
      `user=app\npass={{ secret "db-password" }}\nold={{ secret "api-key/${old.version}" }}\n`,
    );
    if (!template.ok) throw new Error(template.expected);
    const ref = (name: string, version?: string) =>
      version === undefined ? { name } : { name, version };
    const files: FileSpec[] = [
      { file: "db-password", format: "raw", source: { kind: "secret", ref: ref("db-password") } },
      { file: "api-key", format: "raw", source: { kind: "secret", ref: ref("api-key") } },
      {
        file: "api-key.old",
        format: "raw",
        source: { kind: "secret", ref: ref("api-key", old.version) },
      },
      { file: "blob.bin", format: "base64-decode", source: { kind: "secret", ref: ref("blob") } },
      { file: "tls.pem", format: "pem", source: { kind: "secret", ref: ref("tls-p12") } },
      { file: "tls.crt", format: "cert", source: { kind: "secret", ref: ref("tls-p12") } },
      { file: "tls.key", format: "key", source: { kind: "secret", ref: ref("tls-pem") } },
      { file: "app.env", format: "raw", source: { kind: "template", parts: template.value } },
    ];
    const env = world.env({ files, fileMode: 0o440 });
    world.vault.resetCounters();
    world.aad.resetCounters();
    const exit = await runChild(env);
    expect(exit.code, exit.stdout + exit.stderr).toBe(0);
    const dir = outputDirOf(env);
    expect(await readFile(join(dir, "db-password"), "utf8")).toBe("p@ss word\n");
    expect(await readFile(join(dir, "api-key"), "utf8")).toBe("key-v2");
    expect(await readFile(join(dir, "api-key.old"), "utf8")).toBe("key-v1");
    expect(await readFile(join(dir, "blob.bin"))).toEqual(blob);
    expect(await readFile(join(dir, "app.env"), "utf8")).toBe(
      "user=app\npass=p@ss word\n\nold=key-v1\n",
    );
    const crt = new X509Certificate(await readFile(join(dir, "tls.crt"), "utf8"));
    expect(crt.subjectAltName).toContain("app.example");
    expect(
      crt.checkPrivateKey(
        (await import("node:crypto")).createPrivateKey(
          await readFile(join(dir, "tls.key"), "utf8"),
        ),
      ),
    ).toBe(true);
    expect(
      (await readFile(join(dir, "tls.pem"), "utf8")).match(/-----BEGIN [A-Z ]+-----/g),
    ).toEqual([
      "-----BEGIN PRIVATE KEY-----",
      "-----BEGIN CERTIFICATE-----",
      "-----BEGIN CERTIFICATE-----",
    ]);
    expect((await stat(join(dir, "tls.key"))).mode & 0o777).toBe(0o440);
    expect(await readlink(join(dir, "tls.key"))).toBe("..data/tls.key");
    // 6 distinct refs: at most N + 1 Key Vault requests, one token.
    const kv = world.vault.counters();
    expect(kv.challenges).toBe(1);
    expect(kv.total).toBeLessThanOrEqual(7);
    expect(world.aad.counters().tokenRequests).toBe(1);
  });

  it("a sync loads none of the Node modules the bundle keeps out (scripts/sidecar-bundle.ts)", async () => {
    for (let i = 0; i < 3; i++) secret(`mod${i}`, `m-${i}`);
    const hook = join(world.dir, "module-list.cjs");
    await writeFile(
      hook,
      'process.on("exit", () => process.stderr.write("@@modules " + JSON.stringify(process.moduleLoadList) + "\\n"));\n',
    );
    const exit = await runChild(
      world.env({ files: rawFiles(3, "mod") }),
      `${IMAGE_NODE_OPTIONS} --require ${hook}`,
    );
    expect(exit.code, exit.stderr).toBe(0);
    const line = exit.stderr.split("\n").find((l) => l.startsWith("@@modules "));
    const loaded = new Set(
      (JSON.parse(line?.slice("@@modules ".length) ?? "[]") as string[])
        .filter((m) => m.startsWith("NativeModule "))
        .map((m) => m.slice("NativeModule ".length)),
    );
    expect(loaded).toContain("https");
    const keptOut = [
      "assert",
      "child_process",
      "fs/promises",
      "zlib",
      "tty",
      "worker_threads",
      "internal/deps/undici/undici",
      "internal/readline/interface",
    ];
    expect(keptOut.filter((m) => loaded.has(m))).toEqual([]);
  });

  it("sidecar mode: a rotation changes all files together within one interval; N requests per refresh; one token; SIGTERM exits promptly", async () => {
    const n = 5;
    for (let i = 0; i < n; i++) secret(`rot${i}`, `v1-${i}`);
    const env = world.env({ files: rawFiles(n, "rot"), mode: "sidecar", refreshIntervalMs: 1000 });
    world.vault.resetCounters();
    world.aad.resetCounters();
    const { child, done } = startChild(env);
    const dir = outputDirOf(env);
    await waitFor(() => (existsSync(join(dir, "..data")) ? true : undefined));
    expect(await readSet(dir)).toEqual(
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`rot${i}`, `v1-${i}`])),
    );
    const rotatedAt = Date.now();
    for (let i = 0; i < n; i++) secret(`rot${i}`, `v2-${i}`);
    // Every set the app can see is all-old or all-new.
    const seen = await waitFor(async () => {
      const set = await readSet(dir);
      const gens = new Set(Object.values(set).map((v) => v.slice(0, 2)));
      expect(gens.size).toBe(1);
      return gens.has("v2") ? set : undefined;
    });
    // One interval (1 s ± 10 %) plus a sync, with slack for a loaded machine.
    expect(Date.now() - rotatedAt).toBeLessThan(1100 + 1500);
    expect(Object.keys(seen)).toHaveLength(n);
    // A couple more refreshes, then count.
    await new Promise((r) => setTimeout(r, 2300));
    const kv = world.vault.counters();
    const gets = Object.values(kv.secretGets);
    expect(kv.challenges).toBe(1);
    // Every refresh reads each secret exactly once.
    expect(new Set(gets).size).toBe(1);
    expect(kv.total).toBe(1 + n * (gets[0] ?? 0));
    expect(world.aad.counters().tokenRequests).toBe(1);
    const t = Date.now();
    child.kill("SIGTERM");
    const exit = await done;
    expect(exit.code).toBe(0);
    expect(Date.now() - t).toBeLessThan(1500);
    expect(exit.lines.map((l) => l.event)).toContain("refreshed");
  }, 30_000);

  it("SIGTERM exits promptly while Entra ID never answers the token request (MSAL ignores abort)", async () => {
    secret("hang-a", "H");
    world.aad.clearFaults();
    world.aad.injectFault({ action: { type: "hang" }, match: { endpoint: "token" }, times: 1 });
    world.aad.resetCounters();
    const { child, done } = startChild(
      world.env({
        files: [{ file: "a", format: "raw", source: { kind: "secret", ref: { name: "hang-a" } } }],
        mode: "sidecar",
      }),
    );
    try {
      await waitFor(() => (world.aad.counters().faults > 0 ? true : undefined));
      const t = Date.now();
      child.kill("SIGTERM");
      const exit = await done;
      // Not the read's 20 s timeout: the kubelet waits on this exit to finish a Job.
      expect(Date.now() - t).toBeLessThan(1500);
      expect(exit.code).toBe(0);
    } finally {
      world.aad.clearFaults();
    }
  });

  it("403: exits non-zero saying which vault, which secret, which role, which client id", async () => {
    secret("locked", "L");
    world.vault.revokeRole({ principal: CLIENT_ID });
    try {
      const exit = await runChild(
        world.env({
          files: [
            { file: "locked", format: "raw", source: { kind: "secret", ref: { name: "locked" } } },
          ],
        }),
      );
      expect(exit.code).toBe(1);
      const error = exit.lines.find((l) => l.level === "error");
      expect(error?.code).toBe(ErrorCode.SECRET_FORBIDDEN);
      expect(error?.msg).toContain(
        `reading secret 'locked' in Key Vault ${world.vault.url} was refused (403`,
      );
      expect(error?.msg).toContain(
        `grant 'Key Vault Secrets User' on vault ${world.vault.url} to client id ${CLIENT_ID}`,
      );
    } finally {
      world.vault.grantRole({ principal: CLIENT_ID });
    }
  });

  it("404: exits non-zero naming every missing secret", async () => {
    const exit = await runChild(world.env({ files: rawFiles(2, "missing") }));
    expect(exit.code).toBe(1);
    const error = exit.lines.find((l) => l.level === "error");
    expect(error?.code).toBe(ErrorCode.SECRET_NOT_FOUND);
    expect(error?.msg).toContain("secret 'missing0'");
    expect(error?.msg).toContain("secret 'missing1'");
    expect(error?.msg).toContain("does not exist (404");
  });

  it("refuses a set larger than its volume, whose size it reads from the tmpfs (root only)", async (ctx) => {
    const mode = tmpfsTestMode(canMountTmpfs(), process.env);
    if (mode === "fail") throw new Error(`CI=true: ${TMPFS_UNAVAILABLE}`);
    if (mode === "skip") {
      console.warn(`sidecar.mocks.test.ts (volume bound) ${TMPFS_UNAVAILABLE}`);
      ctx.skip(TMPFS_UNAVAILABLE);
    }
    secret("bulky", "b".repeat(20_000));
    const parsed = parseTemplate('{{ secret "bulky" }}'.repeat(4));
    if (!parsed.ok) throw new Error(parsed.expected);
    const volume = await mkdtemp(join(world.dir, "volume-"));
    const env = world.env({
      outputDir: join(volume, "files"),
      files: [
        { file: "app.conf", format: "raw", source: { kind: "template", parts: parsed.value } },
      ],
    });
    const run = startChild(env, undefined, { dir: volume, size: "64k" });
    // Without the bound it would retry ENOSPC for minutes: do not leave it behind.
    const timer = setTimeout(() => run.child.kill("SIGKILL"), 15_000);
    const exit = await run.done.finally(() => {
      clearTimeout(timer);
    });
    expect(exit.code).toBe(1);
    expect(exit.lines.find((l) => l.event === "start")?.volumeBytes).toBe(65_536);
    const error = exit.lines.find((l) => l.level === "error");
    expect(error?.code).toBe(ErrorCode.OUTPUT_TOO_LARGE);
    expect(error?.msg).toContain(
      "file 'app.conf' (at least 80000 bytes) brings the files to at least 80000 bytes, more than the volume's 65536 bytes",
    );
  });

  it("AADSTS70021: logs the code and the token's issuer, subject and audience next to the client id", async () => {
    await world.writeToken({ subject: "system:serviceaccount:other:intruder" });
    try {
      secret("fed", "F");
      const exit = await runChild(
        world.env({
          files: [{ file: "fed", format: "raw", source: { kind: "secret", ref: { name: "fed" } } }],
        }),
      );
      expect(exit.code).toBe(1);
      const error = exit.lines.find((l) => l.level === "error");
      expect(error?.code).toBe(ErrorCode.AUTH_FAILED);
      expect(error?.msg).toContain("AADSTS70021");
      expect(error?.msg).toContain(`client id ${CLIENT_ID}`);
      expect(error?.msg).toContain(
        `issuer '${world.issuer.issuer}', subject 'system:serviceaccount:other:intruder', audience 'api://AzureADTokenExchange'`,
      );
    } finally {
      await world.writeToken();
    }
  });

  it("a bad configuration exits 2 with a message naming the variable", async () => {
    const env = { ...world.env({ files: rawFiles(1) }), [SidecarEnv.clientId]: "nope" };
    const exit = await runChild(env);
    expect(exit.code).toBe(2);
    expect(exit.stderr).toContain(
      "AZURE_CLIENT_ID: expected the managed identity's client id, a GUID",
    );
  });
});

describe("redaction", () => {
  it("no secret value or token appeared in any output of this file", async () => {
    const text = allOutput.join("\n");
    expect(text.length).toBeGreaterThan(1000);
    for (const [name, value] of values) {
      if (value.length >= 4) expect(text, `value of ${name}`).not.toContain(value.trim());
    }
    expect(text).not.toMatch(/eyJ[\w-]{10,}\.eyJ[\w-]{10,}/);
    expect(text).not.toContain((await readFile(world.tokenFile, "utf8")).slice(0, 40));
    await rm(join(world.dir, "never"), { force: true });
  });
});
