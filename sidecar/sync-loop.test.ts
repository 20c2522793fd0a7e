// Over 400 lines on purpose: the sync loop's schedule, retries and deadlines, on one fake clock and one fake source.
import { describe, expect, it, vi } from "vitest";
import { AkvError, ErrorCode, isAkvError } from "../common/errors.ts";
import type { FileSpec, SyncSpec } from "../common/spec.ts";
import type { CertsApi } from "./render.ts";
import { SourceError } from "./secret-source.ts";
import type { SyncStatus } from "./status.ts";
import {
  computeDelay,
  createSyncState,
  firstRefreshDelay,
  runSyncLoop,
  syncOnce,
  systemClock,
  type SyncDeps,
} from "./sync-loop.ts";
import { createSinkLogger, FakeClock, FakeSource } from "../testing/sidecar.ts";
import { seededRandom } from "../mocks/faults.ts";

const V = "0123456789abcdef0123456789abcdef";
const names = (n: number): string[] => Array.from({ length: n }, (_, i) => `s${i}`);
const specOf = (refs: string[], over: Partial<SyncSpec> = {}): SyncSpec => ({
  vaultUrl: "https://v.vault.azure.net",
  files: refs.map((r): FileSpec => {
    const [name = "", version] = r.split("/");
    return {
      file: name,
      format: "raw",
      source: { kind: "secret", ref: version === undefined ? { name } : { name, version } },
    };
  }),
  mode: "sidecar",
  refreshIntervalMs: 60_000,
  fileMode: 0o644,
  outputDir: "/unused",
  ...over,
});

interface Harness {
  deps: SyncDeps;
  clock: FakeClock;
  source: FakeSource;
  published: Map<string, string>[];
  /** Every status written, parsed: with a publish (`published`) or after a failure (`failed`). */
  statuses: { via: "published" | "failed"; status: SyncStatus }[];
  log: ReturnType<typeof createSinkLogger>;
}

function harness(spec: SyncSpec, source = new FakeSource(), random = () => 0.5): Harness {
  const clock = new FakeClock();
  const published: Map<string, string>[] = [];
  const statuses: Harness["statuses"] = [];
  const parse = (bytes: Uint8Array): SyncStatus =>
    JSON.parse(Buffer.from(bytes).toString()) as SyncStatus;
  const log = createSinkLogger();
  let last = "";
  const deps: SyncDeps = {
    spec,
    source,
    clock,
    random,
    logger: log.logger,
    publish: (files, status) => {
      statuses.push({ via: "published", status: parse(status) });
      const m = new Map([...files].map(([k, v]) => [k, Buffer.from(v).toString()]));
      const key = JSON.stringify([...m]);
      const changed = key !== last;
      last = key;
      if (changed) published.push(m);
      return Promise.resolve({ changed });
    },
    writeStatus: (status) => {
      statuses.push({ via: "failed", status: parse(status) });
    },
    loadCerts: () => Promise.reject(new Error("no certs in this test")),
    tuning: { concurrency: 4, attemptTimeoutMs: 5000, fetchAttempts: 4 },
  };
  return { deps, clock, source, published, statuses, log };
}

const throttled = (retryAfterMs?: number): SourceError =>
  new SourceError(ErrorCode.THROTTLED, "throttled (429)", { status: 429, retryAfterMs });
const unavailable = (): SourceError =>
  new SourceError(ErrorCode.UNAVAILABLE, "unavailable (503)", { status: 503 });
const forbidden = (name: string): SourceError =>
  new SourceError(ErrorCode.SECRET_FORBIDDEN, `reading secret '${name}' was refused (403)`, {
    status: 403,
  });

describe("computeDelay", () => {
  it("is full jitter under a capped exponential, never below Retry-After", () => {
    const b = { baseMs: 1000, capMs: 16_000 };
    expect([0, 1, 2, 3, 4, 5, 9].map((a) => computeDelay(a, b, () => 0.999999, undefined))).toEqual(
      [1000, 2000, 4000, 8000, 16_000, 16_000, 16_000],
    );
    expect(computeDelay(3, b, () => 0, undefined)).toBe(0);
    expect(computeDelay(0, b, () => 0, 7000)).toBe(7000);
  });

  it("waits a Retry-After plus a random part of it (default up to half), so pods throttled together come back apart", () => {
    const b = { baseMs: 1000, capMs: 16_000 };
    expect([0, 0.5, 0.999].map((u) => computeDelay(0, b, () => u, 10_000))).toEqual([
      10_000, 12_500, 14_995,
    ]);
    expect(computeDelay(0, b, () => 0.5, 10_000, 1)).toBe(15_000);
    expect(computeDelay(0, b, () => 0.5, 10_000, 0)).toBe(10_000);
    // Never shorter than the backoff would have been.
    expect(computeDelay(4, b, () => 0.5, 1000)).toBe(8000);
  });
});

