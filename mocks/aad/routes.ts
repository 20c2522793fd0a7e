/**
 * What each request to the mock Entra ID gets: which endpoint it is (the
 * tenant's OpenID configuration, its keys, its token endpoint), a fault if
 * one fires, else the endpoint's answer. Adding an endpoint means a case in
 * {@link endpointOf} and one in {@link serveEndpoint}. Every request is
 * counted and logged here, never with an assertion or a token.
 */
import type { Logger } from "../../common/logger.ts";
import { applyFault, type FaultQueue, type FaultRule, type Throttle } from "../faults.ts";
import type { Call, Reply } from "../https-server.ts";
import { replyStatus, type RequestStats } from "../request-stats.ts";
import { checkTokenRequest, type TokenPolicy } from "./auth.ts";
import type { TokenSigner } from "./tokens.ts";
import {
  errorCodeOf,
  openIdConfiguration,
  tenantNotFound,
  type AadFaultAction,
  type EntraWire,
} from "./wire.ts";

/** The endpoints of the mock, as counted and matched. */
export type AadEndpoint = "openid-configuration" | "keys" | "token" | "other";

/** Which requests a fault applies to. */
export interface AadFaultMatch {
  /** Default `token`: discovery and keys are cached by MSAL, so faulting them is rarely what a test means. */
  readonly endpoint?: AadEndpoint | "any";
  /** Only token requests of this client id. */
  readonly clientId?: string;
}

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
  /** Token requests the throttle answered with 429. */
  throttled: number;
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

/** A request as fault rules see it. */
export interface TokenRequestContext {
  readonly endpoint: AadEndpoint;
  readonly clientId: string | undefined;
}

/** Everything the endpoints read and count. */
export interface EntraService {
  readonly policy: TokenPolicy;
  readonly signer: TokenSigner;
  readonly tokenLifetimeSec: () => number;
  readonly wire: EntraWire;
  readonly stats: RequestStats<AadCounters, AadRequestRecord>;
  readonly faults: FaultQueue<AadFaultAction, AadFaultMatch, TokenRequestContext>;
  /** The throttle of token requests in force, if any. */
  readonly throttle: () => Throttle | undefined;
  readonly now: () => number;
  readonly logger: Logger;
}

/** Counters at zero. */
export function emptyCounters(): AadCounters {
  return {
    total: 0,
    openidConfiguration: 0,
    keys: 0,
    tokenRequests: 0,
    tokensIssued: 0,
    tokenErrors: 0,
    faults: 0,
    throttled: 0,
    tokensByClientId: {},
    errorsByCode: {},
  };
}

/** Whether a fault rule's filter accepts a request. */
export function matchesFault(match: AadFaultMatch, request: TokenRequestContext): boolean {
  return (
    (match.endpoint === undefined ||
      match.endpoint === "any" ||
      match.endpoint === request.endpoint) &&
    (match.clientId === undefined || match.clientId === request.clientId)
  );
}

/** A rule without an endpoint applies to token requests (see {@link AadFaultMatch}). */
export function withDefaultMatch(
  rule: FaultRule<AadFaultAction, AadFaultMatch>,
): FaultRule<AadFaultAction, AadFaultMatch> {
  return { ...rule, match: { endpoint: "token", ...rule.match } };
}

/** Serves one request, counts it and logs it. */
export async function serveRequest(call: Call, service: EntraService): Promise<Reply> {
  service.stats.counters.total++;
  const segments = call.url.pathname.split("/").filter((s) => s !== "");
  const tenant = segments[0] ?? "";
  const endpoint = endpointOf(call.method, segments.slice(1).join("/"));
  const form = endpoint === "token" ? new URLSearchParams(call.body.toString("utf8")) : undefined;
  const clientId = form?.get("client_id") ?? undefined;
  countEndpoint(endpoint, service.stats.counters);
  const reply =
    (await applyFault(
      service.faults.take({ endpoint, clientId }),
      service.stats.counters,
      (action) => service.wire.fault(call, action),
    )) ??
    throttleToken(call, endpoint, service) ??
    (await serveEndpoint(call, endpoint, tenant, form, service));
  record(call, endpoint, clientId, reply, service);
  return reply;
}

/**
 * Entra's answer to a token request over the throttle: 429 AADSTS90055 with
 * the seconds until a slot frees (at least 1). Discovery and keys are not
 * throttled: MSAL caches them, and the limit that bites a fleet is on tokens.
 */
function throttleToken(
  call: Call,
  endpoint: AadEndpoint,
  service: EntraService,
): Reply | undefined {
  if (endpoint !== "token") return undefined;
  const waitMs = service.throttle()?.admit(service.now());
  if (waitMs === undefined) return undefined;
  service.stats.counters.throttled++;
  return service.wire.fault(call, {
    type: "status",
    status: 429,
    retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)),
  });
}

/** The endpoint a method and the path after the tenant name. */
function endpointOf(method: string, rest: string): AadEndpoint {
  if (method === "GET" && rest === "v2.0/.well-known/openid-configuration")
    return "openid-configuration";
  if (method === "GET" && rest === "discovery/v2.0/keys") return "keys";
  if (method === "POST" && rest === "oauth2/v2.0/token") return "token";
  return "other";
}

function countEndpoint(endpoint: AadEndpoint, counters: AadCounters): void {
  if (endpoint === "openid-configuration") counters.openidConfiguration++;
  if (endpoint === "keys") counters.keys++;
  if (endpoint === "token") counters.tokenRequests++;
}

async function serveEndpoint(
  call: Call,
  endpoint: AadEndpoint,
  tenant: string,
  form: URLSearchParams | undefined,
  service: EntraService,
): Promise<Reply> {
  const { wire } = service;
  switch (endpoint) {
    case "openid-configuration":
      return service.policy.directory.hasTenant(tenant)
        ? wire.ok(call, openIdConfiguration(call.origin, tenant))
        : wire.refuse(call, tenantNotFound(tenant));
    case "keys":
      // Entra's signing keys are the same for every tenant.
      return wire.ok(call, service.signer.jwks);
    case "token": {
      const outcome = await checkTokenRequest(
        tenant,
        form ?? new URLSearchParams(),
        service.policy,
      );
      if (!("app" in outcome)) return wire.refuse(call, outcome);
      return wire.ok(
        call,
        await service.signer.answer(outcome, service.tokenLifetimeSec(), service.now()),
      );
    }
    case "other":
      return { status: 404, headers: wire.headers(call), json: { error: "not_found" } };
  }
}

/** Counts the outcome (tokens issued, refusals by code) and appends it to the request log. */
function record(
  call: Call,
  endpoint: AadEndpoint,
  clientId: string | undefined,
  reply: Reply,
  service: EntraService,
): void {
  const counters = service.stats.counters;
  const status = replyStatus(reply);
  const errorCode = errorCodeOf(reply);
  if (endpoint === "token") {
    if (status === 200) {
      counters.tokensIssued++;
      if (clientId !== undefined)
        counters.tokensByClientId[clientId] = (counters.tokensByClientId[clientId] ?? 0) + 1;
    } else counters.tokenErrors++;
  }
  if (errorCode !== undefined)
    counters.errorsByCode[errorCode] = (counters.errorsByCode[errorCode] ?? 0) + 1;
  const entry: AadRequestRecord = {
    at: service.now(),
    method: call.method,
    path: call.url.pathname,
    endpoint,
    status,
    ...(clientId === undefined ? {} : { clientId }),
    ...(errorCode === undefined ? {} : { errorCode }),
  };
  service.stats.record(entry);
  service.logger.info(
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
