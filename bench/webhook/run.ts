/**
 * The webhook benchmark (`npm run build && node bench/webhook/run.ts`, or
 * `npm run bench webhook`): the webhook as its image runs it (the bundle,
 * the image's Node flags, image-server.ts) and a bare fastify baseline under
 * the same flags, each in its own process in a memory group with the chart's
 * limit (Node sizes its heap from it, as in a pod) and pinned to core 0,
 * driven over HTTPS from this process pinned to core 1 with the same mix
 * (60% injected, 30% not opted in, 10% refused).
 *
 * For each: closed loop with 32 connections (requests/s, p50/p99), an open
 * loop at a fixed 1,000 requests/s (p99), and the server's peak RSS. Writes
 * its section of bench/webhook/RESULTS.md.
 *
 * Options: `--seconds N` per measurement (default 10); `--memory-limit MiB`
 * (default 256, the chart's); `--profile` writes a V8 CPU profile of each
 * server to bench/out/.
 */
import { spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
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
import {
  IMAGE_NODE_FLAGS,
  imageWebhookEnv,
  requireBundle,
  startFakeApiServer,
  startImageWebhook,
} from "./image-server.ts";
import { makeMemoryGroup, spawnInGroup } from "./process.ts";
import { describeRun, writeSection } from "./results.ts";
import { writeServingCertificate } from "./tls.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    profile: { type: "boolean", default: false },
    "memory-limit": { type: "string", default: "256" },
  },
});
const SECONDS = Number(values.seconds);
const CONNECTIONS = 32;
const RATE = 1000;
const WARMUP_SECONDS = 3;
/** A fixed-rate run is quiet when processes outside the benchmark used less than this share of the CPU. */
const QUIET_PCT = 5;
const MAX_FIXED_RUNS = 8;
const MAX_CLOSED_RUNS = 3;
const SERVER = new URL("server.ts", import.meta.url).pathname;
/** The service accounts the mix's pods name, each with a client id: every lookup a hit. */
const ACCOUNTS = ["team-a/app", "team-a/web", "team-a/default"];

const hasTaskset = spawnSync("taskset", ["--version"]).status === 0;
// A Node client on one core saturates before a Node server on another does; wrk (C) does not.
const hasWrk = spawnSync("wrk", ["--version"]).error === undefined;
// This process (the load) on core 1, every thread of it; the servers on core 0.
if (hasTaskset) spawnSync("taskset", ["-a", "-cp", "1", String(process.pid)], { stdio: "ignore" });
// On a machine shared with other work, a higher priority keeps neighbours from
// preempting the server and the load mid-request (only root may raise it).
const NICE = ["nice", "-n", "-15"];
const canRaisePriority =
  spawnSync("nice", ["-n", "-15", "true"]).status === 0 && process.getuid?.() === 0;
if (canRaisePriority)
  spawnSync("renice", ["-n", "-15", "-p", String(process.pid)], { stdio: "ignore" });
const prefix = (core: number): string[] => [
  ...(canRaisePriority ? NICE : []),
  ...(hasTaskset ? ["taskset", "-c", String(core)] : []),
];

interface Started {
  readonly child: ChildProcess;
  readonly port: number;
}

/** A port free now on loopback, for a server that takes its port from the environment. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/**
 * `full`: the webhook as its image runs it (image-server.ts); `baseline`:
 * bare fastify (server.ts) under the same Node flags and memory group.
 */
async function startServer(mode: "full" | "baseline", dir: string): Promise<Started> {
  const profile = values.profile
    ? ["--cpu-prof", `--cpu-prof-dir=${new URL("../out", import.meta.url).pathname}`]
    : [];
  if (mode === "full") {
    const port = await freePort();
    const env = await imageWebhookEnv(dir, api, port);
    const child = await startImageWebhook({
      group,
      env,
      prefix: prefix(0),
      flags: [...IMAGE_NODE_FLAGS, ...profile],
    });
    return { child, port };
  }
  const child = spawnInGroup(group, [
    ...prefix(0),
    process.execPath,
    ...IMAGE_NODE_FLAGS,
    ...profile,
    SERVER,
    mode,
    dir,
  ]);
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

/** Clock ticks (USER_HZ) of all cores: busy and total, from /proc/stat. */
function machineTicks(): { busy: number; total: number } {
  const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] =
    fields;
  return {
    busy: user + nice + system + irq + softirq + steal,
    total: user + nice + system + idle + iowait + irq + softirq + steal,
  };
}

/** Fields of /proc/PID/stat after the command name. */
function statFields(pid: number | "self"): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** CPU ticks (user + system) a process has used. */
function processTicks(pid: number): number {
  const f = statFields(pid);
  return Number(f[11]) + Number(f[12]);
}

/** CPU ticks of this process and of its finished children (wrk). */
function ownTicks(): number {
  const f = statFields("self");
  return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
}

