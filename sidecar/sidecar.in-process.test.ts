/**
 * The sidecar's own code in this process (`runSidecar`, the credential), with
 * the real SDKs against the mocks over real HTTPS and short timeouts: faults
 * and how each is retried, Entra ID outages, a failing refresh keeping the
 * last good files, and the token exchange. The bundled process is tested in
 * sidecar.mocks.test.ts; this file runs the source, so mutation testing
 * covers it (vitest.mutation.config.ts).
 */
import { X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import { getCACertificates } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as certs from "../certs/index.ts";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import { SidecarEnv } from "../common/names.ts";
import type { SyncSpec } from "../common/spec.ts";
import { trustCaInThisProcess } from "../mocks/tls.ts";
import {
  CLIENT_ID,
  rawFiles,
  readSet,
  readStatus,
  startMockWorld,
  SUBJECT,
  TENANT_ID,
  type MockWorld,
  waitFor,
} from "../testing/sidecar-world.ts";
import { runSidecar } from "./app.ts";
import { createCredential, withTokenPrefetch } from "./credential.ts";

let world: MockWorld;
/** Every line the sidecar logged in this file: checked for values and tokens at the end. */
const allOutput: string[] = [];
const values = new Map<string, string>();
const secret = (name: string, value: string): string => {
  values.set(name, value);
  world.vault.setSecret(name, value);
  return value;
};
const outputDirOf = (env: Record<string, string>): string =>
  (JSON.parse(env[SidecarEnv.spec] ?? "{}") as SyncSpec).outputDir;

/** A log destination whose text the test can read; every line also goes to the redaction check. */
function captureLog(): { sink: Writable; text: () => string } {
  let text = "";
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      text += c.toString();
      allOutput.push(c.toString());
      cb();
    },
  });
  return { sink, text: () => text };
}
const devNull = (): Writable => captureLog().sink;

/** A port free on this machine now (the kernel's pick). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as AddressInfo;
  await new Promise((ok) => server.close(ok));
  return port;
}

/** The sidecar's credential against the mock Entra ID, reading the token file through `read`. */
function mockCredential(read: (path: string) => Promise<string> = (p) => readFile(p, "utf8")) {
  return createCredential({
    tenantId: TENANT_ID,
    clientId: CLIENT_ID,
    tokenFile: world.tokenFile,
    authorityHost: world.aad.url,
    disableInstanceDiscovery: true,
    readFile: read,
    now: Date.now,
  });
}

beforeAll(async () => {
  world = await startMockWorld();
  trustCaInThisProcess(world.caPem);
}, 60_000);

afterAll(async () => {
  await world.close();
});

