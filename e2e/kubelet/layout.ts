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
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** Which layout to use; `auto` picks `namespace` where it works. */
export type LayoutKind = "namespace" | "folders";

let detected: LayoutKind | undefined;

/**
 * Tries, once per process, what the namespace layout needs: a private mount
 * namespace in which a tmpfs mounts, and the tools that enter it as a user.
 * `AKV_E2E_KUBELET_LAYOUT` forces one.
 */
export function detectLayout(): Promise<LayoutKind> {
  const forced = process.env.AKV_E2E_KUBELET_LAYOUT;
  if (forced === "namespace" || forced === "folders") return Promise.resolve(forced);
  if (detected !== undefined) return Promise.resolve(detected);
  const tools = ["nsenter", "setpriv"].every(
    (tool) => spawnSync(tool, ["--version"], { stdio: "ignore" }).status === 0,
  );
  detected = canMountTmpfs() && tools ? "namespace" : "folders";
  if (detected === "namespace") protectSymlinks();
  else if (process.env.CI === "true") {
    // The folder layout enforces no users, read-only mounts or volume modes:
    // a CI run in it would pass the suite's security checks without running them.
    throw new Error(
      "CI=true, but the test kubelet's namespace layout is not available (it needs root, unshare -m, mount -t tmpfs, nsenter and setpriv)",
    );
  }
  return Promise.resolve(detected);
}

let tmpfsAvailable: boolean | undefined;

/**
 * Whether a size-limited tmpfs mounts here in a private mount namespace
 * (root with `unshare`); tried once per process, and nothing is mounted in
 * the machine's own namespace. The sidecar's real-tmpfs tests ask too.
 */
export function canMountTmpfs(): boolean {
  if (tmpfsAvailable !== undefined) return tmpfsAvailable;
  const dir = mkdtempSync(join(tmpdir(), "akv-tmpfs-probe-"));
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
    tmpfsAvailable = probe.status === 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return tmpfsAvailable;
}

const PROTECTED_SYMLINKS = "/proc/sys/fs/protected_symlinks";

/**
 * Puts `fs.protected_symlinks=1` in force, as systemd does on every node (AKS
 * Ubuntu, Azure Linux, kind): a link in a sticky world-writable folder is
 * then followed only by its owner or the folder's owner. Without it the
 * namespace layout would hide exactly the bug that made apps unable to read
 * their files on real nodes. It is one setting for the whole machine, and
 * the machine's own default on systemd hosts.
 */
function protectSymlinks(): void {
  if (readFileSync(PROTECTED_SYMLINKS, "utf8").trim() === "1") return;
  writeFileSync(PROTECTED_SYMLINKS, "1\n");
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

/**
 * Containers run as non-root users (the images' 65532), but a checkout may
 * sit below a folder that only root may enter (a `mktemp -d` folder, /root),
 * where they could not reach the files the kubelet maps into them. In the
 * pod's mount namespace, the topmost such folder is covered by a tmpfs in
 * which the checkout's path is made again (0755) and bound to the real
 * checkout, through a bind kept in the pod's scratch folder. Nothing changes
 * outside the namespace. Returns no commands when every folder above the
 * checkout is open to others.
 * @param isOpen whether others may enter a folder (mode has o+x).
 */
export function exposeCheckoutScript(
  checkout: string,
  podDir: string,
  isOpen: (dir: string) => boolean,
): string[] {
  const above: string[] = [];
  for (let dir = dirname(checkout); ; dir = dirname(dir)) {
    above.unshift(dir);
    if (dir === dirname(dir)) break;
  }
  const closed = above.find((dir) => !isOpen(dir));
  if (closed === undefined) return [];
  if (closed === "/" || podDir === closed || podDir.startsWith(`${closed}/`)) {
    throw new Error(
      `the checkout ${checkout} sits below ${closed}, which only root may enter, and so does the pod folder ${podDir}: put the pod folders elsewhere (baseDir)`,
    );
  }
  const q = shellQuote;
  const stash = join(podDir, "checkout");
  return [
    `mkdir -p ${q(stash)}`,
    `mount --bind ${q(checkout)} ${q(stash)}`,
    `mount -t tmpfs -o mode=0755,size=1m tmpfs ${q(closed)}`,
    `mkdir -p -m 0755 ${q(checkout)}`,
    `mount --bind ${q(stash)} ${q(checkout)}`,
  ];
}
