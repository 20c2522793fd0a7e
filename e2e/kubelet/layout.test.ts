/** The test kubelet's small pure helpers. */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { parseQuantityBytes, shellQuote } from "./layout.ts";

describe("parseQuantityBytes", () => {
  it.each([
    ["4Mi", 4 * 1024 ** 2],
    ["1Gi", 1024 ** 3],
    ["512Ki", 512 * 1024],
    ["1M", 1e6],
    ["1.5k", 1500],
    ["1e3", 1000],
    ["100", 100],
  ])("%s is %d bytes", (text, bytes) => {
    expect(parseQuantityBytes(text)).toBe(bytes);
  });

  it("refuses what is not a quantity", () => {
    expect(() => parseQuantityBytes("4 MB")).toThrow(/quantity/);
  });
});

describe("shellQuote", () => {
  it.each(["plain", "/a/b.c", "with space", "it's", 'a"b$c`d\\e', "", "lowerdir=/x,upperdir=/y"])(
    "round-trips %j through sh",
    (word) => {
      const out = spawnSync("sh", ["-c", `printf %s ${shellQuote(word)}`], { encoding: "utf8" });
      expect(out.stdout).toBe(word);
    },
  );
});
