/**
 * When to sync and what to do when it fails.
 *
 * One sync reads every secret of the spec (bounded concurrency; each read is
 * retried on its own for throttling and outages, and a Retry-After pauses all
 * of them, up to a cap and never past the first sync's deadline), renders the
 * files and publishes them together. `sidecar` mode
 * syncs, then refreshes every interval with jitter; `init` mode syncs once.
 *
 * A fleet rolled out at once (a Deployment's pods) must not hit the vault in
 * step: the first refresh comes at a random point of the first interval, so
 * the fleet's refreshes are spread evenly over the interval from the start
 * (with ±10 % alone they would bunch into a fifth of it for hours), and a
 * Retry-After is waited out plus a random part of itself, so pods throttled
 * together do not all come back together. While the vault fails, one read
 * (the probe) retries for the pod and the others wait for its answer: one
 * request per retry instead of one per secret, against a vault that is down
 * or throttling.
 *
 * Failures never touch the published files: a failed sync publishes nothing,
 * so the last good set stays. A failed publish (a full volume) is retried
 * like an outage. Configuration errors (403, 404, an AAD refusal, a value
 * that does not fit its format, files larger than the volume) are not
 * retried on the first sync:
 * the process exits with the reason, which Kubernetes shows. After a good
 * first sync they are logged and tried again at the next refresh (a role
 * assignment can come back; the files stay meanwhile).
 *
 * Time comes from an injected {@link Clock}, randomness from `random`, so
 * tests run the schedule without waiting.
 *
 * Over 400 lines on purpose: the schedule, the per-read retries, the Retry-After pause and the publish retry share one clock, one deadline and one stop signal; apart, each would need the others' state.
 */
import { AkvError, ErrorCode, isAkvError } from "../common/errors.ts";
import type { Logger } from "../common/logger.ts";
import { formatSecretRef, type SecretRef } from "../common/refs.ts";
import { listSecretRefs, type SyncSpec } from "../common/spec.ts";
import type { NotifyChange } from "./notifier.ts";
import { needsCerts, renderFiles, type CertsApi } from "./render.ts";
import {
  changedFiles,
  describeError,
  describeFiles,
  encodeStatus,
  statusAfterFailure,
  statusAfterSuccess,
  type LastError,
  type SyncStatus,
} from "./status.ts";
import {
  isRetryable,
  retryAfterOf,
  SourceError,
  statusOf,
  type FetchedSecret,
  type SecretSource,
} from "./secret-source.ts";

/** Time, injectable. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`, or as soon as `signal` aborts (never rejects). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * The longest delay one Node timer holds: a longer one fires after 1 ms, which
 * a Retry-After of weeks (seconds or a date) would turn into a tight loop
 * against the vault.
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted === true) {
        resolve();
        return;
      }
      let left = ms;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const arm = (): void => {
        const step = Math.min(left, MAX_TIMER_MS);
        left -= step;
        timer = setTimeout(() => {
          if (left > 0) {
            arm();
            return;
          }
          signal?.removeEventListener("abort", onAbort);
          resolve();
        }, step);
      };
      arm();
      signal?.addEventListener("abort", onAbort, { once: true });
    }),
};

/** Capped exponential backoff. */
export interface Backoff {
  readonly baseMs: number;
  readonly capMs: number;
}

/** The knobs; {@link DEFAULT_TUNING} holds the production values. */
export interface Tuning {
  /** Reads in flight at once (after the first, which goes alone until the challenge is cached). */
  readonly concurrency: number;
  /** One read's time limit, token exchange included. */
  readonly attemptTimeoutMs: number;
  /** Tries per read within one sync before the sync fails. */
  readonly fetchAttempts: number;
  /** Backoff between tries of one read (Microsoft advises 1, 2, 4, 8, 16 s for Key Vault). */
  readonly fetchBackoff: Backoff;
  /** Backoff between failed syncs; capped at the refresh interval in `sidecar` mode. */
  readonly syncBackoff: Backoff;
  /** Refresh interval spread: the wait is interval × (1 ± jitter). */
  readonly refreshJitter: number;
  /**
   * The first refresh after the first sync waits w × (1 − spread·u), u
   * uniform in [0, 1) and w a refresh wait drawn in proportion to its length
   * ({@link firstRefreshDelay}): with 1, pods started together refresh at an
   * even rate from the first refresh on rather than within ± `refreshJitter`
   * of each other.
   */
  readonly firstRefreshSpread: number;
  /**
   * A Retry-After of t is waited as t × (1 + spread·u): pods throttled by the
   * same answer come back spread over spread·t instead of in one burst.
   */
  readonly retryAfterSpread: number;
  /**
   * `init` mode gives up on transient failures after this long; in either
   * mode no wait of the first sync runs past it (in `sidecar` mode the
   * startup probe gives up then: 300 probes 1 s apart).
   */
  readonly initDeadlineMs: number;
  /**
   * The longest wait a Retry-After can ask for. Key Vault throttles per
   * 10-second window and asks for seconds; Entra ID for seconds to a minute
   * (MSAL assumes 60 s without one). A longer value comes from a proxy or an
   * HTTP date on a skewed clock, and sleeping through it keeps rotated
   * secrets stale and, inside a sync, holds every read back. 5 minutes is
   * the longest wait the loop chooses itself (its sync backoff cap and the
   * `init` deadline), so a capped wait is never shorter than a backoff.
   */
  readonly maxRetryAfterMs: number;
}

