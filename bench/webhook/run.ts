/**
 * The webhook benchmark (`npm run build && node bench/webhook/run.ts`, or
 * `npm run bench webhook`): the webhook as its image runs it (the bundle,
 * the image's Node flags, image-server.ts) and two bare fastify servers
 * under the same flags (server.ts: a one-operation answer, and the
 * webhook's own patch as the answer), each in its own process in a memory
 * group with the chart's limit (Node sizes its heap from it, as in a pod)
 * and pinned to core 0, driven over HTTPS from this process pinned to core
 * 1 with the same mix (60% injected, 30% not opted in, 10% refused).
 *
 * For each: closed loop with 32 connections (requests/s, p50/p99, and the
 * server's CPU time and context switches per request, all its threads, from
 * /proc: where a change moves the work, such as onto another thread) in rounds
 * that take the servers in turn, an open loop at a fixed 1,000 requests/s
 * (p99), and the server's peak RSS. Writes its section of
 * bench/webhook/RESULTS.md.
 *
 * Options: `--seconds N` per measurement (default 10); `--rounds N` of the
 * closed loop (default 4); `--memory-limit MiB` (default 256, the chart's);
 * `--profile` writes a V8 CPU profile of each server to bench/out/;
 * `--compare "LABEL=PATH"` (repeatable) adds another build of the webhook
 * (PATH: its webhook.mjs, webhook-chunks/ beside it, e.g. `npm run build`
 * in a worktree of an earlier commit) to the rounds, run as the image runs
 * this one.
 */
import { spawnSync, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
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
  type Expected,
  type Summary,
} from "./load.ts";
import {
  IMAGE_NODE_FLAGS,
  imageWebhookEnv,
  requireBundle,
  startFakeApiServer,
  startImageWebhook,
} from "./image-server.ts";
import { makeMemoryGroup, spawnInGroup, type MemoryGroup } from "./process.ts";
import { median } from "../stats.ts";
import { describeRun, writeSection } from "./results.ts";
import { writeServingCertificate } from "./tls.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    rounds: { type: "string", default: "4" },
    profile: { type: "boolean", default: false },
    "memory-limit": { type: "string", default: "256" },
    compare: { type: "string", multiple: true, default: [] },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const CONNECTIONS = 32;
const RATE = 1000;
const WARMUP_SECONDS = 3;
/** A fixed-rate run is quiet when processes outside the benchmark used less than this share of the CPU. */
const QUIET_PCT = 5;
const MAX_FIXED_RUNS = 8;
/** USER_HZ, the unit of /proc's CPU times: 100 on every Linux Node runs on. */
const CLOCK_TICKS_PER_S = 100;
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

type Mode = "full" | "baseline" | "baseline-answer";

interface ServerSpec {
  /** What it runs: a webhook build (`full`) or a bare fastify server. */
  readonly mode: Mode;
  /** Its name in the rounds' lines: the mode, or a compared build's label. */
  readonly name: string;
  readonly label: string;
  /** A webhook build's entry; default dist/webhook.mjs. */
  readonly entry?: string;
}

/** `--compare "LABEL=PATH"`: another webhook build in the rounds. */
function comparedBuild(arg: string): ServerSpec {
  const at = arg.indexOf("=");
  if (at <= 0) throw new Error(`--compare ${arg}: expected LABEL=PATH to a webhook.mjs`);
  const label = arg.slice(0, at);
  return { mode: "full", name: label, label: `webhook, ${label}`, entry: arg.slice(at + 1) };
}

/** The servers, in the order each round runs them. */
const SERVERS: readonly ServerSpec[] = [
  { mode: "full", name: "full", label: "webhook (full logic, logging, metrics)" },
  { mode: "baseline", name: "baseline", label: "bare fastify baseline (one-operation patch)" },
  {
    mode: "baseline-answer",
    name: "baseline-answer",
    label: "bare fastify, answering a typical injection's patch",
  },
  ...values.compare.map(comparedBuild),
];

interface Started {
  readonly child: ChildProcess;
  readonly port: number;
  readonly group: MemoryGroup;
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
 * `full`: the webhook as its image runs it (image-server.ts); the others:
 * bare fastify (server.ts) under the same Node flags. Each in a memory
 * group of its own with the chart's limit, since all run at once.
 */
async function startServer(spec: ServerSpec, index: number, dir: string): Promise<Started> {
  const { mode } = spec;
  const group = await makeMemoryGroup(`load-${String(index)}`, Number(values["memory-limit"]));
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
      ...(spec.entry === undefined ? {} : { entry: spec.entry }),
    });
    return { child, port, group };
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
  return { child, port, group };
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

