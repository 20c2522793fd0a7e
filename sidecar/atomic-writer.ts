/**
 * Publishes a set of files atomically, as the kubelet's AtomicWriter does for
 * Secret and ConfigMap volumes (pkg/volume/util/atomic_writer.go):
 *
 *   <dir>/..2024_05_01_12_00_00.123456789/   the files of one sync (fresh dir)
 *   <dir>/..data -> ..2024_05_01_12_00_00.123456789
 *   <dir>/NAME -> ..data/NAME                 what the app opens
 *
 * A reader follows `NAME → ..data → dir`, so it sees the old set or the new
 * set, never a mix and never a partial file: the switch is one rename of the
 * `..data` symlink. The replaced directory stays until the next publish (a
 * reader may be half-way through a path into it), so a failure (or a crash)
 * at any step leaves the previous set in place. A failed publish removes what
 * it wrote, and each publish first removes what a crashed one left, so on a
 * full tmpfs the room comes back as soon as the set fits again.
 *
 * The status file (`..status.json`, {@link STATUS_FILE}) lives in the set's
 * directory beside the files and is linked like them, so `..data` always
 * shows one set and the status that describes it. A changed set gets its
 * status in the new directory, swapped in with it; an unchanged set, or a
 * failed refresh ({@link writeStatus}), gets a new status renamed over the
 * old one inside the current directory: the files and `..data` are not
 * touched, so an app that watches `..data` sees a swap only when a file
 * changed, and a failure never costs a file.
 *
 * Every file system call is synchronous: the sidecar has nothing else to do
 * while it publishes, its output is a tmpfs where each call takes
 * microseconds, and a threadpool round trip per call cost 4–9 ms per 100
 * files (bench/sidecar); it also keeps `fs/promises` and the threadpool out
 * of the process.
 */
