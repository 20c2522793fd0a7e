/**
 * What a mock tells about the requests it served, kept the same way by both:
 * counters (each mock has its own kinds, reset as a whole) and a bounded
 * request log, for tests that count what a sync costs. Comes with its admin
 * routes (under `/_mock/`) and its handle methods, so a mock spreads them
 * into its own.
 */
import { AdminInputError, type AdminHandler } from "./admin.ts";
import type { Reply } from "./https-server.ts";

/** How many requests the log keeps; the oldest go first. */
const REQUEST_LOG_LIMIT = 10_000;

/** The handle methods of {@link RequestStats}. */
export interface RequestStatsMethods<C, E> {
  counters(): C;
  resetCounters(): void;
  /** The last requests, oldest first (bounded). */
  requests(): readonly E[];
}

/** Request counters (since start or the last reset) and the request log. */
export class RequestStats<C, E> {
  /** The live counters; a reset replaces them. */
  counters: C;
  readonly #empty: () => C;
  readonly #log: E[] = [];

  constructor(empty: () => C) {
    this.#empty = empty;
    this.counters = empty();
  }

  /** Appends one request to the log. */
  record(entry: E): void {
    this.#log.push(entry);
    if (this.#log.length > REQUEST_LOG_LIMIT) this.#log.shift();
  }

  /** `GET counters`, `POST counters/reset`, `GET requests`. */
  adminRoutes(): Record<string, AdminHandler> {
    return {
      "GET counters": () => this.counters,
      "POST counters": (_body, params) => {
        if (params[0] !== "reset") throw new AdminInputError("POST /_mock/counters/reset");
        this.counters = this.#empty();
      },
      "GET requests": () => this.#log,
    };
  }

  handleMethods(): RequestStatsMethods<C, E> {
    return {
      counters: () => structuredClone(this.counters),
      resetCounters: () => {
        this.counters = this.#empty();
      },
      requests: () => [...this.#log],
    };
  }
}

/** A reply's status as counted and logged: `dropped` and `hung` for faults without one. */
export function replyStatus(reply: Reply): number | "dropped" | "hung" {
  return "drop" in reply ? "dropped" : "hang" in reply ? "hung" : reply.status;
}
