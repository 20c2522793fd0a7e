import { describe, expect, it } from "vitest";
import { ProblemList } from "./problems.ts";

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
});