describe("faults, in process with short timeouts (real SDKs, real HTTPS)", () => {
  const tuning = {
    attemptTimeoutMs: 1500,
    fetchBackoff: { baseMs: 50, capMs: 400 },
    syncBackoff: { baseMs: 50, capMs: 400 },
  };
  const runWithSink = async (spec: Partial<SyncSpec> & Pick<SyncSpec, "files">) => {
    const log = captureLog();
    const sink = log.sink;
    const env = world.env(spec);
    const error = await runSidecar({
      env,
      signal: new AbortController().signal,
      logDestination: sink,
      tuning,
    }).catch((e: unknown) => e);
    return { error, dir: outputDirOf(env), text: log.text() };
  };

  const cases: [string, Parameters<MockWorld["vault"]["injectFault"]>[0]][] = [
    [
      "429 with Retry-After",
      {
        action: { type: "status", status: 429, retryAfterSeconds: 1 },
        match: { authenticated: true },
        times: 2,
      },
    ],
    [
      "429 without Retry-After",
      { action: { type: "status", status: 429 }, match: { authenticated: true }, times: 3 },
    ],
    ["503", { action: { type: "status", status: 503 }, match: { authenticated: true }, times: 3 }],
    [
      "500 on the challenge",
      { action: { type: "status", status: 500 }, match: { authenticated: false }, times: 1 },
    ],
    ["latency", { action: { type: "latency", ms: 300 }, times: 4 }],
    ["dropped connections", { action: { type: "drop" }, match: { authenticated: true }, times: 2 }],
    ["no answer (timeout)", { action: { type: "hang" }, match: { authenticated: true }, times: 1 }],
  ];
  for (const [name, fault] of cases) {
    it(`${name}: retried; all files written, none partial`, async () => {
      for (let i = 0; i < 4; i++) secret(`f${i}`, `fault-value-${i}`);
      world.vault.clearFaults();
      world.vault.injectFault(fault);
      const t = Date.now();
      const { error, dir, text } = await runWithSink({ files: rawFiles(4, "f") });
      expect(error, text).toBeUndefined();
      expect(await readSet(dir)).toEqual(
        Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`f${i}`, `fault-value-${i}`])),
      );
      if (name === "429 with Retry-After") expect(Date.now() - t).toBeGreaterThanOrEqual(1000);
      expect(world.vault.faults()).toHaveLength(0);
      world.vault.clearFaults();
    });
  }

  it("AAD outage (503 on the token endpoint) is retried", async () => {
    secret("aad-a", "A");
    // With Retry-After: without one, MSAL refuses every request for 60 s on its own (its throttle cache).
    world.aad.injectFault({
      action: { type: "status", status: 503, retryAfterSeconds: 1 },
      times: 1,
    });
    const { error, dir, text } = await runWithSink({
      files: [{ file: "a", format: "raw", source: { kind: "secret", ref: { name: "aad-a" } } }],
    });
    expect(error, text).toBeUndefined();
    expect(await readSet(dir)).toEqual({ a: "A" });
  });

  it("after a good sync, a failing refresh keeps every file as it was, and the status says why", async () => {
    for (let i = 0; i < 3; i++) secret(`k${i}`, `keep-${i}`);
    const stop = new AbortController();
    const log = captureLog();
    const sink = log.sink;
    const env = world.env({ files: rawFiles(3, "k"), mode: "sidecar", refreshIntervalMs: 1000 });
    const dir = outputDirOf(env);
    const running = runSidecar({ env, signal: stop.signal, logDestination: sink, tuning });
    await waitFor(() => (existsSync(join(dir, "..data")) ? true : undefined));
    const before = await readSet(dir);
    const good = await readStatus(dir);
    expect(good).toMatchObject({ lastError: null, consecutiveFailures: 0 });
    expect(good.files.map((f) => f.name)).toEqual(["k0", "k1", "k2"]);
    world.vault.injectFault({
      action: { type: "status", status: 503 },
      match: { secret: "k1" },
      probability: 1,
    });
    secret("k0", "k0-rotated-value");
    await waitFor(
      () => (log.text().includes("keeping the last good files") ? true : undefined),
      10_000,
    );
    expect(await readSet(dir)).toEqual(before);
    await waitFor(async () => ((await readStatus(dir)).consecutiveFailures > 0 ? true : undefined));
    const failed = await readStatus(dir);
    // The files it describes are the ones still published, as of the last good sync.
    expect(failed).toMatchObject({
      lastSuccessTime: expect.any(String) as string,
      files: good.files,
      lastError: { code: ErrorCode.UNAVAILABLE },
    });
    expect(failed.lastError?.message).toContain("k1");
    expect(Date.parse(failed.lastError?.time ?? "")).toBeGreaterThanOrEqual(
      Date.parse(failed.lastSuccessTime),
    );
    world.vault.clearFaults();
    await waitFor(
      async () => ((await readSet(dir)).k0 === "k0-rotated-value" ? true : undefined),
      10_000,
    );
    const caughtUp = await readStatus(dir);
    expect(caughtUp.consecutiveFailures).toBe(0);
    expect(caughtUp.files[0]?.secrets[0]?.version).not.toBe(good.files[0]?.secrets[0]?.version);
    expect(JSON.stringify(caughtUp)).not.toContain("k0-rotated-value");
    stop.abort();
    await running;
  }, 30_000);

  it("serves metrics on the metrics port when asked: syncs, failures by code, requests by outcome, files", async () => {
    for (let i = 0; i < 2; i++) secret(`m${i}`, `metric-value-${i}`);
    const port = await freePort();
    const stop = new AbortController();
    const log = captureLog();
    const env = {
      ...world.env({ files: rawFiles(2, "m"), mode: "sidecar", refreshIntervalMs: 1000 }),
      [SidecarEnv.metricsPort]: String(port),
    };
    const dir = outputDirOf(env);
    const running = runSidecar({ env, signal: stop.signal, logDestination: log.sink, tuning });
    await waitFor(() => (existsSync(join(dir, "..data")) ? true : undefined));
    const scrape = async (): Promise<string> => {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      return res.text();
    };
    const first = await scrape();
    expect(first).toMatch(/^akv_injector_sidecar_last_success_timestamp_seconds \d{10}(\.\d+)?$/m);
    expect(first).toMatch(/^akv_injector_sidecar_files_published 2$/m);
    expect(first).toMatch(
      /^akv_injector_sidecar_requests_total\{service="key-vault",outcome="success"\} [2-9]\d*$/m,
    );
    expect(first).toMatch(
      /^akv_injector_sidecar_requests_total\{service="entra",outcome="success"\} \d+$/m,
    );
    world.vault.injectFault({
      action: { type: "status", status: 503 },
      match: { secret: "m1" },
      probability: 1,
    });
    await waitFor(async () =>
      /^akv_injector_sidecar_sync_failures_total\{code="AKV_UNAVAILABLE"\} [1-9]/m.test(
        await scrape(),
      )
        ? true
        : undefined,
    );
    expect(await scrape()).toMatch(
      /^akv_injector_sidecar_requests_total\{service="key-vault",outcome="AKV_UNAVAILABLE"\} [1-9]/m,
    );
    world.vault.clearFaults();
    stop.abort();
    await running;
    expect(log.text()).toContain(`serving metrics on port ${port}`);
    // Stopped with the sidecar.
    await expect(fetch(`http://127.0.0.1:${port}/metrics`)).rejects.toThrow();
  }, 30_000);

  it("syncs without metrics when their port is taken, saying so", async () => {
    secret("busy", "busy-port-value");
    const taken = createServer();
    await new Promise<void>((ok) => taken.listen(0, ok));
    const { port } = taken.address() as AddressInfo;
    try {
      const log = captureLog();
      const env = {
        ...world.env({
          files: [
            { file: "busy", format: "raw", source: { kind: "secret", ref: { name: "busy" } } },
          ],
          mode: "init",
        }),
        [SidecarEnv.metricsPort]: String(port),
      };
      await runSidecar({ env, signal: new AbortController().signal, logDestination: log.sink });
      expect(await readSet(outputDirOf(env))).toEqual({ busy: "busy-port-value" });
      expect(log.text()).toContain(
        `cannot serve metrics on port ${port} (EADDRINUSE); going on without`,
      );
    } finally {
      await new Promise((ok) => taken.close(ok));
    }
  });

  it("serves no metrics and loads no metrics code unless asked", async () => {
    secret("nm", "no-metrics");
    const log = captureLog();
    const env = world.env({
      files: [{ file: "nm", format: "raw", source: { kind: "secret", ref: { name: "nm" } } }],
      mode: "init",
    });
    await runSidecar({ env, signal: new AbortController().signal, logDestination: log.sink });
    expect(log.text()).not.toContain('"event":"metrics"');
  });

  it("a token prefetch and the Key Vault client's own call cost one token request (real MSAL)", async () => {
    const make = () => withTokenPrefetch(mockCredential(), TENANT_ID);
    const scope = "https://vault.azure.net/.default";
    const asKeyVaultDoes = { enableCae: true, tenantId: TENANT_ID };
    // The client's call while the prefetch is in flight: shared.
    world.aad.resetCounters();
    const inFlight = make();
    inFlight.prefetch(scope);
    const a = await inFlight.getToken([scope], asKeyVaultDoes);
    expect(world.aad.counters().tokenRequests).toBe(1);
    // The client's call after the prefetch settled: MSAL's cache.
    world.aad.resetCounters();
    const settled = make();
    settled.prefetch(scope);
    await new Promise((r) => setTimeout(r, 500));
    const b = await settled.getToken([scope], asKeyVaultDoes);
    expect(world.aad.counters().tokenRequests).toBe(1);
    expect(a?.token).toBeTruthy();
    expect(b?.token).toBeTruthy();
  });

  it("asked again while Entra's throttle holds, the credential says throttled, not refused (real MSAL, which repeats the 429 itself)", async () => {
    const credential = mockCredential();
    world.aad.injectFault({
      action: { type: "status", status: 429, retryAfterSeconds: 30 },
      times: 1,
    });
    const scope = "https://vault.azure.net/.default";
    const first = await credential.getToken(scope).catch((e: unknown) => e);
    const again = await credential.getToken(scope).catch((e: unknown) => e);
    expect(world.aad.faults()).toHaveLength(0);
    expect(isAkvError(first, ErrorCode.THROTTLED), String(first)).toBe(true);
    expect(isAkvError(again, ErrorCode.THROTTLED), String(again)).toBe(true);
  });

  it("the token file is read afresh for every exchange", async () => {
    let reads = 0;
    const credential = mockCredential(async (p) => {
      reads++;
      return readFile(p, "utf8");
    });
    await credential.getToken("https://vault.azure.net/.default");
    const first = reads;
    expect(first).toBeGreaterThan(0);
    // A second scope is a second exchange: the file is read again, and a
    // token that changed in between (the kubelet rotated it) is what is sent.
    await world.writeToken({ subject: "system:serviceaccount:other:rotated" });
    const error = await credential
      .getToken("https://graph.microsoft.com/.default")
      .catch((e: unknown) => e);
    expect(reads).toBeGreaterThan(first);
    expect(isAkvError(error, ErrorCode.AUTH_FAILED)).toBe(true);
    expect((error as Error).message).toContain("subject 'system:serviceaccount:other:rotated'");
    await world.writeToken({ subject: SUBJECT });
  });
});

