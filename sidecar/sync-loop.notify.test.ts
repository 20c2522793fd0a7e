/**
 * The sync loop's hand-off to the notifier: after a refresh that changed the
 * set, and only then, it names the files whose versions changed.
 */
import { describe, expect, it } from "vitest";
import type { SyncSpec } from "../common/spec.ts";
import type { NotifyChange } from "./notifier.ts";
import { DEFAULT_TUNING, firstRefreshDelay, runSyncLoop, type SyncDeps } from "./sync-loop.ts";
import { createSinkLogger, FakeClock, FakeSource, settle } from "../testing/sidecar.ts";

const spec: SyncSpec = {
  vaultUrl: "https://v.vault.azure.net",
  files: ["a", "b"].map((name) => ({
    file: name,
    format: "raw" as const,
    source: { kind: "secret" as const, ref: { name } },
  })),
  mode: "sidecar",
  refreshIntervalMs: 60_000,
  fileMode: 0o644,
  outputDir: "/unused",
};

/**
 * Runs `syncs` syncs; before each, `rotate(n)` may set new values.
 * @param earlier the set an earlier run of the sidecar left in the volume (a restart).
 */
async function run(
  rotate: (sync: number, source: FakeSource) => void,
  syncs: number,
  onChanged: (change: NotifyChange) => void,
  earlier?: string,
): Promise<{ clock: FakeClock; log: ReturnType<typeof createSinkLogger> }> {
  const clock = new FakeClock();
  const source = new FakeSource();
  const log = createSinkLogger();
  let last = earlier;
  const deps: SyncDeps = {
    spec,
    source,
    clock,
    random: () => 0.5,
    logger: log.logger,
    publish: (files) => {
      const key = JSON.stringify([...files].map(([k, v]) => [k, Buffer.from(v).toString()]));
      const changed = key !== last;
      const replaced = last !== undefined;
      last = key;
      return Promise.resolve({ changed, replaced });
    },
    loadCerts: () => Promise.reject(new Error("no certs")),
    onChanged,
  };
  rotate(0, source);
  const stop = new AbortController();
  const loop = runSyncLoop(deps, stop.signal);
  // A sync is over when the loop sleeps until the next refresh: 60 s at
  // random 0.5, or the first refresh's point of the first interval.
  const untilRefresh = new Set([60_000, firstRefreshDelay(60_000, DEFAULT_TUNING, () => 0.5)]);
  const refreshes = (): number => clock.sleeps.filter((ms) => untilRefresh.has(ms)).length;
  for (let n = 1; n < syncs; n++) {
    while (refreshes() < n) await settle();
    rotate(n, source);
    clock.advanceToNext();
  }
  while (refreshes() < syncs) await settle();
  stop.abort();
  await loop;
  return { clock, log };
}

describe("runSyncLoop: onChanged", () => {
  it("is not called for the first sync, nor for a refresh that changed nothing; names the rotated file", async () => {
    const changes: NotifyChange[] = [];
    const { clock } = await run(
      (n, source) => {
        if (n === 0) {
          source.set("a", "a1");
          source.set("b", "b1");
        }
        if (n === 2) source.set("a", "a2");
        if (n === 3) {
          source.set("a", "a3");
          source.set("b", "b2");
        }
      },
      5,
      (c) => changes.push(c),
    );
    // Syncs 0 (first) and 1 and 4 (unchanged) say nothing.
    expect(changes.map((c) => c.files)).toEqual([["a"], ["a", "b"]]);
    expect(changes.every((c) => c.syncTime <= clock.now())).toBe(true);
    expect(changes[1]?.syncTime).toBeGreaterThan(changes[0]?.syncTime ?? Infinity);
  });

  it("is called for a restarted sidecar's first sync that replaced the set of its earlier run, with every file", async () => {
    const changes: NotifyChange[] = [];
    const earlier = JSON.stringify([
      ["a", "a0"],
      ["b", "b0"],
    ]);
    const rotate = (_n: number, source: FakeSource): void => {
      source.set("a", "a1");
      source.set("b", "b0");
    };
    await run(rotate, 2, (c) => changes.push(c), earlier);
    // It never saw the earlier versions: every file is named.
    expect(changes.map((c) => c.files)).toEqual([["a", "b"]]);
    // The same set left by the earlier run: nothing changed, nothing told.
    const same = JSON.stringify([
      ["a", "a1"],
      ["b", "b0"],
    ]);
    const none: NotifyChange[] = [];
    await run(rotate, 2, (c) => none.push(c), same);
    expect(none).toEqual([]);
  });

  it("logs a hook that throws, and goes on syncing", async () => {
    let calls = 0;
    const { log } = await run(
      (n, source) => {
        source.set("a", `a${n}`);
        source.set("b", "b");
      },
      3,
      () => {
        calls++;
        throw new Error("boom");
      },
    );
    expect(calls).toBe(2);
    const errors = log.lines().filter((l) => l.event === "notify");
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatchObject({ reason: "boom", msg: "cannot schedule the notifications" });
  });
});
