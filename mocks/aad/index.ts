/**
 * A mock of Microsoft Entra ID (AAD) for workload identity federation, that
 * the real `@azure/identity` (MSAL) talks to unmodified over HTTPS:
 *
 * - `GET /{tenant}/v2.0/.well-known/openid-configuration`: the tenant's OIDC
 *   metadata, whose `issuer` has the scheme, host and port the client used
 *   (MSAL checks that against its authority).
 * - `GET /{tenant}/discovery/v2.0/keys`: the keys that sign access tokens.
 * - `POST /{tenant}/oauth2/v2.0/token`: the client-credentials grant with a
 *   `jwt-bearer` client assertion. The assertion is checked as Entra checks a
 *   federated token: its time range, a federated identity credential of the
 *   client id that matches its (issuer, subject, audience), then its signature
 *   against the issuer's JWKS, found through the issuer's OIDC discovery
 *   document (the issuer may be HTTPS behind a private CA, like a
 *   kube-apiserver; trust it with `trustedCaPems`). Refusals are Entra-shaped
 *   (`error`, `error_description` with the AADSTS code, `error_codes`,
 *   `timestamp`, `trace_id`, `correlation_id`, `error_uri`) with Entra's HTTP
 *   status. Access tokens are v1 JWTs (as Key Vault receives) signed by the
 *   mock's own RSA key.
 *
 * State (tenants, apps, federated credentials), token lifetime and faults
 * change at run time through the returned handle or the admin HTTP API under
 * `/_mock/` (docs/mocks.md). Assertions and tokens are never logged.
 */
import {
  SignJWT,
  calculateJwkThumbprint,
  compactVerify,
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  exportJWK,
  generateKeyPair,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
} from "jose";
import { randomBytes, randomUUID } from "node:crypto";
import { createLogger, type Logger } from "../../common/logger.ts";
import {
  ADMIN_PREFIX,
  AdminInputError,
  optionalNumber,
  optionalString,
  optionalStrings,
  requireString,
  serveAdmin,
} from "../admin.ts";
import {
  FaultQueue,
  checkFaultAction,
  seededRandom,
  type ActiveFault,
  type FaultAction,
  type FaultRule,
} from "../faults.ts";
import { fetchJson } from "../fetch-json.ts";
import { header, newGuid, type Call, type Reply } from "../https-server.ts";
import {
  RequestStats,
  applyFault,
  faultControls,
  listenMock,
  replyStatus,
  type CommonFaultAction,
} from "../mock-core.ts";
import { createMockTls, type ServingTls } from "../tls.ts";

/** The `client_assertion_type` of workload identity federation. */
export const JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/** The audience Entra expects of federated tokens, and the default of a federated credential. */
export const TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange";

/** Key Vault's resource id; a `scope` of `https://vault.azure.net/.default` asks for it. */
export const KEY_VAULT_RESOURCE = "https://vault.azure.net";

/** A federated identity credential: which external tokens may act as the app. */
export interface FederatedCredentialConfig {
  /** Exact `iss` of accepted tokens (case-sensitive, as Entra compares). */
  readonly issuer: string;
  /** Exact `sub`, e.g. `system:serviceaccount:<ns>:<sa>`. */
  readonly subject: string;
  /** Accepted `aud` values; default `["api://AzureADTokenExchange"]`. */
  readonly audiences?: readonly string[];
  /** A label; default `<issuer>#<subject>`. */
  readonly name?: string;
}

/** An application (or user-assigned managed identity) of a tenant. */
export interface AppConfig {
  /** The client id (appid) a token request names. */
  readonly clientId: string;
  /** The service principal's object id, the `oid` of its tokens; default a random GUID. */
  readonly objectId?: string;
  readonly federatedCredentials?: readonly FederatedCredentialConfig[];
}

/** A tenant (directory). */
export interface TenantConfig {
  /** Tenant id as clients name it in the authority path (a GUID in practice). */
  readonly id: string;
  readonly apps?: readonly AppConfig[];
}

/**
 * How a federation mismatch is reported. `legacy`: AADSTS70021 naming the
 * assertion's issuer, subject and audience, as Entra long answered and still
 * does in many regions. `granular`: AADSTS700211 (issuer), 700212 (audience)
 * or 700213 (subject), as newer Entra deployments answer.
 */
