/**
 * The sidecar bundle's stand-ins behave as the modules they replace where the
 * bundled code uses them, and a lazy built-in loads at its first use, not
 * before. (Which modules a real sync loads is checked in
 * sidecar.mocks.test.ts.)
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LAZY_BUILTINS, sidecarBuildOptions } from "./sidecar-bundle.ts";

/** Uses each replaced or lazy module the way the bundled SDKs do, and reports what happened. */
const ESM_USER = `
import * as zlib from "node:zlib";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { inspect } from "node:util";
import cjs from "./cjs-user.cjs";
const loaded = (m) => process.moduleLoadList.includes("NativeModule " + m);
const report = { before: ${JSON.stringify([...LAZY_BUILTINS])}.filter(loaded) };
report.inspect = inspect({ a: 1 });
report.gunzip = zlib.gunzipSync(zlib.gzipSync("hello")).toString();
const inflate = zlib.createInflate();
report.stream = typeof inflate.pipe;
report.klass = [new zlib.Gunzip() instanceof (await import("node:stream")).Transform, Object.getPrototypeOf(new zlib.Inflate()).constructor.name];
report.execFile = typeof execFile;
report.readFile = (await readFile(process.argv[1], "utf8")).length > 0;
Object.assign(report, cjs());
report.after = ${JSON.stringify([...LAZY_BUILTINS])}.filter(loaded);
report.utilExtras = ["internal/util/parse_args/parse_args", "internal/util/diff"].filter(loaded);
console.log(JSON.stringify(report));
`;

const CJS_USER = `
const __importDefault = (mod) => (mod && mod.__esModule ? mod : { default: mod });
const assert = require("assert");
const assertTs = __importDefault(require("assert"));
const debug = __importDefault(require("debug")).default("agent-base");
const ThreadStream = require("thread-stream");
module.exports = () => {
  const out = {};
  assert(true, "callable");
  assertTs.default.strictEqual(1, 1);
  try { assert.strictEqual(1, 2); } catch (e) { out.assertThrows = e.code; }
  debug("never printed %s", "x");
  out.debug = { enabled: debug.enabled, extended: debug.extend("sub").namespace };
  try { new ThreadStream({}); } catch (e) { out.threadStream = e.message; }
  return out;
};
`;

let dir: string;
let bundle: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "akv-bundle-"));
  writeFileSync(join(dir, "esm-user.mjs"), ESM_USER);
  writeFileSync(join(dir, "cjs-user.cjs"), CJS_USER);
  await build({
    ...sidecarBuildOptions(join(dir, "out"), join(dir, "esm-user.mjs")),
    sourcemap: false,
    logLevel: "error",
  });
  bundle = join(dir, "out", "sidecar.mjs");
}, 30_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("the sidecar bundle's stand-ins and lazy built-ins", () => {
  it("load a lazy built-in at first use, then behave as the real one", () => {
    const report = JSON.parse(
      execFileSync(process.execPath, [bundle], { encoding: "utf8" }),
    ) as Record<string, unknown>;
    expect(report.before).toEqual([]);
    expect(report).toMatchObject({
      inspect: "{ a: 1 }",
      gunzip: "hello",
      stream: "function",
      klass: [true, "Inflate"],
      execFile: "function",
      readFile: true,
      assertThrows: "ERR_ASSERTION",
      debug: { enabled: false, extended: "agent-base:sub" },
      threadStream: "pino transports are not in the akv-injector bundles",
    });
    // child_process is only named, never called: it stays unloaded.
    expect(report.after).toEqual(["assert", "fs/promises", "zlib"]);
    // A facade reads only the exports the bundle imports.
    expect(report.utilExtras).toEqual([]);
  });
});
