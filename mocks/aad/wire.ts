/**
 * Entra ID's answers as MSAL reads them: the headers of every answer, the
 * refusal envelope (`error`, `error_description` with the AADSTS code and
 * Entra's trace line, `error_codes`, …), the tenant's OpenID configuration,
 * Entra's two time formats, and the bodies of injected faults. Shapes only:
 * which answer a request gets is decided in routes.ts and auth.ts.
 */
import { checkFaultAction, type CommonFaultAction, type FaultAction } from "../faults.ts";
import { header, newGuid, type Call, type Reply } from "../https-server.ts";

/** An Entra refusal on its way to the client. */
export interface AadRefusal {
  readonly status: number;
  readonly error: string;
  readonly code: number;
  readonly message: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** A fault of the mock Entra ID: a generic one, or an Entra-shaped refusal. */
export type AadFaultAction =
  | FaultAction
  | {
      /** Answer with an Entra error for this AADSTS code. */
      readonly type: "aadsts";
      readonly code: number;
      /** OAuth `error`; default `invalid_request`. */
      readonly error?: string;
      /** Default 400. */
      readonly status?: number;
      /** The text after `AADSTS<code>: `; default a generic one. */
      readonly description?: string;
      readonly retryAfterSeconds?: number;
    };

/** The answers of one mock Entra ID. */
export class EntraWire {
  readonly #now: () => number;

  /** @param now the clock of refusals' timestamps. */
  constructor(now: () => number) {
    this.#now = now;
  }

  /** The headers of every answer; the client's request id echoed. */
  headers(call: Call): Record<string, string> {
    const clientRequestId = header(call, "client-request-id");
    return {
      "cache-control": "no-store, no-cache",
      pragma: "no-cache",
      "x-ms-request-id": newGuid(),
      ...(clientRequestId === undefined ? {} : { "client-request-id": clientRequestId }),
    };
  }

  /** 200 with `json`. */
  ok(call: Call, json: unknown): Reply {
    return { status: 200, headers: this.headers(call), json };
  }

  /** A refusal in Entra's envelope; the correlation id echoes the client's request id. */
  refuse(call: Call, refusal: AadRefusal): Reply {
    const traceId = newGuid();
    const correlationId = header(call, "client-request-id") ?? newGuid();
    const timestamp = entraTimestamp(this.#now());
    return {
      status: refusal.status,
      headers: { ...this.headers(call), ...refusal.headers },
      json: {
        error: refusal.error,
        error_description: `AADSTS${refusal.code}: ${refusal.message} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
        error_codes: [refusal.code],
        timestamp,
        trace_id: traceId,
        correlation_id: correlationId,
        error_uri: `${call.origin}/error?code=${refusal.code}`,
      },
    };
  }

  /** A fault that answers: an AADSTS refusal, or a status (Entra's transient error unless a body is given). */
  fault(call: Call, action: Exclude<AadFaultAction, CommonFaultAction>): Reply {
    const retryAfter =
      action.retryAfterSeconds === undefined
        ? {}
        : { "retry-after": String(action.retryAfterSeconds) };
    if (action.type === "aadsts") {
      return this.refuse(call, {
        status: action.status ?? 400,
        error: action.error ?? "invalid_request",
        code: action.code,
        message: action.description ?? "Injected failure.",
        ...(action.retryAfterSeconds === undefined ? {} : { headers: retryAfter }),
      });
    }
    const extra = { ...retryAfter, ...action.headers };
    if (action.body !== undefined) {
      return {
        status: action.status,
        headers: { ...this.headers(call), ...extra },
        json: action.body,
      };
    }
    // Entra's transient failure: AADSTS90033 for 5xx, throttling for 429.
    return this.refuse(call, {
      status: action.status,
      error: "temporarily_unavailable",
      code: action.status === 429 ? 90055 : 90033,
      message:
        action.status === 429
          ? "The request is throttled temporarily. Please try after some time."
          : "A transient error has occurred. Please try again.",
      headers: extra,
    });
  }
}

/** AADSTS90002: the tenant in the path is unknown. */
export function tenantNotFound(tenant: string): AadRefusal {
  return {
    status: 400,
    error: "invalid_tenant",
    code: 90002,
    message: `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
  };
}

/**
 * A tenant's OpenID configuration, as Entra serves it; `issuer` has the
 * scheme, host and port the client used (MSAL checks them against its authority).
 */
export function openIdConfiguration(origin: string, tenant: string): Record<string, unknown> {
  const base = `${origin}/${tenant}`;
  return {
    token_endpoint: `${base}/oauth2/v2.0/token`,
    token_endpoint_auth_methods_supported: [
      "client_secret_post",
      "private_key_jwt",
      "client_secret_basic",
    ],
    jwks_uri: `${base}/discovery/v2.0/keys`,
    response_modes_supported: ["query", "fragment", "form_post"],
    subject_types_supported: ["pairwise"],
    id_token_signing_alg_values_supported: ["RS256"],
    response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
    scopes_supported: ["openid", "profile", "email", "offline_access"],
    issuer: `${base}/v2.0`,
    request_uri_parameter_supported: false,
    userinfo_endpoint: `${origin}/oidc/userinfo`,
    authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
    device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${base}/oauth2/v2.0/logout`,
    claims_supported: [
      "sub",
      "iss",
      "cloud_instance_name",
      "cloud_instance_host_name",
      "cloud_graph_host_name",
      "msgraph_host",
      "aud",
      "exp",
      "iat",
      "auth_time",
      "acr",
      "nonce",
      "preferred_username",
      "name",
      "tid",
      "ver",
      "at_hash",
      "c_hash",
      "email",
    ],
    kerberos_endpoint: `${base}/kerberos`,
    tenant_region_scope: "NA",
    cloud_instance_name: "microsoftonline.com",
    cloud_graph_host_name: "graph.windows.net",
    msgraph_host: "graph.microsoft.com",
    rbac_url: "https://pas.windows.net",
  };
}

/** {@link checkFaultAction}, and Entra-shaped refusals. */
export function checkAadFaultAction(action: unknown): string | undefined {
  const a = action as Record<string, unknown> | undefined;
  return a?.type === "aadsts"
    ? typeof a.code === "number"
      ? undefined
      : "aadsts needs a numeric code"
    : checkFaultAction(action);
}

/** The code of a refusal, as counted and logged: `AADSTS<n>`. */
export function errorCodeOf(reply: Reply): string | undefined {
  if (!("status" in reply) || typeof reply.json !== "object" || reply.json === null)
    return undefined;
  const codes = (reply.json as { error_codes?: unknown }).error_codes;
  return Array.isArray(codes) && typeof codes[0] === "number" ? `AADSTS${codes[0]}` : undefined;
}

/** Entra's `timestamp`: `2024-03-01 07:41:07Z`. */
function entraTimestamp(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
}

/** Entra's instants in AADSTS700024: seven fractional digits, `2024-10-02T22:05:03.6755165Z`. */
export function entraInstant(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, (_m, frac: string) => `.${frac}0000Z`);
}
