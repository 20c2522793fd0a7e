/**
 * Child processes of the e2e harness (etcd, kube-apiserver, the webhook, the
 * sidecars, the mocks) that can never outlive the run:
 *
 * - each starts in its own process group, so a stop reaches whatever it forked;
 * - each is started through `setpriv --pdeathsig SIGKILL` where util-linux has
 *   it, so the kernel kills it when the Node process that started it dies,
 *   even by SIGKILL, a crashed vitest worker or a closed terminal;
 * - every live one is killed, group and all, when this process exits normally
 *   or through an uncaught exception;
 * - stdout and stderr go straight to a log file (the child holds the file
 *   descriptor, so its output is kept even when we stop reading), and the
 *   suite scans those files for secrets at the end.
 *
 * The control plane, the webhook's pods and the test kubelet's containers all
 * start here, which is why this lives under `e2e/host/` and not with any one
 * of them: the harness has one way to run a process on this machine.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import {
  closeSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { readFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** How a process ended. */
export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface StartOptions {
  /** Short name for messages and the log file (`etcd`, `kube-apiserver`, `webhook-a`). */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** The complete environment (nothing is inherited implicitly). */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Folder of the log file `<name>.log`; stdout and stderr are appended to it. */
  readonly logDir: string;
}

/** A running child: its pid (also its process group id), its log and its end. */
export interface ManagedProcess extends AsyncDisposable {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Settles when the process has exited; never rejects. */
  readonly exited: Promise<Exit>;
  /** The exit, once it happened. */
  exit(): Exit | undefined;
  /** The log so far. */
  readLog(): Promise<string>;
  /**
   * SIGTERM to the whole group, SIGKILL after `graceMs`; resolves once the
   * process itself has exited. Safe to call twice.
   */
  stop(graceMs?: number): Promise<Exit>;
}

const live = new Set<number>();
let exitHookInstalled = false;

/**
 * Kills every live process group synchronously. Runs on `exit`, where nothing
 * asynchronous can happen any more; pdeathsig covers the deaths that skip it.
 */
function killAllSync(): void {
  for (const pgid of live) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  live.clear();
}

let setprivPath: string | null | undefined;

/** `setpriv` from util-linux if it is on PATH and knows `--pdeathsig` (2.33+). */
export function findSetpriv(): string | null {
  if (setprivPath !== undefined) return setprivPath;
  setprivPath = null;
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(delimiter)) {
    const candidate = join(dir, "setpriv");
    if (!existsSync(candidate)) continue;
    const help = spawnSync(candidate, ["--help"], { encoding: "utf8" });
    if (help.stdout.includes("--pdeathsig")) setprivPath = candidate;
    break;
  }
  return setprivPath;
}

/**
 * The command line that runs `command args` so that it dies with us:
 * `setpriv --pdeathsig SIGKILL -- command args` where possible. setpriv execs
 * the command, so the pid we get is the command's own.
 */
export function withParentDeathSignal(
  command: string,
  args: readonly string[],
): { command: string; args: string[] } {
  const setpriv = findSetpriv();
  return setpriv === null
    ? { command, args: [...args] }
    : { command: setpriv, args: ["--pdeathsig", "SIGKILL", "--", command, ...args] };
}

/** Starts a process in its own group with its output in `<logDir>/<name>.log`. */
export function startProcess(options: StartOptions): ManagedProcess {
  if (!exitHookInstalled) {
    process.on("exit", killAllSync);
    exitHookInstalled = true;
  }
  const logFile = join(options.logDir, `${options.name}.log`);
  const fd = openSync(logFile, "a");
  const line = withParentDeathSignal(options.command, options.args);
  let child: ChildProcess;
  try {
    child = spawn(line.command, line.args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ["ignore", fd, fd],
      detached: true,
    });
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) {
    throw new Error(`could not start ${options.name} (${options.command})`);
  }
  live.add(pid);
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => {
    child.once("exit", (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
    child.once("error", () => {
      exit = { code: null, signal: null };
      resolve(exit);
    });
  });
  // Keep the group registered until it is stopped: a daemonized grandchild
  // may outlive the leader.
  const stop = async (graceMs = 5000): Promise<Exit> => {
    signalGroup(pid, "SIGTERM");
    // A cancelled timer: a pending one would keep the event loop (and a demo) alive.
    const timer = new AbortController();
    const first = await Promise.race([
      exited,
      sleep(graceMs, undefined, { signal: timer.signal }).catch(() => undefined),
    ]);
    timer.abort();
    signalGroup(pid, "SIGKILL");
    live.delete(pid);
    return first ?? exited;
  };
  return {
    name: options.name,
    pid,
    logFile,
    exited,
    exit: () => exit,
    readLog: () => readFile(logFile, "utf8"),
    stop,
    [Symbol.asyncDispose]: async () => {
      await stop();
    },
  };
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // The group is empty already.
  }
}

