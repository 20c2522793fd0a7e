/**
 * Test doubles for the sidecar's unit tests: a virtual clock, a fake secret
 * source, a log sink whose lines can be parsed, and a real size-limited tmpfs. Not shipped (main.ts
 * never imports it).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createLogger, type Logger } from "../common/logger.ts";
import { formatSecretRef, type SecretRef } from "../common/refs.ts";
import type { FetchedSecret, FetchOptions, SecretSource } from "../sidecar/secret-source.ts";
import type { Clock } from "../sidecar/sync-loop.ts";

interface Timer {
  readonly at: number;
  readonly resolve: () => void;
}

/**
 * Virtual time: `sleep` waits until {@link FakeClock.advance} (or
 * {@link FakeClock.run}) moves `now` past it. `sleeps` records every delay asked for.
 */
export class FakeClock implements Clock {
  t: number;
  readonly sleeps: number[] = [];
  private timers: Timer[] = [];
  constructor(start = Date.UTC(2025, 0, 1)) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    return new Promise<void>((resolve) => {
      if (signal?.aborted === true) {
        resolve();
        return;
      }
      const timer: Timer = { at: this.t + ms, resolve };
      this.timers.push(timer);
      signal?.addEventListener(
        "abort",
        () => {
          this.timers = this.timers.filter((x) => x !== timer);
          resolve();
        },
        { once: true },
      );
    });
  }
  /** Pending sleeps. */
  get pending(): number {
    return this.timers.length;
  }
  /** Moves time to the next timer and fires it (and any due with it). */
  advanceToNext(): boolean {
    const next = Math.min(...this.timers.map((x) => x.at));
    if (!Number.isFinite(next)) return false;
    this.advanceTo(next);
    return true;
  }
  advanceTo(at: number): void {
    this.t = Math.max(this.t, at);
    const due = this.timers.filter((x) => x.at <= this.t);
    this.timers = this.timers.filter((x) => x.at > this.t);
    for (const x of due) x.resolve();
  }
  /**
   * Runs until `promise` settles, letting real I/O and microtasks settle
   * between virtual-time steps (at most `maxSteps` steps).
   */
  async run<T>(promise: Promise<T>, maxSteps = 10_000): Promise<T> {
    const state = { settled: false };
    const settled = (): boolean => state.settled;
    promise.then(
      () => (state.settled = true),
      () => (state.settled = true),
    );
    for (let i = 0; i < maxSteps && !settled(); i++) {
      await settle();
      if (!settled() && !this.advanceToNext()) await new Promise((r) => setTimeout(r, 1));
    }
    return promise;
  }
}

/** Lets pending promise callbacks and immediate I/O run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

/** What a fake read does: a value, an error, or a function deciding per call. */
export type FakeAnswer =
  | FetchedSecret
  | Error
  | ((call: number, options: FetchOptions) => FetchedSecret | Error | Promise<FetchedSecret>);

/** A {@link SecretSource} answering from a table keyed by `NAME[/VERSION]`, counting calls and concurrency. */
export class FakeSource implements SecretSource {
  readonly calls: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  readonly answers = new Map<string, FakeAnswer>();
  constructor(answers: Record<string, FakeAnswer> = {}) {
    for (const [k, v] of Object.entries(answers)) this.answers.set(k, v);
  }
  /** Sets a plain value (version derived from it) for a ref. */
  set(ref: string, value: string, contentType?: string): void {
    const version = Buffer.from(value).toString("hex").padEnd(32, "0").slice(0, 32);
    this.answers.set(ref, { value, contentType, version });
  }
  async fetch(ref: SecretRef, options: FetchOptions = {}): Promise<FetchedSecret> {
    const key = formatSecretRef(ref);
    const call = this.calls.filter((c) => c === key).length;
    this.calls.push(key);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await Promise.resolve();
      const answer = this.answers.get(key);
      if (answer === undefined) throw new Error(`fake source has no '${key}'`);
      const result = typeof answer === "function" ? await answer(call, options) : answer;
      if (result instanceof Error) throw result;
      return result;
    } finally {
      this.inFlight--;
    }
  }
}

/** A logger writing JSON lines into memory. */
export function createSinkLogger(level = "trace"): {
  logger: Logger;
  lines: () => Record<string, unknown>[];
  text: () => string;
} {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString("utf8"));
      cb();
    },
  });
  const logger = createLogger({ name: "test", level, destination: sink });
  const text = (): string => chunks.join("");
  return {
    logger,
    text,
    lines: () =>
      text()
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

export { canMountTmpfs } from "../e2e/kubelet/layout.ts";

/**
 * What a test that needs a real tmpfs does: run; skip, saying it was not run;
 * or fail, in CI (`CI=true`), which runs as root: a silent skip there would
 * hide a test that stopped running.
 */
export function tmpfsTestMode(
  available: boolean,
  env: Readonly<Record<string, string | undefined>>,
): "run" | "skip" | "fail" {
  if (available) return "run";
  return env.CI === "true" ? "fail" : "skip";
}

/** Why a tmpfs test did not run, for the skip note or the CI failure. */
export const TMPFS_UNAVAILABLE =
  "not run: mounting a size-limited tmpfs needs root with `unshare -m` and `mount -t tmpfs`, unavailable here";

/**
 * Runs a Node ES module `script` (TypeScript imports allowed, as Node strips
 * types) in a private mount namespace where a tmpfs of `size` (a mount
 * option, e.g. `64k`) is mounted on a fresh folder, whose path is the
 * script's first argument (`process.argv[1]`), `args` following. The mount
 * vanishes with the process.
 */
export function runInTmpfs(
  size: string,
  script: string,
  args: readonly string[] = [],
): { status: number | null; stdout: string; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), "akv-tmpfs-"));
  try {
    const run = spawnSync(
      "unshare",
      [
        "-m",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        'mount -t tmpfs -o "size=$1" tmpfs "$2" && shift 2 && exec "$@"',
        "sh",
        size,
        dir,
        process.execPath,
        "--input-type=module",
        "-e",
        script,
        dir,
        ...args,
      ],
      { encoding: "utf8", timeout: 60_000 },
    );
    return { status: run.status, stdout: run.stdout, stderr: run.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
