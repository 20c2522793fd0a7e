/**
 * A list-then-watch cache of one kind of object, as client-go's informers
 * keep one: list every page, then watch from the list's resourceVersion
 * (with bookmarks, so it stays current while nothing changes), watch again
 * from the last version seen when the apiserver ends the stream, and list
 * again when that version has expired (410 Gone). Any other failure is
 * reported to the `error` handlers and the informer stops; its owner
 * decides when to start it again (service-accounts.ts does, with backoff),
 * keeping what it had meanwhile.
 *
 * It keeps only what `trim` returns of each object, so a cluster's
 * thousands of service accounts cost their annotations, not their whole
 * objects.
 */
import { KubeApiError, type KubeClient, type WatchEvent } from "./client.ts";

/** A page of a list request. */
export const LIST_PAGE_SIZE = 500;
/** The apiserver ends each watch after about this long (it adds jitter). */
export const WATCH_TIMEOUT_SECONDS = 300;
/** A watch that ended sooner than this after it opened is opened again only after the rest of it, so a server that ends watches at once costs one request a second, not a loop. */
export const MIN_WATCH_MS = 1000;

/** The part of an object the informer files it by. */
interface Named {
  readonly metadata?: {
    readonly name?: string | undefined;
    readonly namespace?: string | undefined;
  };
}

/** Options of {@link createInformer}. */
export interface InformerOptions<T extends Named> {
  readonly client: KubeClient;
  /** The collection, e.g. `/api/v1/serviceaccounts` (every namespace). */
  readonly path: string;
  /** What to keep of an object (its name and namespace included). */
  readonly trim: (object: unknown) => T;
}

/** A running list-and-watch cache. */
export interface Informer<T> {
  on(verb: "error", cb: (err?: unknown) => void): void;
  /** Lists and opens the watch; resolves once the watch is open, or after a failure was reported. */
  start(): Promise<void>;
  /** Ends the watch; the cache keeps what it has. */
  stop(): Promise<void>;
  get(name: string, namespace?: string): T | undefined;
}

interface ListPage {
  readonly metadata?: { readonly resourceVersion?: string; readonly continue?: string };
  readonly items?: readonly unknown[];
}

const keyOf = (object: Named): string =>
  `${object.metadata?.namespace ?? ""}/${object.metadata?.name ?? ""}`;

const resourceVersionOf = (object: unknown): string | undefined => {
  const rv = (object as { metadata?: { resourceVersion?: unknown } } | null)?.metadata
    ?.resourceVersion;
  return typeof rv === "string" ? rv : undefined;
};

/** Builds an informer; nothing is sent until {@link Informer.start}. */
export function createInformer<T extends Named>(options: InformerOptions<T>): Informer<T> {
  const { client, path, trim } = options;
  let store = new Map<string, T>();
  const errorHandlers: ((err?: unknown) => void)[] = [];
  let abort: AbortController | undefined;
  let running = false;

  const fail = (err: unknown): void => {
    running = false;
    abort?.abort();
    for (const handler of errorHandlers) handler(err);
  };

  /** Every page; the new store replaces the old at once, so lookups never see half a list. */
  const list = async (): Promise<string> => {
    const next = new Map<string, T>();
    let continueToken: string | undefined;
    let resourceVersion = "";
    do {
      const query = new URLSearchParams({ limit: String(LIST_PAGE_SIZE) });
      if (continueToken !== undefined) query.set("continue", continueToken);
      const page = (await client.request("GET", `${path}?${query.toString()}`)) as ListPage;
      for (const item of page.items ?? []) {
        const kept = trim(item);
        next.set(keyOf(kept), kept);
      }
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      continueToken = page.metadata?.continue || undefined;
    } while (continueToken !== undefined);
    store = next;
    return resourceVersion;
  };

  /** Opens a watch from `from`; when it ends, the next one opens from the last version seen. */
  const watch = async (from: string): Promise<void> => {
    let resourceVersion = from;
    const onEvent = (event: WatchEvent): void => {
      if (event.type === "ERROR") throw new WatchExpired(event.object);
      const rv = resourceVersionOf(event.object);
      if (rv !== undefined) resourceVersion = rv;
      if (event.type === "BOOKMARK") return;
      const kept = trim(event.object);
      if (event.type === "DELETED") store.delete(keyOf(kept));
      else store.set(keyOf(kept), kept);
    };
    abort = new AbortController();
    const query = new URLSearchParams({
      watch: "true",
      allowWatchBookmarks: "true",
      resourceVersion,
      timeoutSeconds: String(WATCH_TIMEOUT_SECONDS),
    });
    const opened = Date.now();
    const open = await client.watch(`${path}?${query.toString()}`, onEvent, abort.signal);
    void open.ended.then(
      () => {
        if (!running) return;
        const wait = MIN_WATCH_MS - (Date.now() - opened);
        if (wait <= 0) rewatch(resourceVersion);
        else
          setTimeout(() => {
            if (running) rewatch(resourceVersion);
          }, wait).unref();
      },
      (error: unknown) => {
        if (!running) return;
        if (isExpired(error)) void relist();
        else fail(error);
      },
    );
  };

  const rewatch = (from: string): void => {
    watch(from).catch((error: unknown) => {
      if (!running) return;
      if (isExpired(error)) void relist();
      else fail(error);
    });
  };

  /** The version watched from has expired: list again, then watch from the new list. */
  const relist = async (): Promise<void> => {
    try {
      const from = await list();
      if (running) await watch(from);
    } catch (error) {
      if (running) fail(error);
    }
  };

  return {
    on: (_verb, cb) => {
      errorHandlers.push(cb);
    },
    start: async () => {
      running = true;
      try {
        const from = await list();
        await watch(from);
      } catch (error) {
        fail(error);
      }
    },
    stop: () => {
      running = false;
      abort?.abort();
      return Promise.resolve();
    },
    get: (name, namespace) => store.get(`${namespace ?? ""}/${name}`),
  };
}

/** An `ERROR` event: the apiserver's Status, usually 410 Gone for an expired version. */
class WatchExpired extends Error {
  readonly status: unknown;
  constructor(status: unknown) {
    const s = status as { code?: unknown; message?: unknown } | null;
    super(`watch error: ${typeof s?.message === "string" ? s.message : JSON.stringify(status)}`);
    this.status = status;
  }
}

/** 410 Gone, as an answer or as an `ERROR` event: the resourceVersion is too old. */
function isExpired(error: unknown): boolean {
  if (error instanceof KubeApiError) return error.code === 410;
  if (error instanceof WatchExpired)
    return (error.status as { code?: unknown } | null)?.code === 410;
  return false;
}
