/**
 * Where secrets come from, as the sync loop sees it: one small interface
 * (Key Vault implements it in `key-vault-source.ts`, tests fake it) and the
 * one decision the loop needs about a failure: give up (the configuration is
 * wrong and retrying cannot help) or retry later (throttling, an outage).
 */
import { AkvError, ErrorCode, isAkvError } from "../common/errors.ts";
import type { SecretRef } from "../common/refs.ts";

/** One secret as read. */
export interface FetchedSecret {
  /** The value as Key Vault stores it (text; certificate-backed secrets are base64 PKCS#12 or PEM). */
  readonly value: string;
  /** e.g. `application/x-pkcs12`, `application/x-pem-file`; undefined when unset. */
  readonly contentType: string | undefined;
  /** The version that was read (32 hex digits), also for a ref without one. */
  readonly version: string;
}

/** Options of one read. */
export interface FetchOptions {
  /** Aborts the read (shutdown, or the attempt's timeout). */
  readonly signal?: AbortSignal;
}

/** Reads secrets. Failures are {@link AkvError}s whose code tells fatal from retryable. */
export interface SecretSource {
  fetch(ref: SecretRef, options?: FetchOptions): Promise<FetchedSecret>;
}

/** The codes that mean "try again later"; every other failure is a configuration error. */
export const RETRYABLE_CODES: readonly string[] = [ErrorCode.THROTTLED, ErrorCode.UNAVAILABLE];

/**
 * A failed read or token exchange, with what the loop needs to decide and the
 * user needs to act. Never holds a secret value or a token.
 */
export class SourceError extends AkvError {
  /** HTTP status, when there was an answer. */
  readonly status: number | undefined;
  /** How long the service asked us to wait (Retry-After), in ms. */
  readonly retryAfterMs: number | undefined;
  constructor(
    code: ErrorCode,
    message: string,
    details: {
      status?: number | undefined;
      retryAfterMs?: number | undefined;
      cause?: unknown;
    } = {},
  ) {
    super(code, message, details.cause === undefined ? undefined : { cause: details.cause });
    this.status = details.status;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** True when a failure is worth retrying (throttled, unavailable, timed out); false for configuration errors and anything unknown. */
export function isRetryable(error: unknown): boolean {
  return isAkvError(error) && RETRYABLE_CODES.includes(error.code);
}

/** The HTTP status of a failure, if it had one. */
export function statusOf(error: unknown): number | undefined {
  return error instanceof SourceError ? error.status : undefined;
}

/** The wait a failure asked for (Retry-After), if any. */
export function retryAfterOf(error: unknown): number | undefined {
  return error instanceof SourceError ? error.retryAfterMs : undefined;
}

/**
 * Parses a `Retry-After` value: delay-seconds or an HTTP date (relative to
 * `now`); also the millisecond headers Azure sends (`retry-after-ms`,
 * `x-ms-retry-after-ms`) when `unit` is `ms`.
 * @example parseRetryAfter("5", Date.now()) // 5000
 * @example parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now) // ms until then, at least 0
 */
export function parseRetryAfter(
  text: string | null | undefined,
  now: number,
  unit: "s" | "ms" = "s",
): number | undefined {
  if (text === null || text === undefined) return undefined;
  const value = text.trim();
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * (unit === "s" ? 1000 : 1));
  if (unit === "ms") return undefined;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
