import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { couldExceedMembers, JsonMemberCounter } from "./member-bound.ts";

const count = (json: string): number => new JsonMemberCounter().feed(json);

/** Members as JSON.parse sees them: every key of every object. */
function membersOf(value: unknown): number {
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + membersOf(v), 0);
  if (typeof value !== "object" || value === null) return 0;
  return Object.values(value).reduce((n: number, v) => n + 1 + membersOf(v), 0);
}

describe("JsonMemberCounter", () => {
  it.each([
    ["{}", 0],
    ["[]", 0],
    ['"a:b"', 0],
    ['{"a":1}', 1],
    ['{"a" \t\r\n : 1, "b":{"c":[{"d":null}]}}', 4],
    // A colon or quote inside a string, escaped quotes and escaped backslashes.
    ['{"a\\":":"\\":", "b\\\\":"c\\\\", "e":"\\\\\\"x"}', 3],
    ['["a", "b" ,"c"]', 0],
    ['{"":""}', 1],
  ])("counts the members of %s: %i", (json, expected) => {
    expect(count(json)).toBe(expected);
    expect(membersOf(JSON.parse(json))).toBe(expected);
  });

  it("counts every JSON document's keys as JSON.parse reads them (any Unicode text), however it is split", () => {
    fc.assert(
      fc.property(
        fc.json({ stringUnit: "grapheme" }),
        fc.integer({ min: 1, max: 7 }),
        (json, step) => {
          const counter = new JsonMemberCounter();
          let total = 0;
          for (let i = 0; i < json.length; i += step) total = counter.feed(json.slice(i, i + step));
          expect(total).toBe(membersOf(JSON.parse(json)));
        },
      ),
    );
  });

  it("counts keys and values made of quotes, backslashes and colons, however the text is split", () => {
    const tricky = fc.string({ unit: fc.constantFrom('"', "\\", ":", " ", "a", "{") });
    const document = fc.array(
      fc.dictionary(tricky, fc.oneof(tricky, fc.dictionary(tricky, tricky))),
    );
    fc.assert(
      fc.property(document, fc.integer({ min: 1, max: 5 }), (value, step) => {
        const json = JSON.stringify(value);
        const counter = new JsonMemberCounter();
        let total = 0;
        for (let i = 0; i < json.length; i += step) total = counter.feed(json.slice(i, i + step));
        expect(total).toBe(membersOf(value));
      }),
    );
  });
});

describe("couldExceedMembers", () => {
  it("no JSON text holds more members than a quarter of its bytes", () => {
    const tricky = fc.string({ unit: fc.constantFrom('"', "\\", ":", "a") });
    const densest = fc.array(fc.dictionary(tricky, fc.constantFrom(0, "", {}, [])));
    fc.assert(
      fc.property(
        fc.oneof(
          fc.json().map((j) => JSON.parse(j) as unknown),
          densest,
        ),
        (value) => {
          const json = JSON.stringify(value);
          expect(membersOf(value)).toBeLessThanOrEqual(Buffer.byteLength(json) / 4);
        },
      ),
    );
    // Repeated keys, which JSON.parse folds into one, count in the text too.
    expect(count('{"":0,"":0,"":0}')).toBe(3);
    expect('{"":0,"":0,"":0}'.length / 4).toBeGreaterThanOrEqual(3);
  });

  it.each([
    ["40", 10, false],
    ["41", 10, true],
    ["0", 10, false],
    [undefined, 10, true],
    ["not a number", 10, true],
  ])("a body of Content-Length %s, at most %i members: counted %s", (length, max, counted) => {
    expect(couldExceedMembers(length, max)).toBe(counted);
  });
});
