/**
 * The Entra ID credential: workload identity federation with the projected
 * service-account token as the client assertion.
 *
 * `ClientAssertionCredential` with a callback that reads the token file for
 * every exchange, not `WorkloadIdentityCredential`: the latter caches the
 * file's content for five minutes, and the kubelet rotates the file, so a
 * cached assertion can be stale (expired) when Entra sees it. The access
 * token itself is cached by MSAL and by the Key Vault client's token cycler:
 * one exchange per token lifetime.
 *
 * Failures come out as {@link SourceError}s a user can act on: the AADSTS
 * code, and the assertion's issuer, subject and audience next to the client
 * id (what a federated identity credential must match). The assertion itself
 * never appears anywhere.
 */
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth";
import { ClientAssertionCredential } from "@azure/identity";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import { SourceError } from "./secret-source.ts";

/** The claims of the federated token that a federated identity credential matches. */
export interface AssertionClaims {
  readonly iss?: string;
  readonly sub?: string;
  readonly aud?: string;
  /** Expiry, seconds since the epoch. */
  readonly exp?: number;
}

/** What {@link createCredential} needs. */
export interface CredentialOptions {
  readonly tenantId: string;
  readonly clientId: string;
  readonly tokenFile: string;
  readonly authorityHost: string;
  readonly disableInstanceDiscovery: boolean;
  /** Reads the token file; injectable for tests. */
  readonly readFile: (path: string) => Promise<string>;
  /** The clock (ms), to say when the token file holds an expired token. */
  readonly now: () => number;
}

/**
 * Creates the credential. Its errors are {@link SourceError}s:
 * `TOKEN_FILE_UNREADABLE`, `AUTH_FAILED` (fatal), `UNAVAILABLE` / `THROTTLED` (retried).
 */
export function createCredential(options: CredentialOptions): TokenCredential {
  let lastClaims: AssertionClaims | undefined;
  const getAssertion = async (): Promise<string> => {
    const token = await readAssertion(options.tokenFile, options.readFile);
    lastClaims = decodeJwtClaims(token);
    return token;
  };
  const inner = new ClientAssertionCredential(options.tenantId, options.clientId, getAssertion, {
    authorityHost: options.authorityHost,
    disableInstanceDiscovery: options.disableInstanceDiscovery,
    // One retry layer, ours (sync-loop.ts): backoff with jitter and
    // Retry-After, and the request counts stay predictable.
    retryOptions: { maxRetries: 0 },
  });
  return {
    async getToken(scopes: string | string[], opts?: GetTokenOptions): Promise<AccessToken | null> {
      try {
        return await inner.getToken(scopes, opts);
      } catch (error) {
        throw classifyAuthError(error, {
          clientId: options.clientId,
          tenantId: options.tenantId,
          authorityHost: options.authorityHost,
          claims: lastClaims,
          now: options.now(),
        });
      }
    },
  };
}

/**
 * A credential that can start the Key Vault token exchange early: the
 * sidecar's token for a vault under one of Azure's Key Vault DNS suffixes is
 * requested while Key Vault's 401 challenge is still in flight, instead of
 * after it (a round trip to Entra, and its TLS handshake and OIDC metadata
 * read, off the critical path).
 */
export interface PrefetchingCredential extends TokenCredential {
  /**
   * Starts `getToken(scope, { enableCae: true, tenantId })`, the call the Key
   * Vault client makes once it has the challenge, unless one is in flight.
   * Never rejects: a failure is the Key Vault client's to see, through its
   * own call.
   */
  prefetch(scope: string): void;
}

/**
 * Wraps `inner` so that a `getToken` that asks for exactly what a
 * {@link PrefetchingCredential.prefetch} in flight asks for (the same single
 * scope, CAE, no claims, this tenant or none) shares that exchange instead of
 * starting a second one: one token request, whichever comes first. Once the
 * prefetch has settled, calls go to `inner`, whose cache (MSAL's) holds the
 * token. Any other call goes to `inner` unchanged.
 */
