/**
 * Service accounts for the admission decision: a watch-backed cache of every
 * service account (so an admission costs no API call), with a live GET on a
 * miss, because a service account created a moment before its pod may not
 * have reached the watch yet. The webhook is ready only once the first list
 * has filled the cache.
 *
 * The informer (kube/informer.ts) stops on an error (a list that failed, a
 * watch the apiserver closed with an error status); this module restarts it
 * with capped exponential backoff, keeping the cache it had.
 */
import { AkvError, ErrorCode } from "../common/errors.ts";
import type { Logger } from "../common/logger.ts";
import type { ServiceAccount } from "./injection-config.ts";
import { KubeApiError, type KubeClient } from "./kube/client.ts";
import { createInformer } from "./kube/informer.ts";
import type { ServiceAccountLookup } from "./review.ts";

/** The part of an informer this module uses (a fake in tests). */
export interface ServiceAccountInformer {
  on(verb: "error", cb: (err?: unknown) => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  get(name: string, namespace?: string): ServiceAccount | undefined;
}

/** A live read: the account, `undefined` when the API says 404, or a rejection. */
export type ReadServiceAccount = ServiceAccountLookup;

/** Options of {@link createServiceAccountCache}. */
export interface ServiceAccountCacheOptions {
  readonly informer: ServiceAccountInformer;
  readonly read: ReadServiceAccount;
  readonly logger: Logger;
  /** A live read slower than this fails the admission (the apiserver's own webhook timeout is short). Default 3000. */
  readonly readTimeoutMs?: number;
  /** Delay before restart number `attempt` (1, 2, …) of a failed informer. Default 1 s doubling to 30 s. */
  readonly restartDelayMs?: (attempt: number) => number;
}

/** The cache the server uses. */
export interface ServiceAccountCache {
  readonly lookup: ServiceAccountLookup;
  /** True once a full list has filled the cache (stays true across watch restarts). */
  isSynced(): boolean;
  /** Starts the informer; resolves after the first attempt, successful or not (a failure is retried in the background). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

const defaultRestartDelay = (attempt: number): number =>
  Math.min(30_000, 1000 * 2 ** (attempt - 1));

/** Builds the cache over an informer and a live read; see {@link createKubernetesServiceAccountCache}. */
export function createServiceAccountCache(
  options: ServiceAccountCacheOptions,
): ServiceAccountCache {
  const { informer, read, logger } = options;
  const readTimeoutMs = options.readTimeoutMs ?? 3000;
  const restartDelay = options.restartDelayMs ?? defaultRestartDelay;
  let synced = false;
  let stopped = false;
  let failures = 0;
  let restartTimer: NodeJS.Timeout | undefined;
  /** Concurrent misses for one account share one GET (a Deployment scaling up sends a burst). */
  const inflight = new Map<string, Promise<ServiceAccount | undefined>>();

  const run = async (): Promise<void> => {
    const attempt = { failed: false };
    const onError = (err?: unknown): void => {
      attempt.failed = true;
      if (stopped) return;
      failures += 1;
      const delay = restartDelay(failures);
      logger.warn(
        { err: describeError(err), restartInMs: delay, synced },
        "service account watch failed; restarting",
      );
      restartTimer = setTimeout(() => {
        restartTimer = undefined;
        if (!stopped) void run();
      }, delay);
      restartTimer.unref();
    };
    errorHandler = onError;
    await informer.start();
    // start() resolves once the list has been stored and the watch opened, or after it failed.
    if (!attempt.failed && !stopped) {
      if (!synced) logger.info("service account cache synced");
      synced = true;
      failures = 0;
    }
  };
  let errorHandler: ((err?: unknown) => void) | undefined;
  informer.on("error", (err) => errorHandler?.(err));

  const readLive = (namespace: string, name: string): Promise<ServiceAccount | undefined> => {
    const key = `${namespace}/${name}`;
    const pending = inflight.get(key);
    if (pending !== undefined) return pending;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new AkvError(
            ErrorCode.KUBERNETES_UNAVAILABLE,
            `reading service account ${key} took over ${readTimeoutMs} ms`,
          ),
        );
      }, readTimeoutMs);
    });
    const request = Promise.race([
      read(namespace, name).catch((cause: unknown) => {
        throw new AkvError(
          ErrorCode.KUBERNETES_UNAVAILABLE,
          `reading service account ${key} failed: ${describeError(cause)}`,
          { cause },
        );
      }),
      timeout,
    ]).finally(() => {
      clearTimeout(timer);
      inflight.delete(key);
    });
    inflight.set(key, request);
    return request;
  };

  return {
    lookup: async (namespace, name) => {
      const cached = informer.get(name, namespace);
      if (cached !== undefined) return cached;
      return readLive(namespace, name);
    },
    isSynced: () => synced,
    start: async () => {
      stopped = false;
      await run();
    },
    stop: async () => {
      stopped = true;
      clearTimeout(restartTimer);
      await informer.stop();
    },
  };
}

