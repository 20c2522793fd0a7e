/**
 * The fleet's schedule, modelled: P pods' sync loops (sidecar/sync-loop.ts's
 * `runSyncLoop`, or another build's with `--sync-loop PATH`) started at the
 * same instant, on one virtual clock, against a model vault that enforces
 * Key Vault's limit as the mock does (4,000 requests in any 10 s, refused
 * ones not counted; 429 with Retry-After, the seconds until a slot frees),
 * with a latency on every request and, optionally, an outage (503 to
 * everything). Each pod's first read goes alone behind a challenge request
 * (key-vault-source.ts's warm-up gate, the N + 1 of a cold sync).
 *
 * Why a model beside run.ts: this machine (2 shared cores) takes minutes of
 * CPU to start 1,000 real pods (TLS, token exchange), so it never sees them
 * all at the vault at once, and an hour of 5-minute refreshes is an hour.
 * Here the schedule itself, the real loop's code, runs for hours of virtual
 * time, for fleets far larger than the machine could start, in seconds.
 * What it leaves out: tokens (one per pod per hour, see run.ts), CPU.
 *
 * Run: `node bench/fleet/schedule.ts [--pods 1000,2400,12000] [--secrets 10]
 * [--interval-s 300] [--minutes 60] [--outage-at-s S] [--outage-s 60]
 * [--latency-ms 5] [--sync-loop PATH] [--tuning JSON] [--free-rollout]
 * [--label NAME]` (Node 24). `--free-rollout` lifts the limit until every
 * pod has synced: the whole fleet synced at one instant, the worst start for
 * the steady state, and far less to compute than a throttled rollout.
 */
import { isAbsolute, join } from "node:path";
import { ErrorCode } from "../../common/errors.ts";
import { createLogger } from "../../common/logger.ts";
import type { SyncSpec } from "../../common/spec.ts";
import { Throttle, seededRandom } from "../../mocks/faults.ts";
import { createWarmUpGate } from "../../sidecar/key-vault-source.ts";
import { SourceError, type SecretSource } from "../../sidecar/secret-source.ts";
import type { Clock } from "../../sidecar/sync-loop.ts";
import { rawFiles } from "../../testing/sidecar-world.ts";
import { percentile } from "./analyze.ts";

type SyncLoopModule = typeof import("../../sidecar/sync-loop.ts");

