/**
 * Log lines gathered over one turn of the event loop and written together.
 *
 * Why: a busy webhook logs a line per admission, several per turn. Written
 * one by one, each line was its own write: a hand-off to libuv's thread pool
 * (pino's asynchronous destination), which on a pod's one core preempts the
 * event loop, or a system call each (pino's synchronous one), which made
 * the webhook slower still. Gathered per turn, a turn's lines cost one
 * system call, and a line still leaves within the turn that logged it:
 * nothing waits for a buffer to fill or a timer to fire.
 * bench/webhook/RESULTS.md ("Fourth pass") has the measurements.
 */
import type { DestinationStream } from "pino";

/** A pino destination that writes each turn's lines at the end of the turn. */
export interface TurnBatchedDestination extends DestinationStream {
  /** Writes the lines gathered so far, now (on exit, when no later turn comes). */
  flushSync(): void;
  /** What pino's `logger.flush(callback)` calls: the lines so far are written before `callback`. */
  flush(callback?: (error?: Error) => void): void;
}

/**
 * Gathers the lines written to it and hands them to `writeNow` in one text,
 * from a callback `schedule` queues when a turn's first line arrives
 * (`setImmediate`: after the turn's I/O callbacks, before the next wait).
 */
export function batchPerTurn(
  writeNow: (text: string) => void,
  schedule: (run: () => void) => void = (run) => {
    setImmediate(run);
  },
): TurnBatchedDestination {
  let pending = "";
  const flushSync = (): void => {
    if (pending === "") return;
    const text = pending;
    pending = "";
    writeNow(text);
  };
  return {
    write(line: string): void {
      if (pending === "") schedule(flushSync);
      pending += line;
    },
    flushSync,
    flush(callback): void {
      flushSync();
      callback?.();
    },
  };
}
