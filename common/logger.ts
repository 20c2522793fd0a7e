/**
 * pino, set up once for both processes: JSON lines on stdout, and redaction by
 * path so a secret value or a token put in a log object by mistake is censored
 * before it is written. Redaction is the net, not the plan: code logs names,
 * versions and status codes, never values.
 *
 * Lines carry what Kubernetes-native JSON loggers write and log tooling reads
 * without a mapping: the level by name (`"level":"info"`) and the time in
 * RFC 3339 UTC with milliseconds (`"time":"2026-11-30T20:32:11.092Z"`), not
 * pino's numeric level and epoch milliseconds.
 */
import { pino, type DestinationStream, type Logger } from "pino";
import { batchPerTurn, type TurnBatchedDestination } from "./batch-per-turn.ts";

/** Log-object paths that are always censored. */
export const REDACT_PATHS = [
  "token",
  "accessToken",
  "access_token",
  "client_assertion",
  "assertion",
  "value",
  "secret",
  "password",
  "authorization",
  "headers.authorization",
  "req.headers.authorization",
  "*.token",
  "*.accessToken",
  "*.access_token",
  "*.client_assertion",
  "*.value",
  "*.secret",
  "*.password",
  "*.authorization",
] as const;

export interface LoggerOptions {
  /** Component name in every line: `webhook`, `sidecar`, `mock-aad`, … */
  readonly name: string;
  /** pino level; default `info`. */
  readonly level?: string | undefined;
  /** Where lines go; default stdout. Tests pass a sink to parse the lines. */
  readonly destination?: DestinationStream | undefined;
}

/**
 * `{"level":"warn"}` for every line. pino calls this once per level when the
 * logger (or a child) is made and keeps the text, so a line costs no more.
 */
function levelByName(label: string): { level: string } {
  return { level: label };
}

/**
 * pino's `isoTime`, formatted once per millisecond: a busy webhook writes
 * several lines in the same one, and each format allocates a Date and a
 * string.
 */
function isoTimeOncePerMs(): () => string {
  let lastMs = Number.NaN;
  let last = "";
  return () => {
    const now = Date.now();
    if (now !== lastMs) {
      lastMs = now;
      last = `,"time":"${new Date(now).toISOString()}"`;
    }
    return last;
  };
}

let stdout: TurnBatchedDestination | undefined;

/**
 * Standard output, one per process (every logger's lines in the order
 * logged): each turn's lines in one synchronous write (batch-per-turn.ts),
 * through sonic-boom, which finishes partial writes and waits out EAGAIN.
 * Synchronous as Node's own `process.stdout` is on a Linux pipe, which is
 * what a container's standard output is: when the runtime stops reading,
 * the process waits for it instead of holding ever more lines. The last
 * turn's lines are written on exit, `process.exit` included.
 */
function stdoutDestination(): TurnBatchedDestination {
  if (stdout === undefined) {
    const fd1 = pino.destination({ fd: 1, sync: true });
    const lines = batchPerTurn((text) => fd1.write(text));
    process.once("exit", () => {
      lines.flushSync();
    });
    stdout = lines;
  }
  return stdout;
}

/** Creates the process logger. */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      name: options.name,
      level: options.level ?? "info",
      redact: { paths: [...REDACT_PATHS], censor: "[redacted]" },
      formatters: { level: levelByName },
      timestamp: isoTimeOncePerMs(),
    },
    options.destination ?? stdoutDestination(),
  );
}

export type { Logger } from "pino";
