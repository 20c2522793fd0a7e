import { describe, expect, it } from "vitest";
import { ProblemList, UNBOUNDED_PROBLEM_LIMITS } from "./problems.ts";

describe("ProblemList", () => {
  it("lists every problem up to the bound, in order", () => {
    const list = new ProblemList({ items: 3, itemChars: 100 });
    list.add("a");
    list.add(() => "b");
    expect(list.list()).toEqual(["a", "b"]);
    expect(list.count).toBe(2);
  });

  it("counts what it does not list, and says how many more", () => {
    const list = new ProblemList({ items: 2, itemChars: 100 });
    for (let i = 0; i < 50_000; i++) list.add(`p${String(i)}`);
    expect(list.list()).toEqual(["p0", "p1", "and 49998 more"]);
    expect(list.count).toBe(50_000);
  });

  it("never builds the text of a problem beyond the bound", () => {
    const list = new ProblemList({ items: 1, itemChars: 100 });
    let built = 0;
    for (let i = 0; i < 10; i++) list.add(() => `p${String(++built)}`);
    expect(built).toBe(1);
  });

  it("cuts a long problem, marking the cut", () => {
    const list = new ProblemList({ items: 1, itemChars: 10 });
    list.add("x".repeat(50));
    expect(list.list()).toEqual([`${"x".repeat(9)}…`]);
  });

  // [case, key, text, value, the problem]
  it.each<[string, string, string, string | undefined, string]>([
    [
      "a key alone",
      "akv-injector.io/x",
      "unknown annotation",
      undefined,
      "akv-injector.io/x: unknown annotation",
    ],
    ["a key and its value", "PORT", "expected a port", "x", 'PORT: expected a port (got "x")'],
    ["an empty value, still shown", "k", "is bad", "", 'k: is bad (got "")'],
    ["a value with quotes, as JSON", "k", "is bad", 'a"b', 'k: is bad (got "a\\"b")'],
    [
      "a long key and value, each cut after 100 characters",
      "k".repeat(101),
      "is bad",
      "v".repeat(101),
      `${"k".repeat(100)}…: is bad (got "${"v".repeat(100)}…")`,
    ],
    [
      "a key and value of 100 characters, whole",
      "k".repeat(100),
      "is bad",
      "v".repeat(100),
      `${"k".repeat(100)}: is bad (got "${"v".repeat(100)}")`,
    ],
  ])("addFor: %s", (_case, key, text, value, expected) => {
    const list = new ProblemList();
    list.addFor(key, text, value);
    expect(list.list()).toEqual([expected]);
  });

  it.each<[string, string, string | undefined, string]>([
    ["vaultUrl", "https://host", undefined, "vaultUrl: expected https://host"],
    ["PORT", "a port number 0-65535", "x", 'PORT: expected a port number 0-65535 (got "x")'],
  ])("addExpected: %s", (key, expected, value, problem) => {
    const list = new ProblemList();
    list.addExpected(key, expected, value);
    expect(list.list()).toEqual([problem]);
  });

  it("unbounded: lists every problem whole, key and value uncut", () => {
    const list = new ProblemList(UNBOUNDED_PROBLEM_LIMITS);
    for (let i = 0; i < 30; i++) list.add(`p${String(i)}`);
    list.addFor("k".repeat(600), "is bad", "v".repeat(600));
    expect(list.count).toBe(31);
    expect(list.list()).toHaveLength(31);
    expect(list.list()[30]).toBe(`${"k".repeat(600)}: is bad (got "${"v".repeat(600)}")`);
  });

  it("bounds addFor like add: beyond the bound, only counted", () => {
    const list = new ProblemList({ items: 1, itemChars: 100 });
    for (let i = 0; i < 3; i++) list.addFor(`k${String(i)}`, "is bad", "v");
    expect(list.list()).toEqual(['k0: is bad (got "v")', "and 2 more"]);
  });
});
