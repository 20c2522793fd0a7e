/**
 * Tells app containers that the set of files changed (`notify-<container>`),
 * without ever holding up a sync: {@link Notifier.changed} only schedules,
 * and each container's notification runs on its own timers.
 *
 * Per container: a change is sent after a short debounce; a failed attempt
 * is tried again with exponential backoff and jitter, up to a bound, then
 * given up (logged; the next change starts afresh). A change that arrives
 * while one is waiting (debounce or backoff) replaces it, its files merged
 * in: the app gets one notification for the latest set, naming every file
 * changed since it was last told. A change that arrives while an attempt is
 * in flight waits for that attempt; if it failed, the two are merged.
 *
 * The decisions ({@link mergeChanges}, {@link retryDelay}; `changedFiles` in status.ts)
 * are pure; the sending is injected ({@link Deliver}: HTTP and signals in
 * `notify-deliver.ts`), and so are timers, so tests drive it with fake ones.
 */
import type { Logger } from "../common/logger.ts";
import { formatNotifyAction, type NotifyTarget } from "../common/notify.ts";
import type { Backoff } from "./sync-loop.ts";

/** What changed, as a notification tells it: never a value. */
export interface NotifyChange {
  /** The names of the files whose content changed, sorted. */
  readonly files: readonly string[];
  /** When the sync that published them ended (ms since the epoch). */
  readonly syncTime: number;
}

/** The knobs; {@link DEFAULT_NOTIFY_TUNING} holds the production values. */
export interface NotifyTuning {
  /** Wait after a change before sending, so that changes close together make one notification. */
  readonly debounceMs: number;
  /** Attempts per change, the first included. */
  readonly attempts: number;
  /** Between attempts: half the ceiling plus a random half (equal jitter), so a retry is never immediate. */
  readonly backoff: Backoff;
  /** One attempt's time limit (an HTTP request, or finding and signalling the process). */
  readonly timeoutMs: number;
}

/** Production values: attempts 1 s apart at least, at most ~15 s of retries after 1 s of debounce. */
export const DEFAULT_NOTIFY_TUNING: NotifyTuning = Object.freeze({
  debounceMs: 1000,
  attempts: 5,
  backoff: Object.freeze({ baseMs: 1000, capMs: 8000 }),
  timeoutMs: 5000,
});

/** The outcome of one attempt, for logs and metrics. */
export type NotifyOutcome = "success" | "failure" | "gave-up";

/** Sends one notification; resolves with what happened (`HTTP 204`, `SIGHUP to pid 12`), rejects with why not. */
export type Deliver = (
  target: NotifyTarget,
  change: NotifyChange,
  signal: AbortSignal,
) => Promise<string>;

/** Timers, injectable. */
export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

/** What a notifier needs. */
export interface NotifierDeps {
  readonly targets: readonly NotifyTarget[];
  readonly deliver: Deliver;
  readonly logger: Logger;
  /** Uniform in [0, 1): jitter. */
  readonly random: () => number;
  /** Told of each attempt's outcome (the optional metrics). */
  readonly observer?: { notified(container: string, outcome: NotifyOutcome): void };
  readonly timers?: Timers;
  readonly tuning?: Partial<NotifyTuning>;
}

/** The notifications of one sidecar. */
export interface Notifier {
  /** A sync changed the set: schedule a notification for each container. Never throws, never waits. */
  changed(change: NotifyChange): void;
  /** Stops every timer and cancels attempts in flight; resolves when they have ended. */
  close(): Promise<void>;
}

/**
 * The change the app should hear of: every file of both, the later time.
 * @example mergeChanges({ files: ["a"], syncTime: 1 }, { files: ["b"], syncTime: 2 }) // { files: ["a", "b"], syncTime: 2 }
 */
export function mergeChanges(earlier: NotifyChange | undefined, later: NotifyChange): NotifyChange {
  if (earlier === undefined) return later;
  return {
    files: [...new Set([...earlier.files, ...later.files])].sort(),
    syncTime: Math.max(earlier.syncTime, later.syncTime),
  };
}

/**
 * The wait before attempt `attempt + 1` (0-based `attempt` just failed):
 * equal jitter, in [ceiling/2, ceiling] with ceiling = min(cap, base·2^attempt).
 * @example retryDelay(2, { baseMs: 1000, capMs: 8000 }, () => 0.5) // 3000
 */
