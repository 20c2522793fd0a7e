/**
 * Whether a token request gets a token, decided as Entra decides it for
 * workload identity federation: the form (grant type, client id, scope and
 * resource, CAE claims), then the client assertion in Entra's order: its
 * time range, a federated credential of the app that matches its issuer,
 * subject and audience, and only then its signature against the issuer's
 * JWKS, found through the issuer's OIDC discovery (so an unknown issuer is
 * refused without a fetch). Each refusal carries Entra's AADSTS code.
 */
import {
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  type JSONWebKeySet,
  type JWTPayload,
} from "jose";
import type { Logger } from "../../common/logger.ts";
import { trimSlash } from "../azure.ts";
import { fetchJson } from "../fetch-json.ts";
import type { KeySetVerifier } from "../key-sets.ts";
import type { App, Directory } from "./store.ts";
import type { Grant } from "./tokens.ts";
import { entraInstant, tenantNotFound, type AadRefusal } from "./wire.ts";

/** The `client_assertion_type` of workload identity federation. */
export const JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/**
 * How a federation mismatch is reported. `legacy`: AADSTS70021 naming the
 * assertion's issuer, subject and audience, as Entra long answered and still
 * does in many regions. `granular`: AADSTS700211 (issuer), 700212 (audience)
 * or 700213 (subject), as newer Entra deployments answer.
 */
export type FederationErrorStyle = "legacy" | "granular";

/** What a token request is checked against. */
export interface TokenPolicy {
  readonly directory: Directory;
  /** Resources a `…/.default` scope may name, without trailing slashes. */
  readonly resources: ReadonlySet<string>;
  /** Clock skew allowed on an assertion's `exp`/`nbf`, in seconds. */
  readonly clockSkewSec: number;
  readonly federationErrors: () => FederationErrorStyle;
  readonly issuerKeys: IssuerKeys;
  /** Checks assertions' signatures, each issuer's keys imported once. */
  readonly keySets: KeySetVerifier;
  readonly now: () => number;
  readonly logger: Logger;
}

/** The OIDC scopes MSAL may add; they are not resources. */
const OIDC_SCOPES = new Set(["openid", "profile", "offline_access", "email"]);

/** Checks a token request's form; returns the refusal or what to issue. */
export async function checkTokenRequest(
  tenantId: string,
  form: URLSearchParams,
  policy: TokenPolicy,
): Promise<AadRefusal | Grant> {
  if (!policy.directory.hasTenant(tenantId)) return tenantNotFound(tenantId);
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
  const app = policy.directory.app(tenantId, clientId);
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
  const resource = resourceOf(scope, tenantId, policy.resources);
  if (typeof resource !== "string") return resource;
  const capabilities = capabilitiesOf(form.get("claims"));
  if (typeof capabilities !== "boolean") return capabilities;
  const refusal = await checkAssertion(assertion, app, policy);
  return refusal ?? { app, tenantId, resource, capabilities };
}

function missing(name: string): AadRefusal {
  return {
    status: 400,
    error: "invalid_request",
    code: 900144,
    message: `The request body must contain the following parameter: '${name}'.`,
  };
}

/** The one resource of a client-credentials scope (`<resource>/.default`), or the refusal. */
function resourceOf(
  scope: string,
  tenantId: string,
  resources: ReadonlySet<string>,
): string | AadRefusal {
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
  return trimSlash(resource);
}

/** Whether the `claims` parameter asks for CAE (`cp1`), or the refusal of one that is not JSON. */
function capabilitiesOf(claims: string | null): boolean | AadRefusal {
  if (claims === null) return false;
  try {
    return JSON.stringify(JSON.parse(claims)).toLowerCase().includes('"cp1"');
  } catch {
    return {
      status: 400,
      error: "invalid_request",
      code: 90100,
      message: "claims parameter is empty or not valid.",
    };
  }
}

/** Entra's checks of a federated client assertion, in Entra's order. */
async function checkAssertion(
  assertion: string,
  app: App,
  policy: TokenPolicy,
): Promise<AadRefusal | undefined> {
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
  const outOfTime = checkTimeRange(payload, policy);
  if (outOfTime !== undefined) return outOfTime;
  const iss = typeof payload.iss === "string" ? payload.iss : "";
  const sub = typeof payload.sub === "string" ? payload.sub : "";
  const auds = typeof payload.aud === "string" ? [payload.aud] : (payload.aud ?? []);
  const credential = app.federatedCredentials.find(
    (c) => c.issuer === iss && c.subject === sub && c.audiences.some((a) => auds.includes(a)),
  );
  if (credential === undefined)
    return federationMismatch(app, iss, sub, auds, policy.federationErrors());
  // Only now is the issuer contacted, as Entra does: an unknown issuer is refused without a fetch.
  return checkSignature(assertion, iss, kidOfAssertion, policy);
}

