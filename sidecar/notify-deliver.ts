/**
 * The two ways a notification reaches an app container: an HTTP POST on the
 * pod's loopback, or a signal to the container's main process in the shared
 * PID namespace.
 *
 * Finding the main process. With `shareProcessNamespace`, the pod's first
 * process (pid 1) is the pause container; each container's own first
 * process was started by the container runtime, outside the namespace, so
 * its `PPid` reads 0 there. The webhook sets `AKV_INJECTOR_CONTAINER=<name>`
 * in each signalled container's environment, which `/proc/<pid>/environ`
 * shows (the environment the process was started with). So a container's
 * main process is one with `PPid: 0`, not pid 1, not this process, whose
 * environment carries that marker. Limits: a main process started without
 * the environment (an entrypoint that runs `env -i`, or `exec`s its app with
 * a fresh environment) is not found; a wrapper shell that forks its app
 * (no `exec`) gets the signal instead of the app; a process of another user,
 * or one that made itself non-dumpable (a setuid program), cannot be read
 * and is skipped; Linux only.
 */
import { readdirSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { Injected } from "../common/names.ts";
import type { NotifyTarget } from "../common/notify.ts";
import type { Deliver, NotifyChange } from "./notifier.ts";

/** The most bytes of a response read (then dropped): an answer is only its status. */
const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * POSTs the change as JSON (`files`, `syncTime`) to `url`; resolves with
 * `HTTP <status>` on 2xx. Redirects are not followed: the URL was checked to
 * be loopback, a `Location` was not.
 */
export function postNotification(
  url: string,
  change: NotifyChange,
  signal: AbortSignal,
): Promise<string> {
  const body = JSON.stringify({
    files: change.files,
    syncTime: new Date(change.syncTime).toISOString(),
  });
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        agent: false,
        signal,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
          "user-agent": "akv-injector-sidecar",
        },
      },
      (res) => {
        let bytes = 0;
        res.on("data", (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > MAX_RESPONSE_BYTES) res.destroy();
        });
        res.on("error", () => undefined);
        res.on("close", () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(`HTTP ${status}`);
          else reject(new Error(`HTTP ${status} from ${url}`));
        });
      },
    );
    req.on("error", (error: NodeJS.ErrnoException) => {
      const why = signal.aborted ? "no answer in time" : (error.code ?? error.message);
      reject(new Error(`POST ${url}: ${why}`));
    });
    req.end(body);
  });
}

/**
 * The pids of `container`'s main process (normally one), read from `procDir`.
 * @param selfPid this process, which has PPid 0 in its own container too.
 */
export function findMainProcesses(procDir: string, container: string, selfPid: number): number[] {
  const marker = `${Injected.containerEnv}=${container}`;
  const found: number[] = [];
  for (const entry of readdirSync(procDir)) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === 1 || pid === selfPid) continue;
    try {
      const status = readFileSync(join(procDir, entry, "status"), "utf8");
      if (/^PPid:\s*(\d+)$/m.exec(status)?.[1] !== "0") continue;
      const environ = readFileSync(join(procDir, entry, "environ"), "latin1");
      if (environ.split("\0").includes(marker)) found.push(pid);
    } catch {
      // Gone meanwhile, another user's, or not dumpable: not ours to signal.
    }
  }
  return found;
}

/** How to signal, injectable for tests. */
export interface SignalDeps {
  readonly procDir: string;
  readonly selfPid: number;
  readonly kill: (pid: number, signal: NodeJS.Signals) => void;
}

/** Sends `signal` to the container's main process; resolves with `SIGHUP to pid 12`. */
export function signalContainer(
  container: string,
  signal: NodeJS.Signals,
  deps: SignalDeps,
): string {
  const pids = findMainProcesses(deps.procDir, container, deps.selfPid);
  if (pids.length === 0) {
    throw new Error(
      `no main process of container ${container} found in ${deps.procDir} (PPid 0 with ${Injected.containerEnv}=${container}): not started yet, restarting, or started without its environment`,
    );
  }
  for (const pid of pids) {
    try {
      deps.kill(pid, signal);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new Error(`${signal} to pid ${pid} of container ${container}: ${code}`);
    }
  }
  return `${signal} to pid ${pids.join(", ")}`;
}

/** The production {@link Deliver}: HTTP or signal, as the target says. */
export function createDeliver(deps: SignalDeps): Deliver {
  return (target: NotifyTarget, change, signal) => {
    if (target.action.kind === "http") return postNotification(target.action.url, change, signal);
    try {
      return Promise.resolve(signalContainer(target.container, target.action.signal, deps));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  };
}