export function retryDelay(attempt: number, backoff: Backoff, random: () => number): number {
  const ceiling = Math.min(backoff.capMs, backoff.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

const realTimers: Timers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (handle) => {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

/** One container's notification state. */
interface Slot {
  readonly target: NotifyTarget;
  readonly label: string;
  /** The change to send next (waiting for its timer, or for the attempt in flight to end). */
  pending: NotifyChange | undefined;
  /** Attempts made for {@link pending}. */
  attempt: number;
  timer: unknown;
  /** The change being sent, while an attempt is in flight. */
  sending: NotifyChange | undefined;
  inFlight: Promise<void> | undefined;
}

/** Makes the notifier of `deps.targets`. */
export function createNotifier(deps: NotifierDeps): Notifier {
  const tuning = { ...DEFAULT_NOTIFY_TUNING, ...deps.tuning };
  const timers = deps.timers ?? realTimers;
  const stop = new AbortController();
  const slots: Slot[] = deps.targets.map((target) => ({
    target,
    label: formatNotifyAction(target.action),
    pending: undefined,
    attempt: 0,
    timer: undefined,
    sending: undefined,
    inFlight: undefined,
  }));

  const arm = (slot: Slot, ms: number): void => {
    if (slot.timer !== undefined) timers.clear(slot.timer);
    slot.timer = timers.set(() => {
      slot.timer = undefined;
      send(slot);
    }, ms);
  };

  const report = (slot: Slot, outcome: NotifyOutcome): void => {
    try {
      deps.observer?.notified(slot.target.container, outcome);
    } catch {
      // Metrics must never stop a notification.
    }
  };

  const send = (slot: Slot): void => {
    const change = slot.pending;
    if (change === undefined || stop.signal.aborted) return;
    slot.pending = undefined;
    slot.sending = change;
    const attempt = slot.attempt + 1;
    const fields = {
      event: "notify",
      container: slot.target.container,
      target: slot.label,
      attempt,
      files: change.files,
    };
    // On the injected timers, like every other wait here.
    const timeout = new AbortController();
    const timer = timers.set(() => {
      timeout.abort();
    }, tuning.timeoutMs);
    const attemptStop = AbortSignal.any([stop.signal, timeout.signal]);
    const delivered = deps.deliver(slot.target, change, attemptStop).finally(() => {
      timers.clear(timer);
    });
    slot.inFlight = delivered.then(
      (detail) => {
        report(slot, "success");
        deps.logger.info(
          { ...fields, result: "success", detail },
          `notified container ${slot.target.container}`,
        );
        settle(slot, undefined, 0);
      },
      (error: unknown) => {
        if (stop.signal.aborted) return;
        const reason = error instanceof Error ? error.message : String(error);
        if (slot.pending !== undefined) {
          // A newer change came meanwhile: it carries these files too, afresh.
          report(slot, "failure");
          deps.logger.warn(
            { ...fields, result: "failure", reason },
            `notifying container ${slot.target.container} failed; a newer change replaces it: ${reason}`,
          );
          settle(slot, change, 0);
          return;
        }
        if (attempt >= tuning.attempts) {
          report(slot, "gave-up");
          deps.logger.error(
            { ...fields, result: "gave-up", reason },
            `notifying container ${slot.target.container} failed ${attempt} times, giving up until the next change: ${reason}`,
          );
          settle(slot, undefined, 0);
          return;
        }
        report(slot, "failure");
        const delayMs = retryDelay(attempt - 1, tuning.backoff, deps.random);
        deps.logger.warn(
          { ...fields, result: "failure", reason, delayMs },
          `notifying container ${slot.target.container} failed, retrying: ${reason}`,
        );
        slot.sending = undefined;
        slot.inFlight = undefined;
        slot.pending = change;
        slot.attempt = attempt;
        arm(slot, delayMs);
      },
    );
  };

  /** After an attempt: a change that came meanwhile goes next (merged with `unsent`), after the debounce. */
  const settle = (slot: Slot, unsent: NotifyChange | undefined, attempt: number): void => {
    slot.sending = undefined;
    slot.inFlight = undefined;
    slot.attempt = attempt;
    if (slot.pending === undefined) return;
    slot.pending = unsent === undefined ? slot.pending : mergeChanges(unsent, slot.pending);
    arm(slot, tuning.debounceMs);
  };

  return {
    changed(change) {
      if (stop.signal.aborted) return;
      for (const slot of slots) {
        slot.pending = mergeChanges(slot.pending, change);
        // An attempt in flight sends the next change when it ends (settle).
        if (slot.inFlight !== undefined) continue;
        slot.attempt = 0;
        arm(slot, tuning.debounceMs);
      }
    },
    async close() {
      stop.abort();
      for (const slot of slots) {
        if (slot.timer !== undefined) timers.clear(slot.timer);
        slot.timer = undefined;
      }
      await Promise.all(slots.map(async (s) => s.inFlight));
    },
  };
}
