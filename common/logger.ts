/**
 * pino, set up once for both processes: JSON lines on stdout, and redaction by
 * path so a secret value or a token put in a log object by mistake is censored
 * before it is written. Redaction is the net, not the plan: code logs names,
 * versions and status codes, never values.
 */
import { pino, type DestinationStream, type Logger } from "pino";

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

/** Creates the process logger. */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      name: options.name,
      level: options.level ?? "info",
      redact: { paths: [...REDACT_PATHS], censor: "[redacted]" },
    },
    options.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

export type { Logger } from "pino";
