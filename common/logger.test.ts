/**
 * The logger through the real `createLogger` into a sink. Redaction: a
 * secret put at any redacted path never reaches the output. The shapes are
 * listed here, not read from `REDACT_PATHS`, so emptying or trimming that
 * list fails a test. Line format: the level by name and an RFC 3339 `time`,
 * for loggers made as the webhook and the sidecar make theirs. Standard
 * output, in a process of its own: every line reaches it once, the last
 * turn's before `process.exit` ends the process.
 */
import { execFileSync } from "node:child_process";
import { Writable } from "node:stream";
import { describe, expect, it, vi } from "vitest";
import { createLogger, REDACT_PATHS, type Logger } from "./logger.ts";

const SECRET = "s3cr3t-VALUE-9f8e7d";
const LOGGER = new URL("./logger.ts", import.meta.url).href;

/** A sink that keeps what is written, and the lines parsed. */
function createSink(): {
  sink: Writable;
  text: () => string;
  lines: () => Record<string, unknown>[];
} {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString("utf8"));
      cb();
    },
  });
  const text = (): string => chunks.join("");
  const lines = (): Record<string, unknown>[] =>
    text()
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { sink, text, lines };
}

/** Logs `object` through a fresh logger into memory; returns the raw text and the parsed line. */
function logThrough(object: Record<string, unknown>): {
  text: string;
  line: Record<string, unknown>;
} {
  const { sink, text } = createSink();
  const logger = createLogger({ name: "redaction-test", destination: sink });
  logger.info(object, "event");
  logger.flush();
  return { text: text(), line: JSON.parse(text()) as Record<string, unknown> };
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

/** RFC 3339 in UTC with milliseconds, as `Date.prototype.toISOString` writes it. */
const RFC3339_UTC_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** The loggers of the two processes, made as they make them, each writing into `sink`. */
const STYLES: readonly (readonly [string, (sink: Writable) => Logger])[] = [
  [
    // webhook/main.ts, and the admission lines' child of webhook/server.ts
    // (`createAdmissionLogger`: its own top-level redaction paths).
    "webhook (admission child)",
    (sink) =>
      createLogger({ name: "webhook", level: "trace", destination: sink }).child(
        {},
        {
          redact: {
            paths: REDACT_PATHS.filter((p) => !p.includes(".") && !p.includes("*")),
            censor: "[redacted]",
          },
        },
      ),
  ],
  // sidecar/app.ts
  [
    "sidecar",
    (sink) => createLogger({ name: "akv-injector-sidecar", level: "trace", destination: sink }),
  ],
];

describe("createLogger line format", () => {
  it.each(STYLES)("%s: the level by name on every level", (_name, make) => {
    const { sink, lines } = createSink();
    const logger = make(sink);
    logger.trace("t");
    logger.debug("d");
    logger.info("i");
    logger.warn("w");
    logger.error("e");
    logger.fatal("f");
    logger.flush();
    expect(lines().map((l) => [l.level, l.msg])).toEqual([
      ["trace", "t"],
      ["debug", "d"],
      ["info", "i"],
      ["warn", "w"],
      ["error", "e"],
      ["fatal", "f"],
    ]);
  });

  it.each(STYLES)("%s: time in RFC 3339 UTC with milliseconds, now", (_name, make) => {
    const { sink, lines } = createSink();
    const logger = make(sink);
    const before = Date.now();
    logger.info({ ref: "db" }, "event");
    logger.warn("later");
    const after = Date.now();
    logger.flush();
    for (const line of lines()) {
      const time = line.time;
      expect(time).toMatch(RFC3339_UTC_MS);
      const at = Date.parse(time as string);
      // Round trip: the text is the instant, not a local time or a rounding of it.
      expect(new Date(at).toISOString()).toBe(time);
      expect(at).toBeGreaterThanOrEqual(before);
      expect(at).toBeLessThanOrEqual(after);
    }
    expect(lines()).toHaveLength(2);
  });

  it.each(STYLES)("%s: each line's time is its own millisecond's", (_name, make) => {
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      const { sink, lines } = createSink();
      const logger = make(sink);
      const t0 = Date.parse("2026-12-01T03:00:00.000Z");
      for (const at of [t0, t0, t0 + 1, t0 + 1_000]) {
        vi.setSystemTime(at);
        logger.info("event");
      }
      logger.flush();
      expect(lines().map((l) => l.time)).toEqual([
        "2026-12-01T03:00:00.000Z",
        "2026-12-01T03:00:00.000Z",
        "2026-12-01T03:00:00.001Z",
        "2026-12-01T03:00:01.000Z",
      ]);
    } finally {
      vi.useRealTimers();
    }
  });

  it.each(STYLES)(
    "%s: redaction still applies, and the line keeps its other fields",
    (_name, make) => {
      const { sink, text, lines } = createSink();
      const logger = make(sink);
      logger.error({ ref: "db", value: SECRET, token: SECRET }, "failed");
      logger.flush();
      expect(text()).not.toContain(SECRET);
      expect(lines()[0]).toMatchObject({
        level: "error",
        ref: "db",
        value: "[redacted]",
        token: "[redacted]",
        msg: "failed",
      });
    },
  );
});

describe("the default destination, standard output", () => {
  /** Runs `body` in a Node process with `logger` made by createLogger; returns its stdout. */
  function runWithLogger(body: string): string {
    const script = `import { createLogger } from ${JSON.stringify(LOGGER)};
const logger = createLogger({ name: "exit-test" });
${body}`;
    return execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
    });
  }

  it("writes the lines logged in the turn that calls process.exit", () => {
    const out = runWithLogger(`logger.info("one"); logger.warn({ n: 2 }, "two"); process.exit(0);`);
    const lines = out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.msg)).toEqual(["one", "two"]);
  });

  it("writes each line once, the lines of later turns too", () => {
    const out = runWithLogger(
      `logger.info("first"); setTimeout(() => { logger.info("later"); logger.flush(() => process.exit(0)); }, 5);`,
    );
    expect(out.match(/"msg":"[a-z]+"/g)).toEqual(['"msg":"first"', '"msg":"later"']);
  });
});
