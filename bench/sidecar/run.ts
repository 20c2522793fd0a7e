/**
 * Sidecar start-up bench: process start → all files written (the `synced`
 * log line, whose pino timestamp shares the clock of this process) and peak
 * RSS (the kernel's VmHWM, read from /proc/self/status by a `--require`d exit
 * hook, with the anonymous and file-backed parts at exit), for 1, 10 and 100
 * secrets in `init` mode against the mocks on loopback (in this process),
 * trusting their CA through NODE_EXTRA_CA_CERTS as a user behind a private CA
 * would.
 *
 * Builds: the layout of `sidecar/bundle.ts`, built here into bench/out/;
 * `--dist` adds `dist/sidecar.mjs` as `npm run build` made it; `--compare
 * LABEL=PATH [FLAGS…]` (repeatable) adds any other built entry, e.g. a
 * snapshot of the previous code with the compile cache its image would have,
 * run as `node FLAGS… PATH run`, so before and after are measured in the
 * same run. Runs of the builds are interleaved (A B A B …), so load that
 * comes and goes on a shared machine hits every build alike.
 *
 * Fairness on a small shared machine: with two or more CPUs and `taskset`
 * (util-linux), the sidecar child is pinned to the last CPU and this process
 * (which hosts the mocks) to CPU 0, so the mocks' TLS and token work does not
 * compete with the sidecar for a core (`--no-pin` turns it off). The load
 * average is recorded at the start and the end.
 *
 * The files go to a tmpfs (`/dev/shm`), as in a pod, where the sidecar
 * writes to an in-memory emptyDir; `--out-disk` writes under the OS temp
 * directory instead (on this machine, ext4: every fsync reaches the disk).
 *
 * `sidecar/bundle.ts + compile cache` is the same build with the
 * `sidecar-cache/` directory an image would fill at build time (see
 * sidecar/main.ts), filled here the same way before the runs.
 *
 * `--node-args "LABEL=--flag …"` (repeatable) adds that build again, run as
 * `node --flag … sidecar.mjs run`, with its own compile cache filled under the
 * same flags (V8 keys a code cache by its flags, as the image's `RUN` does
 * with the ENTRYPOINT's flags). `--only-variants` leaves out the rows without
 * flags (other than `--compare`'s).
 *
 * Results go to bench/sidecar/RESULTS.md with date and machine.
 *
 * `--metrics` adds the compile-cache build again with
 * `AKV_INJECTOR_METRICS_PORT` set (the pod's `metrics-port`): the metrics
 * chunk loaded and its port listened on.
 *
 * `--objects` adds the compile-cache build again with a certificate and a
 * key among the files (object identifiers read through the certificates and
 * keys APIs, by an identity that holds Key Vault Reader too): the chunk of
 * their clients loaded, one more challenge per API. With 1 file, the file
 * is the certificate. It runs under the first `--node-args` variant's flags.
 *
 * `--latency MS` puts a proxy in front of each mock (testing/latency-proxy.ts)
 * that adds MS to every chunk of bytes each way and one round trip to every
 * connect: what a vault in the same region costs (5), where the reads of a
 * sync overlap the network instead of queueing for the CPU. The target
 * "100 secrets ≤ 1.3× the time of 1" is measured this way.
 *
 * Run: `npm run build && node bench/sidecar/run.ts [runs] [--latency MS] [--no-pin] [--dist] [--out-disk] [--compare "LABEL=PATH [FLAGS]"]… [--node-args "LABEL=FLAGS"]… [--only-variants] [--metrics] [--objects]` (Node 24).
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, release, totalmem } from "node:os";
import { isAbsolute, join } from "node:path";
import { build } from "esbuild";
import { sidecarBuildOptions } from "../../scripts/sidecar-bundle.ts";
import { SidecarEnv } from "../../common/names.ts";
import { freePort } from "../../e2e/host/network.ts";
import { median } from "../stats.ts";
import { choosePinning } from "./harness.ts";
import {
  CLIENT_ID,
  rawFiles,
  startMockWorld,
  type MockWorld,
} from "../../testing/sidecar-world.ts";
import { createCertificateAuthority, createServingCertificate } from "../../certs/index.ts";
import type { FileSpec } from "../../common/spec.ts";
import { startLatencyProxy, type LatencyProxy } from "../../testing/latency-proxy.ts";

const root = new URL("../../", import.meta.url).pathname;
const args = process.argv.slice(2);
const RUNS = Number(args.find((a) => /^\d+$/.test(a)) ?? 15);
/** `--latency MS`: every connection to the mocks goes through a proxy that adds MS each way. */
const LATENCY_MS = args.includes("--latency") ? Number(args[args.indexOf("--latency") + 1]) : 0;
if (!(LATENCY_MS >= 0)) throw new Error("--latency wants milliseconds one way, e.g. --latency 5");
const WARMUP = 2;
const countsArg = args.includes("--counts") ? args[args.indexOf("--counts") + 1] : undefined;
/** `--counts 1,100`: only these secret counts (default 1, 10, 100). */
const COUNTS = (countsArg ?? "1,10,100").split(",").map(Number);
const compare = args
  .flatMap((a, i) => (a === "--compare" ? [args[i + 1] ?? ""] : []))
  .map((spec) => {
    const eq = spec.indexOf("=");
    if (eq <= 0) throw new Error(`--compare wants "LABEL=PATH [FLAGS…]", not '${spec}'`);
    const [path = "", ...nodeArgs] = spec
      .slice(eq + 1)
      .split(/\s+/)
      .filter((w) => w !== "");
    return {
      label: spec.slice(0, eq),
      bundle: isAbsolute(path) ? path : join(root, path),
      nodeArgs,
    };
  });
