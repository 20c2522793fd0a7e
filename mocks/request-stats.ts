/**
 * What both mocks keep the same way around their own service logic: request
 * counters and a bounded request log, the fault queue as the admin API and
 * the handle expose it, how a fired fault is applied, and the HTTPS server
 * they listen on. Each part comes with its admin routes (under `/_mock/`)
 * and its handle methods, so a mock spreads them into its own.
 */
import type { Logger } from "../common/logger.ts";
import { AdminInputError, type AdminHandler } from "./admin.ts";
import type { ActiveFault, FaultAction, FaultQueue, FaultRule } from "./faults.ts";
import { sleep, startHttpsServer, type Call, type Reply } from "./https-server.ts";
import type { ServingTls } from "./tls.ts";

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

/** A reply's status as counted and logged: `dropped` and `hung` for faults without one. */
export function replyStatus(reply: Reply): number | "dropped" | "hung" {
  return "drop" in reply ? "dropped" : "hang" in reply ? "hung" : reply.status;
}

/** Where a mock listens. */
export interface MockListenOptions {
  readonly host?: string | undefined;
  readonly port?: number | undefined;
  readonly publicUrl?: string | undefined;
}

/** The handle fields of a listening mock. */
export interface ListeningMock {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** PEM of the CA clients must trust, when known. */
  readonly ca: string | undefined;
  close(): Promise<void>;
}

/** Starts a mock's HTTPS server and logs `<name> listening`. */
export async function listenMock(
  name: string,
  options: MockListenOptions,
  tls: ServingTls,
  handle: (call: Call) => Promise<Reply>,
  logger: Logger,
): Promise<ListeningMock> {
  const server = await startHttpsServer({
    host: options.host,
    port: options.port,
    publicUrl: options.publicUrl,
    tls,
    handle,
    logger,
  });
  logger.info({ url: server.url }, `${name} listening`);
  return {
    url: server.url,
    host: server.host,
    port: server.port,
    ca: tls.caPem,
    close: () => server.close(),
  };
}
