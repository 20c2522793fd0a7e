/**
 * The webhook benchmark (`node bench/webhook/run.ts`, or `npm run bench webhook`):
 * the real webhook server and a bare fastify baseline, each in its own process
 * pinned to core 0, driven over HTTPS from this process pinned to core 1 with
 * the same mix (60% injected, 30% not opted in, 10% refused).
 *
 * For each: closed loop with 32 connections (requests/s, p50/p99), an open
 * loop at a fixed 1,000 requests/s (p99), and the server's peak RSS. Writes
 * its section of bench/webhook/RESULTS.md.
 *
 * Options: `--seconds N` per measurement (default 10); `--profile` writes a
 * V8 CPU profile of each server to bench/out/.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { createCertificateAuthority, createServingCertificate } from "../../certs/index.ts";
import {
  buildMix,
  closedLoop,
  closedLoopWrk,
  createPool,
  openLoop,
  outcomeOf,
  type Case,
  type Summary,
} from "./load.ts";
import { describeRun, writeSection } from "./results.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    profile: { type: "boolean", default: false },
  },
});
const SECONDS = Number(values.seconds);
const CONNECTIONS = 32;
const RATE = 1000;
const WARMUP_SECONDS = 3;
const SERVER = new URL("server.ts", import.meta.url).pathname;

const hasTaskset = spawnSync("taskset", ["--version"]).status === 0;
// A Node client on one core saturates before a Node server on another does; wrk (C) does not.
const hasWrk = spawnSync("wrk", ["--version"]).error === undefined;
// This process (the load) on core 1, every thread of it; the servers on core 0.
if (hasTaskset) spawnSync("taskset", ["-a", "-cp", "1", String(process.pid)], { stdio: "ignore" });

interface Started {
  readonly child: ChildProcess;
  readonly port: number;
}

async function startServer(mode: "full" | "baseline", dir: string): Promise<Started> {
  const node = [
    process.execPath,
    ...(values.profile
      ? ["--cpu-prof", `--cpu-prof-dir=${new URL("../out", import.meta.url).pathname}`]
      : []),
    SERVER,
    mode,
    dir,
  ];
  const [command = process.execPath, ...args] = hasTaskset ? ["taskset", "-c", "0", ...node] : node;
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout }).once("line", (line) => {
      resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once("exit", (code) => {
      reject(new Error(`${mode} server exited with ${String(code)}`));
    });
  });
  return { child, port };
}

/** Peak resident memory of a process, from the kernel (VmHWM), in MiB. */
function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
}

/** Checks that each kind of body gets the answer it should, before timing anything. */
async function checkMix(
  port: number,
  caPem: string,
  cases: readonly Case[],
  mode: string,
): Promise<void> {
  const pool = createPool(port, caPem, 1);
  try {
    for (const expected of ["injected", "skipped", "refused"] as const) {
      const c = cases.find((x) => x.expected === expected);
      if (c === undefined) throw new Error(`no ${expected} case in the mix`);
      const res = await pool.request({
        path: "/mutate",
        method: "POST",
        headers: { "content-type": "application/json" },
        body: c.body,
      });
      const outcome = outcomeOf(await res.body.text());
      const want = mode === "baseline" ? "injected" : expected;
      if (res.statusCode !== 200 || outcome !== want) {
        throw new Error(`${mode}: a ${expected} body got HTTP ${res.statusCode}, ${outcome}`);
      }
    }
  } finally {
    await pool.close();
  }
}

interface Measured {
  readonly closed: Summary;
  readonly fixed: Summary;
  readonly peakRssMiB: number;
}

async function measure(
  mode: "full" | "baseline",
  dir: string,
  caPem: string,
  cases: readonly Case[],
): Promise<Measured> {
  const { child, port } = await startServer(mode, dir);
  try {
    await checkMix(port, caPem, cases, mode);
    let closed: Summary;
    if (hasWrk) {
      const pin = hasTaskset ? ["taskset", "-c", "1"] : [];
      await closedLoopWrk(port, cases, CONNECTIONS, WARMUP_SECONDS, dir, pin);
      closed = await closedLoopWrk(port, cases, CONNECTIONS, SECONDS, dir, pin);
    } else {
      const warm = createPool(port, caPem, CONNECTIONS);
      await closedLoop(warm, cases, CONNECTIONS, WARMUP_SECONDS);
      closed = await closedLoop(warm, cases, CONNECTIONS, SECONDS);
      await warm.close();
    }
    // Open the connections first: the apiserver keeps its connections to a webhook open.
    const pool = createPool(port, caPem, CONNECTIONS);
    await closedLoop(pool, cases, CONNECTIONS, 1);
    const fixed = await openLoop(pool, cases, RATE, SECONDS);
    await pool.close();
    const rss = peakRssMiB(child.pid ?? 0);
    console.log(
      `${mode}: ${closed.perSecond.toFixed(0)} req/s, p50 ${closed.p50.toFixed(2)} ms, p99 ${closed.p99.toFixed(2)} ms; ` +
        `at ${RATE}/s p99 ${fixed.p99.toFixed(2)} ms; peak RSS ${rss.toFixed(1)} MiB; errors ${closed.errors + fixed.errors}`,
    );
    return { closed, fixed, peakRssMiB: rss };
  } finally {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  }
}

