import {
  lstat,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  realpath,
  rm,
  stat,
  writeFile,
  symlink,
} from "node:fs/promises";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import {
  DATA_LINK,
  publishFiles,
  readVolumeBytes,
  STATUS_FILE,
  writeStatus,
  type PublishStep,
} from "./atomic-writer.ts";

/**
 * Reads the published set while the main thread publishes, two ways:
 * - as an app does, opening `dir/NAME` through the visible links: once the
 *   first set exists every such read must succeed (no ENOENT window while
 *   `..data` is swapped or the old set removed), and each file must be whole;
 * - through one resolution of `..data`, both files from the same directory:
 *   they must be one set. This way may fail when the directory it resolved is
 *   removed after a later swap (the app holds no reference to it), so its
 *   failures are not counted.
 * Reports every value seen, every torn or mixed read, and every failed read.
 */
const READER = `
const { parentPort, workerData } = require("node:worker_threads");
const { readFileSync, realpathSync } = require("node:fs");
const { join } = require("node:path");
let stop = false;
parentPort.on("message", () => (stop = true));
const seen = new Set();
const bad = [];
const failed = [];
let reads = 0;
const whole = (a, b) => a.length === 10000 && a === a[0].repeat(10000) && b.length === 1;
const tick = () => {
  for (let i = 0; i < 50 && !stop; i++) {
    try {
      const a = readFileSync(join(workerData.dir, "a"), "utf8");
      const b = readFileSync(join(workerData.dir, "b"), "utf8");
      reads++;
      if (!whole(a, b)) bad.push("visible " + a.length + ":" + b);
    } catch (error) {
      failed.push(error.code ?? String(error));
    }
    let a, b;
    try {
      const data = realpathSync(join(workerData.dir, workerData.link));
      a = readFileSync(join(data, "a"), "utf8");
      b = readFileSync(join(data, "b"), "utf8");
    } catch {
      continue; // the directory it resolved was removed after a later swap
    }
    if (!whole(a, b) || b !== a[0]) bad.push("set " + a.length + ":" + b);
    seen.add(b);
  }
  if (stop) parentPort.postMessage({ seen: [...seen], bad, failed, reads });
  else setImmediate(tick);
};
parentPort.postMessage("reading");
tick();
`;

/** Makes the publish's write of one file name fail half-way with ENOSPC, as a full tmpfs does. */
const failWrite = vi.hoisted(() => ({ name: undefined as string | undefined, hits: 0 }));
vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const paths = await import("node:path");
  const failing = new Set<number>();
  const openSync = ((path: string, flags: string, mode?: number) => {
    const fd = fs.openSync(path, flags, mode);
    if (flags === "wx" && paths.basename(path) === failWrite.name) {
      failWrite.hits++;
      failing.add(fd);
    }
    return fd;
  }) as typeof fs.openSync;
  const writeFileSync = ((file: number | string, data: Uint8Array, options?: unknown) => {
    if (typeof file !== "number" || !failing.has(file)) {
      fs.writeFileSync(file, data, options as never);
      return;
    }
    fs.writeFileSync(file, data.subarray(0, data.length >> 1));
    throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
  }) as typeof fs.writeFileSync;
  const closeSync = ((fd: number) => {
    failing.delete(fd);
    fs.closeSync(fd);
  }) as typeof fs.closeSync;
  return {
    ...fs,
    default: { ...fs, openSync, writeFileSync, closeSync },
    openSync,
    writeFileSync,
    closeSync,
  };
});

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "akv-writer-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const files = (o: Record<string, string>): Map<string, Uint8Array> =>
  new Map(Object.entries(o).map(([k, v]) => [k, Buffer.from(v)]));
const now = new Date(Date.UTC(2025, 4, 6, 7, 8, 9));

async function visible(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of await readdir(dir)) {
    if (!name.startsWith("..")) out[name] = await readFile(join(dir, name), "utf8");
  }
  return out;
}