export type FederationErrorStyle = "legacy" | "granular";

/** Options of {@link startMockAad}. */
export interface MockAadOptions {
  /** Bind address; default `127.0.0.1` (`0.0.0.0` in a cluster). */
  readonly host?: string;
  /** Default 0: a free port. */
  readonly port?: number;
  /** The origin clients use, if not what their `Host` header says (e.g. behind a Service). */
  readonly publicUrl?: string;
  /** Serving certificate; default a fresh CA and a leaf for localhost/127.0.0.1/::1. */
  readonly tls?: ServingTls;
  readonly tenants?: readonly TenantConfig[];
  /** `expires_in` of access tokens; default 3599 (what Entra usually answers). */
  readonly tokenLifetimeSec?: number;
  /** CA certificates (PEM) to trust, besides Node's, when fetching a federated issuer's discovery and keys. */
  readonly trustedCaPems?: readonly string[];
  /** Clock skew allowed on an assertion's `exp`/`nbf`; default 300 s. */
  readonly clockSkewSec?: number;
  /** Default `legacy` (AADSTS70021). */
  readonly federationErrors?: FederationErrorStyle;
  /** Resources a client-credentials scope may name; default Key Vault, Graph and ARM. */
  readonly resources?: readonly string[];
  /** How long an issuer's discovery and JWKS are cached; default 60 s (a key miss refetches). */
  readonly issuerCacheMs?: number;
  /** Required in `x-mock-admin-token` on admin calls when set. */
  readonly adminToken?: string;
  /** The clock (ms since the epoch); default `Date.now`. */
  readonly now?: () => number;
  /** Seed of fractional faults; default random. */
  readonly seed?: number;
  /** Default: a silent logger. */
  readonly logger?: Logger;
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

/** Which requests a fault applies to. */
export interface AadFaultMatch {
  /** Default `token`: discovery and keys are cached by MSAL, so faulting them is rarely what a test means. */
  readonly endpoint?: AadEndpoint | "any";
  /** Only token requests of this client id. */
  readonly clientId?: string;
}

/** The endpoints of the mock, as counted and matched. */
export type AadEndpoint = "openid-configuration" | "keys" | "token" | "other";

/** Request counts since start or the last reset. */
export interface AadCounters {
  /** Every request but admin ones. */
  total: number;
  openidConfiguration: number;
  keys: number;
  /** POSTs to the token endpoint, whatever the outcome. */
  tokenRequests: number;
  tokensIssued: number;
  /** Token requests refused with an Entra error (faults included). */
  tokenErrors: number;
  /** Requests a fault applied to. */
  faults: number;
  /** Tokens issued per client id. */
  tokensByClientId: Record<string, number>;
  /** Refusals per code, e.g. `{ "AADSTS70021": 1 }`. */
  errorsByCode: Record<string, number>;
}

/** One line of the request log (no bodies, no tokens). */
export interface AadRequestRecord {
  readonly at: number;
  readonly method: string;
  readonly path: string;
  readonly endpoint: AadEndpoint;
  readonly status: number | "dropped" | "hung";
  readonly clientId?: string;
  readonly errorCode?: string;
}

/** A running mock Entra ID. */
export interface MockAad {
  /** `https://host:port`: the authority host (`authorityHost`, `AZURE_AUTHORITY_HOST`). */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** PEM of the CA clients must trust, when known. */
  readonly ca: string | undefined;
  /** The `iss` of access tokens for a tenant: `https://sts.windows.net/{tenant}/`. */
  accessTokenIssuer(tenantId: string): string;
  /** The public keys that verify access tokens. */
  jwks(): JSONWebKeySet;
  addTenant(tenant: TenantConfig): void;
  /** Adds or replaces an app; returns its object id. */
  addApp(tenantId: string, app: AppConfig): string;
  addFederatedCredential(
    tenantId: string,
    clientId: string,
    credential: FederatedCredentialConfig,
  ): void;
  /** Removes credentials by name, or all of the app's when `name` is omitted. */
  removeFederatedCredential(tenantId: string, clientId: string, name?: string): void;
  /** Trusts another CA when fetching federated issuers' metadata. */
  trustIssuerCa(pem: string): void;
  setTokenLifetime(seconds: number): void;
  setFederationErrors(style: FederationErrorStyle): void;
  /** Adds a fault rule; returns its id. */
  injectFault(rule: FaultRule<AadFaultAction, AadFaultMatch>): number;
  /** Removes one fault rule, or all. */
  clearFaults(id?: number): void;
  faults(): ActiveFault<AadFaultAction, AadFaultMatch>[];
  counters(): AadCounters;
  resetCounters(): void;
  /** The last requests, oldest first (bounded). */
  requests(): readonly AadRequestRecord[];
  close(): Promise<void>;
}

interface App {
  readonly clientId: string;
  readonly objectId: string;
  federatedCredentials: Required<FederatedCredentialConfig>[];
}

interface TokenRequestContext {
  readonly endpoint: AadEndpoint;
  readonly clientId: string | undefined;
}

/** An Entra refusal on its way to the client. */
interface AadRefusal {
  readonly status: number;
  readonly error: string;
  readonly code: number;
  readonly message: string;
  readonly headers?: Readonly<Record<string, string>>;
}

const DEFAULT_RESOURCES = [
  KEY_VAULT_RESOURCE,
  "https://graph.microsoft.com",
  "https://management.azure.com",
];

/** The OIDC scopes MSAL may add; they are not resources. */
const OIDC_SCOPES = new Set(["openid", "profile", "offline_access", "email"]);

/** Starts a mock Entra ID. */
export async function startMockAad(options: MockAadOptions = {}): Promise<MockAad> {
  const logger = options.logger ?? createLogger({ name: "mock-aad", level: "silent" });
  const now = options.now ?? Date.now;
  const tls = options.tls ?? createMockTls();
  const tenants = new Map<string, Map<string, App>>();
  const trustedCas = [...(options.trustedCaPems ?? [])];
  let tokenLifetimeSec = options.tokenLifetimeSec ?? 3599;
  if (!(Number.isInteger(tokenLifetimeSec) && tokenLifetimeSec > 0)) {
    throw new RangeError("tokenLifetimeSec: a positive integer of seconds");
  }
  let federationErrors: FederationErrorStyle = options.federationErrors ?? "legacy";
  const resources = new Set((options.resources ?? DEFAULT_RESOURCES).map(trimSlash));
  const clockSkewSec = options.clockSkewSec ?? 300;
  const issuerCacheMs = options.issuerCacheMs ?? 60_000;
  const issuerCache = new Map<string, { at: number; jwks: JSONWebKeySet }>();
  const faultQueue = new FaultQueue<AadFaultAction, AadFaultMatch, TokenRequestContext>(
    (match, ctx) =>
      (match.endpoint === undefined ||
        match.endpoint === "any" ||
        match.endpoint === ctx.endpoint) &&
      (match.clientId === undefined || match.clientId === ctx.clientId),
    seededRandom(options.seed ?? randomBytes(4).readUInt32LE()),
  );
  const faults = faultControls(faultQueue, checkAadFaultAction, withDefaultMatch);
  const stats = new RequestStats<AadCounters, AadRequestRecord>(emptyCounters);

  // The signing key of access tokens; kid is its thumbprint, as x5t is for Entra's.
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const publicJwk: JWK = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const jwks: JSONWebKeySet = {
    keys: [{ ...publicJwk, kty: "RSA", use: "sig", kid, x5t: kid, alg: "RS256" }],
  };

  const findTenant = (id: string): Map<string, App> | undefined => tenants.get(id.toLowerCase());
  const addTenant = (tenant: TenantConfig): void => {
    const key = tenant.id.toLowerCase();
    if (!tenants.has(key)) tenants.set(key, new Map());
    for (const app of tenant.apps ?? []) addApp(tenant.id, app);
  };
  const addApp = (tenantId: string, app: AppConfig): string => {
    const apps = findTenant(tenantId);
    if (apps === undefined) throw new AdminInputError(`no tenant '${tenantId}'`);
    const objectId = app.objectId ?? randomUUID();
    apps.set(app.clientId.toLowerCase(), {
      clientId: app.clientId,
      objectId,
      federatedCredentials: (app.federatedCredentials ?? []).map(completeCredential),
    });
    return objectId;
  };
  const findApp = (tenantId: string, clientId: string): App => {
    const app = findTenant(tenantId)?.get(clientId.toLowerCase());
    if (app === undefined)
      throw new AdminInputError(`no app '${clientId}' in tenant '${tenantId}'`);
    return app;
  };
  const addFederatedCredential = (
    tenantId: string,
    clientId: string,
    credential: FederatedCredentialConfig,
  ): void => {
    findApp(tenantId, clientId).federatedCredentials.push(completeCredential(credential));
  };
  const removeFederatedCredential = (tenantId: string, clientId: string, name?: string): void => {
    const app = findApp(tenantId, clientId);
    app.federatedCredentials =
      name === undefined ? [] : app.federatedCredentials.filter((c) => c.name !== name);
  };
  const trustIssuerCa = (pem: string): void => {
    trustedCas.push(pem);
    issuerCache.clear();
  };
  const setTokenLifetime = (seconds: number): void => {
    if (!(Number.isInteger(seconds) && seconds > 0)) {
      throw new RangeError("token lifetime: a positive integer of seconds");
    }
    tokenLifetimeSec = seconds;
  };
  for (const t of options.tenants ?? []) addTenant(t);

  function record(entry: AadRequestRecord): void {
    stats.record(entry);
    logger.info(
      {
        method: entry.method,
        path: entry.path,
        status: entry.status,
        clientId: entry.clientId,
        errorCode: entry.errorCode,
      },
      "mock-aad request",
    );
  }

  // ---- Entra answers -------------------------------------------------------

  const baseHeaders = (call: Call): Record<string, string> => ({
    "cache-control": "no-store, no-cache",
    pragma: "no-cache",
    "x-ms-request-id": newGuid(),
    ...(header(call, "client-request-id") === undefined
      ? {}
      : { "client-request-id": header(call, "client-request-id") ?? "" }),
  });

  function refuse(call: Call, refusal: AadRefusal): Reply {
    const traceId = newGuid();
    // Entra echoes the client's request id as the correlation id.
    const correlationId = header(call, "client-request-id") ?? newGuid();
    const timestamp = entraTimestamp(now());
    return {
      status: refusal.status,
      headers: { ...baseHeaders(call), ...refusal.headers },
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

  const tenantNotFound = (tenant: string): AadRefusal => ({
    status: 400,
    error: "invalid_tenant",
    code: 90002,
    message: `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
  });

  function openIdConfiguration(call: Call, tenant: string): Reply {
    const base = `${call.origin}/${tenant}`;
    return {
      status: 200,
      headers: baseHeaders(call),
      json: {
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
        userinfo_endpoint: `${call.origin}/oidc/userinfo`,
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
      },
    };
  }

  /** The issuer's keys: its discovery document names `jwks_uri`. Cached; `fresh` refetches. */
  async function issuerKeys(issuer: string, fresh: boolean): Promise<JSONWebKeySet> {
    const cached = issuerCache.get(issuer);
    if (!fresh && cached !== undefined && now() - cached.at < issuerCacheMs) return cached.jwks;
    const discoveryUrl = `${trimSlash(issuer)}/.well-known/openid-configuration`;
    const discovery = await fetchJson(discoveryUrl, { caPems: trustedCas });
    const d = (typeof discovery === "object" && discovery !== null ? discovery : {}) as Record<
      string,
      unknown
    >;
    // OIDC discovery: the document must be about this very issuer.
    if (d.issuer !== issuer) throw new Error(`${discoveryUrl} names issuer '${String(d.issuer)}'`);
    if (typeof d.jwks_uri !== "string") throw new Error(`${discoveryUrl} has no jwks_uri`);
    const keys = await fetchJson(d.jwks_uri, { caPems: trustedCas });
    if (typeof keys !== "object" || keys === null || !Array.isArray((keys as JSONWebKeySet).keys)) {
      throw new Error(`${d.jwks_uri} is not a JWKS`);
    }
    issuerCache.set(issuer, { at: now(), jwks: keys as JSONWebKeySet });
    return keys as JSONWebKeySet;
  }

  /** Checks a token request; returns the refusal or the claims of the token to issue. */
  async function exchange(
    call: Call,
    tenantId: string,
    form: URLSearchParams,
  ): Promise<AadRefusal | { app: App; resource: string; capabilities: boolean }> {
    const apps = findTenant(tenantId);
    if (apps === undefined) return tenantNotFound(tenantId);
    const missing = (name: string): AadRefusal => ({
      status: 400,
      error: "invalid_request",
      code: 900144,
      message: `The request body must contain the following parameter: '${name}'.`,
    });
    const grantType = form.get("grant_type");
    if (grantType === null) return missing("grant_type");
    if (grantType !== "client_credentials") {
      return {
        status: 400,
        error: "unsupported_grant_type",
        code: 70003,
        message: `The app requested an unsupported grant type '${grantType}'.`,
      };
    }
    const clientId = form.get("client_id");
    if (clientId === null) return missing("client_id");
    const scope = form.get("scope");
    if (scope === null) return missing("scope");
    const app = apps.get(clientId.toLowerCase());
    if (app === undefined) {
      return {
        status: 400,
        error: "unauthorized_client",
        code: 700016,
        message: `Application with identifier '${clientId}' was not found in the directory '${tenantId}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
      };
    }
    if (form.has("client_secret")) {
      return {
        status: 401,
        error: "invalid_client",
        code: 7000215,
        message: `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
      };
    }
    const assertion = form.get("client_assertion");
    if (assertion === null || form.get("client_assertion_type") !== JWT_BEARER) {
      return {
        status: 400,
        error: "invalid_client",
        code: 7000218,
        message:
          "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      };
    }
    const scopes = scope.split(" ").filter((s) => s !== "" && !OIDC_SCOPES.has(s));
    const only = scopes.length === 1 ? scopes[0] : undefined;
    if (only === undefined || !only.endsWith("/.default")) {
      return {
        status: 400,
        error: "invalid_scope",
        code: 1002012,
        message: `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      };
    }
    const resource = only.slice(0, -"/.default".length);
    if (!resources.has(trimSlash(resource))) {
      return {
        status: 400,
        error: "invalid_resource",
        code: 500011,
        message: `The resource principal named ${resource} was not found in the tenant named ${tenantId}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
      };
    }
    let capabilities = false;
    const claims = form.get("claims");
    if (claims !== null) {
      try {
        capabilities = JSON.stringify(JSON.parse(claims)).toLowerCase().includes('"cp1"');
      } catch {
        return {
          status: 400,
          error: "invalid_request",
          code: 90100,
          message: "claims parameter is empty or not valid.",
        };
      }
    }
    const refusal = await checkAssertion(assertion, app);
    return refusal ?? { app, resource: trimSlash(resource), capabilities };
  }

  /** Entra's checks of a federated client assertion, in Entra's order. */
  async function checkAssertion(assertion: string, app: App): Promise<AadRefusal | undefined> {
    const malformed: AadRefusal = {
      status: 400,
      error: "invalid_request",
      code: 50027,
      message: "JWT token is invalid or malformed.",
    };
    let payload: JWTPayload;
    let kidOfAssertion: string | undefined;
    try {
      payload = decodeJwt(assertion);
      const h = decodeProtectedHeader(assertion);
      if (h.alg !== "RS256") return malformed;
      kidOfAssertion = h.kid;
    } catch {
      return malformed;
    }
    const nowSec = now() / 1000;
    const { exp, nbf } = payload;
    if (
      exp === undefined ||
      nowSec > exp + clockSkewSec ||
      (nbf !== undefined && nowSec + clockSkewSec < nbf)
    ) {
      return {
        status: 401,
        error: "invalid_client",
        code: 700024,
        message: `Client assertion is not within its valid time range. Current time: ${entraInstant(now())}, assertion valid from ${entraInstant((nbf ?? 0) * 1000)}, expiry time of assertion ${entraInstant((exp ?? 0) * 1000)}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .`,
      };
    }
    const iss = typeof payload.iss === "string" ? payload.iss : "";
    const sub = typeof payload.sub === "string" ? payload.sub : "";
    const auds = typeof payload.aud === "string" ? [payload.aud] : (payload.aud ?? []);
    const credential = app.federatedCredentials.find(
      (c) => c.issuer === iss && c.subject === sub && c.audiences.some((a) => auds.includes(a)),
    );
    if (credential === undefined) return federationMismatch(app, iss, sub, auds);

    // Only now is the issuer contacted, as Entra does: an unknown issuer is refused without a fetch.
    let keys: JSONWebKeySet;
    try {
      keys = await issuerKeys(iss, false);
      if (kidOfAssertion !== undefined && !keys.keys.some((k) => k.kid === kidOfAssertion)) {
        keys = await issuerKeys(iss, true); // the issuer may have rotated its keys
      }
    } catch (error) {
      logger.warn(
        { issuer: iss, reason: (error as Error).message },
        "mock-aad: issuer metadata fetch failed",
      );
      return {
        status: 400,
        error: "invalid_request",
        code: 90061,
        message: "Request to External OIDC endpoint failed.",
      };
    }
    try {
      await compactVerify(assertion, createLocalJWKSet(keys), { algorithms: ["RS256"] });
      return undefined;
    } catch (error) {
      if (
        error instanceof joseErrors.JWKSNoMatchingKey ||
        error instanceof joseErrors.JWKSMultipleMatchingKeys
      ) {
        return {
          status: 401,
          error: "invalid_client",
          code: 7000272,
          message: `The certificate with identifier ${kidOfAssertion ?? "(none)"} used to sign the federated credential could not be found in the metadata of identity provider ${iss}. Please validate that your Identity Provider's metadata exposes the key used to sign the incoming token.`,
        };
      }
      return {
        status: 401,
        error: "invalid_client",
        code: 700027,
        message: "Client assertion failed signature validation.",
      };
    }
  }

  function federationMismatch(
    app: App,
    iss: string,
    sub: string,
    auds: readonly string[],
  ): AadRefusal {
    const doc = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation";
    const invalidClient = { status: 401, error: "invalid_client" };
    if (federationErrors === "granular") {
      const byIssuer = app.federatedCredentials.filter((c) => c.issuer === iss);
      if (byIssuer.length === 0) {
        return {
          ...invalidClient,
          code: 700211,
          message: `No matching federated identity record found for presented assertion issuer '${iss}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. ${doc}`,
        };
      }
      if (!byIssuer.some((c) => c.subject === sub)) {
        return {
          ...invalidClient,
          code: 700213,
          message: `No matching federated identity record found for presented assertion subject '${sub}'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. ${doc}`,
        };
      }
      return {
        ...invalidClient,
        code: 700212,
        message: `No matching federated identity record found for presented assertion audience '${auds.join(",")}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. ${doc}`,
      };
    }
    return {
      ...invalidClient,
      code: 70021,
      message: `No matching federated identity record found for presented assertion. Assertion Issuer: '${iss}'. Assertion Subject: '${sub}'. Assertion Audience: '${auds.join(",")}'. ${doc}`,
    };
  }

  async function issueToken(
    call: Call,
    tenantId: string,
    grant: { app: App; resource: string; capabilities: boolean },
  ): Promise<Reply> {
    const nowSec = Math.floor(now() / 1000);
    const issuer = accessTokenIssuer(tenantId);
    // Entra back-dates iat/nbf by five minutes to absorb clock skew.
    const claims: JWTPayload = {
      aud: grant.resource,
      iss: issuer,
      iat: nowSec - 300,
      nbf: nowSec - 300,
      exp: nowSec + tokenLifetimeSec,
      aio: randomBytes(24).toString("base64url"),
      appid: grant.app.clientId,
      appidacr: "2",
      idp: issuer,
      idtyp: "app",
      oid: grant.app.objectId,
      rh: randomBytes(16).toString("base64url"),
      sub: grant.app.objectId,
      tid: tenantId,
      uti: randomBytes(16).toString("base64url"),
      ver: "1.0",
      ...(grant.capabilities ? { xms_cc: ["CP1"] } : {}),
    };
    const accessToken = await new SignJWT(claims)
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid, x5t: kid })
      .sign(privateKey);
    return {
      status: 200,
      headers: baseHeaders(call),
      json: {
        token_type: "Bearer",
        expires_in: tokenLifetimeSec,
        ext_expires_in: tokenLifetimeSec,
        // Entra tells clients to refresh at half-life for long-lived tokens.
        ...(tokenLifetimeSec > 7200 ? { refresh_in: Math.floor(tokenLifetimeSec / 2) } : {}),
        access_token: accessToken,
      },
    };
  }

  function accessTokenIssuer(tenantId: string): string {
    return `https://sts.windows.net/${tenantId}/`;
  }

  // ---- faults ----------------------------------------------------------------

  function faultReply(call: Call, action: Exclude<AadFaultAction, CommonFaultAction>): Reply {
    switch (action.type) {
      case "aadsts":
        return refuse(call, {
          status: action.status ?? 400,
          error: action.error ?? "invalid_request",
          code: action.code,
          message: action.description ?? "Injected failure.",
          ...(action.retryAfterSeconds === undefined
            ? {}
            : { headers: { "retry-after": String(action.retryAfterSeconds) } }),
        });
      case "status": {
        const extra = {
          ...(action.retryAfterSeconds === undefined
            ? {}
            : { "retry-after": String(action.retryAfterSeconds) }),
          ...action.headers,
        };
        if (action.body !== undefined) {
          return {
            status: action.status,
            headers: { ...baseHeaders(call), ...extra },
            json: action.body,
          };
        }
        // Entra's transient failure: AADSTS90033 for 5xx, throttling for 429.
        return refuse(call, {
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
  }

  // ---- routing ---------------------------------------------------------------

  async function handle(call: Call): Promise<Reply> {
    const path = call.url.pathname;
    if (path.startsWith(ADMIN_PREFIX)) return serveAdmin(call, options.adminToken, adminRoutes);

    stats.counters.total++;
    const segments = path.split("/").filter((s) => s !== "");
    const tenant = segments[0] ?? "";
    const rest = segments.slice(1).join("/");
    const endpoint: AadEndpoint =
      call.method === "GET" && rest === "v2.0/.well-known/openid-configuration"
        ? "openid-configuration"
        : call.method === "GET" && rest === "discovery/v2.0/keys"
          ? "keys"
          : call.method === "POST" && rest === "oauth2/v2.0/token"
            ? "token"
            : "other";
    const form = endpoint === "token" ? new URLSearchParams(call.body.toString("utf8")) : undefined;
    const clientId = form?.get("client_id") ?? undefined;
    if (endpoint === "openid-configuration") stats.counters.openidConfiguration++;
    if (endpoint === "keys") stats.counters.keys++;
    if (endpoint === "token") stats.counters.tokenRequests++;

    const reply =
      (await applyFault(faultQueue.take({ endpoint, clientId }), stats.counters, (action) =>
        faultReply(call, action),
      )) ?? (await route(call, endpoint, tenant, form));

    const status = replyStatus(reply);
    const errorCode = errorCodeOf(reply);
    if (endpoint === "token") {
      if (status === 200) {
        stats.counters.tokensIssued++;
        if (clientId !== undefined)
          stats.counters.tokensByClientId[clientId] =
            (stats.counters.tokensByClientId[clientId] ?? 0) + 1;
      } else stats.counters.tokenErrors++;
    }
    if (errorCode !== undefined)
      stats.counters.errorsByCode[errorCode] = (stats.counters.errorsByCode[errorCode] ?? 0) + 1;
    record({
      at: now(),
      method: call.method,
      path,
      endpoint,
      status,
      ...(clientId === undefined ? {} : { clientId }),
      ...(errorCode === undefined ? {} : { errorCode }),
    });
    return reply;
  }

  async function route(
    call: Call,
    endpoint: AadEndpoint,
    tenant: string,
    form: URLSearchParams | undefined,
  ): Promise<Reply> {
    switch (endpoint) {
      case "openid-configuration":
        return findTenant(tenant) === undefined
          ? refuse(call, tenantNotFound(tenant))
          : openIdConfiguration(call, tenant);
      case "keys":
        // Entra's signing keys are the same for every tenant.
        return { status: 200, headers: baseHeaders(call), json: jwks };
      case "token": {
        const outcome = await exchange(call, tenant, form ?? new URLSearchParams());
        return "app" in outcome ? issueToken(call, tenant, outcome) : refuse(call, outcome);
      }
      case "other":
        return { status: 404, headers: baseHeaders(call), json: { error: "not_found" } };
    }
  }

  // ---- admin -------------------------------------------------------------------

  const adminRoutes = {
    "GET state": () => ({
      tenants: [...tenants.entries()].map(([id, apps]) => ({
        id,
        apps: [...apps.values()].map((a) => ({
          clientId: a.clientId,
          objectId: a.objectId,
          federatedCredentials: a.federatedCredentials,
        })),
      })),
      tokenLifetimeSec,
      federationErrors,
      faults: faultQueue.list(),
    }),
    "POST tenants": (body: Record<string, unknown>) => {
      addTenant({ id: requireString(body, "id") });
    },
    "POST apps": (body: Record<string, unknown>) => {
      const objectId = optionalString(body, "objectId");
      return {
        objectId: addApp(requireString(body, "tenantId"), {
          clientId: requireString(body, "clientId"),
          ...(objectId === undefined ? {} : { objectId }),
        }),
      };
    },
    "POST federated-credentials": (body: Record<string, unknown>) => {
      const audiences = optionalStrings(body, "audiences");
      const name = optionalString(body, "name");
      addFederatedCredential(requireString(body, "tenantId"), requireString(body, "clientId"), {
        issuer: requireString(body, "issuer"),
        subject: requireString(body, "subject"),
        ...(audiences === undefined ? {} : { audiences }),
        ...(name === undefined ? {} : { name }),
      });
    },
    "DELETE federated-credentials": (body: Record<string, unknown>) => {
      removeFederatedCredential(
        requireString(body, "tenantId"),
        requireString(body, "clientId"),
        optionalString(body, "name"),
      );
    },
    "POST trusted-cas": (body: Record<string, unknown>) => {
      trustIssuerCa(requireString(body, "pem"));
    },
    "PUT settings": (body: Record<string, unknown>) => {
      const lifetime = optionalNumber(body, "tokenLifetimeSec");
      if (lifetime !== undefined) setTokenLifetime(lifetime);
      const style = optionalString(body, "federationErrors");
      if (style !== undefined) {
        if (style !== "legacy" && style !== "granular")
          throw new AdminInputError("federationErrors: legacy or granular");
        federationErrors = style;
      }
    },
    ...faults.adminRoutes,
    ...stats.adminRoutes(),
  };

  return {
    ...(await listenMock("mock-aad", options, tls, handle, logger)),
    accessTokenIssuer,
    jwks: () => structuredClone(jwks),
    addTenant,
    addApp,
    addFederatedCredential,
    removeFederatedCredential,
    trustIssuerCa,
    setTokenLifetime,
    setFederationErrors(style) {
      federationErrors = style;
    },
    ...faults.methods,
    ...stats.handleMethods(),
  };
}

/** {@link checkFaultAction}, and Entra-shaped refusals. */
function checkAadFaultAction(action: unknown): string | undefined {
  const a = action as Record<string, unknown> | undefined;
  return a?.type === "aadsts"
    ? typeof a.code === "number"
      ? undefined
      : "aadsts needs a numeric code"
    : checkFaultAction(action);
}

/** A rule without an endpoint applies to token requests (see {@link AadFaultMatch}). */
function withDefaultMatch(
  rule: FaultRule<AadFaultAction, AadFaultMatch>,
): FaultRule<AadFaultAction, AadFaultMatch> {
  return { ...rule, match: { endpoint: "token", ...rule.match } };
}

function completeCredential(c: FederatedCredentialConfig): Required<FederatedCredentialConfig> {
  return {
    issuer: c.issuer,
    subject: c.subject,
    audiences: c.audiences ?? [TOKEN_EXCHANGE_AUDIENCE],
    name: c.name ?? `${c.issuer}#${c.subject}`,
  };
}

function emptyCounters(): AadCounters {
  return {
    total: 0,
    openidConfiguration: 0,
    keys: 0,
    tokenRequests: 0,
    tokensIssued: 0,
    tokenErrors: 0,
    faults: 0,
    tokensByClientId: {},
    errorsByCode: {},
  };
}

function errorCodeOf(reply: Reply): string | undefined {
  if (!("status" in reply) || typeof reply.json !== "object" || reply.json === null)
    return undefined;
  const codes = (reply.json as { error_codes?: unknown }).error_codes;
  return Array.isArray(codes) && typeof codes[0] === "number" ? `AADSTS${codes[0]}` : undefined;
}

function trimSlash(url: string): string {
  return url.endsWith("/") ? url.slice(0, -1) : url;
}

/** Entra's `timestamp`: `2024-03-01 07:41:07Z`. */
function entraTimestamp(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
}

/** Entra's instants in AADSTS700024: seven fractional digits, `2024-10-02T22:05:03.6755165Z`. */
function entraInstant(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, (_m, frac: string) => `.${frac}0000Z`);
}
