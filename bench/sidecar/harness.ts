/** What the sidecar benches (run.ts, floor.ts) share: placement on the CPUs and medians. */
import { execFileSync } from "node:child_process";
import { cpus } from "node:os";

/**
 * Pins this process (which hosts the mocks) to CPU 0 and returns the prefix
 * that starts a child on the last CPU, so the mocks' TLS and token work does
 * not compete with the measured process for a core; with a note saying what
 * was done. Nothing is pinned with `enabled` false, one CPU or no taskset.
 */
export function choosePinning(enabled = true): { child: string[]; note: string } {
  const n = cpus().length;
  if (!enabled) return { child: [], note: "not pinned (--no-pin)" };
  if (n < 2) return { child: [], note: "not pinned (one CPU)" };
  try {
    execFileSync("taskset", ["-a", "-pc", "0", String(process.pid)], { stdio: "ignore" });
  } catch {
    return { child: [], note: "not pinned (no taskset)" };
  }
  const cpu = String(n - 1);
  return {
    child: ["taskset", "-c", cpu],
    note: `sidecar pinned to CPU ${cpu}, bench process and mocks to CPU 0 (taskset)`,
  };
}