async function hidden(): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.startsWith("..")).sort();
}

describe("publishFiles", () => {
  it("lays files out as the kubelet does: timestamped dir, ..data link, visible links", async () => {
    const result = await publishFiles(dir, files({ a: "1", "b.txt": "2" }), { mode: 0o640, now });
    expect(result.changed).toBe(true);
    expect(result.dataDir).toMatch(/^\.\.2025_05_06_07_08_09\.\d+$/);
    expect(await readlink(join(dir, DATA_LINK))).toBe(result.dataDir);
    expect(await readlink(join(dir, "a"))).toBe("..data/a");
    expect(await visible()).toEqual({ a: "1", "b.txt": "2" });
    expect((await stat(join(dir, "a"))).mode & 0o777).toBe(0o640);
    expect(await hidden()).toEqual([DATA_LINK, result.dataDir].sort());
  });

  it("makes the timestamped dir traversable by the app's user whatever the umask", async () => {
    // The app runs as another user; a restrictive umask must not hide the files.
    const previous = process.umask(0o077);
    try {
      const result = await publishFiles(dir, files({ a: "1" }), { mode: 0o644, now });
      expect((await stat(join(dir, result.dataDir))).mode & 0o777).toBe(0o755);
      expect((await stat(join(dir, "a"))).mode & 0o777).toBe(0o644);
    } finally {
      process.umask(previous);
    }
  });

  it("keeps the setgid bit of an fsGroup volume, so the files get the pod's group", async () => {
    const { chmod, chown } = await import("node:fs/promises");
    // The kubelet makes an fsGroup volume setgid and group-owned by the fsGroup.
    const fsGroup = 4242;
    await chown(dir, -1, fsGroup).catch(() => undefined); // needs root; the bit is checked anyway
    await chmod(dir, 0o2777);
    const result = await publishFiles(dir, files({ a: "1" }), { mode: 0o440, now });
    const data = await stat(join(dir, result.dataDir));
    expect(data.mode & 0o7777).toBe(0o2755);
    const file = await stat(join(dir, "a"));
    expect(file.gid).toBe((await stat(dir)).gid);
    expect(file.mode & 0o777).toBe(0o440);
  });

  it("makes its folder 0755 inside a sticky world-writable volume root, keeping setgid", async () => {
    // A Memory emptyDir's root on a node: 1777, or 3777 with an fsGroup. Links
    // in such a folder are closed to other users where fs.protected_symlinks=1,
    // so the set lives in a folder of the sidecar's own that is not world-writable.
    const { chmod } = await import("node:fs/promises");
    await chmod(dir, 0o3777);
    const previous = process.umask(0);
    try {
      const out = join(dir, "files");
      const result = await publishFiles(out, files({ a: "1" }), { mode: 0o644, now });
      expect((await stat(out)).mode & 0o7777).toBe(0o2755);
      expect(await readlink(join(out, DATA_LINK))).toBe(result.dataDir);
      expect(await readlink(join(out, "a"))).toBe("..data/a");
      expect(await readdir(dir)).toEqual(["files"]);
    } finally {
      process.umask(previous);
    }
  });

  it("makes missing parents of its folder too", async () => {
    const out = join(dir, "a", "b");
    await publishFiles(out, files({ x: "1" }), { mode: 0o644, now });
    expect(await readFile(join(out, "x"), "utf8")).toBe("1");
    expect((await stat(out)).mode & 0o777).toBe(0o755);
  });

  it("skips the write when nothing changed", async () => {
    const first = await publishFiles(dir, files({ a: "1" }), { mode: 0o644, now });
    const again = await publishFiles(dir, files({ a: "1" }), { mode: 0o644, now });
    expect(again).toEqual({ changed: false, dataDir: first.dataDir, replaced: true });
    // A different mode is a change.
    expect((await publishFiles(dir, files({ a: "1" }), { mode: 0o600, now })).changed).toBe(true);
  });

  it("says whether a set was there before: not for the first, yes for a later one (a restarted sidecar's too)", async () => {
    const first = await publishFiles(dir, files({ a: "1" }), { mode: 0o644, now });
    expect(first).toMatchObject({ changed: true, replaced: false });
    const next = await publishFiles(dir, files({ a: "2" }), { mode: 0o644, now });
    expect(next).toMatchObject({ changed: true, replaced: true });
  });

  it("replaces the whole set in one swap, removing stale names, and the old dir at the next publish", async () => {
    const first = await publishFiles(dir, files({ a: "1", old: "x" }), { mode: 0o644, now });
    const second = await publishFiles(dir, files({ a: "2", added: "y" }), { mode: 0o644, now });
    expect(second.dataDir).not.toBe(first.dataDir);
    expect(await visible()).toEqual({ a: "2", added: "y" });
    // A reader may be half-way through a path into the replaced dir: it stays
    // until the next publish, changed or not, and no longer.
    expect(await hidden()).toEqual([DATA_LINK, second.dataDir, first.dataDir].sort());
    await publishFiles(dir, files({ a: "2", added: "y" }), { mode: 0o644, now });
    expect(await hidden()).toEqual([DATA_LINK, second.dataDir].sort());
    const third = await publishFiles(dir, files({ a: "3" }), { mode: 0o644, now });
    const fourth = await publishFiles(dir, files({ a: "4" }), { mode: 0o644, now });
    expect(await hidden()).toEqual([DATA_LINK, fourth.dataDir, third.dataDir].sort());
  });

  it("removes what a killed publish left (dirs, temp links) before writing, even when nothing changed", async () => {
    const first = await publishFiles(dir, files({ a: "1" }), { mode: 0o644, now });
    const { mkdir } = await import("node:fs/promises");
    // A publish killed at each step: its dir, the `..data` and link temps.
    await mkdir(join(dir, "..2020_01_01_00_00_00.1"));
    await writeFile(join(dir, "..2020_01_01_00_00_00.1", "a"), "half");
    await symlink("..2020_01_01_00_00_00.1", join(dir, "..data_tmp"));
    await symlink("..data/a", join(dir, "..link_tmp.a"));
    const again = await publishFiles(dir, files({ a: "1" }), { mode: 0o644, now });
    expect(again.changed).toBe(false);
    expect(await hidden()).toEqual([DATA_LINK, first.dataDir].sort());
  });

  it("leaves files it does not own alone", async () => {
    await writeFile(join(dir, "user-file"), "mine");
    await symlink("/etc/hostname", join(dir, "user-link"));
    await publishFiles(dir, files({ a: "1" }), { mode: 0o644, now });
    await publishFiles(dir, files({ b: "1" }), { mode: 0o644, now });
    expect(await readFile(join(dir, "user-file"), "utf8")).toBe("mine");
    expect((await lstat(join(dir, "user-link"))).isSymbolicLink()).toBe(true);
  });

  // Its own check, whatever the caller checked: each of these would escape
  // the folder, replace one of the writer's own names, or name the folder.
  for (const bad of [
    "../x",
    "..",
    "..data",
    ".",
    "a/b",
    "",
    "..x",
    "..data_tmp",
    "..link_tmp.a",
    "..2025_05_06_07_08_09.1",
  ]) {
    it(`refuses the file name '${bad}' before touching anything`, async () => {
      const first = await publishFiles(dir, files({ a: "1" }), { mode: 0o644, now });
      const before = (await readdir(dir)).sort();
      const fresh = join(dir, "fresh");
      for (const target of [dir, fresh]) {
        const set = new Map([
          ["ok", Buffer.from("2")],
          [bad, Buffer.from("x")],
        ]);
        const error = await publishFiles(target, set, { mode: 0o644, now }).catch(
          (e: unknown) => e,
        );
        expect(isAkvError(error, ErrorCode.PUBLISH_FAILED)).toBe(true);
        expect((error as Error).message.startsWith(`cannot publish '${bad}': `)).toBe(true);
      }
      // Neither the published set nor the folder that did not exist was touched.
      expect((await readdir(dir)).sort()).toEqual(before);
      expect(await readlink(join(dir, DATA_LINK))).toBe(first.dataDir);
      expect(await visible()).toEqual({ a: "1" });
    });
  }

  for (const crashAt of ["write", "swap", "link", "cleanup"] as const) {
    it(`a crash at '${crashAt}' keeps a whole set visible, and the next publish recovers`, async () => {
      const old = await publishFiles(dir, files({ a: "old-a", b: "old-b" }), { mode: 0o644, now });
      const crash = (step: PublishStep): void => {
        if (step === crashAt) throw new Error(`crash at ${step}`);
      };
      const error = await publishFiles(dir, files({ a: "new-a", c: "new-c" }), {
        mode: 0o644,
        now,
        beforeStep: crash,
      }).catch((e: unknown) => e);
      expect(isAkvError(error, ErrorCode.PUBLISH_FAILED)).toBe(true);
      // Nothing of the failed publish stays but a set `..data` now points to.
      const linked = await readlink(join(dir, DATA_LINK));
      expect(await hidden()).toEqual([...new Set([DATA_LINK, old.dataDir, linked])].sort());
      // Through ..data the app sees exactly one whole set, old or new.
      const data = await realpath(join(dir, DATA_LINK));
      const set = Object.fromEntries(
        await Promise.all(
          (await readdir(data)).map(
            async (n) => [n, await readFile(join(data, n), "utf8")] as const,
          ),
        ),
      );
      expect([
        { a: "old-a", b: "old-b" },
        { a: "new-a", c: "new-c" },
      ]).toContainEqual(set);
      if (crashAt === "write" || crashAt === "swap")
        expect(await readFile(join(dir, "a"), "utf8")).toBe("old-a");

      const next = await publishFiles(dir, files({ a: "new-a", c: "new-c" }), { mode: 0o644, now });
      expect(await visible()).toEqual({ a: "new-a", c: "new-c" });
      // A new set keeps the one it replaced until the next publish.
      const kept = next.changed ? [old.dataDir] : [];
      expect(await hidden()).toEqual([DATA_LINK, next.dataDir, ...kept].sort());
    });
  }

  it("a failure mid-write (here: no space, half a file written) never truncates the previous set", async () => {
    const old = await publishFiles(dir, files({ a: "old-a", b: "old-b" }), { mode: 0o644, now });
    failWrite.name = "b";
    const error = await publishFiles(dir, files({ a: "new-a", b: "new-b".repeat(100) }), {
      mode: 0o644,
      now,
    })
      .catch((e: unknown) => e)
      .finally(() => {
        failWrite.name = undefined;
      });
    expect(failWrite.hits).toBe(1);
    expect(isAkvError(error, ErrorCode.PUBLISH_FAILED)).toBe(true);
    expect((error as Error).message).toContain("ENOSPC");
    expect((error as Error).message).toContain("the previous files stay");
    expect(await visible()).toEqual({ a: "old-a", b: "old-b" });
    // The half-written dir is removed at once: on a full tmpfs it would keep
    // every later publish from fitting.
    expect(await hidden()).toEqual([DATA_LINK, old.dataDir].sort());
    const next = await publishFiles(dir, files({ a: "new-a", b: "new-b" }), { mode: 0o644, now });
    expect(await visible()).toEqual({ a: "new-a", b: "new-b" });
    expect(await hidden()).toEqual([DATA_LINK, next.dataDir, old.dataDir].sort());
  });

  it("readers never see a missing, partial or mixed file while publishing repeatedly", async () => {
    await publishFiles(dir, files({ a: "0".repeat(10_000), b: "0" }), { mode: 0o644, now });
    // The publish is synchronous: the reader needs a thread of its own to run during one.
    const reader = new Worker(READER, { eval: true, workerData: { dir, link: DATA_LINK } });
    await once(reader, "message"); // reading
    for (let i = 1; i <= 200; i++) {
      await publishFiles(dir, files({ a: String(i % 10).repeat(10_000), b: String(i % 10) }), {
        mode: 0o644,
        now,
      });
      await new Promise(setImmediate);
    }
    reader.postMessage("stop");
    const [report] = (await once(reader, "message")) as [
      { seen: string[]; bad: string[]; failed: string[]; reads: number },
    ];
    await reader.terminate();
    expect(report.bad).toEqual([]);
    expect(report.failed).toEqual([]);
    expect(report.reads).toBeGreaterThan(200);
    expect(report.seen.length).toBeGreaterThan(1);
  });
});