export function withTokenPrefetch(inner: TokenCredential, tenantId: string): PrefetchingCredential {
  let inFlight: { scope: string; promise: Promise<AccessToken | null> } | undefined;
  const sameTenant = (t: string | undefined): boolean =>
    t === undefined || t.toLowerCase() === tenantId.toLowerCase();
  return {
    prefetch(scope: string): void {
      if (inFlight !== undefined) return;
      const promise = inner.getToken(scope, { enableCae: true, tenantId });
      const entry = { scope, promise };
      inFlight = entry;
      const settle = (): void => {
        if (inFlight === entry) inFlight = undefined;
      };
      promise.then(settle, settle);
    },
    async getToken(scopes: string | string[], opts?: GetTokenOptions): Promise<AccessToken | null> {
      const list = typeof scopes === "string" ? [scopes] : scopes;
      const shared = inFlight;
      if (
        shared !== undefined &&
        list.length === 1 &&
        list[0] === shared.scope &&
        opts?.enableCae === true &&
        opts.claims === undefined &&
        sameTenant(opts.tenantId)
      ) {
        return shared.promise;
      }
      return inner.getToken(scopes, opts);
    },
  };
}

/**
 * Wraps `inner` so that concurrent `getToken` calls that ask for the same
 * thing (scopes, tenant, claims, CAE) share one exchange. Each Key Vault
 * client (one per vault and API) asks for its token when its first
 * challenge comes back, and with several vaults those asks arrive together,
 * before MSAL has cached the first token: without this, one token request
 * per client instead of one for the pod. Settled calls go to `inner` (and
 * MSAL's cache) again.
 */
export function withSharedTokenRequests(inner: TokenCredential): TokenCredential {
  const inFlight = new Map<string, Promise<AccessToken | null>>();
  return {
    getToken(scopes: string | string[], opts?: GetTokenOptions): Promise<AccessToken | null> {
      const key = JSON.stringify([
        typeof scopes === "string" ? [scopes] : scopes,
        opts?.tenantId ?? null,
        opts?.claims ?? null,
        opts?.enableCae ?? false,
      ]);
      const shared = inFlight.get(key);
      if (shared !== undefined) return shared;
      const promise = inner.getToken(scopes, opts);
      inFlight.set(key, promise);
      const settle = (): void => {
        if (inFlight.get(key) === promise) inFlight.delete(key);
      };
      promise.then(settle, settle);
      return promise;
    },
  };
}

/**
 * Reads the federated token file afresh.
 * @throws {SourceError} `TOKEN_FILE_UNREADABLE` when it is missing or empty.
 */
export async function readAssertion(
  path: string,
  readFile: (path: string) => Promise<string>,
): Promise<string> {
  let text: string;
  try {
    text = await readFile(path);
  } catch (cause) {
    throw new SourceError(
      ErrorCode.TOKEN_FILE_UNREADABLE,
      `cannot read the federated token file ${path} (${(cause as NodeJS.ErrnoException).code ?? "error"}): is the projected service-account token volume mounted?`,
      { cause },
    );
  }
  const token = text.trim();
  if (token === "") {
    throw new SourceError(
      ErrorCode.TOKEN_FILE_UNREADABLE,
      `the federated token file ${path} is empty`,
    );
  }
  return token;
}

/**
 * Decodes a JWT's payload claims without verifying it (only to explain a
 * refusal: Entra verifies). Returns an empty object for anything that is not
 * a JWT.
 * @example decodeJwtClaims(token) // { iss: "https://oidc.example/", sub: "system:serviceaccount:ns:sa", aud: "api://AzureADTokenExchange", exp: 1700000000 }
 */