const dir = await mkdtemp(join(tmpdir(), "akv-bench-webhook-"));
try {
  const now = new Date();
  const ca = createCertificateAuthority({ commonName: "bench-ca", now });
  const serving = createServingCertificate(ca, {
    dnsNames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    now,
  });
  await writeFile(join(dir, "tls.crt"), serving.certPem);
  await writeFile(join(dir, "tls.key"), serving.keyPem);
  const cases = buildMix(1000);
  const meanBytes = cases.reduce((n, c) => n + c.body.length, 0) / cases.length;
  console.log(
    `mix: ${cases.length} bodies, mean ${(meanBytes / 1024).toFixed(1)} KiB; ${SECONDS} s per measurement`,
  );

  const full = await measure("full", dir, ca.certPem, cases);
  const baseline = await measure("baseline", dir, ca.certPem, cases);
  const ratio = full.closed.perSecond / baseline.closed.perSecond;
  const row = (name: string, m: Measured): string =>
    `| ${name} | ${m.closed.perSecond.toFixed(0)} | ${m.closed.p50.toFixed(2)} | ${m.closed.p99.toFixed(2)} | ${m.fixed.p50.toFixed(2)} | ${m.fixed.p99.toFixed(2)} | ${m.fixed.max.toFixed(2)} | ${m.peakRssMiB.toFixed(1)} | ${m.closed.errors + m.fixed.errors} |`;
  const verdict = (ok: boolean): string => (ok ? "met" : "**missed**");
  const markdown = `## Throughput and latency

${describeRun()}

Command: \`node bench/webhook/run.ts --seconds ${SECONDS}\`. Server ${hasTaskset ? "pinned to core 0 (`taskset -c 0`)" : "not pinned (no taskset)"}; load ${hasTaskset ? "pinned to core 1" : "unpinned"}:
${hasWrk ? "closed loop by wrk 4.1 (one thread, HTTPS keep-alive, a Lua script cycling through the mix)" : "closed loop by an undici Pool (no wrk here: the Node client on one core may saturate first, so the ratio understates the server)"};
fixed rate by an undici Pool (HTTPS keep-alive, trusting only the benchmark CA).
Mix of ${cases.length} AdmissionReviews, mean ${(meanBytes / 1024).toFixed(1)} KiB (pods as the apiserver sends them:
defaults, API-access volume, managed fields): 60% opted in and injected, 30% not opted in, 10% refused.
The full server logs one pino line per admission to a file and keeps prom-client metrics (with the default
process metrics); service accounts come from the informer-backed cache (every lookup a hit).
Closed loop: ${CONNECTIONS} connections, ${WARMUP_SECONDS} s warm-up, then ${SECONDS} s. Fixed rate: ${RATE} requests/s, open loop, ${SECONDS} s, latency counted from when each request was due.

| server | req/s (32 conns) | p50 ms | p99 ms | p50 ms at ${RATE}/s | p99 ms at ${RATE}/s | max ms at ${RATE}/s | peak RSS MiB | errors |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
${row("webhook (full logic, logging, metrics)", full)}
${row("bare fastify baseline (fixed patch)", baseline)}

- Throughput: ${(ratio * 100).toFixed(0)}% of the baseline (target ≥ 50%: ${verdict(ratio >= 0.5)}).
- p99 at ${RATE} requests/s: ${full.fixed.p99.toFixed(2)} ms (target ≤ 2 ms: ${verdict(full.fixed.p99 <= 2)}).
`;
  await writeSection("load", markdown);
  console.log(
    `throughput ${(ratio * 100).toFixed(0)}% of baseline; p99 at ${RATE}/s ${full.fixed.p99.toFixed(2)} ms`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
