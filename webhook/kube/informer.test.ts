import { describe, expect, it, vi } from "vitest";
import { KubeApiError, type KubeClient, type OpenWatch, type WatchEvent } from "./client.ts";
import { createInformer, LIST_PAGE_SIZE, MIN_WATCH_MS } from "./informer.ts";

interface Account {
  metadata: {
    name?: string | undefined;
    namespace?: string | undefined;
    note?: string | undefined;
  };
}

const account = (name: string, rv: string, note = ""): unknown => ({
  metadata: { name, namespace: "ns", resourceVersion: rv, note, uid: "dropped" },
});

/** A watch the test drives: events, then an end or a failure. */
class ScriptedWatch {
  readonly path: string;
  onEvent: (event: WatchEvent) => void;
  end: () => void = () => undefined;
  failWith: (error: unknown) => void = () => undefined;
  readonly ended: Promise<void>;
  constructor(path: string, onEvent: (event: WatchEvent) => void) {
    this.path = path;
    this.onEvent = onEvent;
    this.ended = new Promise<void>((resolve, reject) => {
      this.end = resolve;
      this.failWith = reject;
    });
  }
  /** As the client does: an event the handler throws on ends the stream with that error. */
  send(event: WatchEvent): void {
    try {
      this.onEvent(event);
    } catch (error) {
      this.failWith(error);
    }
  }
}

/** A client whose list pages and watch answers the test sets. */
class ScriptedClient implements KubeClient {
  readonly requests: string[] = [];
  readonly watches: ScriptedWatch[] = [];
  pages: unknown[][] = [];
  listVersion = "100";
  watchAnswers: (KubeApiError | undefined)[] = [];

  request(method: string, path: string): Promise<unknown> {
    this.requests.push(`${method} ${path}`);
    const query = new URL(path, "https://x").searchParams;
    const index = Number(query.get("continue") ?? "0");
    const items = this.pages[index] ?? [];
    const more = index + 1 < this.pages.length;
    return Promise.resolve({
      metadata: {
        resourceVersion: this.listVersion,
        ...(more ? { continue: String(index + 1) } : {}),
      },
      items,
    });
  }

  watch(path: string, onEvent: (event: WatchEvent) => void): Promise<OpenWatch> {
    this.requests.push(`WATCH ${path}`);
    const refusal = this.watchAnswers.shift();
    if (refusal !== undefined) return Promise.reject(refusal);
    const watch = new ScriptedWatch(path, onEvent);
    this.watches.push(watch);
    return Promise.resolve({ ended: watch.ended });
  }

  close(): void {}
}

const trim = (object: unknown): Account => {
  const m = (object as { metadata: Account["metadata"] }).metadata;
  return { metadata: { name: m.name, namespace: m.namespace, note: m.note } };
};

const gone = () =>
  new KubeApiError("GET /api/v1/serviceaccounts", 410, '{"kind":"Status","code":410}');

function setUp(client = new ScriptedClient()) {
  const informer = createInformer({ client, path: "/api/v1/serviceaccounts", trim });
  const errors: unknown[] = [];
  informer.on("error", (e) => errors.push(e));
  return { client, informer, errors };
}