describe("runSidecar's own log lines", () => {
  const run = async (env: Record<string, string>, signal = new AbortController().signal) => {
    const log = captureLog();
    const sink = log.sink;
    const error = await runSidecar({ env, signal, logDestination: sink }).catch((e: unknown) => e);
    const lines = log
      .text()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    return { error, lines };
  };

  it("says what it starts with, and 'done' when init mode is through", async () => {
    secret("log-a", "log-value-a");
    const env = world.env({
      files: [{ file: "a", format: "raw", source: { kind: "secret", ref: { name: "log-a" } } }],
      mode: "init",
    });
    const spec = JSON.parse(env[SidecarEnv.spec] ?? "{}") as SyncSpec;
    const { error, lines } = await run(env);
    expect(error).toBeUndefined();
    expect(lines[0]).toMatchObject({
      event: "start",
      msg: "starting",
      vault: spec.vaultUrl,
      mode: "init",
      files: ["a"],
      refreshIntervalMs: spec.refreshIntervalMs,
      clientId: CLIENT_ID,
      tenantId: TENANT_ID,
      // Normalized, as the SDK wants it: with its trailing slash.
      authorityHost: `${(env[SidecarEnv.authorityHost] ?? "").replace(/\/$/, "")}/`,
      // The mocks are no Entra ID and no Azure vault: both SDK checks are off, and it says so.
      instanceDiscovery: false,
      vaults: [spec.vaultUrl],
      unverifiedVaults: [spec.vaultUrl],
    });
    expect(typeof lines[0]?.volumeBytes).toBe("number");
    expect(lines.at(-1)).toMatchObject({ event: "stop", msg: "done" });
  });

  it("logs a fatal error once with its code and status, then throws it", async () => {
    const env = world.env({
      files: [{ file: "m", format: "raw", source: { kind: "secret", ref: { name: "never-set" } } }],
      mode: "init",
    });
    const { error, lines } = await run(env);
    expect(isAkvError(error, ErrorCode.SECRET_NOT_FOUND)).toBe(true);
    const failed = lines.filter((l) => l.event === "failed");
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({
      code: ErrorCode.SECRET_NOT_FOUND,
      status: 404,
      msg: (error as Error).message,
    });
  });

  it("says 'stopping: signal' when stopped in sidecar mode", async () => {
    secret("log-b", "log-value-b");
    const env = world.env({
      files: [{ file: "b", format: "raw", source: { kind: "secret", ref: { name: "log-b" } } }],
      mode: "sidecar",
      refreshIntervalMs: 60_000,
    });
    const stop = new AbortController();
    const running = run(env, stop.signal);
    await waitFor(() => (existsSync(join(outputDirOf(env), "..data")) ? true : undefined));
    stop.abort();
    const { error, lines } = await running;
    expect(error).toBeUndefined();
    expect(lines.at(-1)).toMatchObject({ event: "stop", msg: "stopping: signal" });
  });
});

