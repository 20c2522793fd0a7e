/**
 * How the webhook benches run a server process as a pod would: in a cgroup
 * v1 memory group with the chart's limit (Node sizes its heap from it), and
 * read its memory from `/proc`.
 */
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";

/** A memory group of `mib` MiB, or undefined where none can be made (not root, cgroup v2 only). */
export interface MemoryGroup {
  readonly path: string | undefined;
  /** How the results say it: "in a cgroup with … MiB" or "with no memory limit …". */
  readonly description: string;
  remove(): Promise<void>;
}

/** Makes a cgroup v1 memory group with the limit; without one the server runs unconstrained and the description says so. */
export async function makeMemoryGroup(name: string, mib: number): Promise<MemoryGroup> {
  const path = `/sys/fs/cgroup/memory/akv-${name}-bench-${String(process.pid)}`;
  try {
    await mkdir(path);
    await writeFile(join(path, "memory.limit_in_bytes"), String(mib * 2 ** 20));
  } catch {
    return {
      path: undefined,
      description: "with no memory limit (no cgroup could be made)",
      remove: () => Promise.resolve(),
    };
  }
  return {
    path,
    description: `in a cgroup with the chart's memory limit of ${String(mib)} MiB`,
    remove: () => rmdir(path).catch(() => undefined),
  };
}

/**
 * Spawns `argv` inside the group: a shell joins it, then becomes the
 * process, which sees the limit from its start.
 */
export function spawnInGroup(
  group: MemoryGroup,
  argv: readonly string[],
  options: { env?: NodeJS.ProcessEnv; stderr?: "inherit" | "ignore" } = {},
): ChildProcessByStdio<null, Readable, null> {
  const join =
    group.path === undefined ? 'exec "$@"' : `echo $$ > ${group.path}/cgroup.procs && exec "$@"`;
  return spawn("sh", ["-c", join, "sh", ...argv], {
    stdio: ["ignore", "pipe", options.stderr ?? "inherit"],
    ...(options.env === undefined ? {} : { env: options.env }),
  });
}

/** A `/proc/PID/status` memory figure in MiB: `VmRSS` now, `VmHWM` the peak. */
export async function procMemoryMiB(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const status = await readFile(`/proc/${String(pid)}/status`, "utf8");
  const kb = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1];
  return Number(kb ?? Number.NaN) / 1024;
}