describe("firstRefreshDelay", () => {
  it("spreads a fleet started at one instant so that its first and later refreshes come at an even rate", () => {
    const interval = 60_000;
    const random = seededRandom(13);
    const tuning = { refreshJitter: 0.1, firstRefreshSpread: 1 };
    // Refresh times of 20,000 pods over two intervals, in 3-second bins.
    const bins = new Array<number>(40).fill(0);
    for (let pod = 0; pod < 20_000; pod++) {
      let t = firstRefreshDelay(interval, tuning, random);
      while (t < 2 * interval) {
        bins[Math.floor(t / 3000)] = (bins[Math.floor(t / 3000)] ?? 0) + 1;
        t += interval * (0.9 + 0.2 * random());
      }
    }
    const mean = bins.reduce((a, b) => a + b, 0) / bins.length;
    // A uniform first point would give 1.5 × the mean just before one interval.
    expect(Math.max(...bins) / mean).toBeLessThan(1.1);
    expect(Math.min(...bins) / mean).toBeGreaterThan(0.9);
  });

  it("lies between 0 and the longest refresh wait; with spread 0 it is a whole refresh wait", () => {
    const tuning = { refreshJitter: 0.1, firstRefreshSpread: 1 };
    expect(firstRefreshDelay(60_000, tuning, () => 0)).toBe(54_000);
    expect(firstRefreshDelay(60_000, tuning, () => 0.999_999)).toBe(0);
    expect(firstRefreshDelay(60_000, { ...tuning, firstRefreshSpread: 0 }, () => 0)).toBe(54_000);
    expect(firstRefreshDelay(60_000, tuning, () => 0.5)).toBe(30_150);
  });
});