/** Context switches of a process so far, voluntary and not, all its threads. */
function contextSwitches(pid: number): number {
  let n = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const status = readFileSync(`/proc/${pid}/task/${task}/status`, "utf8");
    for (const m of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm))
      n += Number(m[1]);
  }
  return n;
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

/** A server's answer to the mix's first case of a kind. */
async function answerTo(
  port: number,
  caPem: string,
  cases: readonly Case[],
  expected: Expected,
): Promise<{ status: number; text: string }> {
  const c = cases.find((x) => x.expected === expected);
  if (c === undefined) throw new Error(`no ${expected} case in the mix`);
  const pool = createPool(port, caPem, 1);
  try {
    const res = await pool.request({
      path: "/mutate",
      method: "POST",
      headers: { "content-type": "application/json" },
      body: c.body,
    });
    return { status: res.statusCode, text: await res.body.text() };
  } finally {
    await pool.close();
  }
}

/** Checks that each kind of body gets the answer it should, before timing anything. */
async function checkMix(
  port: number,
  caPem: string,
  cases: readonly Case[],
  mode: Mode,
): Promise<void> {
  for (const expected of ["injected", "skipped", "refused"] as const) {
    const { status, text } = await answerTo(port, caPem, cases, expected);
    const outcome = outcomeOf(text);
    const want = mode === "full" ? expected : "injected";
    if (status !== 200 || outcome !== want) {
      throw new Error(`${mode}: a ${expected} body got HTTP ${status}, ${outcome}`);
    }
  }
}

type Run = Summary & { readonly foreignPct: number };
/** A closed-loop run, with what each request cost the server. */
type ClosedRun = Run & {
  /** CPU time (user + system, all threads) per request, µs. */
  readonly cpuUsPerRequest: number;
  readonly switchesPerRequest: number;
};

/** One closed-loop run of `seconds` against a server, and the other work meanwhile. */
async function closedRun(
  server: Started,
  caPem: string,
  cases: readonly Case[],
  seconds: number,
): Promise<ClosedRun> {
  const pid = server.child.pid ?? 0;
  const ticks0 = processTicks(pid);
  const switches0 = contextSwitches(pid);
  const { result, foreignPct } = await withForeignCpu(pid, async () => {
    if (hasWrk) return closedLoopWrk(server.port, cases, CONNECTIONS, seconds, dir, prefix(1));
    const pool = createPool(server.port, caPem, CONNECTIONS);
    const summary = await closedLoop(pool, cases, CONNECTIONS, seconds);
    await pool.close();
    return summary;
  });
  const requests = Math.max(1, result.requests);
  return {
    ...result,
    foreignPct,
    cpuUsPerRequest: ((processTicks(pid) - ticks0) * (1e6 / CLOCK_TICKS_PER_S)) / requests,
    switchesPerRequest: (contextSwitches(pid) - switches0) / requests,
  };
}

interface Measured {
  readonly spec: ServerSpec;
  readonly server: Started;
  /** One closed-loop run per round, in round order. */
  readonly closed: ClosedRun[];
  /** Every fixed-rate run, in order. */
  readonly fixedRuns: Run[];
  peakRssMiB: number;
}

/** The median (by p99) of the quiet fixed-rate runs, or of all when none was quiet. */
function fixedOf(m: Measured): { run: Run; basis: string } {
  const quiet = m.fixedRuns.filter((r) => r.foreignPct < QUIET_PCT);
  const chosen = [...(quiet.length > 0 ? quiet : m.fixedRuns)].sort((a, b) => a.p99 - b.p99);
  const run = chosen[Math.floor((chosen.length - 1) / 2)];
  if (run === undefined) throw new Error(`${m.spec.name}: no fixed-rate run`);
  const basis =
    quiet.length > 0
      ? `median of ${quiet.length} quiet runs`
      : `median of ${m.fixedRuns.length} runs, none quiet`;
  return { run, basis };
}