/** Production values. */
export const DEFAULT_TUNING: Tuning = Object.freeze({
  // 32: with the connections opened while the first read waits for its
  // token (warm-agent.ts), 99 more reads take 4 round trips instead of 7 at
  // 16; 64 saved less than its extra handshakes cost (bench/sidecar/RESULTS.md).
  concurrency: 32,
  attemptTimeoutMs: 20_000,
  fetchAttempts: 5,
  fetchBackoff: Object.freeze({ baseMs: 1000, capMs: 16_000 }),
  syncBackoff: Object.freeze({ baseMs: 2000, capMs: 5 * 60_000 }),
  refreshJitter: 0.1,
  firstRefreshSpread: 1,
  retryAfterSpread: 0.5,
  initDeadlineMs: 5 * 60_000,
  maxRetryAfterMs: 5 * 60_000,
});

/** What a sync needs. */
export interface SyncDeps {
  readonly spec: SyncSpec;
  readonly source: SecretSource;
  /**
   * Publishes the rendered files atomically, with the status file that
   * describes them (atomic-writer.ts in production).
   */
  readonly publish: (
    files: ReadonlyMap<string, Uint8Array>,
    status: Uint8Array,
  ) => Promise<{ readonly changed: boolean; readonly replaced?: boolean }>;
  /**
   * Writes the status after a failed sync beside the files, which stay as
   * they were (atomic-writer.ts's `writeStatus`); called only once a set was
   * published. A failure to write it is logged, never fatal.
   */
  readonly writeStatus?: (status: Uint8Array) => unknown;
  /** Told of every sync's outcome (the optional metrics). */
  readonly observer?: SyncObserver;
  /**
   * Called after a sync that changed the published set the app reads: a
   * refresh, or the first sync of a restarted sidecar that replaced the set
   * of its earlier run; never the pod's first set, nor when only the status
   * changed. The notifier's entry.
   * Must not wait or throw; a throw is logged and the loop goes on.
   */
  readonly onChanged?: (change: NotifyChange) => void;
  /** Loads the certificate functions; called only when a pem/cert/key file exists. */
  readonly loadCerts: () => Promise<CertsApi>;
  readonly clock: Clock;
  /** Uniform in [0, 1): jitter. */
  readonly random: () => number;
  readonly logger: Logger;
  /** The size of the volume the files go to: a larger set is refused before it is published. */
  readonly maxOutputBytes?: number | undefined;
  readonly tuning?: Partial<Tuning>;
}

/** Told of each sync's outcome. */
export interface SyncObserver {
  /** A sync published (or confirmed) `files` files at `nowMs`. */
  synced(nowMs: number, files: number): void;
  /** A sync failed with this stable error code. */
  syncFailed(code: string): void;
}

/** What one sync did. */
export interface SyncResult {
  readonly changed: boolean;
  /** True when the publish replaced a set that was there before it (see `PublishResult`). */
  readonly replaced: boolean;
  /** Secret ref → version read. */
  readonly versions: ReadonlyMap<string, string>;
}

/**
 * Full-jitter backoff: uniform in [0, min(cap, base·2^attempt)]. When the
 * service asked for a wait (Retry-After t), that wait plus a random part of
 * it: uniform in [t, t·(1 + retryAfterSpread)], and never shorter than the
 * backoff would have been.
 * @example computeDelay(3, { baseMs: 1000, capMs: 16000 }, () => 0.5, undefined) // 4000
 * @example computeDelay(0, { baseMs: 1000, capMs: 16000 }, () => 0.5, 10000, 0.5) // 12500
 */