describe("systemClock", () => {
  it("waits out a delay longer than one Node timer holds (a Retry-After of weeks), and stops on abort", async () => {
    vi.useFakeTimers();
    try {
      const long = 2 ** 31 + 60_000;
      let done = false;
      void systemClock.sleep(long).then(() => (done = true));
      // A bare setTimeout of this length fires after 1 ms.
      await vi.advanceTimersByTimeAsync(1000);
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(long - 1001);
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(done).toBe(true);

      const stop = new AbortController();
      let stopped = false;
      void systemClock.sleep(long, stop.signal).then(() => (stopped = true));
      await vi.advanceTimersByTimeAsync(2 ** 31);
      expect(stopped).toBe(false);
      stop.abort();
      await vi.advanceTimersByTimeAsync(0);
      expect(stopped).toBe(true);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("syncOnce", () => {
  it("reads every secret once, with bounded concurrency, and publishes all files together", async () => {
    const h = harness(specOf(names(10)));
    for (const n of names(10)) h.source.set(n, `value-${n}`);
    const result = await h.clock.run(syncOnce(h.deps, new AbortController().signal));
    expect(h.source.calls.sort()).toEqual(names(10).sort());
    expect(h.source.maxInFlight).toBeLessThanOrEqual(4);
    expect(result.changed).toBe(true);
    expect(h.published).toHaveLength(1);
    expect(h.published[0]?.get("s3")).toBe("value-s3");
  });

  it("retries a bare 429 with backoff, and a 429 with Retry-After no sooner than asked, pausing every read", async () => {
    const h = harness(specOf(["a", "b"]));
    const t0 = h.clock.now();
    // When (ms after t0) each read of "b" went out.
    const bAt: number[] = [];
    h.source.answers.set("a", (call) =>
      call === 0 ? throttled(7000) : { value: "A", contentType: undefined, version: V },
    );
    h.source.answers.set("b", (call) => {
      bAt.push(h.clock.now() - t0);
      return call < 2 ? throttled() : { value: "B", contentType: undefined, version: V };
    });
    await h.clock.run(syncOnce(h.deps, new AbortController().signal));
    expect(h.source.calls.filter((c) => c === "a")).toHaveLength(2);
    expect(h.source.calls.filter((c) => c === "b")).toHaveLength(3);
    expect(h.clock.now() - t0).toBeGreaterThanOrEqual(7000);
    // "b" went out with "a" at t0, and its own backoff is 500 ms; but after
    // "a"'s Retry-After of 7 s, no read leaves before it has passed.
    expect(bAt[0]).toBe(0);
    expect(bAt.slice(1).every((at) => at >= 7000)).toBe(true);
    // Not at 7 s sharp: at "a"'s own time, 7 s plus half of a half (u = 0.5).
    expect(bAt[1]).toBe(8750);
    expect(bAt).toHaveLength(3);
    const warnings = h.log.lines().filter((l) => l.level === "warn");
    expect(warnings.map((w) => w.code)).toEqual(expect.arrayContaining([ErrorCode.THROTTLED]));
    expect(warnings.find((w) => w.ref === "a")?.delayMs).toBeGreaterThanOrEqual(7000);
  });

  it("after a Retry-After, every read of the pod goes out again at the pod's own jittered time", async () => {
    const resumedAt = async (u: number): Promise<number[]> => {
      const h = harness(specOf(["a", "b", "c"]), new FakeSource(), () => u);
      const t0 = h.clock.now();
      const at: number[] = [];
      for (const n of ["a", "b", "c"]) {
        h.source.answers.set(n, (call) => {
          if (call > 0) at.push(h.clock.now() - t0);
          return call === 0 ? throttled(8000) : { value: n, contentType: undefined, version: V };
        });
      }
      await h.clock.run(syncOnce(h.deps, new AbortController().signal));
      return at;
    };
    // 8 s × (1 + 0.5·u): two pods told the same Retry-After come back 2 s apart.
    expect(await resumedAt(0)).toEqual([8000, 8000, 8000]);
    expect(await resumedAt(0.5)).toEqual([10_000, 10_000, 10_000]);
  });

  it("while the vault fails, one read retries for the pod and the others wait for it; when it is answered they go at once", async () => {
    const h = harness(specOf(names(10)));
    const t0 = h.clock.now();
    const at: number[] = [];
    for (const n of names(10)) {
      h.source.answers.set(n, () => {
        at.push(h.clock.now() - t0);
        return h.clock.now() - t0 < 1000
          ? unavailable()
          : { value: n, contentType: undefined, version: V };
      });
    }
    await h.clock.run(syncOnce(h.deps, new AbortController().signal));
    // 4 in flight fail at 0; the probe alone at 500 ms (fails) and 1500 ms
    // (answered); then the 3 that waited and the 6 not yet started.
    expect(at).toEqual([0, 0, 0, 0, 500, ...Array.from({ length: 10 }, () => 1500)]);
    expect(h.published).toHaveLength(1);
  });

  it("a sync whose probe runs out of tries fails without sending the reads not yet started", async () => {
    const h = harness(specOf(names(10)));
    for (const n of names(10)) h.source.answers.set(n, unavailable());
    const error = await h.clock
      .run(syncOnce(h.deps, new AbortController().signal))
      .catch((e: unknown) => e);
    expect(isAkvError(error, ErrorCode.UNAVAILABLE)).toBe(true);
    // 4 reads at once, then the probe's 3 more tries: 7 requests, not 10 × 4.
    expect(h.source.calls).toHaveLength(7);
    expect(h.published).toHaveLength(0);
  });

  it("after a sync that failed for a transient reason, the next one sends one read alone first", async () => {
    const h = harness(specOf(names(10)));
    const state = createSyncState();
    for (const n of names(10)) h.source.answers.set(n, unavailable());
    await h.clock.run(syncOnce(h.deps, new AbortController().signal, state)).catch(() => undefined);
    expect(state.probeFirst).toBe(true);
    h.source.calls.length = 0;
    // Still down: the probe's 4 tries, and nothing else.
    await h.clock.run(syncOnce(h.deps, new AbortController().signal, state)).catch(() => undefined);
    expect(h.source.calls).toEqual(["s0", "s0", "s0", "s0"]);
    // Back: s0 alone, then the others together; the sync after that starts at full width.
    for (const n of names(10)) h.source.set(n, `value-${n}`);
    h.source.calls.length = 0;
    h.source.maxInFlight = 0;
    await h.clock.run(syncOnce(h.deps, new AbortController().signal, state));
    expect(h.source.calls[0]).toBe("s0");
    expect(h.source.calls).toHaveLength(10);
    expect(state.probeFirst).toBe(false);
  });

  it("retries 5xx and a read that hangs past its timeout", async () => {
    const h = harness(specOf(["a", "b"]));
    h.source.answers.set("a", (call) =>
      call === 0 ? unavailable() : { value: "A", contentType: undefined, version: V },
    );
    h.source.answers.set("b", (call, options) =>
      call === 0
        ? new Promise((_, reject) => {
            options.signal?.addEventListener("abort", () => {
              reject(new Error("aborted"));
            });
          })
        : { value: "B", contentType: undefined, version: V },
    );
    await h.clock.run(syncOnce(h.deps, new AbortController().signal));
    expect(h.published[0]).toEqual(
      new Map([
        ["a", "A"],
        ["b", "B"],
      ]),
    );
    expect(h.log.text()).toContain("did not answer within 5000 ms reading secret 'b'");
  });

  it("fails, publishing nothing, when a read runs out of tries", async () => {
    const h = harness(specOf(["a", "b"]));
    h.source.set("a", "A");
    h.source.answers.set("b", unavailable());
    const error = await h.clock
      .run(syncOnce(h.deps, new AbortController().signal))
      .catch((e: unknown) => e);
    expect(isAkvError(error, ErrorCode.UNAVAILABLE)).toBe(true);
    expect(h.source.calls.filter((c) => c === "b")).toHaveLength(4);
    expect(h.published).toHaveLength(0);
  });

  it("does not retry configuration errors, and reports every one of them", async () => {
    const h = harness(specOf(["a", "b", "c"]));
    h.source.answers.set("a", forbidden("a"));
    h.source.answers.set("b", forbidden("b"));
    h.source.set("c", "C");
    const error = await h.clock
      .run(syncOnce(h.deps, new AbortController().signal))
      .catch((e: unknown) => e);
    expect(isAkvError(error, ErrorCode.SECRET_FORBIDDEN)).toBe(true);
    expect((error as Error).message).toContain("secret 'a'");
    expect((error as Error).message).toContain("secret 'b'");
    expect(h.source.calls.filter((c) => c !== "c")).toEqual(["a", "b"]);
    expect(h.published).toHaveLength(0);
  });

  it("loads the certificate functions only when a pem/cert/key file exists", async () => {
    const h = harness(specOf(["a"]));
    h.source.set("a", "A");
    await h.clock.run(syncOnce(h.deps, new AbortController().signal)); // loadCerts would reject
    const spec = {
      ...specOf(["tls"]),
      files: [
        { file: "tls.crt", format: "cert", source: { kind: "secret", ref: { name: "tls" } } },
      ],
    } as SyncSpec;
    const h2 = harness(spec);
    h2.source.set("tls", "-----BEGIN CERTIFICATE-----");
    let loaded = 0;
    const fake: CertsApi = {
      pkcs12ToPem: () => ({ keyPem: "K", certPems: ["C"] }),
      parsePemBundle: () => ({ certPems: ["C\n"] }),
    };
    await h2.clock.run(
      syncOnce(
        {
          ...h2.deps,
          loadCerts: () => {
            loaded++;
            return Promise.resolve(fake);
          },
        },
        new AbortController().signal,
      ),
    );
    expect(loaded).toBe(1);
    expect(h2.published[0]?.get("tls.crt")).toBe("C\n");
  });

  it("reads a pinned version once per process", async () => {
    const h = harness(specOf([`p/${V}`, "u"]));
    h.source.set(`p/${V}`, "P");
    h.source.set("u", "U");
    const { createSyncState } = await import("./sync-loop.ts");
    const state = createSyncState();
    await h.clock.run(syncOnce(h.deps, new AbortController().signal, state));
    await h.clock.run(syncOnce(h.deps, new AbortController().signal, state));
    expect(h.source.calls).toEqual([`p/${V}`, "u", "u"]);
  });
});

describe("runSyncLoop", () => {
  it("sidecar mode: the first refresh at a uniform point of the first interval, then every interval ± jitter, publishing only changes", async () => {
    const randoms = [0.5, 0.75, 0.999, 0, 0.5, 0.5, 0.5];
    const h = harness(specOf(["a"]), new FakeSource(), () => randoms.shift() ?? 0.5);
    let n = 0;
    h.source.answers.set("a", () => ({
      value: n < 2 ? "v1" : "v2",
      contentType: undefined,
      version: V,
    }));
    const stop = new AbortController();
    const loop = runSyncLoop(h.deps, stop.signal);
    const syncs = async (count: number): Promise<void> => {
      while (h.source.calls.length < count) {
        await new Promise((r) => setImmediate(r));
        if (h.clock.pending > 0 && h.source.calls.length < count) {
          n = h.source.calls.length;
          h.clock.advanceToNext();
        }
      }
    };
    await syncs(4);
    stop.abort();
    await loop;
    // Waits: after the first sync √(0.81 + 0.4·0.5) × 60 s × (1 − 0.75) ≈ 15 s;
    // then 60 s × (0.9 + 0.2·r): ~66 s, 54 s.
    expect(h.clock.sleeps.filter((d) => d !== 5000).slice(0, 3)).toEqual([15_075, 65_988, 54_000]);
    expect(h.published.map((m) => m.get("a"))).toEqual(["v1", "v2"]);
    const events = h.log
      .lines()
      .map((l) => l.event)
      .filter(Boolean);
    expect(events.slice(0, 2)).toEqual(["synced", "refreshed"]);
  });

  it("sidecar mode: a configuration error on the first sync ends the loop with it", async () => {
    const h = harness(specOf(["a"]));
    h.source.answers.set("a", forbidden("a"));
    const error = await h.clock
      .run(runSyncLoop(h.deps, new AbortController().signal))
      .catch((e: unknown) => e);
    expect(isAkvError(error, ErrorCode.SECRET_FORBIDDEN)).toBe(true);
  });

  it("sidecar mode: after a good sync, failures keep the files and back off (capped at the interval), honouring Retry-After", async () => {
    const h = harness(specOf(["a"]), new FakeSource(), () => 0.999);
    const script: (string | Error)[] = [
      "v1",
      forbidden("a"),
      throttled(90_000),
      unavailable(),
      unavailable(),
      unavailable(),
      unavailable(),
      "v2",
    ];
    h.source.answers.set("a", (call) => {
      const step = script[Math.min(call, script.length - 1)];
      return typeof step === "string"
        ? { value: step, contentType: undefined, version: V }
        : (step ?? new Error("?"));
    });
    const stop = new AbortController();
    const loop = runSyncLoop(
      { ...h.deps, tuning: { ...h.deps.tuning, fetchAttempts: 1 } },
      stop.signal,
    );
    while (h.published.length < 2) {
      await new Promise((r) => setImmediate(r));
      if (h.clock.pending > 0) h.clock.advanceToNext();
    }
    stop.abort();
    await loop;
    expect(h.published.map((m) => m.get("a"))).toEqual(["v1", "v2"]);
    // The first refresh within the interval (after v1), interval (after 403),
    // Retry-After 90 s plus up to half of it, then backoff 2 s, 4 s, 8 s… capped at 60 s.
    const [afterV1, afterForbidden, afterThrottle, ...backoffs] = h.clock.sleeps.filter(
      (d) => d !== 5000,
    );
    expect(afterV1).toBe(66);
    expect(afterForbidden).toBe(60_000);
    expect(afterThrottle).toBe(134_955);
    expect(backoffs.slice(0, 4).every((d) => d <= 60_000)).toBe(true);
    expect(backoffs.slice(0, 3)).toEqual([3996, 7992, 15_984]);
    const errors = h.log.lines().filter((l) => l.level === "error");
    expect(errors[0]?.msg).toContain("keeping the last good files");
  });

  it("status: each sync's files and versions; after a failed refresh the same files, the error and the count; a success resets the count", async () => {
    const V2 = "fedcba9876543210fedcba9876543210";
    const spec: SyncSpec = {
      ...specOf(["a", `b/${V}`]),
      files: [
        ...specOf(["a", `b/${V}`]).files,
        {
          file: "app.env",
          format: "raw",
          source: {
            kind: "template",
            parts: [
              { text: "x=" },
              { secret: { name: "a" } },
              { text: " y=" },
              { secret: { name: "b", version: V } },
              { secret: { name: "a" } },
            ],
          },
        },
      ],
    };
    const h = harness(spec, new FakeSource(), () => 0.5);
    h.source.answers.set(`b/${V}`, { value: "B-VALUE", contentType: undefined, version: V });
    const script: (string | Error)[] = ["A-VALUE-1", forbidden("a"), unavailable(), "A-VALUE-2"];
    h.source.answers.set("a", (call) => {
      const step = script[Math.min(call, script.length - 1)] ?? new Error("?");
      return typeof step === "string"
        ? { value: step, contentType: undefined, version: call === 0 ? V : V2 }
        : step;
    });
    const stop = new AbortController();
    const loop = runSyncLoop(
      { ...h.deps, tuning: { ...h.deps.tuning, fetchAttempts: 1 } },
      stop.signal,
    );
    while (h.statuses.length < 4) {
      await new Promise((r) => setImmediate(r));
      if (h.clock.pending > 0 && h.statuses.length < 4) h.clock.advanceToNext();
    }
    stop.abort();
    await loop;
    const [first, afterForbidden, afterOutage, recovered] = h.statuses;
    const files = (version: string) => [
      { name: "a", secrets: [{ name: "a", version }] },
      { name: "b", secrets: [{ name: "b", version: V }] },
      {
        name: "app.env",
        secrets: [
          { name: "a", version },
          { name: "b", version: V },
        ],
      },
    ];
    expect(first).toEqual({
      via: "published",
      status: {
        schemaVersion: 1,
        lastSuccessTime: "2025-01-01T00:00:00.000Z",
        files: files(V),
        lastError: null,
        consecutiveFailures: 0,
      },
    });
    // The refresh failed: written beside the files, which stay as they were.
    expect(afterForbidden?.via).toBe("failed");
    expect(afterForbidden?.status).toMatchObject({
      lastSuccessTime: first?.status.lastSuccessTime,
      files: files(V),
      lastError: {
        code: ErrorCode.SECRET_FORBIDDEN,
        message: "reading secret 'a' was refused (403)",
      },
      consecutiveFailures: 1,
    });
    expect(Date.parse(afterForbidden?.status.lastError?.time ?? "")).toBeGreaterThan(0);
    expect(afterOutage?.via).toBe("failed");
    expect(afterOutage?.status).toMatchObject({
      files: files(V),
      lastError: { code: ErrorCode.UNAVAILABLE, message: "unavailable (503)" },
      consecutiveFailures: 2,
    });
    // Caught up: the new version, the count reset, the last error kept for the record.
    expect(recovered?.via).toBe("published");
    expect(recovered?.status).toMatchObject({
      files: files(V2),
      lastError: { code: ErrorCode.UNAVAILABLE },
      consecutiveFailures: 0,
    });
    expect(Date.parse(recovered?.status.lastSuccessTime ?? "")).toBeGreaterThan(
      Date.parse(first?.status.lastSuccessTime ?? ""),
    );
    const text = JSON.stringify(h.statuses);
    for (const value of ["A-VALUE-1", "A-VALUE-2", "B-VALUE"]) expect(text).not.toContain(value);
  });

  it("status: failures before the first publish write nothing, and the first status names the last of them", async () => {
    const h = harness(specOf(["a"], { mode: "init" }), new FakeSource(), () => 0.5);
    let calls = 0;
    h.source.answers.set("a", () =>
      ++calls <= 2 ? unavailable() : { value: "A", contentType: undefined, version: V },
    );
    await h.clock.run(
      runSyncLoop(
        { ...h.deps, tuning: { ...h.deps.tuning, fetchAttempts: 1 } },
        new AbortController().signal,
      ),
    );
    expect(h.statuses.map((s) => s.via)).toEqual(["published"]);
    expect(h.statuses[0]?.status).toMatchObject({
      lastError: { code: ErrorCode.UNAVAILABLE },
      consecutiveFailures: 0,
    });
  });

  it("status: a status that cannot be written after a failure is logged, and the loop goes on", async () => {
    const h = harness(specOf(["a"]), new FakeSource(), () => 0.5);
    let calls = 0;
    h.source.answers.set("a", () =>
      ++calls === 2 ? unavailable() : { value: "A", contentType: undefined, version: V },
    );
    const stop = new AbortController();
    const loop = runSyncLoop(
      {
        ...h.deps,
        tuning: { ...h.deps.tuning, fetchAttempts: 1 },
        writeStatus: () => {
          throw new AkvError(ErrorCode.PUBLISH_FAILED, "cannot write the status file (ENOSPC)");
        },
      },
      stop.signal,
    );
    while (h.source.calls.length < 3) {
      await new Promise((r) => setImmediate(r));
      if (h.clock.pending > 0 && h.source.calls.length < 3) h.clock.advanceToNext();
    }
    stop.abort();
    await loop;
    const warning = h.log.lines().find((l) => String(l.msg).startsWith("cannot write the status"));
    expect(warning?.code).toBe(ErrorCode.PUBLISH_FAILED);
  });

  it.each(["sidecar", "init"] as const)(
    "%s mode: a publish that fails (a full volume) is retried with backoff, also on the first sync",
    async (mode) => {
      const h = harness(specOf(["a"], { mode }), new FakeSource(), () => 0.999);
      h.source.set("a", "A");
      let tries = 0;
      const publish = h.deps.publish;
      const stop = new AbortController();
      const loop = runSyncLoop(
        {
          ...h.deps,
          publish: (files, status) =>
            ++tries <= 2
              ? Promise.reject(
                  new AkvError(ErrorCode.PUBLISH_FAILED, "cannot publish 1 file(s) (ENOSPC)"),
                )
              : publish(files, status),
        },
        stop.signal,
      );
      const ended = { now: false };
      loop.catch(() => undefined).finally(() => (ended.now = true));
      while (h.published.length < 1 && !ended.now) {
        await new Promise((r) => setImmediate(r));
        if (h.clock.pending > 0 && h.published.length < 1) h.clock.advanceToNext();
      }
      stop.abort();
      await loop; // a first-sync failure that is not retried ends the loop with it
      expect(tries).toBe(3);
      expect(h.clock.sleeps.filter((d) => d !== 5000).slice(0, 2)).toEqual([1998, 3996]);
      const warnings = h.log.lines().filter((l) => l.level === "warn");
      expect(warnings.map((w) => w.code)).toEqual([
        ErrorCode.PUBLISH_FAILED,
        ErrorCode.PUBLISH_FAILED,
      ]);
    },
  );

  it("refuses files larger than the volume: ends a first sync, and keeps the last good files after", async () => {
    const first = harness(specOf(["a"], { mode: "init" }));
    first.source.set("a", "x".repeat(200));
    const error = await first.clock
      .run(runSyncLoop({ ...first.deps, maxOutputBytes: 100 }, new AbortController().signal))
      .catch((e: unknown) => e);
    expect(isAkvError(error, ErrorCode.OUTPUT_TOO_LARGE)).toBe(true);
    expect((error as Error).message).toContain("file 'a' (200 bytes)");
    expect(first.published).toHaveLength(0);

    const h = harness(specOf(["a"]));
    h.source.answers.set("a", (call) => ({
      value: call === 0 ? "small" : "x".repeat(200),
      contentType: undefined,
      version: V,
    }));
    const stop = new AbortController();
    const loop = runSyncLoop({ ...h.deps, maxOutputBytes: 100 }, stop.signal);
    while (h.source.calls.length < 2 || h.clock.pending === 0) {
      await new Promise((r) => setImmediate(r));
      if (h.clock.pending > 0 && h.source.calls.length < 2) h.clock.advanceToNext();
    }
    stop.abort();
    await loop;
    expect(h.published.map((m) => m.get("a"))).toEqual(["small"]);
    const errors = h.log.lines().filter((l) => l.level === "error");
    expect(errors.map((e) => e.code)).toEqual([ErrorCode.OUTPUT_TOO_LARGE]);
    expect(errors[0]?.msg).toContain("keeping the last good files");
  });

  it("init mode: one good sync and done", async () => {
    const h = harness(specOf(["a"], { mode: "init" }));
    h.source.set("a", "A");
    await h.clock.run(runSyncLoop(h.deps, new AbortController().signal));
    expect(h.published).toHaveLength(1);
    expect(h.clock.pending).toBe(0);
  });

  it("init mode: retries transient failures until the deadline, then gives up with the reason", async () => {
    const h = harness(specOf(["a"], { mode: "init" }));
    h.source.answers.set("a", unavailable());
    const error = await h.clock
      .run(
        runSyncLoop(
          { ...h.deps, tuning: { ...h.deps.tuning, initDeadlineMs: 60_000 } },
          new AbortController().signal,
        ),
      )
      .catch((e: unknown) => e);
    expect(isAkvError(error, ErrorCode.UNAVAILABLE)).toBe(true);
    expect((error as Error).message).toMatch(/^gave up after \d+ s: unavailable \(503\)/);
    expect(h.clock.now() - Date.UTC(2025, 0, 1)).toBeLessThanOrEqual(60_000);
    expect(h.source.calls.length).toBeGreaterThan(4);
  });

  it("init mode: a Retry-After of a day waits no longer than the deadline left, then gives up", async () => {
    const h = harness(specOf(["a"], { mode: "init" }));
    h.source.answers.set("a", throttled(86_400_000));
    const start = h.clock.now();
    const error = await h.clock
      .run(runSyncLoop(h.deps, new AbortController().signal))
      .catch((e: unknown) => e);
    expect(isAkvError(error, ErrorCode.THROTTLED)).toBe(true);
    expect((error as Error).message).toMatch(/^gave up after 300 s: throttled/);
    expect(h.clock.now() - start).toBeLessThanOrEqual(300_000);
    expect(Math.max(...h.clock.sleeps)).toBeLessThanOrEqual(300_000);
    // The log says what the vault asked for and what the sidecar waits instead.
    const [warning] = h.log.lines().filter((l) => l.level === "warn");
    expect(warning).toMatchObject({
      ref: "a",
      retryAfterMs: 86_400_000,
      delayMs: 300_000,
      cappedBy: "deadline",
    });
  });

  it("sidecar mode: a long Retry-After is cut to the first sync's deadline, then to 5 minutes", async () => {
    const h = harness(specOf(["a"]));
    const start = h.clock.now();
    const publishedAt: number[] = [];
    const calls: number[] = [];
    h.source.answers.set("a", (call) => {
      calls.push(h.clock.now() - start);
      // The first read of the first sync and of the first refresh are throttled for a day.
      if (call === 0 || call === 2) return throttled(86_400_000);
      publishedAt.push(h.clock.now() - start);
      return { value: `v${call}`, contentType: undefined, version: V };
    });
    const stop = new AbortController();
    const loop = runSyncLoop(
      { ...h.deps, tuning: { ...h.deps.tuning, initDeadlineMs: 120_000 } },
      stop.signal,
    );
    while (publishedAt.length < 2) {
      await new Promise((r) => setImmediate(r));
      if (h.clock.pending > 0 && publishedAt.length < 2) h.clock.advanceToNext();
    }
    stop.abort();
    await loop;
    // The first sync retries at its deadline (120 s here; 5 min by default,
    // when the startup probe gives up), not a day later.
    expect(calls.slice(0, 2)).toEqual([0, 120_000]);
    // A refresh waits at most 5 minutes, whatever the vault asked for.
    const refreshAt = calls[2] ?? NaN;
    expect(calls[3]).toBe(refreshAt + 300_000);
    const warnings = h.log.lines().filter((l) => l.level === "warn");
    expect(warnings.map((w) => [w.retryAfterMs, w.delayMs, w.cappedBy])).toEqual([
      [86_400_000, 120_000, "deadline"],
      [86_400_000, 300_000, "max"],
    ]);
  });

  it("stops promptly when the signal aborts, mid-read or mid-wait", async () => {
    const h = harness(specOf(["a"]));
    h.source.answers.set(
      "a",
      (_call, options) =>
        new Promise((_, reject) => {
          options.signal?.addEventListener("abort", () => {
            reject(new AkvError(ErrorCode.UNAVAILABLE, "aborted"));
          });
        }),
    );
    const stop = new AbortController();
    const loop = runSyncLoop(h.deps, stop.signal);
    await new Promise((r) => setImmediate(r));
    stop.abort();
    await expect(loop).resolves.toBeUndefined();
    expect(h.published).toHaveLength(0);
  });

  it("stops promptly even when a read ignores its abort signal (MSAL's token exchange does)", async () => {
    const h = harness(specOf(["a", "b"]));
    let started = 0;
    h.source.answers.set("a", () => {
      started++;
      return new Promise<never>(() => undefined);
    });
    h.source.answers.set("b", () => {
      started++;
      return new Promise<never>(() => undefined);
    });
    const stop = new AbortController();
    const loop = runSyncLoop(h.deps, stop.signal);
    while (started < 1) await new Promise((r) => setImmediate(r));
    const t = h.clock.now();
    stop.abort();
    // No virtual time passes: the read's own timeout must not be what ends it.
    await expect(loop).resolves.toBeUndefined();
    expect(h.clock.now()).toBe(t);
    expect(h.published).toHaveLength(0);
  });

  it("logs names, versions and codes, never a value", async () => {
    const h = harness(specOf(["a", "b"]));
    h.source.set("a", "SUPERSECRET-A");
    h.source.answers.set("b", (call) =>
      call === 0 ? throttled(1000) : { value: "SUPERSECRET-B", contentType: undefined, version: V },
    );
    const stop = new AbortController();
    const loop = runSyncLoop(h.deps, stop.signal);
    while (h.published.length < 1) {
      await new Promise((r) => setImmediate(r));
      if (h.clock.pending > 0 && h.published.length < 1) h.clock.advanceToNext();
    }
    stop.abort();
    await loop;
    const text = h.log.text();
    expect(text).not.toContain("SUPERSECRET");
    const synced = h.log.lines().find((l) => l.event === "synced");
    expect(synced?.versions).toEqual({
      a: expect.stringMatching(/^[0-9a-f]{32}$/) as unknown,
      b: V,
    });
  });
});

describe("sync loop: errors and log lines, by their words", () => {
  it("one refusal is thrown as it is; several are joined, the first as the cause", async () => {
    const one = harness(specOf(["a", "b"]));
    const refusal = forbidden("a");
    one.source.answers.set("a", refusal);
    one.source.set("b", "B");
    expect(
      await one.clock
        .run(syncOnce(one.deps, new AbortController().signal))
        .catch((e: unknown) => e),
    ).toBe(refusal);

    const two = harness(specOf(["a", "b"]));
    const first = forbidden("a");
    two.source.answers.set("a", first);
    two.source.answers.set("b", forbidden("b"));
    const error = (await two.clock
      .run(syncOnce(two.deps, new AbortController().signal))
      .catch((e: unknown) => e)) as AkvError;
    expect(error.code).toBe(ErrorCode.SECRET_FORBIDDEN);
    expect(error.message).toBe(
      "reading secret 'a' was refused (403); reading secret 'b' was refused (403)",
    );
    expect(error.cause).toBe(first);
  });

  it("a read failing with something unknown is reported as that secret's failure, with its cause", async () => {
    const h = harness(specOf(["a"]));
    const odd = new TypeError("odd");
    h.source.answers.set("a", odd);
    const error = (await h.clock
      .run(syncOnce(h.deps, new AbortController().signal))
      .catch((e: unknown) => e)) as AkvError;
    expect(error.message).toBe("reading secret 'a' failed: odd");
    expect(error.cause).toBe(odd);
  });

  it("a sync asked to stop before it starts says so, and reads nothing", async () => {
    const h = harness(specOf(["a"]));
    h.source.set("a", "A");
    const stop = new AbortController();
    stop.abort();
    const error = (await h.clock
      .run(syncOnce(h.deps, stop.signal))
      .catch((e: unknown) => e)) as AkvError;
    expect(error.code).toBe(ErrorCode.UNAVAILABLE);
    expect(error.message).toBe("sync aborted: shutting down");
    expect(h.source.calls).toEqual([]);
  });

  it("logs the first sync as 'published files', a refresh without change as 'files unchanged', with the time it took", async () => {
    const h = harness(specOf(["a"]));
    h.source.set("a", "A");
    const stop = new AbortController();
    const loop = runSyncLoop(h.deps, stop.signal);
    while (h.log.lines().filter((l) => l.event === "refreshed").length < 1) {
      await new Promise((r) => setImmediate(r));
      if (h.clock.pending > 0) h.clock.advanceToNext();
    }
    stop.abort();
    await loop;
    const lines = h.log.lines();
    const synced = lines.find((l) => l.event === "synced");
    const refreshed = lines.find((l) => l.event === "refreshed");
    expect(synced).toMatchObject({ msg: "published files", changed: true, files: 1, ms: 0 });
    expect(refreshed).toMatchObject({ msg: "files unchanged", changed: false, ms: 0 });
  });

  it("a failed first sync is logged without 'keeping the last good files'", async () => {
    const h = harness(specOf(["a"]));
    h.source.answers.set("a", (call) =>
      call < 4 ? unavailable() : { value: "A", contentType: undefined, version: V },
    );
    const stop = new AbortController();
    const loop = runSyncLoop(h.deps, stop.signal);
    while (h.published.length < 1) {
      await new Promise((r) => setImmediate(r));
      if (h.clock.pending > 0) h.clock.advanceToNext();
    }
    stop.abort();
    await loop;
    const failed = h.log
      .lines()
      .find((l) => typeof l.msg === "string" && l.msg.startsWith("sync failed"));
    expect(failed).toMatchObject({
      msg: "sync failed, retrying: unavailable (503)",
      failures: 1,
      code: ErrorCode.UNAVAILABLE,
      status: 503,
    });
  });
});
