import { createServer, type AddressInfo } from "node:net";
import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import type { ServiceAccount } from "./injection-config.ts";
import { createKubeClient } from "./kube/client.ts";
import {
  createKubernetesServiceAccountCache,
  createServiceAccountCache,
  describeError,
  type ServiceAccountInformer,
} from "./service-accounts.ts";
import { FakeApiServer, fakeKubeConfig, fakeServiceAccount } from "../testing/webhook-apiserver.ts";

const silent = pino({ level: "silent" });
const sa = (
  namespace: string,
  name: string,
  resourceVersion = "1",
): ServiceAccount & {
  metadata: { resourceVersion: string };
} => ({
  metadata: {
    name,
    namespace,
    resourceVersion,
    annotations: { "azure.workload.identity/client-id": "x" },
  },
});

/** An informer whose start succeeds or fails as the test says. */
class FakeInformer implements ServiceAccountInformer {
  readonly objects = new Map<string, ServiceAccount>();
  readonly errorHandlers: ((err?: unknown) => void)[] = [];
  starts = 0;
  failNextStarts = 0;
  stopped = false;
  on(verb: "add" | "update" | "delete", cb: (obj: ServiceAccount) => void): void;
  on(verb: "error", cb: (err?: unknown) => void): void;
  on(verb: string, cb: ((obj: ServiceAccount) => void) | ((err?: unknown) => void)): void {
    if (verb === "error") this.errorHandlers.push(cb as (err?: unknown) => void);
  }
  start(): Promise<void> {
    this.starts += 1;
    if (this.failNextStarts > 0) {
      this.failNextStarts -= 1;
      for (const h of this.errorHandlers) h(new Error("list failed: HTTP 503"));
    }
    return Promise.resolve();
  }
  stop(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }
  get(name: string, namespace?: string): ServiceAccount | undefined {
    return this.objects.get(`${namespace ?? ""}/${name}`);
  }
  fail(): void {
    for (const h of this.errorHandlers) h(new Error("watch closed: HTTP 500"));
  }
}

