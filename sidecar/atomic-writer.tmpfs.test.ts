/**
 * The writer on a real, full tmpfs: ENOSPC that takes real space, which the
 * faked ENOSPC of atomic-writer.test.ts cannot show (a failed publish that
 * leaks its folder fills the volume for good).
 *
 * Runs as root only (a private mount namespace with a 64 KiB tmpfs); skipped
 * elsewhere with a note, and failed in CI, which runs as root.
 */
import { describe, expect, it } from "vitest";
import { canMountTmpfs, runInTmpfs, tmpfsTestMode, TMPFS_UNAVAILABLE } from "../testing/sidecar.ts";

/** One step of the script: publish one file of `kib` KiB, or leave what a killed publish would. */
type Step =
  | { readonly publish: number; readonly fill: string }
  | { readonly leftover: number; readonly fill: string };

/** What the script reports after each step. */
interface Outcome {
  readonly ok: boolean;
  readonly changed?: boolean;
  readonly dataDir?: string;
  readonly code?: string;
  readonly message?: string;
  /** `ls -a` of the output folder. */
  readonly listing: string[];
  /** The visible file's size and first byte, as an app reads it. */
  readonly visible: string;
}

/**
 * Reads the volume's size, then publishes `files/big` per step into the tmpfs
 * at argv[1]; prints every outcome as JSON.
 */
const SCRIPT = `
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
const { publishFiles, readVolumeBytes } = await import(${JSON.stringify(new URL("./atomic-writer.ts", import.meta.url).href)});
const [root, stepsJson] = process.argv.slice(1);
const dir = root + "/files";
const read = () => {
  try {
    const b = readFileSync(dir + "/big");
    return b.length / 1024 + "K" + String.fromCharCode(b[0]);
  } catch (e) {
    return e.code;
  }
};
// Before the first publish the output folder does not exist yet: its volume's size counts.
const out = [{ volumeBytes: readVolumeBytes(dir) }];
let n = 0;
for (const step of JSON.parse(stepsJson)) {
  let outcome;
  try {
    if ("leftover" in step) {
      const left = dir + "/..2020_01_01_00_00_00." + n++;
      mkdirSync(left);
      writeFileSync(left + "/big", Buffer.alloc(step.leftover * 1024, step.fill));
      outcome = { ok: true };
    } else {
      const files = new Map([["big", Buffer.alloc(step.publish * 1024, step.fill)]]);
      const r = await publishFiles(dir, files, { mode: 0o644, now: new Date() });
      outcome = { ok: true, changed: r.changed, dataDir: r.dataDir };
    }
  } catch (e) {
    outcome = { ok: false, code: e.code, message: e.message };
  }
  out.push({ ...outcome, listing: readdirSync(dir).sort(), visible: read() });
}
console.log(JSON.stringify(out));
`;

function runSteps(steps: readonly Step[]): { volumeBytes: number; outcomes: Outcome[] } {
  const run = runInTmpfs("64k", SCRIPT, [JSON.stringify(steps)]);
  if (run.status !== 0) throw new Error(`the tmpfs script failed (${run.status}): ${run.stderr}`);
  const [volume, ...outcomes] = JSON.parse(run.stdout) as [{ volumeBytes: number }, ...Outcome[]];
  return { volumeBytes: volume.volumeBytes, outcomes };
}

/** The folder holds `..data`, the sets named, the visible link, and nothing else. */
function layout(...sets: (string | undefined)[]): string[] {
  return ["..data", ...sets.map((s) => s ?? "?"), "big"].sort();
}

describe("publishFiles on a real 64 KiB tmpfs", () => {
  it("a publish that does not fit removes what it wrote; the next one that fits succeeds", (ctx) => {
    const mode = tmpfsTestMode(canMountTmpfs(), process.env);
    if (mode === "fail") throw new Error(`CI=true: ${TMPFS_UNAVAILABLE}`);
    if (mode === "skip") {
      console.warn(`atomic-writer.tmpfs.test.ts ${TMPFS_UNAVAILABLE}`);
      ctx.skip(TMPFS_UNAVAILABLE);
    }

    const { volumeBytes, outcomes } = runSteps([
      { publish: 30, fill: "a" },
      { publish: 50, fill: "b" },
      { publish: 8, fill: "c" },
      { publish: 8, fill: "d" },
      // A publish killed mid-write leaves its folder behind: 40 KiB here.
      { leftover: 40, fill: "x" },
      { publish: 20, fill: "e" },
    ]);
    const [first, tooBig, small, smaller, leftover, afterCrash] = outcomes;
    // The bound on rendered files: the tmpfs's own size, as the kubelet mounted it.
    expect(volumeBytes).toBe(64 * 1024);

    expect(first).toMatchObject({ ok: true, changed: true, visible: "30Ka" });
    expect(first?.listing).toEqual(layout(first?.dataDir));

    // 30 + 50 KiB do not fit in 64: refused, the 30 KiB set stays, nothing leaks.
    expect(tooBig).toMatchObject({ ok: false, code: "AKV_PUBLISH_FAILED", visible: "30Ka" });
    expect(tooBig?.message).toContain("ENOSPC");
    expect(tooBig?.listing).toEqual(layout(first?.dataDir));

    // 30 + 8 KiB fit. The replaced set stays until the next publish, for a
    // reader that resolved `..data` just before the swap.
    expect(small).toMatchObject({ ok: true, changed: true, visible: "8Kc" });
    expect(small?.listing).toEqual(layout(small?.dataDir, first?.dataDir));
    expect(smaller).toMatchObject({ ok: true, changed: true, visible: "8Kd" });
    expect(smaller?.listing).toEqual(layout(smaller?.dataDir, small?.dataDir));

    // 8 + 8 + 40 KiB of leftover leave no room for 20 more; the leftover and
    // the replaced set go first, so it fits.
    expect(leftover).toMatchObject({ ok: true, visible: "8Kd" });
    expect(leftover?.listing).toHaveLength(5);
    expect(afterCrash).toMatchObject({ ok: true, changed: true, visible: "20Ke" });
    expect(afterCrash?.listing).toEqual(layout(afterCrash?.dataDir, smaller?.dataDir));
  });
});

describe("tmpfsTestMode", () => {
  it("runs where a tmpfs mounts, skips elsewhere, and fails in CI rather than skip", () => {
    expect(tmpfsTestMode(true, { CI: "true" })).toBe("run");
    expect(tmpfsTestMode(false, {})).toBe("skip");
    expect(tmpfsTestMode(false, { CI: "false" })).toBe("skip");
    expect(tmpfsTestMode(false, { CI: "true" })).toBe("fail");
  });
});