describe("publishFiles: what counts as a change, and what it leaves alone", () => {
  it("a set with the same number of files under other names is a change", async () => {
    await publishFiles(dir, files({ a: "1", b: "2" }), { mode: 0o644, now });
    const next = await publishFiles(dir, files({ a: "1", c: "2" }), { mode: 0o644, now });
    expect(next.changed).toBe(true);
    expect(await visible()).toEqual({ a: "1", c: "2" });
  });

  it("one file of several with new contents is a change", async () => {
    await publishFiles(dir, files({ a: "1", b: "2" }), { mode: 0o644, now });
    const next = await publishFiles(dir, files({ a: "1", b: "3" }), { mode: 0o644, now });
    expect(next.changed).toBe(true);
    expect(await visible()).toEqual({ a: "1", b: "3" });
  });

  it("keeps a visible link that is already right (the same inode), and relinks one that is not", async () => {
    await publishFiles(dir, files({ a: "1" }), { mode: 0o644, now });
    const before = await lstat(join(dir, "a"));
    await publishFiles(dir, files({ a: "2" }), { mode: 0o644, now });
    expect((await lstat(join(dir, "a"))).ino).toBe(before.ino);
    await rm(join(dir, "a"));
    await symlink("elsewhere", join(dir, "a"));
    await publishFiles(dir, files({ a: "2" }), { mode: 0o644, now });
    expect(await readlink(join(dir, "a"))).toBe(`${DATA_LINK}/a`);
  });

  it("removes only names that are exactly a timestamped folder, and never hidden names of others", async () => {
    const { mkdir } = await import("node:fs/promises");
    for (const name of ["x..2020_01_01_00_00_00.1", "..2020_01_01_00_00_00.1x"])
      await mkdir(join(dir, name));
    await publishFiles(dir, files({ a: "1" }), { mode: 0o644, now });
    await symlink(`${DATA_LINK}/a`, join(dir, "..mine"));
    await publishFiles(dir, files({ b: "1" }), { mode: 0o644, now });
    const names = await readdir(dir);
    expect(names).toContain("x..2020_01_01_00_00_00.1");
    expect(names).toContain("..2020_01_01_00_00_00.1x");
    expect(names).toContain("..mine");
  });

  it("refuses a bad name with its own message, not as a failed write", async () => {
    await expect(publishFiles(dir, files({ "..data": "x" }), { mode: 0o644, now })).rejects.toThrow(
      /^cannot publish '\.\.data': /,
    );
  });

  it("says which file system call failed, keeping it as the cause", async () => {
    const notADir = join(dir, "plain-file");
    await writeFile(notADir, "x");
    const error = (await publishFiles(notADir, files({ a: "1" }), { mode: 0o644, now }).catch(
      (e: unknown) => e,
    )) as Error & { code: string };
    expect(isAkvError(error, ErrorCode.PUBLISH_FAILED)).toBe(true);
    expect(error.message).toBe(
      `cannot publish 1 file(s) to ${notADir} (ENOTDIR); the previous files stay`,
    );
    expect((error.cause as NodeJS.ErrnoException).code).toBe("ENOTDIR");
  });
});