import { randomInt } from "node:crypto";
import {
  chmodSync,
  closeSync,
  fchmodSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statfsSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { AkvError, ErrorCode } from "../common/errors.ts";
import { Injected } from "../common/names.ts";
import { parseFileName } from "../common/refs.ts";

/** The symlink the probe checks and every visible name goes through. */
export const DATA_LINK = "..data";
const DATA_TMP = "..data_tmp";
const LINK_TMP_PREFIX = "..link_tmp.";
const TS_DIR = /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d+$/;
/**
 * The status file's name, in the set's directory and as a visible link. It
 * starts with `..`, which no user file name may (`parseFileName`).
 */
export const STATUS_FILE = Injected.statusFile;
const STATUS_TMP = `${STATUS_FILE}.tmp`;
/** The status holds no value: readable by every app user, whatever the files' mode. */
const STATUS_MODE = 0o644;

/** The steps of a publish, for fault injection in tests. */
export type PublishStep = "write" | "swap" | "link" | "cleanup";

/** Options of {@link publishFiles}. */
export interface PublishOptions {
  /** Permission bits of every file (e.g. 0o644). */
  readonly mode: number;
  /** The clock, for the directory's timestamp. */
  readonly now: Date;
  /** Called before each step; tests throw from it to simulate a crash there. */
  readonly beforeStep?: (step: PublishStep) => void | Promise<void>;
  /**
   * The status file's content ({@link STATUS_FILE}), published with the
   * files: in the new directory when they changed, else renamed over the
   * current one. Omitted: no status is written.
   */
  readonly status?: Uint8Array | undefined;
}

/** What a publish did. */
export interface PublishResult {
  /** False when the files were already exactly these (nothing was written). */
  readonly changed: boolean;
  /** The timestamped directory now behind `..data`. */
  readonly dataDir: string;
  /**
   * True when a set was there before this publish (written by this process or
   * by an earlier run of the container, the volume outliving it): the app may
   * already be reading the files.
   */
  readonly replaced: boolean;
}

/**
 * Publishes `files` (name → content) into `dir` atomically, or does nothing
 * when the published set already has exactly these names, contents and mode.
 * @throws {AkvError} `PUBLISH_FAILED` (the previous set stays as it was, and
 *   nothing this publish wrote is left behind).
 */
export async function publishFiles(
  dir: string,
  files: ReadonlyMap<string, Uint8Array>,
  options: PublishOptions,
): Promise<PublishResult> {
  refuseBadNames(files);
  try {
    ensureOutputDir(dir);
    const current = readCurrent(dir);
    // First, so that what a crashed publish left, and the set before the
    // current one, give their room to the new set on a size-limited tmpfs.
    removeLeftovers(dir, current);
    if (current !== undefined && isSame(join(dir, current), files, options.mode)) {
      if (options.status !== undefined) replaceStatus(join(dir, current), options.status);
      // Repair links of a crashed publish even when nothing changed.
      linkNames(dir, files, options.status !== undefined);
      removeStaleLinks(dir, files);
      return { changed: false, dataDir: current, replaced: true };
    }
    return { ...(await writeAndSwap(dir, files, options)), replaced: current !== undefined };
  } catch (cause) {
    if (cause instanceof AkvError) throw cause;
    throw new AkvError(
      ErrorCode.PUBLISH_FAILED,
      `cannot publish ${files.size} file(s) to ${dir} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}); the previous files stay`,
      { cause },
    );
  }
}

/**
 * Writes a new status into the published set, beside files that stay as they
 * are: after a failed refresh the status says so, and the last good files are
 * still there. The new status is renamed over the old one, so a reader sees
 * one or the other, whole. Returns false, writing nothing, before the first
 * publish: there is no set for a status to describe yet.
 * @throws {AkvError} `PUBLISH_FAILED` (the old status and every file stay).
 */
export function writeStatus(dir: string, status: Uint8Array): boolean {
  try {
    const current = readCurrent(dir);
    if (current === undefined) return false;
    replaceStatus(join(dir, current), status);
    linkStatus(dir);
    return true;
  } catch (cause) {
    throw new AkvError(
      ErrorCode.PUBLISH_FAILED,
      `cannot write the status file in ${dir} (${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}); the files stay`,
      { cause },
    );
  }
}

/** Renames a fresh status over the one in the set's directory (what a crashed write left is replaced). */
function replaceStatus(dataDir: string, status: Uint8Array): void {
  const tmp = join(dataDir, STATUS_TMP);
  rmSync(tmp, { force: true });
  try {
    writeDurably(tmp, status, STATUS_MODE);
    renameSync(tmp, join(dataDir, STATUS_FILE));
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
  syncDir(dataDir);
}

/** The writer checks names itself: a name like `..data` or `../x` would replace its own links or escape `dir`. */
function refuseBadNames(files: ReadonlyMap<string, Uint8Array>): void {
  for (const name of files.keys()) {
    const parsed = parseFileName(name);
    if (!parsed.ok)
      throw new AkvError(ErrorCode.PUBLISH_FAILED, `cannot publish '${name}': ${parsed.expected}`);
  }
}

/**
 * Writes a new timestamped set, swaps `..data` to it and links the names.
 * The set it replaces stays until the next publish: an app that resolved
 * `..data` just before the swap may still be looking its file up in that
 * folder, and removing it at once (as the kubelet does) makes that open fail
 * with ENOENT now and then (seen by the concurrent reader of the tests).
 * A failure before the swap removes what this publish wrote, so a publish that
 * does not fit on the tmpfs leaves the room it took (else every later publish
 * fails with ENOSPC too).
 */
async function writeAndSwap(
  dir: string,
  files: ReadonlyMap<string, Uint8Array>,
  options: PublishOptions,
): Promise<Omit<PublishResult, "replaced">> {
  const step = async (s: PublishStep): Promise<void> => {
    await options.beforeStep?.(s);
  };
  let tsDir: string | undefined;
  let swapped = false;
  try {
    await step("write");
    tsDir = createTimestampedDir(dir, options.now);
    for (const [name, content] of files)
      writeDurably(join(dir, tsDir, name), content, options.mode);
    if (options.status !== undefined)
      writeDurably(join(dir, tsDir, STATUS_FILE), options.status, STATUS_MODE);
    syncDir(join(dir, tsDir));

    await step("swap");
    rmSync(join(dir, DATA_TMP), { force: true });
    symlinkSync(tsDir, join(dir, DATA_TMP));
    renameSync(join(dir, DATA_TMP), join(dir, DATA_LINK));
    swapped = true;
    syncDir(dir);

    await step("link");
    linkNames(dir, files, options.status !== undefined);

    await step("cleanup");
    removeStaleLinks(dir, files);
    return { changed: true, dataDir: tsDir };
  } catch (error) {
    removeOwnWrites(dir, swapped ? undefined : tsDir);
    throw error;
  }
}

/**
 * Best effort: the publish already failed, and that error is the one to
 * report; whatever stays is removed by the next publish.
 * @param tsDir the set written, when `..data` does not point to it.
 */
function removeOwnWrites(dir: string, tsDir: string | undefined): void {
  const remove = (name: string): void => {
    try {
      rmSync(join(dir, name), { recursive: true, force: true });
    } catch {
      // left for the next publish
    }
  };
  if (tsDir !== undefined) remove(tsDir);
  remove(DATA_TMP);
  try {
    for (const name of readdirSync(dir)) if (name.startsWith(LINK_TMP_PREFIX)) remove(name);
  } catch {
    // left for the next publish
  }
}

/**
 * The size of the file system that holds `dir` (total blocks × block size).
 * On the sidecar's Memory emptyDir that is the volume's `sizeLimit`, which the
 * kubelet mounts the tmpfs with: no rendered set larger than this can be
 * published. Before the first publish `dir` does not exist yet, so its
 * nearest existing parent is asked. Undefined when nothing can be asked.
 */
export function readVolumeBytes(dir: string): number | undefined {
  for (let path = dir; ; path = dirname(path)) {
    try {
      const fs = statfsSync(path);
      return fs.blocks * fs.bsize;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT" || dirname(path) === path)
        return undefined;
    }
  }
}

/**
 * Makes the output folder on first use, 0755 and the sidecar's own. Apps mount
 * this folder, never the volume's root: the kubelet mounts a Memory emptyDir
 * sticky and world-writable (1777), and where `fs.protected_symlinks=1` (every
 * systemd node) only a link's owner may follow a link in such a folder, so
 * links there would be closed to every app user. In a folder that is not
 * world-writable the links are followed by anyone who can enter it.
 */
function ensureOutputDir(dir: string): void {
  try {
    mkdirSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return;
    if (code !== "ENOENT") throw error;
    mkdirSync(dir, { recursive: true });
  }
  setDirMode(dir);
}

/**
 * 0755, whatever the umask: the app's user must traverse it (the files carry
 * the mode that matters). Keeps the setgid bit inherited from an fsGroup
 * volume: without it the files would not get the pod's group, and a 0440
 * file would be closed to the app.
 */
function setDirMode(path: string): void {
  chmodSync(path, (statSync(path).mode & 0o2000) | 0o755);
}

/** The directory `..data` points to, or undefined before the first publish. */
function readCurrent(dir: string): string | undefined {
  try {
    return readlinkSync(join(dir, DATA_LINK));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

function isSame(dataDir: string, files: ReadonlyMap<string, Uint8Array>, mode: number): boolean {
  let names: string[];
  try {
    names = readdirSync(dataDir);
  } catch {
    return false;
  }
  // `..` names are the writer's own (the status): no user file is named so.
  names = names.filter((n) => !n.startsWith(".."));
  if (names.length !== files.size || names.some((n) => !files.has(n))) return false;
  return [...files].every(([name, content]) => {
    const path = join(dataDir, name);
    return (
      (statSync(path).mode & 0o777) === mode && Buffer.compare(readFileSync(path), content) === 0
    );
  });
}

/** `..YYYY_MM_DD_HH_MM_SS.N`, created exclusively (a collision just draws another N). */
function createTimestampedDir(dir: string, now: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, "0");
  const ts = `${p(now.getUTCFullYear(), 4)}_${p(now.getUTCMonth() + 1)}_${p(now.getUTCDate())}_${p(now.getUTCHours())}_${p(now.getUTCMinutes())}_${p(now.getUTCSeconds())}`;
  for (;;) {
    const name = `..${ts}.${randomInt(1_000_000_000)}`;
    try {
      const path = join(dir, name);
      mkdirSync(path, { mode: 0o755 });
      setDirMode(path);
      return name;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
  }
}

function writeDurably(path: string, content: Uint8Array, mode: number): void {
  const fd = openSync(path, "wx", mode);
  try {
    writeFileSync(fd, content);
    // open()'s mode is masked by the umask; the user asked for exactly this one.
    fchmodSync(fd, mode);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Makes each visible name a symlink `NAME → ..data/NAME` (replacing whatever
 * else is there), and the status's when `status` is true.
 */
function linkNames(dir: string, files: ReadonlyMap<string, Uint8Array>, status: boolean): void {
  for (const name of files.keys()) linkName(dir, name);
  if (status) linkStatus(dir);
}

function linkStatus(dir: string): void {
  linkName(dir, STATUS_FILE);
}

function linkName(dir: string, name: string): void {
  const target = `${DATA_LINK}/${name}`;
  const path = join(dir, name);
  try {
    if (readlinkSync(path) === target) return;
  } catch {
    // missing or not a symlink: (re)create below
  }
  const tmp = join(dir, `${LINK_TMP_PREFIX}${name}`);
  rmSync(tmp, { force: true });
  symlinkSync(target, tmp);
  renameSync(tmp, path);
}

/**
 * Removes every timestamped folder but `current` (the set before it, and any
 * a crashed publish left) and the temporary names of a crashed publish.
 */
function removeLeftovers(dir: string, current: string | undefined): void {
  for (const name of readdirSync(dir)) {
    if (name === current) continue;
    if (TS_DIR.test(name) || name === DATA_TMP || name.startsWith(LINK_TMP_PREFIX))
      rmSync(join(dir, name), { recursive: true, force: true });
  }
}

/** Removes visible links no longer published; only our own links (into `..data`) are ours to remove. */
function removeStaleLinks(dir: string, files: ReadonlyMap<string, Uint8Array>): void {
  for (const name of readdirSync(dir)) {
    if (name.startsWith("..") || files.has(name)) continue;
    const path = join(dir, name);
    if (lstatSync(path).isSymbolicLink() && readlinkSync(path).startsWith(`${DATA_LINK}/`))
      unlinkSync(path);
  }
}