/**
 * Runs `work` and says how much of the machine other processes used meanwhile
 * (percent of all cores): the noise on a VM shared with other work.
 */
async function withForeignCpu<T>(
  serverPid: number,
  work: () => Promise<T>,
): Promise<{ result: T; foreignPct: number }> {
  const m0 = machineTicks();
  const s0 = processTicks(serverPid);
  const o0 = ownTicks();
  const result = await work();
  const m1 = machineTicks();
  const ours = processTicks(serverPid) - s0 + ownTicks() - o0;
  const foreignPct =
    (100 * Math.max(0, m1.busy - m0.busy - ours)) / Math.max(1, m1.total - m0.total);
  return { result, foreignPct };
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
  readonly closed: Summary & { readonly foreignPct: number };
  /** The median (by p99) of the quiet fixed-rate runs. */
  readonly fixed: Summary;
  readonly fixedRuns: string;
  readonly fixedBasis: string;
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
    // Up to three closed-loop runs, until one is quiet; the quietest is kept.
    let closedRun: { result: Summary; foreignPct: number } | undefined;
    for (let attempt = 0; attempt < MAX_CLOSED_RUNS; attempt++) {
      const run = await withForeignCpu(child.pid ?? 0, async () => {
        if (hasWrk) {
          const pin = prefix(1);
          await closedLoopWrk(port, cases, CONNECTIONS, WARMUP_SECONDS, dir, pin);
          return closedLoopWrk(port, cases, CONNECTIONS, SECONDS, dir, pin);
        }
        const warm = createPool(port, caPem, CONNECTIONS);
        await closedLoop(warm, cases, CONNECTIONS, WARMUP_SECONDS);
        const summary = await closedLoop(warm, cases, CONNECTIONS, SECONDS);
        await warm.close();
        return summary;
      });
      console.log(
        `${mode}: closed loop ${run.result.perSecond.toFixed(0)} req/s (other work ${run.foreignPct.toFixed(0)}%)`,
      );
      if (closedRun === undefined || run.foreignPct < closedRun.foreignPct) closedRun = run;
      if (run.foreignPct < QUIET_PCT) break;
    }
    if (closedRun === undefined) throw new Error("no closed-loop run");
    const closed = { ...closedRun.result, foreignPct: closedRun.foreignPct };
    // Open the connections first: the apiserver keeps its connections to a webhook open.
    const pool = createPool(port, caPem, CONNECTIONS);
    await closedLoop(pool, cases, CONNECTIONS, 1);
    // Other sessions' builds and tests share this VM. Runs go on until three were
    // quiet (other work under QUIET_PCT of the CPU) or MAX_FIXED_RUNS were made;
    // every run is reported, the table takes the median of the quiet ones.
    const runs: (Summary & { foreignPct: number })[] = [];
    while (
      runs.length < MAX_FIXED_RUNS &&
      runs.filter((r) => r.foreignPct < QUIET_PCT).length < 3
    ) {
      const { result, foreignPct } = await withForeignCpu(child.pid ?? 0, () =>
        openLoop(pool, cases, RATE, SECONDS),
      );
      runs.push({ ...result, foreignPct });
    }
    await pool.close();
    const quiet = runs.filter((r) => r.foreignPct < QUIET_PCT);
    const chosen = (quiet.length > 0 ? quiet : runs).sort((a, b) => a.p99 - b.p99);
    const fixed = chosen[Math.floor((chosen.length - 1) / 2)];
    if (fixed === undefined) throw new Error("no fixed-rate run");
    const fixedRuns = runs
      .map(
        (r) =>
          `${r.p99.toFixed(2)} ms (other work ${r.foreignPct.toFixed(0)}%${r.foreignPct < QUIET_PCT ? ", quiet" : ""})`,
      )
      .join(", ");
    const fixedBasis =
      quiet.length > 0
        ? `median of ${quiet.length} quiet runs`
        : `median of ${runs.length} runs, none quiet`;
    const rss = peakRssMiB(child.pid ?? 0);
    console.log(
      `${mode}: ${closed.perSecond.toFixed(0)} req/s, p50 ${closed.p50.toFixed(2)} ms, p99 ${closed.p99.toFixed(2)} ms; ` +
        `at ${RATE}/s p99 ${fixed.p99.toFixed(2)} ms; peak RSS ${rss.toFixed(1)} MiB; errors ${closed.errors + fixed.errors}`,
    );
    console.log(
      `${mode}: fixed-rate runs: ${fixedRuns}; closed loop other work ${closed.foreignPct.toFixed(0)}%`,
    );
    return { closed, fixed, fixedRuns, fixedBasis, peakRssMiB: rss };
  } finally {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  }
}