export function computeDelay(
  attempt: number,
  backoff: Backoff,
  random: () => number,
  retryAfterMs: number | undefined,
  retryAfterSpread = DEFAULT_TUNING.retryAfterSpread,
): number {
  const ceiling = Math.min(backoff.capMs, backoff.baseMs * 2 ** Math.min(attempt, 30));
  const u = random();
  const backoffMs = Math.round(u * ceiling);
  if (retryAfterMs === undefined) return backoffMs;
  return Math.max(backoffMs, Math.round(retryAfterMs * (1 + retryAfterSpread * u)));
}

/**
 * The wait before the first refresh, in ms: a point of the first interval
 * drawn so that a fleet started at one instant refreshes at an even rate
 * from the start. With ± jitter alone, pods started together stay bunched
 * for hours; with a uniform point of the interval, their second refreshes
 * pile onto the end of the first ones (1.5 × the mean rate around one
 * interval). A uniform share (`firstRefreshSpread` 1) of a wait drawn in
 * proportion to its length is the steady state of refreshes every
 * interval × (1 ± jitter): the rate is even from the first refresh on.
 * @example firstRefreshDelay(60_000, { refreshJitter: 0.1, firstRefreshSpread: 1 }, () => 0.5) // 30_150
 */
export function firstRefreshDelay(
  interval: number,
  tuning: Pick<Tuning, "refreshJitter" | "firstRefreshSpread">,
  random: () => number,
): number {
  const shortest = 1 - tuning.refreshJitter;
  const longest = 1 + tuning.refreshJitter;
  const lengthBiased = Math.sqrt(shortest ** 2 + random() * (longest ** 2 - shortest ** 2));
  return Math.round(interval * lengthBiased * (1 - tuning.firstRefreshSpread * random()));
}

/** The longest the sidecar may wait now, and what set that bound. */
interface WaitLimit {
  readonly ms: number;
  readonly by: "max" | "deadline";
}

/**
 * The cap on any one wait: {@link Tuning.maxRetryAfterMs}, and while the first
 * sync's deadline is ahead, the time left until it.
 * @param deadline clock time, or undefined when none applies.
 */
function waitLimit(tuning: Tuning, deadline: number | undefined, now: number): WaitLimit {
  const left = deadline === undefined ? Infinity : Math.max(0, deadline - now);
  return left <= tuning.maxRetryAfterMs
    ? { ms: left, by: "deadline" }
    : { ms: tuning.maxRetryAfterMs, by: "max" };
}

/**
 * A wait for a failure: backoff, never shorter than the Retry-After asked for,
 * never longer than `limit`. Log fields say what was asked and what is waited.
 */
function waitFor(
  attempt: number,
  backoff: Backoff,
  random: () => number,
  askedMs: number | undefined,
  limit: WaitLimit,
  retryAfterSpread: number,
): { delayMs: number; fields: Record<string, unknown> } {
  const delayMs = Math.min(
    computeDelay(attempt, backoff, random, askedMs, retryAfterSpread),
    limit.ms,
  );
  if (askedMs === undefined) return { delayMs, fields: { delayMs } };
  const capped = delayMs < askedMs;
  return {
    delayMs,
    fields: { retryAfterMs: askedMs, delayMs, ...(capped ? { cappedBy: limit.by } : {}) },
  };
}

/** What one sync leaves for the next. */
export interface SyncState {
  /** Pinned versions (`NAME/VERSION`) never change in Key Vault: each is read once per process. */
  readonly pinned: Map<string, FetchedSecret>;
  /** The status of the published set; undefined until the first publish. */
  status: SyncStatus | undefined;
  /** The most recent failure, also one before the first publish. */
  lastError: LastError | null;
  /**
   * The last sync failed for a transient reason: the next one sends one read
   * alone first, and the others only once it is answered.
   */
  probeFirst: boolean;
}

/** A sync's state across refreshes. */
export function createSyncState(): SyncState {
  return { pinned: new Map(), status: undefined, lastError: null, probeFirst: false };
}

/**
 * Runs one sync: read, render, publish.
 * @param deadline clock time no wait may pass (the first sync's); once it has
 *   come, a failed read is not retried.
 * @throws {AkvError} the first fatal failure (every fatal failure's message
 *   joined), or a retryable one when a read ran out of tries or time.
 */
