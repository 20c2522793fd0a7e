/**
 * Faults on demand, shared by both mocks: answer with a status, add latency,
 * drop the connection, or never answer, for the next N matching requests or
 * for a fraction of them; and a throttle that enforces N requests per window,
 * as Key Vault's service limits do. Random choices come from a seeded
 * generator so a failing test replays the same way. The queue comes with its
 * admin routes and handle methods ({@link faultControls}), and the actions
 * every mock answers alike are applied here ({@link applyFault}).
 */
import { AdminInputError, type AdminHandler } from "./admin.ts";
import { sleep, type Reply } from "./https-server.ts";

/** What a fault does to one request. */
export type FaultAction =
  | {
      /** Answer with this HTTP status instead of serving the request. */
      readonly type: "status";
      readonly status: number;
      /** `Retry-After` in seconds (integer, as the services send it). */
      readonly retryAfterSeconds?: number;
      /** Extra headers, e.g. `retry-after-ms`. */
      readonly headers?: Readonly<Record<string, string>>;
      /** JSON body; default: the service's own error body for that status. */
      readonly body?: unknown;
    }
  | {
      /** Wait, then serve the request normally. */
      readonly type: "latency";
      readonly ms: number;
    }
  | {
      /** Destroy the socket without answering (the client sees ECONNRESET). */
      readonly type: "drop";
    }
  | {
      /** Never answer; the connection stays open until the client gives up or the mock closes. */
      readonly type: "hang";
    };

/** A fault rule: which requests, how many, what happens. `M` is the mock's own request filter. */
export interface FaultRule<A, M> {
  readonly action: A;
  /** Only requests this filter accepts; default all (admin requests are never faulted). */
  readonly match?: M;
  /**
   * How many matching requests it applies to; default 1, or unlimited when
   * `probability` is set. A spent rule is removed.
   */
  readonly times?: number;
  /** Applies to this fraction (0–1) of matching requests; default 1. */
  readonly probability?: number;
}

/** A rule as listed by {@link FaultQueue.list}. */
export interface ActiveFault<A, M> extends FaultRule<A, M> {
  readonly id: number;
  /** Applications left (`Infinity` for unlimited). */
  readonly remaining: number;
}

/**
 * Ordered fault rules. For each request the first rule that matches (and
 * wins its coin toss) fires and is spent by one.
 */
export class FaultQueue<A, M, R> {
  readonly #rules: { id: number; rule: FaultRule<A, M>; remaining: number }[] = [];
  readonly #random: () => number;
  readonly #matches: (match: M, request: R) => boolean;
  #nextId = 1;

  /**
   * @param matches decides whether a rule's filter accepts a request (`R`: the mock's own view of it).
   * @param random a [0, 1) generator; see {@link seededRandom}.
   */
  constructor(matches: (match: M, request: R) => boolean, random: () => number) {
    this.#matches = matches;
    this.#random = random;
  }

  /** Adds a rule at the end; returns its id. */
  add(rule: FaultRule<A, M>): number {
    const remaining = rule.times ?? (rule.probability === undefined ? 1 : Number.POSITIVE_INFINITY);
    if (!(remaining > 0)) throw new RangeError("fault times must be positive");
    if (rule.probability !== undefined && !(rule.probability >= 0 && rule.probability <= 1)) {
      throw new RangeError("fault probability must be between 0 and 1");
    }
    const id = this.#nextId++;
    this.#rules.push({ id, rule, remaining });
    return id;
  }

  /** Removes one rule, or all when `id` is omitted. */
  clear(id?: number): void {
    if (id === undefined) this.#rules.length = 0;
    else {
      const i = this.#rules.findIndex((r) => r.id === id);
      if (i >= 0) this.#rules.splice(i, 1);
    }
  }

  /** The rules still active, in order. */
  list(): ActiveFault<A, M>[] {
    return this.#rules.map((r) => ({ ...r.rule, id: r.id, remaining: r.remaining }));
  }