describe("createServiceAccountCache", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("answers from the cache without a live read", async () => {
    const informer = new FakeInformer();
    informer.objects.set("ns/app", sa("ns", "app"));
    const read = vi.fn(() => Promise.resolve(undefined));
    const cache = createServiceAccountCache({ informer, read, logger: silent });
    await cache.start();
    expect(await cache.lookup("ns", "app")).toEqual(sa("ns", "app"));
    expect(read).not.toHaveBeenCalled();
  });

  it("reads live on a miss (an account created a moment before its pod)", async () => {
    const informer = new FakeInformer();
    const read = vi.fn((namespace: string, name: string) => Promise.resolve(sa(namespace, name)));
    const cache = createServiceAccountCache({ informer, read, logger: silent });
    await cache.start();
    expect(await cache.lookup("ns", "new")).toEqual(sa("ns", "new"));
    expect(read).toHaveBeenCalledWith("ns", "new");
  });

  it("returns undefined for an account that does not exist", async () => {
    const cache = createServiceAccountCache({
      informer: new FakeInformer(),
      read: () => Promise.resolve(undefined),
      logger: silent,
    });
    expect(await cache.lookup("ns", "ghost")).toBeUndefined();
  });

  it("shares one live read between concurrent misses", async () => {
    let resolve: (v: ServiceAccount) => void = () => undefined;
    const read = vi.fn(() =>
      read.mock.calls.length === 1
        ? new Promise<ServiceAccount>((r) => (resolve = r))
        : Promise.resolve(sa("ns", "a")),
    );
    const cache = createServiceAccountCache({ informer: new FakeInformer(), read, logger: silent });
    const lookups = [cache.lookup("ns", "a"), cache.lookup("ns", "a"), cache.lookup("ns", "a")];
    resolve(sa("ns", "a"));
    expect(await Promise.all(lookups)).toEqual([sa("ns", "a"), sa("ns", "a"), sa("ns", "a")]);
    expect(read).toHaveBeenCalledTimes(1);
    await cache.lookup("ns", "a");
    expect(read).toHaveBeenCalledTimes(2);
  });

  it("wraps a failed read as KUBERNETES_UNAVAILABLE with the cause", async () => {
    const cause = new Error("connect ECONNREFUSED 10.0.0.1:443");
    const cache = createServiceAccountCache({
      informer: new FakeInformer(),
      read: () => Promise.reject(cause),
      logger: silent,
    });
    const error: unknown = await cache.lookup("ns", "a").catch((e: unknown) => e);
    expect(isAkvError(error, ErrorCode.KUBERNETES_UNAVAILABLE)).toBe(true);
    expect((error as Error).message).toBe(
      "reading service account ns/a failed: connect ECONNREFUSED 10.0.0.1:443",
    );
    expect((error as Error).cause).toBe(cause);
  });

  it("gives up on a live read after the timeout", async () => {
    const cache = createServiceAccountCache({
      informer: new FakeInformer(),
      read: () => new Promise(() => undefined),
      logger: silent,
      readTimeoutMs: 20,
    });
    const error: unknown = await cache.lookup("ns", "slow").catch((e: unknown) => e);
    expect(isAkvError(error, ErrorCode.KUBERNETES_UNAVAILABLE)).toBe(true);
    expect((error as Error).message).toContain("took over 20 ms");
  });

  it("is synced only after a successful start", async () => {
    const informer = new FakeInformer();
    informer.failNextStarts = 1;
    const cache = createServiceAccountCache({
      informer,
      read: () => Promise.resolve(undefined),
      logger: silent,
      restartDelayMs: () => 5,
    });
    await cache.start();
    expect(cache.isSynced()).toBe(false);
    await vi.waitFor(() => {
      expect(informer.starts).toBe(2);
    });
    await vi.waitFor(() => {
      expect(cache.isSynced()).toBe(true);
    });
    await cache.stop();
  });

  it("restarts a failed informer with backoff and stays synced", async () => {
    vi.useFakeTimers();
    const informer = new FakeInformer();
    const delays: number[] = [];
    const cache = createServiceAccountCache({
      informer,
      read: () => Promise.resolve(undefined),
      logger: silent,
      restartDelayMs: (attempt) => {
        const d = 1000 * 2 ** (attempt - 1);
        delays.push(d);
        return d;
      },
    });
    await cache.start();
    expect(cache.isSynced()).toBe(true);
    informer.failNextStarts = 2;
    informer.fail();
    expect(cache.isSynced()).toBe(true);
    await vi.advanceTimersByTimeAsync(1000);
    await vi.advanceTimersByTimeAsync(2000);
    await vi.advanceTimersByTimeAsync(4000);
    expect(informer.starts).toBe(4);
    expect(delays).toEqual([1000, 2000, 4000]);
    // A success resets the backoff.
    informer.fail();
    await vi.advanceTimersByTimeAsync(1000);
    expect(informer.starts).toBe(5);
    expect(delays.at(-1)).toBe(1000);
    await cache.stop();
  });

  it("does not restart after stop", async () => {
    vi.useFakeTimers();
    const informer = new FakeInformer();
    const cache = createServiceAccountCache({
      informer,
      read: () => Promise.resolve(undefined),
      logger: silent,
      restartDelayMs: () => 10,
    });
    await cache.start();
    informer.fail();
    await cache.stop();
    await vi.advanceTimersByTimeAsync(100);
    expect(informer.starts).toBe(1);
    expect(informer.stopped).toBe(true);
  });
});

describe("describeError", () => {
  it("gives the status and the apiserver's message of an API error", () => {
    const error = Object.assign(
      new Error("HTTP-Code: 403\nMessage: Unknown\nBody: {...}\nHeaders: {}"),
      {
        code: 403,
        body: JSON.stringify({
          kind: "Status",
          message: 'serviceaccounts is forbidden: User "x" cannot list',
        }),
      },
    );
    expect(describeError(error)).toBe(
      'HTTP 403: serviceaccounts is forbidden: User "x" cannot list',
    );
  });

  it("gives the status of a watch error, and the first line of others", () => {
    expect(describeError(Object.assign(new Error("Gone"), { statusCode: 410 }))).toBe(
      "HTTP 410: Gone",
    );
    expect(
      describeError(Object.assign(new Error("HTTP-Code: 500\nBody: secret"), { code: 500 })),
    ).toBe("HTTP 500");
    expect(describeError(new Error("connect ECONNREFUSED\nmore"))).toBe("connect ECONNREFUSED");
    expect(describeError("x")).toBe("x");
    expect(
      describeError(
        new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED 127.0.0.1:1") }),
      ),
    ).toBe("fetch failed: connect ECONNREFUSED 127.0.0.1:1");
  });
});

