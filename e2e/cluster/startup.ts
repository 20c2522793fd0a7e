/**
 * The installation starts in steps, and two things must hold whatever
 * happens: each step's time is kept (the docs quote them, and a slow step is
 * the first thing to look at when the suite slows down), and whatever has
 * started is stopped, newest first, whether the start fails halfway, a test
 * ends or the demo is interrupted. Kept apart so the start itself reads as
 * its steps.
 */

/** A start in steps: their timings, and how to stop what they started. */
export class Startup {
  /** Milliseconds of each step that finished, by name. */
  readonly timings: Record<string, number> = {};
  readonly #stops: (() => Promise<void>)[] = [];
  #stopped: Promise<void> | undefined;

  /** Runs one step and keeps how long it took. */
  async step<T>(name: string, run: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    const value = await run();
    this.timings[name] = Math.round(performance.now() - t0);
    return value;
  }

  /** How to stop something that has just started. */
  onStop(stop: () => Promise<void>): void {
    this.#stops.push(stop);
  }

  /** Stops everything started so far, newest first, once; one failing stop does not keep the rest running. */
  stop(): Promise<void> {
    return (this.#stopped ??= this.#stopAll());
  }

  async #stopAll(): Promise<void> {
    for (const stop of this.#stops.reverse()) {
      try {
        await stop();
      } catch {
        // Keep stopping the rest.
      }
    }
    this.#stops.length = 0;
  }
}
