/** The test kubelet's small pure helpers. */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { exposeCheckoutScript, parseQuantityBytes, shellQuote } from "./layout.ts";

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

describe("exposeCheckoutScript", () => {
  const open = (closed: readonly string[]) => (dir: string) => !closed.includes(dir);

  it("does nothing when every folder above the checkout is open", () => {
    expect(exposeCheckoutScript("/work/main", "/tmp/pod", open([]))).toEqual([]);
  });

  it("covers the topmost closed folder and binds the checkout back at its own path", () => {
    expect(exposeCheckoutScript("/tmp/ci.x/fresh", "/var/tmp/pod", open(["/tmp/ci.x"]))).toEqual([
      "mkdir -p /var/tmp/pod/checkout",
      "mount --bind /tmp/ci.x/fresh /var/tmp/pod/checkout",
      "mount -t tmpfs -o mode=0755,size=1m tmpfs /tmp/ci.x",
      "mkdir -p -m 0755 /tmp/ci.x/fresh",
      "mount --bind /var/tmp/pod/checkout /tmp/ci.x/fresh",
    ]);
    expect(exposeCheckoutScript("/root/a/b", "/tmp/pod", open(["/root", "/root/a"]))[2]).toBe(
      "mount -t tmpfs -o mode=0755,size=1m tmpfs /root",
    );
  });

  it("refuses when the pod folder would be hidden too", () => {
    expect(() => exposeCheckoutScript("/root/repo", "/root/pods/p", open(["/root"]))).toThrow(
      /pod folder/,
    );
  });
});
