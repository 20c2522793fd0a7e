/**
 * One worker of the fleet bench (run.ts forks several): many pods in one
 * process, each the sidecar's own `runSidecar` (sidecar/app.ts) with its own
 * environment, token file, credential, Key Vault client, HTTPS connections
 * and output directory, so a pod here does what a pod's sidecar does, minus
 * the process. What a pod did is read from its own log lines (the sidecar's
 * `synced`, `refreshed`, `retrying` and `sync failed` lines), through the
 * pino destination `runSidecar` takes, so the sidecar runs unchanged.
 *
 * A reader, when on, reads every pod's files through `..data` as an app
 * would and counts any set that is missing a file or holds a value other
 * than the one expected (empty or half-written included).
 *
 * Messages from the parent: `init` (the pods), `start`, `reader`, `stop`;
 * to the parent: `progress` every second, `done` with every pod's record.
 */
import { readFileSync, readdirSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { runSidecar } from "../../sidecar/app.ts";
import type { FromWorker, PodPlan, PodRecord, ToWorker } from "./protocol.ts";

interface Pod {
  readonly plan: PodPlan;
  readonly record: PodRecord;
  readonly done: Promise<void>;
}

const pods: Pod[] = [];
let plans: readonly PodPlan[] = [];
let expected: Readonly<Record<string, string>> = {};
const stop = new AbortController();
const reads = { sets: 0, bad: 0, firstBad: "" };
let readerOn = false;
let newlySynced: [number, number][] = [];

const send = (message: FromWorker): void => {
  process.send?.(message);
};

/** A pino destination that turns the pod's log lines into its record. */
function destinationOf(record: PodRecord): { write(line: string): void } {
  return {
    write(line: string): void {
      const now = Date.now();
      let l: { event?: string; msg?: string; status?: number; code?: string; level?: string };
      try {
        l = JSON.parse(line) as typeof l;
      } catch {
        return;
      }
      if (l.event === "synced") {
        record.syncedAt = now;
        newlySynced.push([record.id, now]);
      } else if (l.event === "refreshed") record.refreshes.push(now);
      else if (l.event === "failed") record.failed = l.msg ?? "failed";
      else if (l.msg?.startsWith("retrying") === true) {
        const key = String(l.status ?? l.code ?? "other");
        record.retries[key] = (record.retries[key] ?? 0) + 1;
        record.retrySample[key] ??= l.msg.slice(0, 300);
      } else if (l.msg?.startsWith("sync failed") === true) record.syncFailures.push(now);
      else if (l.msg?.startsWith("refresh failed") === true) record.syncFailures.push(now);
    },
  };
}

function startPods(): void {
  for (const plan of plans) {
    const record: PodRecord = {
      id: plan.id,
      startedAt: Date.now(),
      syncedAt: undefined,
      refreshes: [],
      syncFailures: [],
      retries: {},
      retrySample: {},
      failed: undefined,
    };
    const done = runSidecar({
      env: plan.env,
      signal: stop.signal,
      logDestination: destinationOf(record),
    }).catch((error: unknown) => {
      record.failed ??= error instanceof Error ? error.message : String(error);
    });
    pods.push({ plan, record, done });
  }
}

/** Reads one pod's set as an app would; a problem, or undefined when complete and as expected. */
function checkSet(dir: string): string | undefined {
  let data: string;
  try {
    data = realpathSync(join(dir, "..data"));
  } catch (error) {
    // Before the first publish there is nothing to read yet.
    return (error as NodeJS.ErrnoException).code === "ENOENT" ? undefined : String(error);
  }
  let names: string[];
  try {
    names = readdirSync(data).filter((n) => !n.startsWith(".."));
  } catch (error) {
    // A publish swapped `..data` and removed the old directory between the two calls: read again.
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return checkSet(dir);
    return String(error);
  }
  for (const [name, value] of Object.entries(expected)) {
    if (!names.includes(name)) return `${dir}: ${name} missing`;
    let text: string;
    try {
      text = readFileSync(join(data, name), "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return checkSet(dir);
      return String(error);
    }
    if (text !== value) return `${dir}: ${name} holds ${text.length} bytes, not the value`;
  }
  return undefined;
}

/** A function, not the variable: a message may turn the reader off across an await. */
const reading = (): boolean => readerOn;

async function readerLoop(): Promise<void> {
  while (readerOn && !stop.signal.aborted) {
    for (const pod of pods) {
      if (!reading()) break;
      if (pod.record.syncedAt === undefined) continue;
      const problem = checkSet(pod.plan.outputDir);
      reads.sets++;
      if (problem !== undefined) {
        reads.bad++;
        if (reads.firstBad === "") reads.firstBad = problem;
      }
      // Yield now and then: the pods share this thread with the reader.
      if (reads.sets % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

const progress = setInterval(() => {
  send({
    type: "progress",
    synced: newlySynced,
    failed: pods.filter((p) => p.record.failed !== undefined).length,
    rssBytes: process.memoryUsage.rss(),
  });
  newlySynced = [];
}, 1000);

process.on("message", (raw) => {
  const message = raw as ToWorker;
  switch (message.type) {
    case "init":
      plans = message.pods;
      expected = message.expected;
      send({ type: "ready" });
      break;
    case "start":
      startPods();
      break;
    case "reader":
      if (message.on && !readerOn) {
        readerOn = true;
        void readerLoop();
      } else readerOn = message.on;
      break;
    case "stop":
      readerOn = false;
      stop.abort();
      void Promise.all(pods.map((p) => p.done)).then(() => {
        clearInterval(progress);
        const done: FromWorker = {
          type: "done",
          pods: pods.map((p) => p.record),
          reads,
          rssBytes: process.memoryUsage.rss(),
        };
        // Disconnect only once the message is out: a large one is still being written.
        process.send?.(done, undefined, undefined, () => {
          process.disconnect();
        });
      });
      break;
  }
});
