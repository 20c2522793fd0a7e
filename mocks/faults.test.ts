import { describe, expect, it } from "vitest";
import {
  FaultQueue,
  Throttle,
  checkFaultAction,
  seededRandom,
  type FaultAction,
} from "./faults.ts";

type Match = { readonly path?: string };
const queue = (seed = 1): FaultQueue<FaultAction, Match, string> =>
  new FaultQueue<FaultAction, Match, string>(
    (m, path) => m.path === undefined || m.path === path,
    seededRandom(seed),
  );

describe("FaultQueue", () => {
  it("applies a rule to the next N matching requests, then drops it", () => {
    const q = queue();
    q.add({ action: { type: "drop" }, times: 2, match: { path: "/a" } });
    expect(q.take("/b")).toBeUndefined();
    expect(q.take("/a")).toEqual({ type: "drop" });
    expect(q.take("/a")).toEqual({ type: "drop" });
    expect(q.take("/a")).toBeUndefined();
    expect(q.list()).toEqual([]);
  });

  it("defaults to once, and keeps rules in order", () => {
    const q = queue();
    const first = q.add({ action: { type: "status", status: 503 } });
    q.add({ action: { type: "hang" } });
    expect(q.list().map((r) => [r.id, r.remaining])).toEqual([
      [first, 1],
      [first + 1, 1],
    ]);
    expect(q.take("/x")).toEqual({ type: "status", status: 503 });
    expect(q.take("/x")).toEqual({ type: "hang" });
  });

  it("applies a fraction of requests, the same ones for the same seed, without end", () => {
    const run = (seed: number): boolean[] => {
      const q = queue(seed);
      q.add({ action: { type: "drop" }, probability: 0.3 });
      return Array.from({ length: 200 }, () => q.take("/") !== undefined);
    };
    const hits = run(7).filter(Boolean).length;
    expect(hits).toBeGreaterThan(40);
    expect(hits).toBeLessThan(80);
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
  });

  it("clears one rule or all, and refuses nonsense", () => {
    const q = queue();
    const id = q.add({ action: { type: "drop" }, times: 5 });
    q.add({ action: { type: "hang" }, times: 5 });
    q.clear(id);
    expect(q.list().map((r) => r.action.type)).toEqual(["hang"]);
    q.clear();
    expect(q.list()).toEqual([]);
    expect(() => q.add({ action: { type: "drop" }, times: 0 })).toThrow(RangeError);
    expect(() => q.add({ action: { type: "drop" }, probability: 2 })).toThrow(RangeError);
  });
});

describe("Throttle", () => {
  it("admits N per sliding window and says when the next slot frees", () => {
    const t = new Throttle({ limit: 2, windowMs: 1000 });
    expect(t.admit(0)).toBeUndefined();
    expect(t.admit(400)).toBeUndefined();
    expect(t.admit(500)).toBe(500); // the request at 0 leaves the window at 1000
    expect(t.admit(1000)).toBeUndefined();
    expect(t.admit(1100)).toBe(300);
    expect(t.admit(1400)).toBeUndefined();
  });
});

describe("checkFaultAction", () => {
  it("accepts the four kinds and names what is wrong", () => {
    expect(checkFaultAction({ type: "status", status: 429, retryAfterSeconds: 1 })).toBeUndefined();
    expect(checkFaultAction({ type: "latency", ms: 10 })).toBeUndefined();
    expect(checkFaultAction({ type: "drop" })).toBeUndefined();
    expect(checkFaultAction({ type: "hang" })).toBeUndefined();
    expect(checkFaultAction({ type: "status", status: 99 })).toContain("status");
    expect(checkFaultAction({ type: "latency" })).toContain("ms");
    expect(checkFaultAction({ type: "explode" })).toContain("explode");
    expect(checkFaultAction(null)).toContain("object");
  });
});
