/** Every error code is documented, and the documentation names no code that is gone. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { AkvError, ErrorCode, isAkvError } from "./errors.ts";

const doc = readFileSync(new URL("../docs/errors.md", import.meta.url), "utf8");

/** The code in the first cell of each table row. */
function documentedCodes(): string[] {
  return doc
    .split("\n")
    .map((line) => /^\|\s*`(AKV_[A-Z0-9_]+)`\s*\|/.exec(line)?.[1])
    .filter((code): code is string => code !== undefined);
}

describe("docs/errors.md", () => {
  it("lists every code of the catalog, each once, with a description", () => {
    const codes = documentedCodes();
    expect(new Set(codes).size).toBe(codes.length);
    expect([...codes].sort()).toEqual(Object.values(ErrorCode).sort());
    for (const code of codes) {
      const row = doc.split("\n").find((l) => l.startsWith(`| \`${code}\``)) ?? "";
      const cells = row.split("|").map((c) => c.trim());
      expect(cells.filter((c) => c !== "").length, `${code} has every column`).toBe(4);
    }
  });
});

describe("AkvError", () => {
  it("carries a code and a cause, and the guard checks both", () => {
    const cause = new Error("lower");
    const error = new AkvError(ErrorCode.TLS_INVALID, "bad pair", { cause });
    expect(error.code).toBe("AKV_TLS_INVALID");
    expect(error.cause).toBe(cause);
    expect(isAkvError(error)).toBe(true);
    expect(isAkvError(error, ErrorCode.TLS_INVALID)).toBe(true);
    expect(isAkvError(error, ErrorCode.CLI_USAGE)).toBe(false);
    expect(isAkvError(cause)).toBe(false);
  });
});
