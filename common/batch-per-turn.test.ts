/**
 * Lines gathered per turn of the event loop: one write for a turn's lines,
 * in order, after the turn and not during it; nothing for a turn without
 * lines; `flush` and `flushSync` write what is gathered at once.
 */
import { setImmediate as nextTurn } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { batchPerTurn } from "./batch-per-turn.ts";

function recorded(): { writes: string[]; destination: ReturnType<typeof batchPerTurn> } {
  const writes: string[] = [];
  return { writes, destination: batchPerTurn((text) => writes.push(text)) };
}

describe("batchPerTurn", () => {
  it("writes the lines of one turn together, in order, once the turn is over", async () => {
    const { writes, destination } = recorded();
    destination.write("a\n");
    destination.write("b\n");
    destination.write("c\n");
    expect(writes).toEqual([]);
    await nextTurn();
    expect(writes).toEqual(["a\nb\nc\n"]);
  });

  it("writes each turn's lines apart, and nothing for a turn without lines", async () => {
    const { writes, destination } = recorded();
    destination.write("first\n");
    await nextTurn();
    await nextTurn();
    destination.write("second\n");
    await nextTurn();
    expect(writes).toEqual(["first\n", "second\n"]);
  });

  it("queues one callback per turn, however many lines the turn has", () => {
    const queued: (() => void)[] = [];
    const writes: string[] = [];
    const destination = batchPerTurn(
      (text) => writes.push(text),
      (run) => queued.push(run),
    );
    for (let i = 0; i < 100; i++) destination.write(`${String(i)}\n`);
    expect(queued).toHaveLength(1);
    queued[0]?.();
    expect(writes).toHaveLength(1);
    expect(writes[0]?.split("\n")).toHaveLength(101);
  });

  it("flush writes what the turn has gathered before calling back, and the turn's end adds nothing", async () => {
    const { writes, destination } = recorded();
    destination.write("x\n");
    let seen: string[] = [];
    destination.flush(() => {
      seen = [...writes];
    });
    expect(seen).toEqual(["x\n"]);
    destination.flush();
    destination.flushSync();
    await nextTurn();
    expect(writes).toEqual(["x\n"]);
  });

  it("a line after a flush in the same turn is written at the turn's end", async () => {
    const { writes, destination } = recorded();
    destination.write("before\n");
    destination.flushSync();
    destination.write("after\n");
    await nextTurn();
    expect(writes).toEqual(["before\n", "after\n"]);
  });
});