export async function syncOnce(
  deps: SyncDeps,
  signal: AbortSignal,
  state = createSyncState(),
  deadline?: number,
): Promise<SyncResult> {
  const tuning = { ...DEFAULT_TUNING, ...deps.tuning };
  const refs = listSecretRefs(deps.spec);
  const values = new Map<string, FetchedSecret>();
  const fatal: AkvError[] = [];
  let transient: AkvError | undefined;
  // A function, not the property: it changes across awaits.
  const aborted = (): boolean => signal.aborted;
  // By vault: a Retry-After is about one vault, not the others.
  const notBefore = new Map<string | undefined, number>();
  const queue = refs.filter((ref) => {
    const hit = state.pinned.get(formatSecretRef(ref));
    if (hit !== undefined) values.set(formatSecretRef(ref), hit);
    return hit === undefined;
  });

  // After a transient failure one read, the probe, retries for the pod and
  // the others wait for its outcome: a vault that is down or throttling gets
  // one request per retry from this pod, not one per secret; when the probe
  // is answered, the others go at once.
  let probe: Probe | undefined;

  const fetchOne = async (ref: SecretRef): Promise<void> => {
    const me = {};
    try {
      await fetchWithRetries(ref, me);
    } finally {
      if (probe?.owner === me) {
        probe.settle(values.has(formatSecretRef(ref)));
        probe = undefined;
      }
    }
  };

  const fetchWithRetries = async (ref: SecretRef, me: object): Promise<void> => {
    const key = formatSecretRef(ref);
    for (let attempt = 0; ; attempt++) {
      const wait = (notBefore.get(ref.vaultUrl) ?? 0) - deps.clock.now();
      if (wait > 0) await deps.clock.sleep(wait, signal);
      if (aborted() || fatal.length > 0) return;
      try {
        const secret = await fetchWithTimeout(deps, ref, tuning.attemptTimeoutMs, signal);
        values.set(key, secret);
        if (ref.version !== undefined) state.pinned.set(key, secret);
        return;
      } catch (error) {
        if (aborted()) return;
        if (!isRetryable(error)) {
          fatal.push(isAkvError(error) ? error : wrapUnknown(error, key));
          return;
        }
        const err = error as AkvError;
        if (probe !== undefined && probe.owner !== me) {
          if (!(await probe.done)) {
            transient ??= err;
            return;
          }
          continue;
        }
        const limit = waitLimit(tuning, deadline, deps.clock.now());
        if (attempt + 1 >= tuning.fetchAttempts || fatal.length > 0 || limit.ms <= 0) {
          transient ??= err;
          return;
        }
        probe ??= createProbe(me);
        const asked = retryAfterOf(err);
        const wait = waitFor(
          attempt,
          tuning.fetchBackoff,
          deps.random,
          asked,
          limit,
          tuning.retryAfterSpread,
        );
        // A Retry-After is about the vault, not this one secret: every read
        // of that vault waits, until this pod's (jittered) time to come back.
        if (asked !== undefined)
          notBefore.set(
            ref.vaultUrl,
            Math.max(notBefore.get(ref.vaultUrl) ?? 0, deps.clock.now() + wait.delayMs),
          );
        deps.logger.warn(
          { ref: key, attempt: attempt + 1, ...wait.fields, code: err.code, status: statusOf(err) },
          `retrying: ${err.message}`,
        );
        await deps.clock.sleep(wait.delayMs, signal);
      }
    }
  };

  let next = 0;
  const [first] = queue;
  if (state.probeFirst && first !== undefined && queue.length > 1) {
    // The vault failed the last sync: find out whether it is back with one
    // read (and its retries) before sending the others.
    next = 1;
    await fetchOne(first);
  }
  const worker = async (): Promise<void> => {
    // A read out of tries fails the sync: reads not yet started are not sent.
    while (next < queue.length && !aborted() && fatal.length === 0 && transient === undefined) {
      const ref = queue[next++];
      if (ref !== undefined) await fetchOne(ref);
    }
  };
  await Promise.all(Array.from({ length: Math.min(tuning.concurrency, queue.length) }, worker));

  if (aborted()) throw new AkvError(ErrorCode.UNAVAILABLE, "sync aborted: shutting down");
  const [firstFatal] = fatal;
  if (firstFatal !== undefined) {
    if (fatal.length === 1) throw firstFatal;
    throw new AkvError(firstFatal.code, fatal.map((e) => e.message).join("; "), {
      cause: firstFatal,
    });
  }
  state.probeFirst = transient !== undefined;
  if (transient !== undefined) throw transient;

  const certs = needsCerts(deps.spec.files) ? await deps.loadCerts() : undefined;
  const files = renderFiles(deps.spec.files, values, { certs, maxBytes: deps.maxOutputBytes });
  const versions = new Map([...values].map(([k, v]) => [k, v.version]));
  const status = statusAfterSuccess(
    describeFiles(deps.spec.files, versions),
    deps.clock.now(),
    state.lastError,
  );
  const { changed, replaced = false } = await deps.publish(files, encodeStatus(status));
  state.status = status;
  return { changed, replaced, versions };
}