/**
 * A short description of a lower error: the HTTP status and, for an API
 * error, the apiserver's own message (`serviceaccounts is forbidden: …`), which
 * says what to fix. Never headers or whole bodies.
 */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err).slice(0, 300);
  const e = err as Error & { code?: unknown; statusCode?: unknown; body?: unknown };
  const code = typeof e.code === "number" ? e.code : e.statusCode;
  if (typeof code !== "number") {
    // undici says only "fetch failed"; the reason (ECONNREFUSED, a TLS error) is its cause.
    const cause = e.cause instanceof Error ? `: ${e.cause.message.split("\n")[0] ?? ""}` : "";
    return `${e.message.split("\n")[0] ?? ""}${cause}`.slice(0, 300);
  }
  let body = e.body;
  if (typeof body === "string") {
    try {
      body = JSON.parse(body);
    } catch {
      body = undefined;
    }
  }
  const apiMessage =
    typeof body === "object" &&
    body !== null &&
    typeof (body as { message?: unknown }).message === "string"
      ? (body as { message: string }).message
      : undefined;
  const firstLine = e.message.split("\n")[0] ?? "";
  const detail = apiMessage ?? (firstLine.startsWith("HTTP-Code") ? undefined : firstLine);
  return `HTTP ${code}${detail === undefined || detail === "" ? "" : `: ${detail}`}`.slice(0, 300);
}

/**
 * The cache over a real cluster: an informer on `/api/v1/serviceaccounts` (all
 * namespaces; RBAC: `get`, `list`, `watch` on `serviceaccounts`) and
 * a GET of the one account for misses.
 */
export function createKubernetesServiceAccountCache(
  client: KubeClient,
  logger: Logger,
  options: Pick<ServiceAccountCacheOptions, "readTimeoutMs" | "restartDelayMs"> = {},
): ServiceAccountCache {
  const informer = createInformer({
    client,
    path: "/api/v1/serviceaccounts",
    trim: trimServiceAccount,
  });
  const read: ReadServiceAccount = async (namespace, name) => {
    try {
      const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(name)}`;
      return trimServiceAccount(await client.request("GET", path));
    } catch (error) {
      if (error instanceof KubeApiError && error.code === 404) return undefined;
      throw error;
    }
  };
  return createServiceAccountCache({ informer, read, logger, ...options });
}

/** What the webhook reads of a service account: its name, namespace and annotations. */
export function trimServiceAccount(object: unknown): ServiceAccount {
  const metadata = (object as { metadata?: Record<string, unknown> } | null)?.metadata ?? {};
  const text = (value: unknown): string | undefined =>
    typeof value === "string" ? value : undefined;
  const annotations = metadata.annotations;
  return {
    metadata: {
      name: text(metadata.name),
      namespace: text(metadata.namespace),
      annotations:
        typeof annotations === "object" && annotations !== null
          ? (annotations as Record<string, string>)
          : undefined,
    },
  };
}