describe("runSidecar: what it loads and trusts", () => {
  it("loads the certificate functions for a certificate file, and writes its key and chain", async () => {
    const now = new Date();
    const ca = certs.createCertificateAuthority({ commonName: "inproc-ca", now });
    const leaf = certs.createServingCertificate(ca, { dnsNames: ["inproc.example"], now });
    world.vault.addCertificate("inproc-tls", {
      keyPem: leaf.keyPem,
      certPems: [leaf.certPem, ca.certPem],
    });
    const env = world.env({
      files: [
        {
          file: "tls.crt",
          format: "cert",
          source: { kind: "secret", ref: { name: "inproc-tls" } },
        },
      ],
      mode: "init",
    });
    await runSidecar({ env, signal: new AbortController().signal, logDestination: devNull() });
    const crt = (await readSet(outputDirOf(env)))["tls.crt"] ?? "";
    expect(new X509Certificate(crt).subject).toContain("inproc.example");
  });

  it("adds AKV_INJECTOR_EXTRA_CA_CERTS to the CAs every connection trusts", async () => {
    const extra = certs.createCertificateAuthority({
      commonName: "extra-ca",
      now: new Date(),
    }).certPem;
    secret("ca-a", "ca-value-a");
    const env = {
      ...world.env({
        files: [{ file: "a", format: "raw", source: { kind: "secret", ref: { name: "ca-a" } } }],
        mode: "init",
      }),
      [SidecarEnv.extraCaCerts]: extra,
    };
    await runSidecar({ env, signal: new AbortController().signal, logDestination: devNull() });
    const fingerprint = new X509Certificate(extra).fingerprint256;
    expect(
      getCACertificates("default").some(
        (pem) => new X509Certificate(pem).fingerprint256 === fingerprint,
      ),
    ).toBe(true);
    // The mocks' CA, trusted before, is still trusted: the sync above went through.
    expect(await readSet(outputDirOf(env))).toEqual({ a: "ca-value-a" });
  });
});

describe("redaction", () => {
  it("no secret value or token appeared in anything the sidecar logged in this file", async () => {
    const text = allOutput.join("\n");
    expect(text.length).toBeGreaterThan(1000);
    for (const [name, value] of values) {
      if (value.length >= 4) expect(text, `value of ${name}`).not.toContain(value.trim());
    }
    expect(text).not.toMatch(/eyJ[\w-]{10,}\.eyJ[\w-]{10,}/);
    expect(text).not.toContain((await readFile(world.tokenFile, "utf8")).slice(0, 40));
  });
});