await requireBundle();
const dir = await mkdtemp(join(tmpdir(), "akv-bench-webhook-"));
const group = await makeMemoryGroup("load", Number(values["memory-limit"]));
const api = await startFakeApiServer(ACCOUNTS);
try {
  const caPem = await writeServingCertificate(dir, "bench-ca");
  const cases = buildMix(1000);
  const meanBytes = cases.reduce((n, c) => n + c.body.length, 0) / cases.length;
  console.log(
    `mix: ${cases.length} bodies, mean ${(meanBytes / 1024).toFixed(1)} KiB; ${SECONDS} s per measurement`,
  );

  const full = await measure("full", dir, caPem, cases);
  const baseline = await measure("baseline", dir, caPem, cases);
  const ratio = full.closed.perSecond / baseline.closed.perSecond;
  const row = (name: string, m: Measured): string =>
    `| ${name} | ${m.closed.perSecond.toFixed(0)} | ${m.closed.p50.toFixed(2)} | ${m.closed.p99.toFixed(2)} | ${m.fixed.p50.toFixed(2)} | ${m.fixed.p99.toFixed(2)} | ${m.fixed.max.toFixed(2)} | ${m.peakRssMiB.toFixed(1)} | ${m.closed.errors + m.fixed.errors} |`;
  const verdict = (ok: boolean): string => (ok ? "met" : "**missed**");
  const markdown = `## Throughput and latency

${describeRun()}

Command: \`npm run build && node bench/webhook/run.ts --seconds ${SECONDS} --memory-limit ${values["memory-limit"]}\`. Server ${hasTaskset ? "pinned to core 0 (`taskset -c 0`)" : "not pinned (no taskset)"}; load ${hasTaskset ? "pinned to core 1" : "unpinned"}${canRaisePriority ? "; both at `nice -n -15`, since this VM is shared with other work" : ""}:
${hasWrk ? "closed loop by wrk 4.1 (one thread, HTTPS keep-alive, a Lua script cycling through the mix)" : "closed loop by an undici Pool (no wrk here: the Node client on one core may saturate first, so the ratio understates the server)"};
fixed rate by an undici Pool (HTTPS keep-alive, trusting only the benchmark CA).
Mix of ${cases.length} AdmissionReviews, mean ${(meanBytes / 1024).toFixed(1)} KiB (pods as the apiserver sends them:
defaults, API-access volume, managed fields): 60% opted in and injected, 30% not opted in, 10% refused.
Both servers ${group.description}, under the Node flags of Dockerfile.webhook's ENTRYPOINT (\`${IMAGE_NODE_FLAGS.join(" ")}\`).
The webhook is the bundle as its image runs it (\`dist/webhook.mjs\`), its admission log (one pino line per admission)
on stdout, a pipe this process drains as a container runtime does, its metrics kept; service accounts come from its informer, listed from a fake apiserver (every lookup a hit).
Closed loop: ${CONNECTIONS} connections, ${WARMUP_SECONDS} s warm-up, then ${SECONDS} s; repeated (up to ${MAX_CLOSED_RUNS} times) until one run was quiet, the quietest kept. Fixed rate: ${RATE} requests/s, open loop (each request sent when due, whatever earlier ones are doing), ${SECONDS} s a run, repeated until three runs were quiet (other work under ${QUIET_PCT}% of the CPU) or ${MAX_FIXED_RUNS} were made.

| server | req/s (32 conns) | p50 ms | p99 ms | p50 ms at ${RATE}/s | p99 ms at ${RATE}/s | max ms at ${RATE}/s | peak RSS MiB | errors |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
${row("webhook (full logic, logging, metrics)", full)}
${row("bare fastify baseline (fixed patch)", baseline)}

- Fixed-rate runs, p99: webhook ${full.fixedRuns} (table: ${full.fixedBasis}); baseline ${baseline.fixedRuns} (table: ${baseline.fixedBasis}).
- Closed loop (the run kept): other work took ${full.closed.foreignPct.toFixed(0)}% of the CPU during the webhook's run and ${baseline.closed.foreignPct.toFixed(0)}% during the baseline's.
- "Other work" is the CPU that processes outside the benchmark (other sessions' builds and tests on this VM)
  used during a run, in percent of both cores.
- Load average at the end: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(", ")}.
- Throughput: ${(ratio * 100).toFixed(0)}% of the baseline (target ≥ 50%: ${verdict(ratio >= 0.5)}).
- p99 at ${RATE} requests/s: ${full.fixed.p99.toFixed(2)} ms (target ≤ 2 ms: ${verdict(full.fixed.p99 <= 2)}).
`;
  await writeSection("load", markdown);
  console.log(
    `throughput ${(ratio * 100).toFixed(0)}% of baseline; p99 at ${RATE}/s ${full.fixed.p99.toFixed(2)} ms`,
  );
} finally {
  await api.api.close();
  await group.remove();
  await rm(dir, { recursive: true, force: true });
}