/** The read retrying for the whole sync after a transient failure, and its outcome. */
interface Probe {
  readonly owner: object;
  /** True once the probe's read succeeded; false when it gave up (or the sync stopped). */
  readonly done: Promise<boolean>;
  settle(ok: boolean): void;
}

function createProbe(owner: object): Probe {
  let settle: (ok: boolean) => void = () => undefined;
  const done = new Promise<boolean>((resolve) => {
    settle = resolve;
  });
  return { owner, done, settle };
}

// Aborting without a reason makes a DOMException (with a stack trace) each
// time: one per read adds up at 100 secrets. These reasons are made once.
const CANCELLED = Object.freeze({ reason: "timer cancelled" });
const TIMED_OUT = Object.freeze({ reason: "timed out" });

async function fetchWithTimeout(
  deps: SyncDeps,
  ref: SecretRef,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<FetchedSecret> {
  const attempt = new AbortController();
  const timerCancel = new AbortController();
  // Shutdown must not wait for a read that ignores its signal: MSAL's
  // client-credential exchange does, and a Job's pod waits on this exit.
  let stopped = (): void => undefined;
  const shutdown = new Promise<never>((_, reject) => {
    stopped = () => {
      reject(new AkvError(ErrorCode.UNAVAILABLE, "read cancelled: shutting down"));
    };
  });
  shutdown.catch(() => undefined);
  const onAbort = (): void => {
    attempt.abort(signal.reason);
    stopped();
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  const state = { timedOut: false };
  const timer = deps.clock.sleep(timeoutMs, timerCancel.signal).then(() => {
    if (!timerCancel.signal.aborted) {
      state.timedOut = true;
      attempt.abort(TIMED_OUT);
    }
  });
  try {
    return await Promise.race([
      deps.source.fetch(ref, { signal: attempt.signal }),
      shutdown,
      // A source that ignores its signal must not hang the sync.
      timer.then(() => {
        if (state.timedOut) throw new Error("timeout");
        return new Promise<never>(() => undefined);
      }),
    ]);
  } catch (error) {
    if (state.timedOut) {
      throw new SourceError(
        ErrorCode.UNAVAILABLE,
        `Key Vault ${ref.vaultUrl ?? deps.spec.vaultUrl ?? ""} did not answer within ${timeoutMs} ms reading secret '${formatSecretRef(ref)}'`,
        { cause: error },
      );
    }
    throw error;
  } finally {
    timerCancel.abort(CANCELLED);
    signal.removeEventListener("abort", onAbort);
  }
}

function wrapUnknown(error: unknown, key: string): AkvError {
  return new AkvError(
    ErrorCode.UNAVAILABLE,
    `reading secret '${key}' failed: ${error instanceof Error ? error.message : String(error)}`,
    { cause: error },
  );
}

/**
 * Whether the loop tries a failed sync again with backoff: a read that was
 * throttled or met an outage, and a publish that failed. The usual cause of
 * the latter is a full volume, which clears once the set fits again (the
 * writer removes what a failed publish wrote); exiting would not help, since
 * an emptyDir outlives its container, and would only crash-loop the pod.
 */
function isRetryableSync(error: AkvError): boolean {
  return isRetryable(error) || error.code === ErrorCode.PUBLISH_FAILED;
}

/**
 * Counts a failed sync in the status and, once a set was published, writes
 * the status beside the files (which stay as they were): the app sees that
 * the refresh failed, and why, without the sidecar's logs.
 */
function recordFailure(deps: SyncDeps, state: SyncState, err: AkvError): void {
  state.lastError = describeError(err, deps.clock.now());
  if (state.status === undefined) return;
  state.status = statusAfterFailure(state.status, state.lastError);
  try {
    deps.writeStatus?.(encodeStatus(state.status));
  } catch (error) {
    const e = isAkvError(error) ? error : wrapUnknown(error, "status");
    deps.logger.warn({ code: e.code }, `cannot write the status file: ${e.message}`);
  }
}

/** Hands a change to {@link SyncDeps.onChanged}; nothing it does may stop the loop. */
function announceChange(deps: SyncDeps, files: readonly string[]): void {
  try {
    deps.onChanged?.({ files, syncTime: deps.clock.now() });
  } catch (error) {
    deps.logger.error(
      { event: "notify", reason: error instanceof Error ? error.message : String(error) },
      "cannot schedule the notifications",
    );
  }
}

/**
 * Runs the spec's mode until done: `init` returns after one good sync;
 * `sidecar` returns when `signal` aborts.
 * @throws {AkvError} a configuration error on the first sync (either mode),
 *   or, in `init` mode, the last transient error once the deadline passed.
 */
export async function runSyncLoop(deps: SyncDeps, signal: AbortSignal): Promise<void> {
  const tuning = { ...DEFAULT_TUNING, ...deps.tuning };
  const { clock, logger, spec } = deps;
  const interval = spec.refreshIntervalMs;
  const state = createSyncState();
  const started = clock.now();
  let synced = false;
  let failures = 0;
  const aborted = (): boolean => signal.aborted;
  // No wait of the first sync runs past its deadline: `init` mode gives up
  // then, and in `sidecar` mode the startup probe does. Once it has passed
  // without a sync, `sidecar` mode goes on with plain backoff.
  const firstSyncDeadline = (now: number): number | undefined => {
    const deadline = started + tuning.initDeadlineMs;
    return synced || (spec.mode === "sidecar" && now >= deadline) ? undefined : deadline;
  };

  while (!aborted()) {
    let delayMs: number;
    try {
      const t0 = clock.now();
      const before = state.status?.files;
      const result = await syncOnce(deps, signal, state, firstSyncDeadline(t0));
      logger.info(
        {
          event: synced ? "refreshed" : "synced",
          changed: result.changed,
          files: spec.files.length,
          versions: Object.fromEntries(result.versions),
          ms: clock.now() - t0,
        },
        result.changed ? "published files" : "files unchanged",
      );
      const first = !synced;
      // Not the pod's first set: the app starts after it. A restarted
      // sidecar's first sync that replaced the set the app reads is told.
      if ((synced || result.replaced) && result.changed && state.status !== undefined)
        announceChange(deps, changedFiles(before, state.status.files));
      synced = true;
      failures = 0;
      deps.observer?.synced(clock.now(), spec.files.length);
      if (spec.mode === "init") return;
      delayMs = Math.round(
        first
          ? firstRefreshDelay(interval, tuning, deps.random)
          : interval * (1 - tuning.refreshJitter + 2 * tuning.refreshJitter * deps.random()),
      );
    } catch (error) {
      if (aborted()) return;
      const err = isAkvError(error) ? error : wrapUnknown(error, "?");
      recordFailure(deps, state, err);
      deps.observer?.syncFailed(err.code);
      if (!isRetryableSync(err)) {
        if (!synced) throw err;
        logger.error(
          { code: err.code, status: statusOf(err) },
          `refresh failed, keeping the last good files: ${err.message}`,
        );
        delayMs = interval;
      } else {
        if (spec.mode === "init" && clock.now() - started >= tuning.initDeadlineMs) {
          throw new AkvError(
            err.code,
            `gave up after ${Math.round((clock.now() - started) / 1000)} s: ${err.message}`,
            { cause: err },
          );
        }
        const backoff =
          spec.mode === "sidecar" && synced
            ? { ...tuning.syncBackoff, capMs: Math.min(tuning.syncBackoff.capMs, interval) }
            : tuning.syncBackoff;
        const limit = waitLimit(tuning, firstSyncDeadline(clock.now()), clock.now());
        const wait = waitFor(
          failures,
          backoff,
          deps.random,
          retryAfterOf(err),
          limit,
          tuning.retryAfterSpread,
        );
        delayMs = wait.delayMs;
        failures++;
        logger.warn(
          { code: err.code, status: statusOf(err), failures, ...wait.fields },
          `sync failed, ${synced ? "keeping the last good files, " : ""}retrying: ${err.message}`,
        );
      }
    }
    await clock.sleep(delayMs, signal);
  }
}
