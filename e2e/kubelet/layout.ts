/**
 * How the test kubelet lays out a pod's volumes and containers on this
 * machine. Two layouts, one interface:
 *
 * - `namespace` (root with mount namespaces, as here and in CI): a pod
 *   sandbox is a process in a private mount namespace, like the pause
 *   container; volumes are real tmpfs mounts in it; each container gets its
 *   own nested mount namespace with its volumes bind-mounted at the
 *   container's real paths (read-only where the spec says), a read-only root
 *   filesystem where its security context asks for one, and its numeric
 *   user. Nothing is mounted in the machine's own namespace, and everything
 *   vanishes with the processes.
 * - `folders` (anywhere else): volumes are plain folders and the paths in a
 *   container's env and args are rewritten to point into them.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Which layout to use; `auto` picks `namespace` where it works. */
export type LayoutKind = "namespace" | "folders";

let detected: LayoutKind | undefined;

/**
 * Tries, once per process, what the namespace layout needs: a private mount
 * namespace in which a tmpfs mounts. `AKV_E2E_KUBELET_LAYOUT` forces one.
 */
export async function detectLayout(): Promise<LayoutKind> {
  const forced = process.env.AKV_E2E_KUBELET_LAYOUT;
  if (forced === "namespace" || forced === "folders") return forced;
  if (detected !== undefined) return detected;
  const dir = await mkdtemp(join(tmpdir(), "akv-kubelet-probe-"));
  try {
    const probe = spawnSync(
      "unshare",
      [
        "-m",
        "--propagation",
        "private",
        "--",
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=64k",
        "tmpfs",
        dir,
      ],
      { stdio: "ignore", timeout: 10_000 },
    );
    const tools = ["nsenter", "setpriv"].every(
      (tool) => spawnSync(tool, ["--version"], { stdio: "ignore" }).status === 0,
    );
    detected = probe.status === 0 && tools ? "namespace" : "folders";
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return detected;
}

/** Quotes one word for `sh -c`. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'"'"'`)}'`;
}

/** Parses a Kubernetes quantity (`4Mi`, `1G`, `512k`, `1e6`) into bytes, rounded up. */
export function parseQuantityBytes(text: string): number {
  const match = /^([0-9]+(?:\.[0-9]+)?(?:[eE][0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(text.trim());
  if (match === null) throw new Error(`not a Kubernetes quantity: '${text}'`);
  const factors: Record<string, number> = {
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    Ti: 1024 ** 4,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
  };
  return Math.ceil(Number(match[1]) * (match[2] === undefined ? 1 : (factors[match[2]] ?? 1)));
}