const variants = args
  .flatMap((a, i) => (a === "--node-args" ? [args[i + 1] ?? ""] : []))
  .map((spec) => {
    const eq = spec.indexOf("=");
    if (eq <= 0) throw new Error(`--node-args wants "LABEL=FLAGS", not '${spec}'`);
    const nodeArgs = spec
      .slice(eq + 1)
      .split(/\s+/)
      .filter((w) => w !== "");
    if (nodeArgs.some((w) => !w.startsWith("--")))
      throw new Error(`--node-args takes flags only: '${spec}'`);
    return { label: spec.slice(0, eq), nodeArgs };
  });

/** Prints the process's memory at exit; loaded with --require, so the sidecar itself is unchanged. */
const MEMORY_HOOK = `process.on("exit", () => {
  const s = require("node:fs").readFileSync("/proc/self/status", "utf8");
  const kib = (k) => Number(new RegExp("^" + k + ":\\\\s+(\\\\d+)", "m").exec(s)?.[1]);
  process.stderr.write("@@mem " + [kib("VmHWM"), kib("RssAnon"), kib("RssFile")].join(" ") + "\\n");
});
`;

interface Sample {
  readonly ms: number;
  readonly exitMs: number;
  /** Peak RSS, and anonymous / file-backed RSS at exit, MiB. */
  readonly peakMiB: number;
  readonly anonMiB: number;
  readonly fileMiB: number;
}

let outputs = 0;
/** The latency proxies in front of the vault and Entra ID (`--latency`). */
let proxies: { vault: LatencyProxy; aad: LatencyProxy } | undefined;