await requireBundle();
const dir = await mkdtemp(join(tmpdir(), "akv-bench-webhook-"));
const api = await startFakeApiServer(ACCOUNTS);
const started: Started[] = [];
try {
  const caPem = await writeServingCertificate(dir, "bench-ca");
  const cases = buildMix(1000);
  const meanBytes = cases.reduce((n, c) => n + c.body.length, 0) / cases.length;
  console.log(
    `mix: ${cases.length} bodies, mean ${(meanBytes / 1024).toFixed(1)} KiB; ${ROUNDS} rounds of ${SECONDS} s`,
  );
  const measured: Measured[] = [];
  for (const [index, spec] of SERVERS.entries()) {
    const server = await startServer(spec, index, dir);
    started.push(server);
    await checkMix(server.port, caPem, cases, spec.mode);
    await closedRun(server, caPem, cases, WARMUP_SECONDS);
    measured.push({ spec, server, closed: [], fixedRuns: [], peakRssMiB: Number.NaN });
  }

  // Rounds interleave the servers, so drift in the machine's speed (other
  // work on this VM or on its host) falls on all of them alike.
  for (let round = 1; round <= ROUNDS; round++) {
    for (const m of measured) {
      const run = await closedRun(m.server, caPem, cases, SECONDS);
      m.closed.push(run);
      console.log(
        `round ${round}, ${m.spec.name}: ${run.perSecond.toFixed(0)} req/s, ${run.cpuUsPerRequest.toFixed(0)} µs CPU and ${run.switchesPerRequest.toFixed(2)} context switches a request (other work ${run.foreignPct.toFixed(0)}%)`,
      );
    }
  }

  // Fixed rate, interleaved too: runs go on until each server has three
  // quiet ones (other work under QUIET_PCT of the CPU) or MAX_FIXED_RUNS.
  // The connections are opened first: the apiserver keeps its connections
  // to a webhook open.
  const pooled = measured.map((m) => ({ m, pool: createPool(m.server.port, caPem, CONNECTIONS) }));
  await Promise.all(pooled.map(({ pool }) => closedLoop(pool, cases, CONNECTIONS, 1)));
  const needsRuns = (m: Measured): boolean =>
    m.fixedRuns.length < MAX_FIXED_RUNS &&
    m.fixedRuns.filter((r) => r.foreignPct < QUIET_PCT).length < 3;
  while (measured.some(needsRuns)) {
    for (const { m, pool } of pooled) {
      if (!needsRuns(m)) continue;
      const { result, foreignPct } = await withForeignCpu(m.server.child.pid ?? 0, () =>
        openLoop(pool, cases, RATE, SECONDS),
      );
      m.fixedRuns.push({ ...result, foreignPct });
    }
  }
  await Promise.all(pooled.map(({ pool }) => pool.close()));
  for (const m of measured) m.peakRssMiB = peakRssMiB(m.server.child.pid ?? 0);

  const byName = (name: string): Measured => {
    const m = measured.find((x) => x.spec.name === name);
    if (m === undefined) throw new Error(`no ${name} server`);
    return m;
  };
  const full = byName("full");
  const baseline = byName("baseline");
  const answer = byName("baseline-answer");
  const compared = measured.filter((m) => m.spec.entry !== undefined);
  /** Per round, one server's req/s over another's; the median of the rounds. */
  const ratioOver = (of: Measured, over: Measured): { median: number; rounds: number[] } => {
    const rounds = of.closed.map((r, i) => r.perSecond / (over.closed[i]?.perSecond ?? Number.NaN));
    return { median: median(rounds), rounds };
  };
  const ratio = ratioOver(full, baseline);
  const answerRatio = ratioOver(answer, baseline);
  const fullOverAnswer = ratioOver(full, answer);
  const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;
  const row = (m: Measured): string => {
    const fixed = fixedOf(m).run;
    const rates = m.closed.map((r) => r.perSecond);
    const p = (key: "p50" | "p99"): string => median(m.closed.map((r) => r[key])).toFixed(2);
    const errors = [...m.closed, ...m.fixedRuns].reduce((n, r) => n + r.errors, 0);
    const cpu = median(m.closed.map((r) => r.cpuUsPerRequest)).toFixed(0);
    const switches = median(m.closed.map((r) => r.switchesPerRequest)).toFixed(2);
    return `| ${m.spec.label} | ${median(rates).toFixed(0)} (${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)}) | ${cpu} | ${switches} | ${p("p50")} | ${p("p99")} | ${fixed.p50.toFixed(2)} | ${fixed.p99.toFixed(2)} | ${fixed.max.toFixed(2)} | ${m.peakRssMiB.toFixed(1)} | ${errors} |`;
  };
  const fixedRunsOf = (m: Measured): string =>
    m.fixedRuns
      .map(
        (r) =>
          `${r.p99.toFixed(2)} ms (other work ${r.foreignPct.toFixed(0)}%${r.foreignPct < QUIET_PCT ? ", quiet" : ""})`,
      )
      .join(", ");
  const foreignOf = (m: Measured): string =>
    m.closed.map((r) => `${r.foreignPct.toFixed(0)}%`).join(", ");
  const verdict = (ok: boolean): string => (ok ? "met" : "**missed**");
  const fullFixed = fixedOf(full).run;
  const answerKiB =
    (await answerTo(answer.server.port, caPem, cases, "injected")).text.length / 1024;
  const markdown = `## Throughput and latency

${describeRun()}

Command: \`npm run build && node bench/webhook/run.ts --seconds ${SECONDS} --rounds ${ROUNDS} --memory-limit ${values["memory-limit"]}${compared.map((m) => ` --compare '${m.spec.name}=${m.spec.entry ?? ""}'`).join("")}\`. Servers ${hasTaskset ? "pinned to core 0 (`taskset -c 0`)" : "not pinned (no taskset)"}; load ${hasTaskset ? "pinned to core 1" : "unpinned"}${canRaisePriority ? "; both at `nice -n -15`, since this VM is shared with other work" : ""}:
${hasWrk ? "closed loop by wrk 4.1 (one thread, HTTPS keep-alive, a Lua script cycling through the mix)" : "closed loop by an undici Pool (no wrk here: the Node client on one core may saturate first, so the ratio understates the server)"};
fixed rate by an undici Pool (HTTPS keep-alive, trusting only the benchmark CA).
Mix of ${cases.length} AdmissionReviews, mean ${(meanBytes / 1024).toFixed(1)} KiB (pods as the apiserver sends them:
defaults, API-access volume, managed fields): 60% opted in and injected, 30% not opted in, 10% refused.
Each server ${full.server.group.description} (a group each), under the Node flags of Dockerfile.webhook's ENTRYPOINT (\`${IMAGE_NODE_FLAGS.join(" ")}\`).
The webhook is the bundle as its image runs it (\`dist/webhook.mjs\`), its admission log (one pino line per admission)
on stdout, a pipe this process drains as a container runtime does, its metrics kept; service accounts come from its informer, listed from a fake apiserver (every lookup a hit).
The two bare fastify servers parse the same reviews with fastify's JSON parser and answer a fixed patch: one operation (0.1 KiB of answer),
or the patch the webhook gives the mix's first injected pod (${answerKiB.toFixed(1)} KiB of answer, for every review): what sending the webhook's answer costs, without its decision.
Closed loop: ${CONNECTIONS} connections, ${WARMUP_SECONDS} s warm-up each, then ${ROUNDS} rounds of ${SECONDS} s, each round running the ${measured.length} servers in turn (the issue's method: interleaved rounds); the table gives the median round (min–max) and the medians of the server's CPU time (user + system, every thread) and context switches per request.
Fixed rate: ${RATE} requests/s, open loop (each request sent when due, whatever earlier ones are doing), ${SECONDS} s a run, the servers in turn, until each had three quiet runs (other work under ${QUIET_PCT}% of the CPU) or ${MAX_FIXED_RUNS}.

| server | req/s (32 conns) | CPU µs per request | context switches per request | p50 ms | p99 ms | p50 ms at ${RATE}/s | p99 ms at ${RATE}/s | max ms at ${RATE}/s | peak RSS MiB | errors |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${measured.map(row).join("\n")}

- Throughput: the webhook made ${pct(ratio.median)} of the one-operation baseline's requests (median of the rounds: ${ratio.rounds.map(pct).join(", ")}; target ≥ 50%: ${verdict(ratio.median >= 0.5)}).
- Where the rest goes: answering the webhook's patch instead of one operation takes the baseline to ${pct(answerRatio.median)} of itself (rounds: ${answerRatio.rounds.map(pct).join(", ")}); the webhook makes ${pct(fullOverAnswer.median)} of that (rounds: ${fullOverAnswer.rounds.map(pct).join(", ")}), the cost of its decision, log line and metrics.
${compared.map((m) => `- ${m.spec.label}: ${pct(ratioOver(m, baseline).median)} of the baseline (rounds: ${ratioOver(m, baseline).rounds.map(pct).join(", ")}); this build makes ${pct(ratioOver(full, m).median)} of its requests/s (rounds: ${ratioOver(full, m).rounds.map(pct).join(", ")}).\n`).join("")}- p99 at ${RATE} requests/s: ${fullFixed.p99.toFixed(2)} ms (${fixedOf(full).basis}; target ≤ 2 ms: ${verdict(fullFixed.p99 <= 2)}).
- Fixed-rate runs, p99: ${measured.map((m) => `${m.spec.name} ${fixedRunsOf(m)}`).join("; ")}.
- Other work during the closed-loop rounds: ${measured.map((m) => `${m.spec.name} ${foreignOf(m)}`).join("; ")}.
- "Other work" is the CPU that processes outside the benchmark (other sessions' builds and tests on this VM)
  used during a run, in percent of both cores.
- Load average at the end: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(", ")}.
`;
  await writeSection("load", markdown);
  console.log(
    `throughput ${pct(ratio.median)} of baseline (rounds ${ratio.rounds.map(pct).join(", ")}); p99 at ${RATE}/s ${fullFixed.p99.toFixed(2)} ms`,
  );
} finally {
  for (const server of started) {
    const exited = new Promise((resolve) => server.child.once("exit", resolve));
    server.child.kill("SIGTERM");
    await exited;
    await server.group.remove();
  }
  await api.api.close();
  await rm(dir, { recursive: true, force: true });
}
