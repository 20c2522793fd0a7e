import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { NotifyTarget } from "../common/notify.ts";
import {
  createNotifier,
  mergeChanges,
  retryDelay,
  type Deliver,
  type NotifyChange,
  type NotifyOutcome,
} from "./notifier.ts";
import { changedFiles } from "./status.ts";
import { createSinkLogger } from "../testing/sidecar.ts";

const APP: NotifyTarget = {
  container: "app",
  action: { kind: "http", url: "http://localhost:8080/reload" },
};
const WORKER: NotifyTarget = { container: "worker", action: { kind: "signal", signal: "SIGHUP" } };
const TUNING = {
  debounceMs: 1000,
  attempts: 3,
  backoff: { baseMs: 1000, capMs: 8000 },
  timeoutMs: 5000,
};

describe("retryDelay", () => {
  it("doubles from the base to the cap, each wait between half and all of its ceiling", () => {
    const backoff = { baseMs: 1000, capMs: 8000 };
    const low = [0, 1, 2, 3, 4, 5].map((a) => retryDelay(a, backoff, () => 0));
    const high = [0, 1, 2, 3, 4, 5].map((a) => retryDelay(a, backoff, () => 0.999_999));
    expect(low).toEqual([500, 1000, 2000, 4000, 4000, 4000]);
    expect(high).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
  });
});

describe("mergeChanges and changedFiles", () => {
  it("merges files (each once, sorted) and keeps the later time", () => {
    expect(mergeChanges(undefined, { files: ["b"], syncTime: 5 })).toEqual({
      files: ["b"],
      syncTime: 5,
    });
    expect(
      mergeChanges({ files: ["c", "a"], syncTime: 1 }, { files: ["b", "a"], syncTime: 2 }),
    ).toEqual({ files: ["a", "b", "c"], syncTime: 2 });
  });

  it("names files whose versions changed, new files, or every file when none can be told apart", () => {
    const f = (name: string, version: string) => ({
      name,
      secrets: [{ name: `s-${name}`, version }],
    });
    expect(changedFiles([f("a", "1"), f("b", "1")], [f("a", "2"), f("b", "1")])).toEqual(["a"]);
    expect(changedFiles([f("a", "1")], [f("a", "1"), f("new", "1")])).toEqual(["new"]);
    expect(changedFiles(undefined, [f("b", "1"), f("a", "1")])).toEqual(["a", "b"]);
    expect(changedFiles([f("a", "1")], [f("a", "1")])).toEqual(["a"]);
  });
});

/** A notifier on fake timers with a scripted deliver; `script` answers each attempt in turn. */
function setup(
  script: ("ok" | "fail" | "hang")[] = [],
  targets: readonly NotifyTarget[] = [APP],
  random = () => 0.5,
) {
  const log = createSinkLogger();
  const calls: { container: string; change: NotifyChange; at: number; signal: AbortSignal }[] = [];
  const outcomes: [string, NotifyOutcome][] = [];
  const deliver: Deliver = (target, change, signal) => {
    calls.push({ container: target.container, change, at: Date.now(), signal });
    const step = script.shift() ?? "ok";
    if (step === "ok") return Promise.resolve("HTTP 204");
    if (step === "fail") return Promise.reject(new Error("ECONNREFUSED"));
    return new Promise((_, reject) => {
      signal.addEventListener("abort", () => {
        reject(new Error("aborted"));
      });
    });
  };
  const notifier = createNotifier({
    targets,
    deliver,
    logger: log.logger,
    random,
    tuning: TUNING,
    observer: { notified: (container, outcome) => outcomes.push([container, outcome]) },
  });
  const t0 = Date.now();
  const since = () => calls.map((c) => c.at - t0);
  return { notifier, calls, outcomes, log, since };
}

