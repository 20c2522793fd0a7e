/**
 * Fleet bench (issue 13): a Deployment's pods rolled out at once against one
 * vault, each pod the sidecar's own sync loop (worker.ts: `runSidecar`, the
 * real Azure SDKs, its own credential, token file, Key Vault client and
 * output directory on tmpfs), many pods per worker process and several
 * workers so every core is used. The mocks run in this process, on loopback
 * HTTPS, with the service limits enforced: Key Vault 4,000 requests per 10 s
 * per vault (a sliding window; 429 with Retry-After), Entra ID a limit on
 * token requests (429 AADSTS90055 with Retry-After), and a latency on every
 * request to either (default 5 ms each way, served as one 10 ms wait).
 *
 * One run: the rollout (every pod started at once) until every pod has its
 * files; then the steady state at `--interval-s` for `--steady-s`; and,
 * with `--outage-after-s`, the vault answering 503 to everything for
 * `--outage-s` from that long after the rollout, while a reader in every worker reads every
 * pod's files as an app would and counts any set incomplete or wrong.
 *
 * Prints the figures as Markdown and writes the raw ones to
 * bench/fleet/out/LABEL.json.
 *
 * Run: `node bench/fleet/run.ts [--pods 1000] [--secrets 10] [--workers 2]
 * [--interval-s 300] [--steady-s 360] [--outage-after-s S] [--outage-s 60]
 * [--kv-limit 4000] [--aad-limit 200] [--aad-window-ms 1000]
 * [--latency-ms 5] [--label NAME]` (Node 24).
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, release, totalmem } from "node:os";
import { join } from "node:path";
import { SidecarEnv } from "../../common/names.ts";
import { rawCall } from "../../mocks/testing.ts";
import { CLIENT_ID, TENANT_ID, rawFiles, startMockWorld } from "../../testing/sidecar-world.ts";
import { growth, peakOver, percentile, type Sample } from "./analyze.ts";
import type { FromWorker, PodPlan, PodRecord, Reads, ToWorker } from "./protocol.ts";

const root = new URL("../../", import.meta.url).pathname;
const args = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  const v = i < 0 ? undefined : Number(args[i + 1]);
  if (v === undefined) return fallback;
  if (!Number.isFinite(v)) throw new Error(`--${name} wants a number`);
  return v;
};
const labelAt = args.indexOf("--label");
const LABEL = labelAt < 0 ? "fleet" : (args[labelAt + 1] ?? "fleet");
const PODS = flag("pods", 1000);
const SECRETS = flag("secrets", 10);
const WORKERS = flag("workers", 2);
const INTERVAL_S = flag("interval-s", 300);
const STEADY_S = flag("steady-s", 360);
const OUTAGE_AFTER_S = flag("outage-after-s", -1);
const OUTAGE_S = flag("outage-s", 60);
const KV_LIMIT = flag("kv-limit", 4000);
const AAD_LIMIT = flag("aad-limit", 200);
const AAD_WINDOW_MS = flag("aad-window-ms", 1000);
const LATENCY_MS = flag("latency-ms", 5);
const ROLLOUT_LIMIT_MS = 900_000;

const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(", ");
const loadAtStart = load();
const values = Object.fromEntries(
  Array.from({ length: SECRETS }, (_, i) => [`s${i}`, `value-${i}-${"x".repeat(24)}`]),
);
// The mock Entra ID fetches the cluster's issuer keys in this process, whose
// event loop the rollout saturates: a fetch timing out there would fail pods
// with AADSTS90061, a limit of this machine, not of Entra, which caches them.
// So the keys are fetched once, before the rollout, and kept for the run.
const world = await startMockWorld({ secrets: values, issuerCacheMs: 24 * 3_600_000 });
const warm = await rawCall(
  new URL(`/${TENANT_ID}/oauth2/v2.0/token`, world.aad.url),
  {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    ca: world.caPem,
  },
  new URLSearchParams({
    grant_type: "client_credentials",
    client_id: CLIENT_ID,
    scope: "https://vault.azure.net/.default",
    client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    client_assertion: (await readFile(world.tokenFile, "utf8")).trim(),
  }).toString(),
);
if (warm.status !== 200) throw new Error(`warming the mock Entra ID: ${JSON.stringify(warm.json)}`);
const base = await mkdtemp("/dev/shm/akv-fleet-");
const workers: ChildProcess[] = [];
try {
  world.vault.setThrottle({ limit: KV_LIMIT, windowMs: 10_000 });
  world.aad.setThrottle({ limit: AAD_LIMIT, windowMs: AAD_WINDOW_MS });
  const addLatency = (): void => {
    if (LATENCY_MS <= 0) return;
    const action = { type: "latency", ms: 2 * LATENCY_MS } as const;
    world.vault.injectFault({ action, probability: 1 });
    world.aad.injectFault({ action, match: { endpoint: "any" }, probability: 1 });
  };
  addLatency();

  const token = await readFile(world.tokenFile, "utf8");
  const plans: PodPlan[] = [];
  for (let id = 0; id < PODS; id++) {
    const dir = join(base, `pod-${id}`);
    const outputDir = join(dir, "out");
    await mkdir(outputDir, { recursive: true });
    // Each pod its own projected token file, as the kubelet gives each pod.
    const tokenFile = join(dir, "token");
    await writeFile(tokenFile, token);
    const env = {
      ...world.env({
        files: rawFiles(SECRETS),
        mode: "sidecar",
        refreshIntervalMs: INTERVAL_S * 1000,
        outputDir,
      }),
      [SidecarEnv.federatedTokenFile]: tokenFile,
    };
    plans.push({ id, env, outputDir });
  }

  // Workers: the pods split evenly, the CA trusted as a pod behind a private CA would.
  const perWorker = Math.ceil(PODS / WORKERS);
  const records: PodRecord[] = [];
  const reads: Reads[] = [];
  const rss = new Map<number, number>();
  const synced = new Map<number, number>();
  let failedPods = 0;
  const dones: Promise<void>[] = [];
  for (let w = 0; w < WORKERS; w++) {
    const child = fork(join(root, "bench/fleet/worker.ts"), [], {
      env: { PATH: process.env.PATH ?? "", NODE_EXTRA_CA_CERTS: world.caFile },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    workers.push(child);
    const failedBy = { n: 0 };
    dones.push(
      new Promise<void>((resolve) => {
        child.on("message", (raw) => {
          const m = raw as FromWorker;
          if (m.type === "progress") {
            for (const [id, at] of m.synced) synced.set(id, at);
            failedPods += m.failed - failedBy.n;
            failedBy.n = m.failed;
            rss.set(w, Math.max(rss.get(w) ?? 0, m.rssBytes));
          } else if (m.type === "done") {
            records.push(...m.pods);
            reads.push(m.reads);
            rss.set(w, Math.max(rss.get(w) ?? 0, m.rssBytes));
            resolve();
          }
        });
        child.on("exit", () => {
          resolve();
        });
      }),
    );
    const ready = new Promise<void>((resolve) => {
      child.once("message", () => {
        resolve();
      });
    });
    const message: ToWorker = {
      type: "init",
      pods: plans.slice(w * perWorker, (w + 1) * perWorker),
      expected: values,
    };
    child.send(message);
    await ready;
  }
  const tell = (message: ToWorker): void => {
    for (const child of workers) child.send(message);
  };

  const samples: Sample[] = [];
  const sample = (): void => {
    const kv = world.vault.counters();
    const aad = world.aad.counters();
    samples.push({
      at: Date.now(),
      kv: kv.total,
      kvThrottled: kv.throttled,
      tokens: aad.tokenRequests,
      tokensThrottled: aad.throttled,
    });
  };
  world.vault.resetCounters();
  world.aad.resetCounters();
  sample();
  const sampler = setInterval(sample, 250);
  const startedAt = Date.now();
  const seconds = (ms: number): string => (ms / 1000).toFixed(1);
  tell({ type: "start" });
  console.log(
    `${LABEL}: ${PODS} pods × ${SECRETS} secrets, ${WORKERS} workers, interval ${INTERVAL_S} s; load ${loadAtStart}`,
  );

  // Rollout: until every pod has synced (or failed, or the limit passed).
  let rolloutMs = Number.NaN;
  let lastReport = startedAt;
  while (Date.now() - startedAt < ROLLOUT_LIMIT_MS) {
    await new Promise((r) => setTimeout(r, 250));
    if (synced.size + failedPods >= PODS) break;
    if (Date.now() - lastReport >= 10_000) {
      lastReport = Date.now();
      const kv = world.vault.counters();
      const aad = world.aad.counters();
      console.log(
        `${seconds(lastReport - startedAt)} s: ${synced.size} synced, ${failedPods} failed; Key Vault ${kv.total} requests (${kv.throttled} throttled), Entra ${aad.tokenRequests} token requests (${aad.throttled} throttled); load ${load()}`,
      );
    }
  }
  sample();
  if (synced.size === PODS) rolloutMs = Math.max(...synced.values()) - startedAt;
  const rolloutEnd = Date.now();
  console.log(
    `rollout: ${synced.size}/${PODS} synced in ${seconds(rolloutMs)} s, ${failedPods} failed`,
  );
  tell({ type: "reader", on: true });

  // Steady state, with the outage if asked for.
  let outage: { from: number; to: number } | undefined;
  const at = (s: number): number => rolloutEnd + s * 1000;
  if (OUTAGE_AFTER_S >= 0) {
    await new Promise((r) => setTimeout(r, Math.max(0, at(OUTAGE_AFTER_S) - Date.now())));
    world.vault.clearFaults();
    world.vault.injectFault({
      action: { type: "status", status: 503 },
      probability: 1,
    });
    const from = Date.now();
    console.log(`outage from ${seconds(from - startedAt)} s`);
    await new Promise((r) => setTimeout(r, OUTAGE_S * 1000));
    world.vault.clearFaults();
    addLatency();
    outage = { from, to: Date.now() };
    console.log(`outage over at ${seconds(outage.to - startedAt)} s`);
  }
  await new Promise((r) => setTimeout(r, Math.max(0, at(STEADY_S) - Date.now())));
  sample();
  clearInterval(sampler);
  tell({ type: "stop" });
  await Promise.all(dones);
  const endedAt = Date.now();

  // Figures.
  const fromStart = records.flatMap((r) =>
    r.syncedAt === undefined ? [] : [r.syncedAt - startedAt],
  );
  const ownTime = records.flatMap((r) =>
    r.syncedAt === undefined ? [] : [r.syncedAt - r.startedAt],
  );
  const stuck = records.filter((r) => r.syncedAt === undefined && r.failed === undefined).length;
  const failed = records.filter((r) => r.failed !== undefined);
  const rollout = {
    pods: PODS,
    synced: fromStart.length,
    failed: failed.length,
    firstFailure: failed[0]?.failed,
    stuck,
    allFilesMs: rolloutMs,
    p50Ms: percentile(fromStart, 50),
    p90Ms: percentile(fromStart, 90),
    p99Ms: percentile(fromStart, 99),
    podOwnP50Ms: percentile(ownTime, 50),
    podOwnMaxMs: percentile(ownTime, 100),
    kvRequests: growth(samples, startedAt, rolloutEnd, "kv"),
    kvThrottled: growth(samples, startedAt, rolloutEnd, "kvThrottled"),
    tokenRequests: growth(samples, startedAt, rolloutEnd, "tokens"),
    tokenThrottled: growth(samples, startedAt, rolloutEnd, "tokensThrottled"),
    kvPeak10s: peakOver(samples, 10_000, "kv", startedAt, rolloutEnd),
  };

  // Steady: after the rollout, outside the outage and the two minutes after it.
  const steadyEnd = outage?.from ?? endedAt;
  const refreshesIn = (from: number, to: number): number =>
    records.reduce((n, r) => n + r.refreshes.filter((t) => t >= from && t < to).length, 0);
  const steadyRefreshes = refreshesIn(rolloutEnd, steadyEnd);
  const steadyKv = growth(samples, rolloutEnd, steadyEnd, "kv");
  const steadyMin = (steadyEnd - rolloutEnd) / 60_000;
  const steady = {
    windowS: (steadyEnd - rolloutEnd) / 1000,
    refreshes: steadyRefreshes,
    kvRequests: steadyKv,
    kvThrottled: growth(samples, rolloutEnd, steadyEnd, "kvThrottled"),
    tokenRequests: growth(samples, rolloutEnd, steadyEnd, "tokens"),
    requestsPerRefresh: steadyRefreshes === 0 ? Number.NaN : steadyKv / steadyRefreshes,
    kvPerMinute: steadyKv / steadyMin,
    kvPeak10s: peakOver(samples, 10_000, "kv", rolloutEnd, steadyEnd),
    kvPeak60s: peakOver(samples, 60_000, "kv", rolloutEnd, steadyEnd),
  };

  let outageFigures: Record<string, unknown> | undefined;
  if (outage !== undefined) {
    const o = outage;
    const hit = records.filter((r) => r.syncFailures.some((t) => t >= o.from && t <= o.to + 1000));
    const recovery = hit.map((r) => (r.refreshes.find((t) => t > o.to) ?? Infinity) - o.to);
    const after = o.to + 120_000;
    outageFigures = {
      outageS: (o.to - o.from) / 1000,
      podsWithFailedSyncs: hit.length,
      notRecovered: recovery.filter((x) => x === Infinity).length,
      recoveryP50Ms: percentile(recovery, 50),
      recoveryMaxMs: percentile(recovery, 100),
      kvRequestsDuring: growth(samples, o.from, o.to, "kv"),
      kvPeak1sAfter: peakOver(samples, 1000, "kv", o.to, after),
      kvPeak10sAfter: peakOver(samples, 10_000, "kv", o.to, after),
      kvThrottledAfter: growth(samples, o.to, after, "kvThrottled"),
    };
  }
  const readTotals = {
    sets: reads.reduce((n, r) => n + r.sets, 0),
    bad: reads.reduce((n, r) => n + r.bad, 0),
    firstBad: reads.find((r) => r.firstBad !== "")?.firstBad ?? "",
  };
  const cpu = cpus();
  const machine = `${cpu[0]?.model ?? "?"} × ${cpu.length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}`;
  const memory = {
    workerPeakRssMiB: [...rss.values()].map((b) => Math.round(b / 2 ** 20)),
    benchRssMiB: Math.round(process.memoryUsage.rss() / 2 ** 20),
  };
  const result = {
    label: LABEL,
    date: new Date().toISOString(),
    machine,
    load: { start: loadAtStart, end: load() },
    command: ["node bench/fleet/run.ts", ...args].join(" "),
    settings: {
      pods: PODS,
      secrets: SECRETS,
      workers: WORKERS,
      intervalS: INTERVAL_S,
      steadyS: STEADY_S,
      kvLimitPer10s: KV_LIMIT,
      aadLimit: `${AAD_LIMIT} per ${AAD_WINDOW_MS} ms`,
      latencyMsEachWay: LATENCY_MS,
    },
    rollout,
    steady,
    outage: outageFigures,
    reads: readTotals,
    /** Per-read retries of all pods over the whole run, by status. */
    retries: sumRetries(records),
    retrySamples: Object.assign({}, ...records.map((r) => r.retrySample)) as Record<string, string>,
    memory,
  };
  console.log(JSON.stringify(result, null, 2));
  await mkdir(join(root, "bench/fleet/out"), { recursive: true });
  await writeFile(join(root, `bench/fleet/out/${LABEL}.json`), JSON.stringify(result, null, 2));
} finally {
  for (const w of workers) if (w.exitCode === null) w.kill();
  await world.close();
  await rm(base, { recursive: true, force: true });
}

/** Per-read retries by status, of every pod. */
function sumRetries(rs: readonly PodRecord[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rs) for (const [k, v] of Object.entries(r.retries)) out[k] = (out[k] ?? 0) + v;
  return out;
}