async function runOnce(
  world: MockWorld,
  bundle: string,
  n: number,
  pin: readonly string[],
  outBase: string | undefined,
  nodeArgs: readonly string[],
  extraEnv: Readonly<Record<string, string>>,
  objects = false,
): Promise<Sample> {
  const env = world.env({
    files: objects ? withObjects(world, rawFiles(n)) : rawFiles(n),
    mode: "init",
    ...(outBase === undefined ? {} : { outputDir: join(outBase, `out-${++outputs}`) }),
    ...(proxies === undefined ? {} : { vaultUrl: proxies.vault.url }),
  });
  if (proxies !== undefined) {
    env[SidecarEnv.authorityHost] = proxies.aad.url;
    env[SidecarEnv.vaultSuffixes] = `.vault.azure.net,${new URL(proxies.vault.url).host}`;
  }
  const hook = join(world.dir, "memory-hook.cjs");
  if (!existsSync(hook)) await writeFile(hook, MEMORY_HOOK);
  const start = Date.now();
  const argv = [process.execPath, ...nodeArgs, "--require", hook, bundle, "run"];
  const [file = "", ...rest] = [...pin, ...argv];
  const child = spawn(file, rest, {
    env: { PATH: process.env.PATH ?? "", NODE_EXTRA_CA_CERTS: world.caFile, ...env, ...extraEnv },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  const exitMs = Date.now() - start;
  if (code !== 0) throw new Error(`sidecar exited ${code}: ${out}${err}`);
  const synced = out
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { event?: string; time: string | number })
    .find((l) => l.event === "synced");
  if (synced === undefined) throw new Error(`no synced line: ${out}`);
  const mem = /@@mem (\d+) (\d+) (\d+)/.exec(err);
  if (mem === null) throw new Error(`no memory line: ${err}`);
  const mib = (i: number): number => Number(mem[i]) / 1024;
  // RFC 3339 since issue 11; epoch ms from builds before it (`--compare`).
  const syncedAt = typeof synced.time === "number" ? synced.time : Date.parse(synced.time);
  return { ms: syncedAt - start, exitMs, peakMiB: mib(1), anonMiB: mib(2), fileMiB: mib(3) };
}

/** The last file a certificate and the one before it a key (`--objects`), each an identifier of the world's vault. */
function withObjects(world: MockWorld, files: FileSpec[]): FileSpec[] {
  const object = (kind: "certificate" | "key", name: string): FileSpec => ({
    file: name,
    format: "raw",
    source: { kind: "secret", ref: { name, vaultUrl: world.vault.url, kind } },
  });
  const out = files.slice(0, Math.max(0, files.length - 2));
  if (files.length >= 2) out.push(object("key", "bench-key"));
  out.push(object("certificate", "bench-cert"));
  return out;
}

interface Build {
  readonly label: string;
  readonly bundle: string;
  /** Node flags before the entry, as an image's ENTRYPOINT would put them. */
  readonly nodeArgs?: readonly string[];
  /** More environment for the sidecar (`--metrics`: its metrics port). */
  readonly env?: Readonly<Record<string, string>>;
  /** A certificate and a key among the files (`--objects`). */
  readonly objects?: boolean;
}

/** Measures every build for every count, the builds' runs interleaved. */
async function bench(
  world: MockWorld,
  builds: readonly Build[],
  pin: readonly string[],
  outBase: string | undefined,
): Promise<string[]> {
  const rows: string[] = [];
  // The ratio's target is against a real round trip; on loopback it measures CPU only.
  const latencyNote = LATENCY_MS > 0 ? ` (${LATENCY_MS} ms each way)` : " (loopback)";
  const byBuild = new Map<string, Map<number, number>>(builds.map((b) => [b.label, new Map()]));
  for (const n of COUNTS) {
    const samples = new Map<string, Sample[]>(builds.map((b) => [b.label, []]));
    const counts = new Map<string, { kv: number; aad: number }>();
    for (let i = 0; i < WARMUP + RUNS; i++) {
      for (const b of builds) {
        world.vault.resetCounters();
        world.aad.resetCounters();
        const s = await runOnce(
          world,
          b.bundle,
          n,
          pin,
          outBase,
          b.nodeArgs ?? [],
          b.env ?? {},
          b.objects,
        );
        if (i >= WARMUP) samples.get(b.label)?.push(s);
        counts.set(b.label, {
          kv: world.vault.counters().total,
          aad: world.aad.counters().tokenRequests,
        });
      }
    }
    for (const b of builds) {
      const list = samples.get(b.label) ?? [];
      const ms = median(list.map((s) => s.ms));
      byBuild.get(b.label)?.set(n, ms);
      const med = (f: (s: Sample) => number): string => median(list.map(f)).toFixed(1);
      const cells = [
        b.label,
        String(n),
        ms.toFixed(0),
        Math.min(...list.map((s) => s.ms)).toFixed(0),
        median(list.map((s) => s.exitMs)).toFixed(0),
        med((s) => s.peakMiB),
        Math.max(...list.map((s) => s.peakMiB)).toFixed(1),
        `${med((s) => s.anonMiB)} / ${med((s) => s.fileMiB)}`,
        String(counts.get(b.label)?.kv ?? "?"),
        String(counts.get(b.label)?.aad ?? "?"),
      ];
      const row = `| ${cells.join(" | ")} |`;
      console.log(row);
      rows.push(row);
    }
  }
  for (const b of builds) {
    const ms = byBuild.get(b.label);
    if (ms?.get(100) === undefined || ms.get(1) === undefined) continue;
    const ratio = (ms.get(100) ?? 0) / (ms.get(1) ?? 1);
    console.log(`${b.label}: 100 secrets / 1 secret = ${ratio.toFixed(2)}×${latencyNote}`);
    rows.push(`| ${b.label} | 100 ÷ 1${latencyNote} | ${ratio.toFixed(2)}× | | | | | | | |`);
  }
  return rows;
}

const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(", ");
const loadAtStart = load();
const pinning = choosePinning(!args.includes("--no-pin"));
const outBase =
  !args.includes("--out-disk") && existsSync("/dev/shm")
    ? await mkdtemp("/dev/shm/akv-sidecar-bench-")
    : undefined;
const outNote =
  outBase === undefined
    ? "files written under the OS temp directory"
    : "files written to tmpfs (/dev/shm)";
const world = await startMockWorld({
  secrets: Object.fromEntries(
    Array.from({ length: 100 }, (_, i) => [`s${i}`, `value-${i}-${"x".repeat(24)}`]),
  ),
});
if (LATENCY_MS > 0) {
  proxies = {
    vault: await startLatencyProxy(world.vault.url, LATENCY_MS),
    aad: await startLatencyProxy(world.aad.url, LATENCY_MS),
  };
}
try {
  const optDir = join(root, "bench/out/sidecar-opt");
  await build({ ...sidecarBuildOptions(optDir, join(root, "sidecar/main.ts")), logLevel: "error" });
  const header = [
    "| build | secrets | start → files written, median ms | min ms | start → exit, median ms | peak RSS, median MiB | peak RSS, max MiB | RSS at exit, anon / file-backed MiB | Key Vault requests | AAD token requests |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ];
  const builds: Build[] = [...compare];
  const dist = join(root, "dist/sidecar.mjs");
  if (args.includes("--dist")) {
    if (existsSync(dist)) builds.push({ label: "dist (npm run build)", bundle: dist });
    else console.log("dist/sidecar.mjs missing: run npm run build first to measure it");
  }
  const withCache = async (dir: string, nodeArgs: readonly string[]): Promise<string> => {
    await rm(dir, { recursive: true, force: true });
    await cp(optDir, dir, { recursive: true });
    await mkdir(join(dir, "sidecar-cache"));
    try {
      // Exits 2 (no configuration) after loading the chunks; the cache is written at exit.
      execFileSync(process.execPath, [...nodeArgs, join(dir, "sidecar.mjs"), "run"], {
        env: { PATH: process.env.PATH ?? "" },
        stdio: "ignore",
      });
    } catch {
      // expected
    }
    if ((await readdir(join(dir, "sidecar-cache"))).length === 0)
      throw new Error("the compile cache was not written");
    return join(dir, "sidecar.mjs");
  };
  if (!args.includes("--only-variants")) {
    builds.push({ label: "sidecar/bundle.ts", bundle: join(optDir, "sidecar.mjs") });
    // What an image build would do: a sidecar-cache/ beside the entry, filled by one `run`.
    builds.push({
      label: "sidecar/bundle.ts + compile cache",
      bundle: await withCache(join(root, "bench/out/sidecar-opt-cc"), []),
    });
  }
  if (args.includes("--metrics")) {
    // The same image build with metrics on: the chunk loaded and the port
    // listened on before the sync (runs are sequential: one port serves all).
    const port = await freePort();
    builds.push({
      label: "sidecar/bundle.ts + compile cache, metrics on",
      bundle: await withCache(join(root, "bench/out/sidecar-opt-cc-metrics"), []),
      env: { [SidecarEnv.metricsPort]: String(port) },
    });
  }
  if (args.includes("--objects")) {
    const now = new Date();
    const ca = createCertificateAuthority({ commonName: "bench CA", now });
    const leaf = createServingCertificate(ca, { dnsNames: ["bench.example.test"], now });
    world.vault.addCertificate("bench-cert", { keyPem: leaf.keyPem, certPems: [leaf.certPem] });
    world.vault.addKey("bench-key", { pem: leaf.keyPem });
    world.vault.grantRole({ principal: CLIENT_ID, role: "Key Vault Reader" });
    // Under the first --node-args variant's flags, if any (the image's), so
    // its rows compare with that variant's.
    const nodeArgs = variants[0]?.nodeArgs ?? [];
    builds.push({
      label: `${variants[0]?.label ?? "sidecar/bundle.ts + compile cache"}, a certificate and a key`,
      bundle: await withCache(join(root, "bench/out/sidecar-opt-cc-objects"), nodeArgs),
      nodeArgs,
      objects: true,
    });
  }
  for (const [i, v] of variants.entries()) {
    const bundle = await withCache(join(root, `bench/out/sidecar-opt-flags-${i}`), v.nodeArgs);
    builds.push({ label: v.label, bundle, nodeArgs: v.nodeArgs });
  }
  console.log(`${pinning.note}; load average ${loadAtStart}`);
  console.log(header.join("\n"));
  const rows = await bench(world, builds, pinning.child, outBase);

  const cpu = cpus();
  const machine = `${cpu[0]?.model ?? "?"} × ${cpu.length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}`;
  const quote = (a: string): string => (/^[\w./=:@,+-]+$/.test(a) ? a : `'${a}'`);
  const command = ["node bench/sidecar/run.ts", ...args.map(quote)].join(" ");
  const text = [
    "# Sidecar start-up bench",
    "",
    `Date: ${new Date().toISOString()}  `,
    `Machine: ${machine}  `,
    `Load average (1, 5, 15 min) at the start: ${loadAtStart}; at the end: ${load()} (other work on the machine skews timings: compare rows of one run)  `,
    `Placement: ${pinning.note}; ${outNote}  `,
    `Command: \`npm run build && ${command}\` (${RUNS} runs after ${WARMUP} warm-ups per row, the builds' runs interleaved; the mocks run in the bench process, on loopback HTTPS${LATENCY_MS > 0 ? `, each connection through a proxy adding ${LATENCY_MS} ms each way (testing/latency-proxy.ts)` : ""}; request counts are of the last run)`,
    "",
    "Targets (issues 3, 13): 10 secrets ≤ 80 ms and ≤ 60 MiB on loopback; with a 5 ms one-way latency (`--latency 5`), 100 secrets ≤ 1.3× the time of 1; the SDK path's CPU per read ≤ 1.3× the plain-HTTPS floor (`node bench/sidecar/floor.ts`).",
    "Baseline of a naive esbuild bundle of the two SDKs: 96 / 120 / 250 ms, 70 / 71 / 86 MiB.",
    "",
    ...header,
    ...rows,
    "",
  ].join("\n");
  // The hand-written analysis below the table survives a re-run.
  const resultsFile = join(root, "bench/sidecar/RESULTS.md");
  const previous = existsSync(resultsFile) ? await readFile(resultsFile, "utf8") : "";
  const analysis = previous.indexOf("\n## Analysis");
  await writeFile(resultsFile, analysis < 0 ? text : `${text}${previous.slice(analysis)}`);
  console.log("wrote bench/sidecar/RESULTS.md");
} finally {
  await proxies?.vault.close();
  await proxies?.aad.close();
  await world.close();
  if (outBase !== undefined) await rm(outBase, { recursive: true, force: true });
}