describe("describeError: the shapes errors come in", () => {
  it.each<[string, unknown, string]>([
    [
      "a body already parsed",
      Object.assign(new Error("HTTP-Code: 404"), { code: 404, body: { message: "not found" } }),
      "HTTP 404: not found",
    ],
    [
      "a body that is not JSON",
      Object.assign(new Error("HTTP-Code: 502"), { code: 502, body: "<html>" }),
      "HTTP 502",
    ],
    [
      "a body whose message is not a string",
      Object.assign(new Error("Bad"), { code: 400, body: { message: 5 } }),
      "HTTP 400: Bad",
    ],
    ["a null body", Object.assign(new Error("Bad"), { code: 400, body: null }), "HTTP 400: Bad"],
    ["an empty first line", Object.assign(new Error(""), { statusCode: 503 }), "HTTP 503"],
    ["a cause that is not an Error", new Error("fetch failed", { cause: "reset" }), "fetch failed"],
    ["a long message", new Error("x".repeat(400)), "x".repeat(300)],
    [
      "a long apiserver message",
      Object.assign(new Error("e"), { code: 403, body: { message: "m".repeat(400) } }),
      `HTTP 403: ${"m".repeat(290)}`,
    ],
    ["a long thing that is no Error", "y".repeat(400), "y".repeat(300)],
  ])("%s", (_, error, expected) => {
    expect(describeError(error)).toBe(expected);
  });
});

describe("createKubernetesServiceAccountCache (real client, loopback apiserver)", () => {
  it("lists, watches, reads live on a miss, and says 404 is absent", async () => {
    const api = new FakeApiServer();
    api.add(fakeServiceAccount("team-a", "listed"), false);
    api.failLists = 1;
    const server = await api.listen();
    const { client } = fakeKubeConfig(server, api.caPem);
    const cache = createKubernetesServiceAccountCache(client, silent, {
      restartDelayMs: () => 10,
    });
    try {
      await cache.start();
      // The first list failed (503); the restart lists again and syncs.
      await vi.waitFor(() => {
        expect(cache.isSynced()).toBe(true);
      });
      await vi.waitFor(() => {
        expect(api.watchers.length).toBe(1);
      });

      const before = api.requests.length;
      expect((await cache.lookup("team-a", "listed"))?.metadata?.name).toBe("listed");
      expect(api.requests.slice(before)).toEqual([]);

      // Only the watch knows this one (a GET would say 404): once it arrives, it is served from the cache.
      api.add(fakeServiceAccount("team-a", "watched"), true, false);
      await vi.waitFor(async () => {
        expect((await cache.lookup("team-a", "watched"))?.metadata?.name).toBe("watched");
      });

      // Created but not yet seen by the watch: a live GET finds it.
      api.add(fakeServiceAccount("team-a", "fresh"), false);
      const fresh = await cache.lookup("team-a", "fresh");
      expect(fresh?.metadata?.annotations).toEqual({ "azure.workload.identity/client-id": "x" });
      expect(api.requests.at(-1)).toBe("/api/v1/namespaces/team-a/serviceaccounts/fresh");

      expect(await cache.lookup("team-a", "ghost")).toBeUndefined();
    } finally {
      await cache.stop();
      await api.close();
    }
  });

  it("fails a lookup clearly when the apiserver is unreachable", async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const client = createKubeClient({
      server: new URL(`https://127.0.0.1:${String(port)}`),
      insecure: true,
      token: () => Promise.resolve(undefined),
    });
    const cache = createKubernetesServiceAccountCache(client, silent);
    const error: unknown = await cache.lookup("ns", "a").catch((e: unknown) => e);
    expect(isAkvError(error, ErrorCode.KUBERNETES_UNAVAILABLE)).toBe(true);
    expect((error as Error).message).toMatch(
      /^reading service account ns\/a failed: .*ECONNREFUSED/,
    );
  });
});
