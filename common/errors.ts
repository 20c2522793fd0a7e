/**
 * The catalog of error codes. Every error we raise is an {@link AkvError} with
 * one of these codes, so callers branch on `code`, never on message text.
 * `docs/errors.md` documents each code; a test checks that it lists them all.
 */
export const ErrorCode = {
  /** A webhook setting (environment variable) is missing or malformed; start-up stops. */
  SETTINGS_INVALID: "AKV_SETTINGS_INVALID",
  /** The sidecar's environment or `AKV_INJECTOR_SPEC` is missing or malformed; it exits. */
  SIDECAR_CONFIG_INVALID: "AKV_SIDECAR_CONFIG_INVALID",
  /** The `AKV_INJECTOR_SPEC` JSON does not parse or check. */
  SPEC_INVALID: "AKV_SPEC_INVALID",
  /** A request body is not a valid AdmissionReview. */
  BAD_ADMISSION_REVIEW: "AKV_BAD_ADMISSION_REVIEW",
  /** The pod's service account does not exist. */
  SERVICE_ACCOUNT_NOT_FOUND: "AKV_SERVICE_ACCOUNT_NOT_FOUND",
  /** The Kubernetes API could not be reached or answered an error. */
  KUBERNETES_UNAVAILABLE: "AKV_KUBERNETES_UNAVAILABLE",
  /** A certificate or key file cannot be read or parsed. */
  TLS_INVALID: "AKV_TLS_INVALID",
  /** A PKCS#12 or PEM certificate-backed secret cannot be turned into PEM. */
  CERTIFICATE_INVALID: "AKV_CERTIFICATE_INVALID",
  /** Entra ID refused the token exchange (AADSTS code in the message). */
  AUTH_FAILED: "AKV_AUTH_FAILED",
  /** The federated token file is missing or empty. */
  TOKEN_FILE_UNREADABLE: "AKV_TOKEN_FILE_UNREADABLE",
  /** Key Vault answered 403: the identity lacks a role assignment such as Key Vault Secrets User. */
  SECRET_FORBIDDEN: "AKV_SECRET_FORBIDDEN",
  /** Key Vault answered 404: no such secret or version. */
  SECRET_NOT_FOUND: "AKV_SECRET_NOT_FOUND",
  /** Key Vault refused a read for another reason than 403/404 (400 bad request, 401 token not accepted, a challenge for the wrong resource); not retried. */
  KEY_VAULT_REFUSED: "AKV_KEY_VAULT_REFUSED",
  /** Key Vault throttled (429); retried after Retry-After or backoff. */
  THROTTLED: "AKV_THROTTLED",
  /** Key Vault or Entra ID was unreachable, timed out or answered 5xx; retried with backoff. */
  UNAVAILABLE: "AKV_UNAVAILABLE",
  /** A secret's value does not fit its file's format (e.g. not base64, not a certificate). */
  FORMAT_FAILED: "AKV_FORMAT_FAILED",
  /** The rendered files would take more than the volume holds; nothing is published, the previous set stays. */
  OUTPUT_TOO_LARGE: "AKV_OUTPUT_TOO_LARGE",
  /** Publishing the files failed (disk full, permissions); the previous set stays. */
  PUBLISH_FAILED: "AKV_PUBLISH_FAILED",
  /** A command-line argument or input file of the CLI is wrong. */
  CLI_USAGE: "AKV_CLI_USAGE",
} as const;

/** One of {@link ErrorCode}'s values. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Our error: a stable `code`, a message a user can act on, the lower error as `cause`. */
export class AkvError extends Error {
  override readonly name = "AkvError";
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** Type guard; pass `code` to also check which error it is. */
export function isAkvError(value: unknown, code?: ErrorCode): value is AkvError {
  return value instanceof AkvError && (code === undefined || value.code === code);
}