describe("createNotifier", () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: Date.UTC(2026, 0, 1) });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("sends one notification after the debounce, and logs it", async () => {
    const { notifier, calls, outcomes, log, since } = setup();
    notifier.changed({ files: ["db"], syncTime: 42 });
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(since()).toEqual([1000]);
    expect(calls[0]?.change).toEqual({ files: ["db"], syncTime: 42 });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toHaveLength(1);
    expect(outcomes).toEqual([["app", "success"]]);
    expect(log.lines().find((l) => l.event === "notify")).toMatchObject({
      container: "app",
      target: "http://localhost:8080/reload",
      attempt: 1,
      result: "success",
      detail: "HTTP 204",
      files: ["db"],
    });
  });

  it("coalesces changes within the debounce into one, naming every file and the latest time", async () => {
    const { notifier, calls, since } = setup();
    notifier.changed({ files: ["a"], syncTime: 1 });
    await vi.advanceTimersByTimeAsync(500);
    notifier.changed({ files: ["b"], syncTime: 2 });
    await vi.advanceTimersByTimeAsync(10_000);
    // The debounce restarts with the second change.
    expect(since()).toEqual([1500]);
    expect(calls[0]?.change).toEqual({ files: ["a", "b"], syncTime: 2 });
  });

  it("retries a failure with backoff and jitter, then succeeds; each attempt logged and counted", async () => {
    const { notifier, outcomes, log, since } = setup(["fail", "fail", "ok"]);
    notifier.changed({ files: ["a"], syncTime: 1 });
    await vi.advanceTimersByTimeAsync(60_000);
    // Debounce 1000, then 750 (ceiling 1000 at random 0.5), then 1500 (ceiling 2000).
    expect(since()).toEqual([1000, 1750, 3250]);
    expect(outcomes).toEqual([
      ["app", "failure"],
      ["app", "failure"],
      ["app", "success"],
    ]);
    const lines = log.lines().filter((l) => l.event === "notify");
    expect(lines.map((l) => [l.attempt, l.result, l.delayMs])).toEqual([
      [1, "failure", 750],
      [2, "failure", 1500],
      [3, "success", undefined],
    ]);
    expect(lines[0]).toMatchObject({ reason: "ECONNREFUSED", level: "warn" });
  });

  it("gives up after the last attempt, logs it as an error, and starts afresh on the next change", async () => {
    const { notifier, calls, outcomes, log } = setup(["fail", "fail", "fail", "ok"]);
    notifier.changed({ files: ["a"], syncTime: 1 });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toHaveLength(3);
    expect(outcomes.at(-1)).toEqual(["app", "gave-up"]);
    const last = log
      .lines()
      .filter((l) => l.event === "notify")
      .at(-1);
    expect(last).toMatchObject({ result: "gave-up", attempt: 3, level: "error" });
    notifier.changed({ files: ["b"], syncTime: 2 });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toHaveLength(4);
    // What was given up is not carried over: the app is told of the new change.
    expect(calls[3]?.change).toEqual({ files: ["b"], syncTime: 2 });
    expect(outcomes.at(-1)).toEqual(["app", "success"]);
  });

  it("a change during the backoff replaces the retry: one notification for the latest set, attempts afresh", async () => {
    const { notifier, calls, since } = setup(["fail", "ok"]);
    notifier.changed({ files: ["a"], syncTime: 1 });
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(300);
    notifier.changed({ files: ["b"], syncTime: 2 });
    await vi.advanceTimersByTimeAsync(60_000);
    // Not at 1750 (the retry): 1000 after the new change.
    expect(since()).toEqual([1000, 2300]);
    expect(calls[1]?.change).toEqual({ files: ["a", "b"], syncTime: 2 });
  });

  it("a change while an attempt is in flight goes next, after it (merged when that attempt failed)", async () => {
    const { notifier, calls, since } = setup(["hang", "ok"]);
    notifier.changed({ files: ["a"], syncTime: 1 });
    await vi.advanceTimersByTimeAsync(1000);
    notifier.changed({ files: ["b"], syncTime: 2 });
    // The hung attempt ends at its timeout (5 s), as a failure; the new change carries both.
    await vi.advanceTimersByTimeAsync(4999);
    expect(calls[0]?.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls[0]?.signal.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls.map((c) => c.change.files)).toEqual([["a"], ["a", "b"]]);
    // Sent after the failed attempt ended (6000), with a fresh debounce.
    expect(since()).toEqual([1000, 7000]);
    await notifier.close();
  });

  it("never waits in changed(), and close() cancels what is in flight and every timer", async () => {
    const { notifier, calls } = setup(["hang"], [APP, WORKER]);
    notifier.changed({ files: ["a"], syncTime: 1 });
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toHaveLength(2);
    const closed = notifier.close();
    await closed;
    expect(calls[0]?.signal.aborted).toBe(true);
    notifier.changed({ files: ["b"], syncTime: 2 });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toHaveLength(2);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("notifies each container on its own: one failing does not hold another back", async () => {
    const { notifier, calls } = setup(["fail", "ok", "ok"], [APP, WORKER]);
    notifier.changed({ files: ["a"], syncTime: 1 });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls.map((c) => c.container)).toEqual(["app", "worker", "app"]);
  });
});