describe("createInformer", () => {
  it("lists every page, keeps what trim keeps, then watches from the list's version with bookmarks", async () => {
    const { client, informer } = setUp();
    client.pages = [[account("a", "1")], [account("b", "2")]];
    await informer.start();
    expect(client.requests).toEqual([
      `GET /api/v1/serviceaccounts?limit=${String(LIST_PAGE_SIZE)}`,
      `GET /api/v1/serviceaccounts?limit=${String(LIST_PAGE_SIZE)}&continue=1`,
      "WATCH /api/v1/serviceaccounts?watch=true&allowWatchBookmarks=true&resourceVersion=100&timeoutSeconds=300",
    ]);
    expect(informer.get("a", "ns")).toEqual({ metadata: { name: "a", namespace: "ns", note: "" } });
    expect(informer.get("b", "ns")?.metadata.name).toBe("b");
    expect(informer.get("a", "other")).toBeUndefined();
    await informer.stop();
  });

  it("applies added, modified and deleted objects; a bookmark only moves the version", async () => {
    const { client, informer } = setUp();
    client.pages = [[account("a", "1")]];
    await informer.start();
    const [watch] = client.watches;
    watch?.send({ type: "ADDED", object: account("b", "101") });
    watch?.send({ type: "MODIFIED", object: account("a", "102", "changed") });
    watch?.send({ type: "DELETED", object: account("b", "103") });
    watch?.send({ type: "BOOKMARK", object: { metadata: { resourceVersion: "150" } } });
    expect(informer.get("a", "ns")?.metadata.note).toBe("changed");
    expect(informer.get("b", "ns")).toBeUndefined();
    // The apiserver ends the stream (its timeout): the next watch starts at the last version seen,
    // no sooner than MIN_WATCH_MS after the last one opened.
    const ended = Date.now();
    watch?.end();
    await vi.waitFor(
      () => {
        expect(client.watches).toHaveLength(2);
      },
      { timeout: 3000 },
    );
    expect(Date.now() - ended).toBeGreaterThanOrEqual(MIN_WATCH_MS - 100);
    expect(client.watches[1]?.path).toContain("resourceVersion=150");
    expect(client.requests.filter((r) => r.startsWith("GET"))).toHaveLength(1);
    await informer.stop();
  });

  it("lists again when the version it watches from has expired (an ERROR event of 410)", async () => {
    const { client, informer, errors } = setUp();
    client.pages = [[account("a", "1")]];
    await informer.start();
    client.pages = [[account("c", "5")]];
    client.listVersion = "200";
    client.watches[0]?.send({
      type: "ERROR",
      object: { kind: "Status", code: 410, message: "too old resource version" },
    });
    await vi.waitFor(() => {
      expect(client.watches).toHaveLength(2);
    });
    expect(client.watches[1]?.path).toContain("resourceVersion=200");
    // The new list replaced the old store whole.
    expect(informer.get("a", "ns")).toBeUndefined();
    expect(informer.get("c", "ns")?.metadata.name).toBe("c");
    expect(errors).toEqual([]);
    await informer.stop();
  });

  it("lists again when a new watch is answered 410 Gone", async () => {
    const { client, informer, errors } = setUp();
    client.pages = [[account("a", "1")]];
    await informer.start();
    client.watchAnswers = [gone()];
    client.watches[0]?.end();
    await vi.waitFor(
      () => {
        expect(client.watches).toHaveLength(2);
      },
      { timeout: 3000 },
    );
    expect(client.requests.filter((r) => r.startsWith("GET"))).toHaveLength(2);
    expect(errors).toEqual([]);
    await informer.stop();
  });

  it("reports any other failure once and stops: a failed list, a refused watch, a broken stream", async () => {
    const failing = new ScriptedClient();
    failing.request = () => Promise.reject(new KubeApiError("GET", 503, "{}"));
    const listed = setUp(failing);
    await listed.informer.start();
    expect(listed.errors).toHaveLength(1);
    expect(failing.watches).toHaveLength(0);

    const refused = setUp();
    refused.client.watchAnswers = [new KubeApiError("GET", 403, '{"message":"forbidden"}')];
    await refused.informer.start();
    expect(refused.errors.map((e) => (e as KubeApiError).code)).toEqual([403]);

    const broken = setUp();
    await broken.informer.start();
    broken.client.watches[0]?.send({ type: "ERROR", object: { code: 500, message: "boom" } });
    await vi.waitFor(() => {
      expect(broken.errors).toHaveLength(1);
    });
    expect((broken.errors[0] as Error).message).toBe("watch error: boom");
    expect(broken.client.watches).toHaveLength(1);
  });

  it("does not watch again after stop()", async () => {
    const { client, informer, errors } = setUp();
    await informer.start();
    await informer.stop();
    client.watches[0]?.end();
    client.watches[0]?.failWith(new Error("aborted"));
    await new Promise((r) => setTimeout(r, 20));
    expect(client.watches).toHaveLength(1);
    expect(errors).toEqual([]);
  });
});