/** Whether any process of the group `pgid` is still alive. */
export function isGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs a short command to completion, streaming its stderr and stdout lines
 * to `onLine` (build progress), and resolves with its stdout. Rejects with
 * the last lines of output when it fails.
 */
export async function runStreaming(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; onLine?: (line: string) => void } = {},
): Promise<string> {
  const line = withParentDeathSignal(command, args);
  const child = spawn(line.command, line.args, {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  if (child.pid !== undefined) live.add(child.pid);
  let stdout = "";
  const tail: string[] = [];
  const forward = (chunk: Buffer, keep: boolean): void => {
    const text = chunk.toString("utf8");
    if (keep) stdout += text;
    for (const l of text.split("\n")) {
      if (l.trim() === "") continue;
      tail.push(l);
      if (tail.length > 40) tail.shift();
      if (!keep) options.onLine?.(l);
    }
  };
  child.stdout.on("data", (c: Buffer) => {
    forward(c, true);
  });
  child.stderr.on("data", (c: Buffer) => {
    forward(c, false);
  });
  const [code, signal] = (await once(child, "close")) as [number | null, NodeJS.Signals | null];
  if (child.pid !== undefined) live.delete(child.pid);
  if (code !== 0) {
    throw new Error(
      `${command} ${args.join(" ")} failed (${signal ?? `exit ${code}`}):\n${tail.join("\n")}`,
    );
  }
  return stdout;
}

/** What a short command printed and how it ended (`code` is null when it was killed or never ran). */
export interface CommandOutput {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a short command to completion with a timeout (SIGKILL when it is
 * over), collecting its output. Never rejects: a command that cannot start
 * resolves with `code: null` and the error in `stderr`.
 */
export function runToCompletion(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
  cwd?: string,
): Promise<CommandOutput> {
  const line = withParentDeathSignal(command, args);
  return new Promise((resolve) => {
    const child = spawn(line.command, line.args, {
      env,
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
      killSignal: "SIGKILL",
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.once("error", (error) => {
      resolve({ code: null, stdout, stderr: stderr + String(error) });
    });
    child.once("close", (code) => {
      resolve({ code, stdout, stderr });
    });
  });
}

/** An exit in words, for messages: `exit code 2`, `signal SIGKILL`. */
export function describeExit(exit: Exit): string {
  return exit.signal === null ? `exit code ${exit.code ?? "?"}` : `signal ${exit.signal}`;
}

/** The last lines of a process's log under a header naming the file, for messages. */
export async function logTail(proc: ManagedProcess, lines = 30): Promise<string> {
  try {
    const log = await proc.readLog();
    return `--- last lines of ${proc.logFile} ---\n${log.trimEnd().split("\n").slice(-lines).join("\n")}`;
  } catch {
    return `(no log at ${proc.logFile})`;
  }
}

/** This process's identity that survives pid reuse: pid and start time (clock ticks since boot). */
function selfIdentity(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const start = text.slice(text.lastIndexOf(")") + 2).split(" ")[19];
    return start === undefined ? undefined : `${pid} ${start}`;
  } catch {
    return undefined;
  }
}

const OWNER_FILE = ".akv-e2e-owner";

/** Marks a scratch folder as this process's, so a later run can tell when it is orphaned. */
export function markOwned(dir: string): void {
  writeFileSync(join(dir, OWNER_FILE), selfIdentity(process.pid) ?? String(process.pid));
}

/**
 * Removes scratch folders `<base>/<prefix>*` whose owner process is gone: a
 * run that was SIGKILLed had its processes killed by the kernel
 * (pdeathsig), but nothing could remove its folders then.
 */
export function sweepOrphans(base: string, prefix: string): void {
  let entries: string[];
  try {
    entries = readdirSync(base).filter((e) => e.startsWith(prefix));
  } catch {
    return;
  }
  for (const entry of entries) {
    const dir = join(base, entry);
    let owner: string;
    try {
      owner = readFileSync(join(dir, OWNER_FILE), "utf8").trim();
    } catch {
      continue; // Not ours, or still being set up.
    }
    const pid = Number(owner.split(" ")[0]);
    if (Number.isInteger(pid) && selfIdentity(pid) === owner) continue;
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Gives a scratch folder up: a later sweep leaves it alone (a run folder kept for a look). */
export function releaseOwned(dir: string): void {
  rmSync(join(dir, OWNER_FILE), { force: true });
}
