/**
 * The logger's redaction, through the real `createLogger` into a sink: a
 * secret put at any redacted path never reaches the output. The shapes are
 * listed here, not read from `REDACT_PATHS`, so emptying or trimming that
 * list fails a test.
 */
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";

const SECRET = "s3cr3t-VALUE-9f8e7d";

/** Logs `object` through a fresh logger into memory; returns the raw text and the parsed line. */
function logThrough(object: Record<string, unknown>): {
  text: string;
  line: Record<string, unknown>;
} {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString("utf8"));
      cb();
    },
  });
  const logger = createLogger({ name: "redaction-test", destination: sink });
  logger.info(object, "event");
  logger.flush();
  const text = chunks.join("");
  return { text, line: JSON.parse(text) as Record<string, unknown> };
}

/** `{ a: { b: SECRET } }` from `a.b`. */
function objectAt(path: readonly string[]): Record<string, unknown> {
  let inner: unknown = SECRET;
  for (const key of [...path].reverse()) inner = { [key]: inner };
  return inner as Record<string, unknown>;
}

function valueAt(object: Record<string, unknown>, path: readonly string[]): unknown {
  return path.reduce<unknown>((o, key) => (o as Record<string, unknown>)[key], object);
}

const TOP = [
  "token",
  "accessToken",
  "access_token",
  "client_assertion",
  "assertion",
  "value",
  "secret",
  "password",
  "authorization",
] as const;
const NESTED = [
  "token",
  "accessToken",
  "access_token",
  "client_assertion",
  "value",
  "secret",
  "password",
  "authorization",
] as const;
const SHAPES: readonly (readonly string[])[] = [
  ...TOP.map((key) => [key]),
  ["headers", "authorization"],
  ["req", "headers", "authorization"],
  // `*.key`: one level down, under any name.
  ...NESTED.map((key) => ["secretInfo", key]),
  ...NESTED.map((key) => ["err", key]),
];

describe("createLogger redaction", () => {
  it.each(SHAPES.map((path) => [path.join("."), path] as const))("censors %s", (_name, path) => {
    const { text, line } = logThrough({ ref: "db-password", ...objectAt(path) });
    expect(text).not.toContain(SECRET);
    expect(valueAt(line, path)).toBe("[redacted]");
    // The rest of the line is kept: names are what the logs are for.
    expect(line.ref).toBe("db-password");
    expect(line.msg).toBe("event");
  });

  it("censors a secret value and a token logged together, keeping names and versions", () => {
    const { text, line } = logThrough({
      ref: "db",
      version: "0123456789abcdef0123456789abcdef",
      value: SECRET,
      secret: { name: "db", value: SECRET },
      token: `${SECRET}-token`,
    });
    expect(text).not.toContain(SECRET);
    expect(line).toMatchObject({ ref: "db", version: "0123456789abcdef0123456789abcdef" });
  });
});