export function decodeJwtClaims(token: string): AssertionClaims {
  const payload = token.split(".")[1];
  if (payload === undefined) return {};
  try {
    const raw = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as unknown;
    if (typeof raw !== "object" || raw === null) return {};
    const c = raw as Record<string, unknown>;
    const aud = Array.isArray(c.aud) ? c.aud.filter((a) => typeof a === "string").join(",") : c.aud;
    return {
      ...(typeof c.iss === "string" ? { iss: c.iss } : {}),
      ...(typeof c.sub === "string" ? { sub: c.sub } : {}),
      ...(typeof aud === "string" ? { aud } : {}),
      ...(typeof c.exp === "number" ? { exp: c.exp } : {}),
    };
  } catch {
    return {};
  }
}

/** AADSTS codes of a federation mismatch: the assertion's issuer, subject or audience matches no federated credential, or it has expired. */
const FEDERATION_CODES = new Set(["70021", "700211", "700212", "700213", "700024", "70025"]);

/**
 * AADSTS codes Entra documents as transient ("try again"): retried. MSAL
 * remembers a 5xx or 429 answer and refuses the same request on its own
 * until Retry-After (60 s without one) has passed, repeating Entra's error
 * without a status: these codes keep that retryable too.
 */
const TRANSIENT_CODES = new Set(["90033", "50000", "90006", "50196"]);
/** Entra's throttling (429); MSAL repeats it without the status, as `90055: AADSTS90055: …`. */
const THROTTLED_CODE = "90055";
const TRANSIENT_OAUTH_ERRORS = new Set(["temporarily_unavailable", "server_error"]);

/**
 * AADSTS90061: Entra could not read the service-account issuer's OIDC
 * discovery document or keys. Entra answers 400, but the cause is between
 * Entra and the issuer, and an issuer's outage passes: retried, the message
 * naming the issuer to check if it does not.
 */
const ISSUER_UNREACHABLE_CODE = "90061";

/** Context of {@link classifyAuthError}. */
export interface AuthErrorContext {
  readonly clientId: string;
  readonly tenantId: string;
  readonly authorityHost: string;
  readonly claims: AssertionClaims | undefined;
  /** ms since the epoch. */
  readonly now: number;
}

/**
 * Turns whatever @azure/identity or MSAL threw into a {@link SourceError}:
 * AAD answered 429 or 5xx, or could not be reached → retryable; AAD refused
 * (AADSTS code) → `AUTH_FAILED`, with the assertion's claims for a
 * federation mismatch. The AADSTS code is read from the message text because
 * that is where Entra puts it (MSAL keeps only the description).
 */
