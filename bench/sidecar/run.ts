/**
 * Sidecar start-up bench: process start → all files written (the `synced`
 * log line, whose pino timestamp shares the clock of this process) and peak
 * RSS (the kernel's VmHWM, read from /proc/self/status by a `--require`d exit
 * hook, with the anonymous and file-backed parts at exit), for 1, 10 and 100
 * secrets in `init` mode against the mocks on loopback (in this process),
 * trusting their CA through NODE_EXTRA_CA_CERTS as a user behind a private CA
 * would.
 *
 * Two builds: `dist/sidecar.mjs` as `npm run build` makes it (when present),
 * and the layout of `sidecar/bundle.ts` (code splitting, built-ins through
 * require, no jsonwebtoken), built here into bench/out/. Results go to
 * bench/sidecar/RESULTS.md with date and machine.
 *
 * Run: `npm run build && node bench/sidecar/run.ts [runs]` (Node 24).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { cpus, loadavg, release, totalmem } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { sidecarBuildOptions } from "../../sidecar/bundle.ts";
import { rawFiles, startMockWorld, type MockWorld } from "../../sidecar/mock-fixture.ts";

const RUNS = Number(process.argv[2] ?? 15);
const WARMUP = 2;
const COUNTS = [1, 10, 100] as const;
const root = new URL("../../", import.meta.url).pathname;

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

async function runOnce(world: MockWorld, bundle: string, n: number): Promise<Sample> {
  const env = world.env({ files: rawFiles(n), mode: "init" });
  const hook = join(world.dir, "memory-hook.cjs");
  if (!existsSync(hook)) await writeFile(hook, MEMORY_HOOK);
  const start = Date.now();
  const child = spawn(process.execPath, ["--require", hook, bundle, "run"], {
    env: { PATH: process.env.PATH ?? "", NODE_EXTRA_CA_CERTS: world.caFile, ...env },
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
    .map((l) => JSON.parse(l) as { event?: string; time: number })
    .find((l) => l.event === "synced");
  if (synced === undefined) throw new Error(`no synced line: ${out}`);
  const mem = /@@mem (\d+) (\d+) (\d+)/.exec(err);
  if (mem === null) throw new Error(`no memory line: ${err}`);
  const mib = (i: number): number => Number(mem[i]) / 1024;
  return { ms: synced.time - start, exitMs, peakMiB: mib(1), anonMiB: mib(2), fileMiB: mib(3) };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? Number.NaN) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
};

async function bench(world: MockWorld, label: string, bundle: string): Promise<string[]> {
  const rows: string[] = [];
  const byCount = new Map<number, number>();
  for (const n of COUNTS) {
    const samples: Sample[] = [];
    for (let i = 0; i < WARMUP + RUNS; i++) {
      world.vault.resetCounters();
      world.aad.resetCounters();
      const s = await runOnce(world, bundle, n);
      if (i >= WARMUP) samples.push(s);
    }
    const kv = world.vault.counters();
    const aad = world.aad.counters();
    const ms = median(samples.map((s) => s.ms));
    byCount.set(n, ms);
    const med = (f: (s: Sample) => number): string => median(samples.map(f)).toFixed(1);
    const cells = [
      label,
      String(n),
      ms.toFixed(0),
      Math.min(...samples.map((s) => s.ms)).toFixed(0),
      median(samples.map((s) => s.exitMs)).toFixed(0),
      med((s) => s.peakMiB),
      Math.max(...samples.map((s) => s.peakMiB)).toFixed(1),
      `${med((s) => s.anonMiB)} / ${med((s) => s.fileMiB)}`,
      String(kv.total),
      String(aad.tokenRequests),
    ];
    const row = `| ${cells.join(" | ")} |`;
    console.log(row);
    rows.push(row);
  }
  const ratio = (byCount.get(100) ?? 0) / (byCount.get(1) ?? 1);
  console.log(`${label}: 100 secrets / 1 secret = ${ratio.toFixed(2)}×`);
  rows.push(`| ${label} | 100 ÷ 1 | ${ratio.toFixed(2)}× | | | | | | | |`);
  return rows;
}

const world = await startMockWorld({
  secrets: Object.fromEntries(
    Array.from({ length: 100 }, (_, i) => [`s${i}`, `value-${i}-${"x".repeat(24)}`]),
  ),
});
try {
  const optDir = join(root, "bench/out/sidecar-opt");
  await build({ ...sidecarBuildOptions(optDir, join(root, "sidecar/main.ts")), logLevel: "error" });
  const header = [
    "| build | secrets | start → files written, median ms | min ms | start → exit, median ms | peak RSS, median MiB | peak RSS, max MiB | RSS at exit, anon / file-backed MiB | Key Vault requests | AAD token requests |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ];
  console.log(header.join("\n"));
  const rows: string[] = [];
  const dist = join(root, "dist/sidecar.mjs");
  if (existsSync(dist)) rows.push(...(await bench(world, "dist (npm run build)", dist)));
  else console.log("dist/sidecar.mjs missing: run npm run build first to measure it");
  rows.push(...(await bench(world, "sidecar/bundle.ts", join(optDir, "sidecar.mjs"))));

  const cpu = cpus();
  const machine = `${cpu[0]?.model ?? "?"} × ${cpu.length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}`;
  const text = [
    "# Sidecar start-up bench",
    "",
    `Date: ${new Date().toISOString()}  `,
    `Machine: ${machine}  `,
    `Load average at the end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(", ")} (other work on the machine skews timings: compare rows of one run)  `,
    `Command: \`npm run build && node bench/sidecar/run.ts ${RUNS}\` (${RUNS} runs after ${WARMUP} warm-ups per row; the mocks run in the bench process, on loopback HTTPS; request counts are of the last run)`,
    "",
    "Targets (issue 3): 10 secrets ≤ 80 ms and ≤ 60 MiB; 100 secrets ≤ 1.5× the time of 1.",
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
  await world.close();
}
