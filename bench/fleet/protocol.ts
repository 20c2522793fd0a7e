/** The messages between the fleet bench (run.ts) and its workers (worker.ts). */

/** One pod to run: its sidecar environment and where its files go. */
export interface PodPlan {
  readonly id: number;
  readonly env: Readonly<Record<string, string>>;
  readonly outputDir: string;
}

/** What one pod did, from its log lines (times: ms since the epoch). */
export interface PodRecord {
  readonly id: number;
  readonly startedAt: number;
  syncedAt: number | undefined;
  readonly refreshes: number[];
  /** Failed syncs and refreshes (the files stayed). */
  readonly syncFailures: number[];
  /** Per-read retries by HTTP status (or error code when there was none). */
  readonly retries: Record<string, number>;
  /** The first retry's message for each key of `retries`. */
  readonly retrySample: Record<string, string>;
  /** Set when the sidecar exited with an error. */
  failed: string | undefined;
}

/** The reader's tally: sets read, and sets that were incomplete or wrong. */
export interface Reads {
  readonly sets: number;
  readonly bad: number;
  readonly firstBad: string;
}

export type ToWorker =
  | {
      readonly type: "init";
      readonly pods: readonly PodPlan[];
      /** File name → the value every pod's file must hold. */
      readonly expected: Readonly<Record<string, string>>;
    }
  | { readonly type: "start" }
  | { readonly type: "reader"; readonly on: boolean }
  | { readonly type: "stop" };

export type FromWorker =
  | { readonly type: "ready" }
  | {
      readonly type: "progress";
      /** [pod id, time] of pods that synced since the last progress. */
      readonly synced: readonly (readonly [number, number])[];
      readonly failed: number;
      readonly rssBytes: number;
    }
  | {
      readonly type: "done";
      readonly pods: readonly PodRecord[];
      readonly reads: Reads;
      readonly rssBytes: number;
    };