/** AADSTS700024 when the assertion is expired or not yet valid (with the allowed skew). */
function checkTimeRange(payload: JWTPayload, policy: TokenPolicy): AadRefusal | undefined {
  const nowSec = policy.now() / 1000;
  const { exp, nbf } = payload;
  const skew = policy.clockSkewSec;
  const expired = exp === undefined || nowSec > exp + skew;
  const early = nbf !== undefined && nowSec + skew < nbf;
  if (!expired && !early) return undefined;
  return {
    status: 401,
    error: "invalid_client",
    code: 700024,
    message: `Client assertion is not within its valid time range. Current time: ${entraInstant(policy.now())}, assertion valid from ${entraInstant((nbf ?? 0) * 1000)}, expiry time of assertion ${entraInstant((exp ?? 0) * 1000)}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .`,
  };
}

/** The assertion's signature against its issuer's keys (refetched once on an unknown `kid`). */
async function checkSignature(
  assertion: string,
  iss: string,
  kidOfAssertion: string | undefined,
  policy: TokenPolicy,
): Promise<AadRefusal | undefined> {
  let keys: JSONWebKeySet;
  try {
    keys = await policy.issuerKeys.get(iss, false);
    if (kidOfAssertion !== undefined && !keys.keys.some((k) => k.kid === kidOfAssertion)) {
      keys = await policy.issuerKeys.get(iss, true); // the issuer may have rotated its keys
    }
  } catch (error) {
    policy.logger.warn(
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
    await policy.keySets.verify(assertion, keys);
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

/** No federated credential matches: which one of issuer, subject, audience, in `style`. */
function federationMismatch(
  app: App,
  iss: string,
  sub: string,
  auds: readonly string[],
  style: FederationErrorStyle,
): AadRefusal {
  const doc = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation";
  const invalidClient = { status: 401, error: "invalid_client" };
  if (style === "granular") {
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

/**
 * Federated issuers' signing keys, found through their OIDC discovery
 * document over HTTPS (trusting the given CAs besides Node's) and cached.
 */
export class IssuerKeys {
  readonly #trustedCas: string[];
  readonly #cacheMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, { at: number; jwks: JSONWebKeySet }>();
  /**
   * Fetches in flight, shared: a fleet's token requests arriving as the cache
   * expires must not each fetch the issuer (hundreds of HTTPS fetches at once
   * time out, and Entra would answer AADSTS90061 to each).
   */
  readonly #inFlight = new Map<string, Promise<JSONWebKeySet>>();

  constructor(trustedCas: readonly string[], cacheMs: number, now: () => number) {
    this.#trustedCas = [...trustedCas];
    this.#cacheMs = cacheMs;
    this.#now = now;
  }

  /** Trusts another CA from now on (and forgets what was cached). */
  trust(pem: string): void {
    this.#trustedCas.push(pem);
    this.#cache.clear();
  }

  /** The issuer's keys: its discovery document names `jwks_uri`. Cached; `fresh` refetches. */
  async get(issuer: string, fresh: boolean): Promise<JSONWebKeySet> {
    const cached = this.#cache.get(issuer);
    if (!fresh && cached !== undefined && this.#now() - cached.at < this.#cacheMs)
      return cached.jwks;
    const shared = this.#inFlight.get(issuer);
    if (shared !== undefined) return shared;
    const fetching = this.#fetch(issuer);
    this.#inFlight.set(issuer, fetching);
    try {
      return await fetching;
    } finally {
      if (this.#inFlight.get(issuer) === fetching) this.#inFlight.delete(issuer);
    }
  }

  async #fetch(issuer: string): Promise<JSONWebKeySet> {
    const caPems = this.#trustedCas;
    const discoveryUrl = `${trimSlash(issuer)}/.well-known/openid-configuration`;
    const discovery = await fetchJson(discoveryUrl, { caPems });
    const d = (typeof discovery === "object" && discovery !== null ? discovery : {}) as Record<
      string,
      unknown
    >;
    // OIDC discovery: the document must be about this very issuer.
    if (d.issuer !== issuer) throw new Error(`${discoveryUrl} names issuer '${String(d.issuer)}'`);
    if (typeof d.jwks_uri !== "string") throw new Error(`${discoveryUrl} has no jwks_uri`);
    const keys = await fetchJson(d.jwks_uri, { caPems });
    if (typeof keys !== "object" || keys === null || !Array.isArray((keys as JSONWebKeySet).keys)) {
      throw new Error(`${d.jwks_uri} is not a JWKS`);
    }
    this.#cache.set(issuer, { at: this.#now(), jwks: keys as JSONWebKeySet });
    return keys as JSONWebKeySet;
  }
}
