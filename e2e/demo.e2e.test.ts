/**
 * `npm run demo` as a person runs it: `node e2e/demo.ts` (after the build
 * that `npm run test:e2e` did) runs to completion and shows what it
 * promises; interrupted with Ctrl-C (SIGINT) halfway, it stops at once. In
 * both cases every process it started, watched while it ran, is gone.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "./host/repo.ts";

/** A process by pid and start time (a pid alone may be reused). */
interface Seen {
  readonly pid: number;
  readonly start: string;
}

function stat(pid: number): { state: string; ppid: number; start: string } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command (which may hold spaces) in parentheses.
    const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { state: rest[0] ?? "", ppid: Number(rest[1]), start: rest[19] ?? "" };
  } catch {
    return undefined;
  }
}

function command(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
  } catch {
    return "";
  }
}

/** Every process descended from `root`, now. */
function descendants(root: number): Seen[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const s = stat(pid);
    if (s === undefined) continue;
    children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  }
  const out: Seen[] = [];
  const queue = [...(children.get(root) ?? [])];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    // Only /proc/<pid>/stat here: reading a command line can block while a
    // large binary is being exec'd, and the sampler would miss processes.
    const s = stat(pid);
    if (s !== undefined) out.push({ pid, start: s.start });
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** Still running: same process (start time) and not a zombie waiting for its reaper. */
const alive = (p: Seen): boolean => {
  const now = stat(p.pid);
  return now?.start === p.start && now.state !== "Z";
};

/** The demo's run folder, which etcd's and kube-apiserver's command lines name. */
function runFolderOf(output: string): string {
  const folder = /run folder: (\S+)/.exec(output)?.[1];
  if (folder === undefined) throw new Error(`the demo printed no run folder:\n${output}`);
  return folder;
}

/**
 * Live processes whose command line mentions `text`. Sampling a process tree
 * can miss a process (reading a command line waits while a large binary is
 * being exec'd), so this looks at every process there is.
 */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const s = stat(pid);
    const cmd = command(pid);
    if (s !== undefined && s.state !== "Z" && cmd.includes(text)) found.push(`${pid} ${cmd}`);
  }
  return found;
}

/** The processes of `seen` still running, with their command lines (for the failure message). */
function survivors(seen: readonly Seen[]): string[] {
  return seen.filter(alive).map((p) => `${p.pid} ${command(p.pid)}`);
}

/** Runs the demo, watching its process tree; resolves with its output and every process seen. */
async function runDemo(
  interruptWhen?: (output: string) => boolean,
): Promise<{ code: number | null; output: string; seen: Seen[]; seconds: number }> {
  const started = performance.now();
  const child: ChildProcess = spawn(process.execPath, [join(REPO_ROOT, "e2e/demo.ts")], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let interrupted = false;
  const seen = new Map<string, Seen>();
  const watch = setInterval(() => {
    if (child.pid === undefined) return;
    for (const p of descendants(child.pid)) seen.set(`${p.pid}:${p.start}`, p);
  }, 50);
  const onData = (chunk: Buffer): void => {
    output += chunk.toString("utf8");
    if (!interrupted && interruptWhen?.(output) === true) {
      interrupted = true;
      child.kill("SIGINT");
    }
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const code = await new Promise<number | null>((resolve) => {
    child.once("exit", (c) => {
      resolve(c);
    });
  });
  clearInterval(watch);
  return { code, output, seen: [...seen.values()], seconds: (performance.now() - started) / 1000 };
}

describe("npm run demo", () => {
  it("runs to completion, shows the injected pod and the app's files, and leaves nothing running", async () => {
    const run = await runDemo();
    console.log(`demo ran in ${run.seconds.toFixed(1)} s; processes seen: ${run.seen.length}`);
    expect(run.code, run.output).toBe(0);
    expect(run.output).toContain("akv-injector.io/status: injected");
    expect(run.output).toContain("name: akv-injector");
    expect(run.output).toContain("cat /mnt/secrets/my-secret\n      Hello!\n");
    expect(run.output).toContain("Hello again!");
    expect(run.output).toContain("stopped: nothing the demo started is running");
    // etcd, kube-apiserver, the mocks' helpers, webhook and sidecar containers, holders.
    expect(run.seen.length).toBeGreaterThan(5);
    expect(survivors(run.seen)).toEqual([]);
    expect(processesMentioning(runFolderOf(run.output))).toEqual([]);
  });

  it("stops everything on Ctrl-C halfway", async () => {
    const run = await runDemo((out) => out.includes("==> the test kubelet runs the pod"));
    expect(run.code, run.output).toBe(130);
    expect(run.output).toContain("SIGINT: interrupted");
    expect(run.seen.length).toBeGreaterThan(2);
    // Give the kernel a moment to reap what the parent-death signal killed.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(survivors(run.seen)).toEqual([]);
    expect(processesMentioning(runFolderOf(run.output))).toEqual([]);
  });
});