  /** The action for this request, if a rule fires; spends that rule by one. */
  take(request: R): A | undefined {
    for (let i = 0; i < this.#rules.length; i++) {
      const entry = this.#rules[i];
      if (entry === undefined) continue;
      const { rule } = entry;
      if (rule.match !== undefined && !this.#matches(rule.match, request)) continue;
      if (rule.probability !== undefined && this.#random() >= rule.probability) continue;
      entry.remaining -= 1;
      if (entry.remaining <= 0) this.#rules.splice(i, 1);
      return rule.action;
    }
    return undefined;
  }
}

/** Options of a {@link Throttle}: at most `limit` requests in any `windowMs`. */
export interface ThrottleOptions {
  /** Requests allowed per window, e.g. 4000 (Key Vault's secret GETs per 10 s per vault). */
  readonly limit: number;
  /** Window length in milliseconds, e.g. 10000. */
  readonly windowMs: number;
}

/**
 * A sliding-window limiter: admits a request when fewer than `limit` were
 * admitted in the last `windowMs`; else says how long until one slot frees.
 * Refused requests do not count, as a throttled call costs the caller nothing
 * but time.
 */
export class Throttle {
  readonly options: ThrottleOptions;
  readonly #admitted: number[] = [];

  constructor(options: ThrottleOptions) {
    if (!(Number.isInteger(options.limit) && options.limit > 0)) {
      throw new RangeError("throttle limit must be a positive integer");
    }
    if (!(options.windowMs > 0)) throw new RangeError("throttle windowMs must be positive");
    this.options = options;
  }

  /** `undefined` if admitted (and counted); else milliseconds until a slot frees. */
  admit(now: number): number | undefined {
    const since = now - this.options.windowMs;
    while (this.#admitted.length > 0 && (this.#admitted[0] ?? 0) <= since) this.#admitted.shift();
    if (this.#admitted.length < this.options.limit) {
      this.#admitted.push(now);
      return undefined;
    }
    return (this.#admitted[0] ?? now) + this.options.windowMs - now;
  }
}

/**
 * A small deterministic [0, 1) generator (mulberry32), so a fractional fault
 * picks the same requests on every run with the same seed.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Checks a fault action from JSON (the admin API); returns a problem or undefined. */
export function checkFaultAction(action: unknown): string | undefined {
  if (typeof action !== "object" || action === null) return "action must be an object";
  const a = action as Record<string, unknown>;
  switch (a.type) {
    case "status":
      if (typeof a.status !== "number" || a.status < 100 || a.status > 599)
        return "status must be an HTTP status";
      if (a.retryAfterSeconds !== undefined && typeof a.retryAfterSeconds !== "number")
        return "retryAfterSeconds must be a number";
      return undefined;
    case "latency":
      return typeof a.ms === "number" && a.ms >= 0 ? undefined : "latency needs ms ≥ 0";
    case "drop":
    case "hang":
      return undefined;
    default:
      return `unknown fault type '${String(a.type)}'`;
  }
}

/** The handle methods of {@link faultControls}. */
export interface FaultMethods<A, M> {
  /** Adds a fault rule; returns its id. */
  injectFault(rule: FaultRule<A, M>): number;
  /** Removes one fault rule, or all. */
  clearFaults(id?: number): void;
  faults(): ActiveFault<A, M>[];
}

/**
 * A mock's fault queue as its handle and admin API (`GET`, `POST`, `DELETE
 * faults`) expose it.
 * @param check the problem with a posted rule's `action`, if any.
 * @param complete fills in a rule's defaults before it is queued.
 */
export function faultControls<A, M, R>(
  queue: FaultQueue<A, M, R>,
  check: (action: unknown) => string | undefined,
  complete: (rule: FaultRule<A, M>) => FaultRule<A, M> = (rule) => rule,
): { readonly methods: FaultMethods<A, M>; readonly adminRoutes: Record<string, AdminHandler> } {
  const methods: FaultMethods<A, M> = {
    injectFault: (rule) => queue.add(complete(rule)),
    clearFaults: (id) => {
      queue.clear(id);
    },
    faults: () => queue.list(),
  };
  return {
    methods,
    adminRoutes: {
      "GET faults": () => queue.list(),
      "POST faults": (body) => {
        const problem = check(body.action);
        if (problem !== undefined) throw new AdminInputError(problem);
        return { id: methods.injectFault(body as unknown as FaultRule<A, M>) };
      },
      "DELETE faults": (_body, params) => {
        queue.clear(params[0] === undefined ? undefined : Number(params[0]));
      },
    },
  };
}

/** The fault actions every mock answers alike (see {@link applyFault}). */
export type CommonFaultAction = Exclude<FaultAction, { type: "status" }>;

/**
 * Applies a fault that fired (`action`), if any: counts it, waits out a
 * latency (then `undefined`: serve the request as usual), drops or hangs;
 * the mock's own `answer` replies to the others.
 */
export async function applyFault<A extends { readonly type: string }>(
  action: A | undefined,
  counters: { faults: number },
  answer: (action: Exclude<A, CommonFaultAction>) => Reply,
): Promise<Reply | undefined> {
  if (action === undefined) return undefined;
  counters.faults++;
  const common = action as unknown as CommonFaultAction;
  switch (common.type) {
    case "latency":
      await sleep(common.ms);
      return undefined;
    case "drop":
      return { drop: true };
    case "hang":
      return { hang: true };
    default:
      return answer(action as Exclude<A, CommonFaultAction>);
  }
}