const root = new URL("../../", import.meta.url).pathname;
const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? undefined : args[i + 1];
};
const num = (name: string, fallback: number): number => {
  const v = option(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} wants a number`);
  return n;
};
const PODS = (option("pods") ?? "1000").split(",").map(Number);
const SECRETS = num("secrets", 10);
const INTERVAL_MS = num("interval-s", 300) * 1000;
const HORIZON_MS = num("minutes", 60) * 60_000;
const OUTAGE_AT_MS = num("outage-at-s", -1) * 1000;
const OUTAGE_MS = num("outage-s", 60) * 1000;
const LATENCY_MS = num("latency-ms", 5);
const LIMIT = 4000;
const WINDOW_MS = 10_000;
const loopPath = option("sync-loop") ?? "sidecar/sync-loop.ts";
const LABEL = option("label") ?? loopPath;
/** No limit until every pod has synced: every pod synced at once, the worst start for the steady state. */
const FREE_ROLLOUT = args.includes("--free-rollout");
/** Tuning overrides, JSON (e.g. `{"retryAfterSpread":1}`). */
const TUNING = JSON.parse(option("tuning") ?? "{}") as Record<string, number>;

/** A pending sleep of the virtual clock. */
interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly fire: () => void;
  live: boolean;
}

/** Virtual time: timers in a binary heap; cancelled ones are skipped when due. */
class VirtualClock implements Clock {
  t = 0;
  #seq = 0;
  readonly #heap: Timer[] = [];

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal?.aborted === true) {
        resolve();
        return;
      }
      const timer: Timer = {
        at: this.t + Math.max(0, ms),
        seq: this.#seq++,
        fire: resolve,
        live: true,
      };
      this.#push(timer);
      signal?.addEventListener(
        "abort",
        () => {
          timer.live = false;
          resolve();
        },
        { once: true },
      );
    });
  }

  /** Runs every timer due until `end`, letting promise chains settle between instants. */
  async runUntil(end: number): Promise<void> {
    for (;;) {
      await new Promise((r) => setImmediate(r));
      const next = this.#heap[0];
      if (next === undefined || next.at > end) break;
      this.t = next.at;
      while (this.#heap[0] !== undefined && this.#heap[0].at <= this.t) {
        const timer = this.#pop();
        if (timer?.live === true) timer.fire();
      }
    }
    this.t = end;
  }

  #less(i: number, j: number): boolean {
    const a = this.#heap[i];
    const b = this.#heap[j];
    if (a === undefined || b === undefined) return false;
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #swap(i: number, j: number): void {
    const h = this.#heap;
    const a = h[i];
    const b = h[j];
    if (a === undefined || b === undefined) return;
    h[i] = b;
    h[j] = a;
  }

  #push(timer: Timer): void {
    this.#heap.push(timer);
    let i = this.#heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(i, parent)) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #pop(): Timer | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.#less(l, m)) m = l;
        if (r < h.length && this.#less(r, m)) m = r;
        if (m === i) break;
        this.#swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

/** Requests per virtual second: sent, and of those throttled or failed. */
interface Tally {
  sent: number[];
  throttled: number[];
  failed: number[];
}

const bump = (xs: number[], at: number): void => {
  const s = Math.floor(at / 1000);
  xs[s] = (xs[s] ?? 0) + 1;
};
const sumOver = (xs: readonly number[], from: number, to: number): number => {
  let n = 0;
  for (let s = Math.floor(from / 1000); s < Math.ceil(to / 1000); s++) n += xs[s] ?? 0;
  return n;
};
/** The most `xs` holds in any `width` consecutive seconds between two times. */
const peakOver = (xs: readonly number[], width: number, from: number, to: number): number => {
  let peak = 0;
  for (let s = Math.floor(from / 1000); s + width <= Math.ceil(to / 1000); s++) {
    let n = 0;
    for (let k = s; k < s + width; k++) n += xs[k] ?? 0;
    peak = Math.max(peak, n);
  }
  return peak;
};

/** The model vault one pod talks to: the shared limit and outage, its own warm-up gate. */
function podSource(
  clock: VirtualClock,
  throttle: Throttle,
  tally: Tally,
  limited: () => boolean,
): SecretSource {
  const gate = createWarmUpGate();
  let warm = false;
  const half = LATENCY_MS;
  const request = async (): Promise<void> => {
    await clock.sleep(half);
    const at = clock.now();
    bump(tally.sent, at);
    if (OUTAGE_AT_MS >= 0 && at >= OUTAGE_AT_MS && at < OUTAGE_AT_MS + OUTAGE_MS) {
      await clock.sleep(half);
      bump(tally.failed, at);
      throw new SourceError(ErrorCode.UNAVAILABLE, "unavailable (503)", { status: 503 });
    }
    const wait = limited() ? throttle.admit(at) : undefined;
    await clock.sleep(half);
    if (wait !== undefined) {
      bump(tally.throttled, at);
      throw new SourceError(ErrorCode.THROTTLED, "throttled (429)", {
        status: 429,
        retryAfterMs: Math.max(1, Math.ceil(wait / 1000)) * 1000,
      });
    }
  };
  return {
    fetch: (ref) =>
      gate.run(async () => {
        // A cold client's first call: the 401 challenge, then the call with the token.
        if (!warm) await request();
        warm = true;
        await request();
        return { value: `value-${ref.name}`, contentType: undefined, version: "1".repeat(32) };
      }),
  };
}

interface Outcome {
  readonly pods: number;
  readonly lastSyncedS: number;
  readonly p50SyncedS: number;
  readonly notSynced: number;
  readonly rolloutSent: number;
  readonly rollout429: number;
  readonly steadyPeak10s: number;
  readonly steady429: number;
  readonly steadyPerMinute: number;
  readonly outage?: {
    readonly podsHit: number;
    readonly recoveryMaxS: number;
    readonly recoveryP50S: number;
    readonly peak10sAfter: number;
    readonly after429: number;
  };
}

async function simulate(loop: SyncLoopModule, pods: number): Promise<Outcome> {
  const clock = new VirtualClock();
  const throttle = new Throttle({ limit: LIMIT, windowMs: WINDOW_MS });
  const tally: Tally = { sent: [], throttled: [], failed: [] };
  const logger = createLogger({ name: "fleet-model", level: "silent" });
  const stop = new AbortController();
  const firstSync: number[] = Array.from({ length: pods }, () => Number.NaN);
  const syncs: number[][] = Array.from({ length: pods }, () => []);
  const failures: number[][] = Array.from({ length: pods }, () => []);
  let syncedPods = 0;
  const spec: SyncSpec = {
    vaultUrl: "https://model.vault.azure.net",
    files: rawFiles(SECRETS),
    mode: "sidecar",
    refreshIntervalMs: INTERVAL_MS,
    fileMode: 0o644,
    outputDir: "/unused",
  };
  const loops = Array.from({ length: pods }, (_, id) =>
    loop.runSyncLoop(
      {
        spec,
        source: podSource(clock, throttle, tally, () => !FREE_ROLLOUT || syncedPods === pods),
        tuning: TUNING,
        publish: () => Promise.resolve({ changed: false }),
        loadCerts: () => Promise.reject(new Error("no certificates in the model")),
        clock,
        random: seededRandom(1 + id),
        logger,
        observer: {
          synced(now) {
            if (Number.isNaN(firstSync[id])) {
              firstSync[id] = now;
              syncedPods++;
            }
            syncs[id]?.push(now);
          },
          syncFailed() {
            failures[id]?.push(clock.now());
          },
        },
      },
      stop.signal,
    ),
  );
  await clock.runUntil(HORIZON_MS);
  stop.abort();
  await Promise.allSettled(loops);

  const synced = firstSync.filter((t) => !Number.isNaN(t));
  const rolloutEnd = synced.length === pods ? Math.max(...synced) : HORIZON_MS;
  const steadyTo = OUTAGE_AT_MS >= 0 ? OUTAGE_AT_MS : HORIZON_MS;
  const admitted = tally.sent.map((n, s) => n - (tally.throttled[s] ?? 0) - (tally.failed[s] ?? 0));
  let outage: Outcome["outage"];
  if (OUTAGE_AT_MS >= 0) {
    const end = OUTAGE_AT_MS + OUTAGE_MS;
    const hit = failures.flatMap((fs, id) =>
      fs.some((t) => t >= OUTAGE_AT_MS && t <= end + 60_000) ? [id] : [],
    );
    const recovery = hit.map((id) => ((syncs[id] ?? []).find((t) => t > end) ?? Infinity) - end);
    outage = {
      podsHit: hit.length,
      recoveryMaxS: percentile(recovery, 100) / 1000,
      recoveryP50S: percentile(recovery, 50) / 1000,
      peak10sAfter: peakOver(admitted, 10, end, end + 5 * 60_000),
      after429: sumOver(tally.throttled, end, end + 5 * 60_000),
    };
  }
  const steadyFrom = rolloutEnd + 1000;
  return {
    pods,
    lastSyncedS: rolloutEnd / 1000,
    p50SyncedS: percentile(synced, 50) / 1000,
    notSynced: pods - synced.length,
    rolloutSent: sumOver(tally.sent, 0, rolloutEnd + 1000),
    rollout429: sumOver(tally.throttled, 0, rolloutEnd + 1000),
    steadyPeak10s: peakOver(admitted, 10, steadyFrom, steadyTo),
    steady429: sumOver(tally.throttled, steadyFrom, steadyTo),
    steadyPerMinute: (sumOver(tally.sent, steadyFrom, steadyTo) / (steadyTo - steadyFrom)) * 60_000,
    ...(outage === undefined ? {} : { outage }),
  };
}

const loop = (await import(
  isAbsolute(loopPath) ? loopPath : join(root, loopPath)
)) as SyncLoopModule;
console.log(
  `${LABEL}${FREE_ROLLOUT ? " (free rollout)" : ""}${Object.keys(TUNING).length > 0 ? ` tuning ${JSON.stringify(TUNING)}` : ""}: ${SECRETS} secrets per pod, interval ${INTERVAL_MS / 1000} s, ${HORIZON_MS / 60_000} min, limit ${LIMIT} per ${WINDOW_MS / 1000} s, latency ${LATENCY_MS} ms each way${OUTAGE_AT_MS >= 0 ? `, outage ${OUTAGE_MS / 1000} s at ${OUTAGE_AT_MS / 1000} s` : ""}`,
);
console.log(
  "| pods | all synced, s | p50, s | not synced | rollout requests | rollout 429 | steady peak per 10 s | steady 429 | steady requests/min |" +
    (OUTAGE_AT_MS >= 0
      ? " pods hit by outage | recovery p50 / max, s | peak per 10 s after | 429 after |"
      : ""),
);
for (const pods of PODS) {
  const started = Date.now();
  const o = await simulate(loop, pods);
  const cells = [
    o.pods,
    o.lastSyncedS.toFixed(1),
    o.p50SyncedS.toFixed(1),
    o.notSynced,
    o.rolloutSent,
    o.rollout429,
    o.steadyPeak10s,
    o.steady429,
    Math.round(o.steadyPerMinute),
  ];
  if (o.outage !== undefined) {
    const x = o.outage;
    cells.push(
      x.podsHit,
      `${x.recoveryP50S.toFixed(1)} / ${x.recoveryMaxS.toFixed(1)}`,
      x.peak10sAfter,
      x.after429,
    );
  }
  console.log(`| ${cells.join(" | ")} |  (${((Date.now() - started) / 1000).toFixed(0)} s of CPU)`);
}