/** Parses the status link while the main thread rewrites it: every read must be whole JSON. */
const STATUS_READER = `
const { parentPort, workerData } = require("node:worker_threads");
const { readFileSync } = require("node:fs");
let stop = false;
parentPort.on("message", () => (stop = true));
const seen = new Set();
const bad = [];
const tick = () => {
  for (let i = 0; i < 50 && !stop; i++) {
    let text;
    try {
      text = readFileSync(workerData.path, "utf8");
      seen.add(JSON.parse(text).n);
    } catch (error) {
      bad.push(error.code ?? String(error).slice(0, 80));
    }
  }
  if (stop) parentPort.postMessage({ seen: seen.size, bad });
  else setImmediate(tick);
};
parentPort.postMessage("reading");
tick();
`;

describe("the status file", () => {
  const status = (o: Record<string, unknown>): Uint8Array => Buffer.from(JSON.stringify(o));
  const readStatus = async (): Promise<unknown> =>
    JSON.parse(await readFile(join(dir, STATUS_FILE), "utf8"));

  it("is a name no user file can take, published in the set's folder and linked like the files", async () => {
    expect(STATUS_FILE).toBe("..status.json");
    const result = await publishFiles(dir, files({ a: "1" }), {
      mode: 0o440,
      now,
      status: status({ n: 1 }),
    });
    expect(await readlink(join(dir, STATUS_FILE))).toBe(`${DATA_LINK}/${STATUS_FILE}`);
    expect(await readStatus()).toEqual({ n: 1 });
    // Readable by every app user (it holds no value), whatever the files' mode.
    expect((await stat(join(dir, STATUS_FILE))).mode & 0o777).toBe(0o644);
    expect((await readdir(join(dir, result.dataDir))).sort()).toEqual([STATUS_FILE, "a"]);
    expect(await visible()).toEqual({ a: "1" });
  });

  it("a new set gets its status in the new folder, swapped with it: ..data shows one set and its status", async () => {
    const first = await publishFiles(dir, files({ a: "1" }), {
      mode: 0o644,
      now,
      status: status({ n: 1 }),
    });
    const second = await publishFiles(dir, files({ a: "2" }), {
      mode: 0o644,
      now,
      status: status({ n: 2 }),
    });
    expect(second.changed).toBe(true);
    expect(JSON.parse(await readFile(join(dir, second.dataDir, STATUS_FILE), "utf8"))).toEqual({
      n: 2,
    });
    // The replaced folder keeps its own status until the next publish removes it.
    expect(JSON.parse(await readFile(join(dir, first.dataDir, STATUS_FILE), "utf8"))).toEqual({
      n: 1,
    });
    expect(await readStatus()).toEqual({ n: 2 });
  });

  it("an unchanged set gets its new status in place: no swap, no new folder, no leftovers", async () => {
    const first = await publishFiles(dir, files({ a: "1" }), {
      mode: 0o644,
      now,
      status: status({ n: 1 }),
    });
    const again = await publishFiles(dir, files({ a: "1" }), {
      mode: 0o644,
      now,
      status: status({ n: 2 }),
    });
    // The status is not a file of the set: a set that differs only by it is unchanged.
    expect(again).toEqual({ changed: false, dataDir: first.dataDir, replaced: true });
    expect(await readStatus()).toEqual({ n: 2 });
    expect(await hidden()).toEqual([DATA_LINK, STATUS_FILE, first.dataDir].sort());
    expect((await readdir(join(dir, first.dataDir))).sort()).toEqual([STATUS_FILE, "a"]);
  });

  it("after a failed publish, writeStatus says so beside the files, which stay whole", async () => {
    const old = await publishFiles(dir, files({ a: "old-a", b: "old-b" }), {
      mode: 0o644,
      now,
      status: status({ n: 1, failures: 0 }),
    });
    failWrite.name = "b";
    const error = await publishFiles(dir, files({ a: "new-a", b: "new-b" }), {
      mode: 0o644,
      now,
      status: status({ n: 2, failures: 0 }),
    })
      .catch((e: unknown) => e)
      .finally(() => {
        failWrite.name = undefined;
      });
    expect(isAkvError(error, ErrorCode.PUBLISH_FAILED)).toBe(true);
    expect(writeStatus(dir, status({ n: 1, failures: 1 }))).toBe(true);
    expect(await visible()).toEqual({ a: "old-a", b: "old-b" });
    expect(await readStatus()).toEqual({ n: 1, failures: 1 });
    expect(await readlink(join(dir, DATA_LINK))).toBe(old.dataDir);
    expect(await hidden()).toEqual([DATA_LINK, STATUS_FILE, old.dataDir].sort());
  });

  it("writeStatus writes nothing before the first publish: there is no set to describe", async () => {
    expect(writeStatus(dir, status({ n: 1 }))).toBe(false);
    expect(await readdir(dir)).toEqual([]);
  });

  it("a status write that fails (no space) keeps the old status whole, and the files", async () => {
    await publishFiles(dir, files({ a: "1" }), { mode: 0o644, now, status: status({ n: 1 }) });
    failWrite.name = `${STATUS_FILE}.tmp`;
    let error: unknown;
    try {
      writeStatus(dir, status({ n: 2, pad: "x".repeat(1000) }));
    } catch (e) {
      error = e;
    } finally {
      failWrite.name = undefined;
    }
    expect(isAkvError(error, ErrorCode.PUBLISH_FAILED)).toBe(true);
    expect((error as Error).message).toBe(
      `cannot write the status file in ${dir} (ENOSPC); the files stay`,
    );
    expect(await readStatus()).toEqual({ n: 1 });
    expect(await visible()).toEqual({ a: "1" });
    const data = await readlink(join(dir, DATA_LINK));
    expect((await readdir(join(dir, data))).sort()).toEqual([STATUS_FILE, "a"]);
  });

  it("a reader of the status never sees a missing or partial one while it is rewritten", async () => {
    await publishFiles(dir, files({ a: "1" }), { mode: 0o644, now, status: status({ n: 0 }) });
    const worker = new Worker(STATUS_READER, {
      eval: true,
      workerData: { path: join(dir, STATUS_FILE) },
    });
    const [ready] = (await once(worker, "message")) as [string];
    expect(ready).toBe("reading");
    const pad = "x".repeat(20_000);
    for (let n = 1; n <= 200; n++) {
      if (n % 2 === 0) writeStatus(dir, status({ n, pad }));
      else
        await publishFiles(dir, files({ a: String(n % 4) }), {
          mode: 0o644,
          now,
          status: status({ n, pad }),
        });
      await new Promise((r) => setImmediate(r));
    }
    worker.postMessage("stop");
    const [report] = (await once(worker, "message")) as [{ seen: number; bad: string[] }];
    await worker.terminate();
    expect(report.bad).toEqual([]);
    expect(report.seen).toBeGreaterThan(1);
  });
});

describe("readVolumeBytes", () => {
  it("is the size of the file system holding the folder", async () => {
    const { statfsSync } = await import("node:fs");
    const fs = statfsSync(dir);
    expect(readVolumeBytes(dir)).toBe(fs.blocks * fs.bsize);
  });

  it("asks the nearest existing parent of a folder not made yet", async () => {
    const { statfsSync } = await import("node:fs");
    const fs = statfsSync(dir);
    expect(readVolumeBytes(join(dir, "not", "yet"))).toBe(fs.blocks * fs.bsize);
  });

  it("is undefined where the path cannot be asked (a file in the way)", async () => {
    await writeFile(join(dir, "f"), "x");
    expect(readVolumeBytes(join(dir, "f", "below"))).toBeUndefined();
  });
});