export function classifyAuthError(error: unknown, ctx: AuthErrorContext): SourceError {
  const chain = causeChain(error);
  const own = chain.find((e) => isAkvError(e));
  if (own instanceof SourceError) return own;

  const texts = chain.map((e) => (e instanceof Error ? e.message : String(e))).join("\n");
  const status = chain
    .map((e) => numberField(e, "statusCode") ?? numberField(e, "status"))
    .find((s) => s !== undefined && s > 0);
  const codes = chain
    .map((e) => stringField(e, "errorCode") ?? stringField(e, "code"))
    .filter((c) => c !== undefined);
  const aadsts = /AADSTS(\d+)/.exec(texts);
  const where = `Entra ID at ${ctx.authorityHost}`;

  if (status === 429 || (status === undefined && aadsts?.[1] === THROTTLED_CODE)) {
    return new SourceError(
      ErrorCode.THROTTLED,
      `${where} throttled the token request (${status === undefined ? `AADSTS${THROTTLED_CODE}, repeated by MSAL until its Retry-After has passed` : "429"})`,
      { status, cause: error },
    );
  }
  const transient =
    (aadsts !== null && TRANSIENT_CODES.has(aadsts[1] ?? "")) ||
    codes.some((c) => TRANSIENT_OAUTH_ERRORS.has(c));
  if (
    (status !== undefined && status >= 500) ||
    (status === undefined && transient) ||
    (aadsts === null && isNetworkFailure(codes, chain))
  ) {
    return new SourceError(
      ErrorCode.UNAVAILABLE,
      `${where} is unavailable: ${status === undefined ? (aadsts === null ? `no answer (${codes[0] ?? firstLine(texts)})` : firstLine(texts.slice(aadsts.index))) : `status ${status}`}`,
      { status, cause: error },
    );
  }
  const code = aadsts?.[1];
  const description = firstLine(aadsts === null ? texts : texts.slice(aadsts.index));
  if (code === ISSUER_UNREACHABLE_CODE) {
    return new SourceError(
      ErrorCode.UNAVAILABLE,
      `${where} could not read the OIDC metadata of the service-account token's issuer '${ctx.claims?.iss ?? "?"}' (${description}); retrying. If this lasts, that issuer's /.well-known/openid-configuration and its keys must be reachable from the internet`,
      { status, cause: error },
    );
  }
  let message = `${where} refused the token exchange for client id ${ctx.clientId} in tenant ${ctx.tenantId}${status === undefined ? "" : ` (status ${status})`}: ${description}`;
  if (code !== undefined && FEDERATION_CODES.has(code)) {
    const c = ctx.claims ?? {};
    message +=
      `; the service-account token has issuer '${c.iss ?? "?"}', subject '${c.sub ?? "?"}', audience '${c.aud ?? "?"}'` +
      ` and a federated identity credential of client id ${ctx.clientId} must match all three`;
    if (c.exp !== undefined && c.exp * 1000 <= ctx.now) {
      message += `; the token expired at ${new Date(c.exp * 1000).toISOString()} (is the kubelet rotating it?)`;
    }
  }
  return new SourceError(ErrorCode.AUTH_FAILED, message, { status, cause: error });
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_SOCKET",
  "REQUEST_SEND_ERROR",
  "network_error",
  "endpoints_resolution_error",
  "openid_config_error",
]);

/**
 * MSAL's codes for an authority it could not reach, as @azure/identity
 * surfaces them: at the start of the message, with no `errorCode` field.
 * Under load (a fleet rolling out) the authority's metadata read times out
 * this way, which is an outage, not a refusal.
 */
const MSAL_NETWORK_MESSAGE = /^(endpoints_resolution_error|openid_config_error|network_error)\b/;

function isNetworkFailure(codes: readonly string[], chain: readonly unknown[]): boolean {
  return (
    codes.some((c) => NETWORK_CODES.has(c)) ||
    chain.some((e) => e instanceof Error && MSAL_NETWORK_MESSAGE.test(e.message)) ||
    chain.some(
      (e) => e instanceof Error && (e.name === "AbortError" || e.name === "TimeoutError"),
    ) ||
    chain.some(
      (e) =>
        e instanceof Error && /socket hang up|ECONNRESET|ECONNREFUSED|timed? ?out/i.test(e.message),
    )
  );
}

/** The error and its causes, outermost first (bounded: a cycle cannot hang us). */
export function causeChain(error: unknown): unknown[] {
  const out: unknown[] = [];
  let e: unknown = error;
  while (e !== undefined && e !== null && out.length < 8 && !out.includes(e)) {
    out.push(e);
    e = (e as { cause?: unknown }).cause;
  }
  return out;
}

function numberField(e: unknown, key: string): number | undefined {
  const v = typeof e === "object" && e !== null ? (e as Record<string, unknown>)[key] : undefined;
  return typeof v === "number" ? v : undefined;
}

function stringField(e: unknown, key: string): string | undefined {
  const v = typeof e === "object" && e !== null ? (e as Record<string, unknown>)[key] : undefined;
  return typeof v === "string" && v !== "" ? v : undefined;
}

function firstLine(text: string): string {
  const line = text.split(/\r?\n/).find((l) => l.trim() !== "") ?? "unknown error";
  return line.length > 300 ? `${line.slice(0, 300)}…` : line.trim();
}
