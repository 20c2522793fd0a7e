/**
 * A mock of Microsoft Entra ID (AAD) for workload identity federation that
 * the real `@azure/identity` (MSAL) talks to unmodified over HTTPS
 * (docs/mocks.md): tenants, apps and federated credentials (store.ts), the
 * token request and client assertion checked as Entra checks them
 * (auth.ts), the access tokens it signs (tokens.ts), Entra's JSON shapes
 * (wire.ts), the endpoints (routes.ts), and the admin API (admin.ts). This
 * file wires them, with the shared faults, counters and request log, into
 * one listening mock and its handle. Assertions and tokens are never logged.
 */
import type { JSONWebKeySet } from "jose";
import { randomBytes } from "node:crypto";
import { createLogger, type Logger } from "../../common/logger.ts";
import { KEY_VAULT_RESOURCE, accessTokenIssuer, trimSlash } from "../azure.ts";
import {
  FaultQueue,
  Throttle,
  faultControls,
  seededRandom,
  type FaultMethods,
  type ThrottleOptions,
} from "../faults.ts";
import { KeySetVerifier } from "../key-sets.ts";
import { listenMock, type ListeningMock } from "../listen.ts";
import { RequestStats, type RequestStatsMethods } from "../request-stats.ts";
import type { ServingTls } from "../tls.ts";
import { entraAdminRoutes } from "./admin.ts";
import { IssuerKeys, type FederationErrorStyle } from "./auth.ts";
import {
  emptyCounters,
  matchesFault,
  serveRequest,
  withDefaultMatch,
  type AadCounters,
  type AadFaultMatch,
  type AadRequestRecord,
  type TokenRequestContext,
} from "./routes.ts";
import {
  Directory,
  type AppConfig,
  type FederatedCredentialConfig,
  type TenantConfig,
} from "./store.ts";
import { TokenSigner } from "./tokens.ts";
import { EntraWire, checkAadFaultAction, type AadFaultAction } from "./wire.ts";

export { JWT_BEARER, type FederationErrorStyle } from "./auth.ts";
export type { AadCounters, AadEndpoint, AadFaultMatch, AadRequestRecord } from "./routes.ts";
export type { AppConfig, FederatedCredentialConfig, TenantConfig } from "./store.ts";
export type { AadFaultAction } from "./wire.ts";

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
  /**
   * At most `limit` token requests per `windowMs`, answered 429 AADSTS90055
   * with Retry-After beyond. Entra publishes no fixed limit for client
   * credentials (External ID tenants: 200 requests per second); default none.
   */
  readonly throttle?: ThrottleOptions;
  /** Required in `x-mock-admin-token` on admin calls when set. */
  readonly adminToken?: string;
  /** The clock (ms since the epoch); default `Date.now`. */
  readonly now?: () => number;
  /** Seed of fractional faults; default random. */
  readonly seed?: number;
  /** Default: a silent logger. */
  readonly logger?: Logger;
}

/** A running mock Entra ID. */
export interface MockAad
  extends
    ListeningMock,
    FaultMethods<AadFaultAction, AadFaultMatch>,
    RequestStatsMethods<AadCounters, AadRequestRecord> {
  /** `https://host:port`: the authority host (`authorityHost`, `AZURE_AUTHORITY_HOST`). */
  readonly url: string;
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
  /** Sets or (with `undefined`) removes the throttle of token requests. */
  setThrottle(options: ThrottleOptions | undefined): void;
}

const DEFAULT_RESOURCES = [
  KEY_VAULT_RESOURCE,
  "https://graph.microsoft.com",
  "https://management.azure.com",
];

/** Starts a mock Entra ID. */
export async function startMockAad(options: MockAadOptions = {}): Promise<MockAad> {
  const logger = options.logger ?? createLogger({ name: "mock-aad", level: "silent" });
  const now = options.now ?? Date.now;
  let tokenLifetimeSec = options.tokenLifetimeSec ?? 3599;
  if (!(Number.isInteger(tokenLifetimeSec) && tokenLifetimeSec > 0)) {
    throw new RangeError("tokenLifetimeSec: a positive integer of seconds");
  }
  const setTokenLifetime = (seconds: number): void => {
    if (!(Number.isInteger(seconds) && seconds > 0)) {
      throw new RangeError("token lifetime: a positive integer of seconds");
    }
    tokenLifetimeSec = seconds;
  };
  let federationErrors: FederationErrorStyle = options.federationErrors ?? "legacy";
  const setFederationErrors = (style: FederationErrorStyle): void => {
    federationErrors = style;
  };
  let throttle = options.throttle === undefined ? undefined : new Throttle(options.throttle);
  const setThrottle = (t: ThrottleOptions | undefined): void => {
    throttle = t === undefined ? undefined : new Throttle(t);
  };
  const directory = new Directory();
  const issuerKeys = new IssuerKeys(
    options.trustedCaPems ?? [],
    options.issuerCacheMs ?? 60_000,
    now,
  );
  const faultQueue = new FaultQueue<AadFaultAction, AadFaultMatch, TokenRequestContext>(
    matchesFault,
    seededRandom(options.seed ?? randomBytes(4).readUInt32LE()),
  );
  const faults = faultControls(faultQueue, checkAadFaultAction, withDefaultMatch);
  const stats = new RequestStats<AadCounters, AadRequestRecord>(emptyCounters);
  const signer = await TokenSigner.create();
  for (const t of options.tenants ?? []) directory.addTenant(t);
  const service = {
    policy: {
      directory,
      resources: new Set((options.resources ?? DEFAULT_RESOURCES).map(trimSlash)),
      clockSkewSec: options.clockSkewSec ?? 300,
      federationErrors: () => federationErrors,
      issuerKeys,
      keySets: new KeySetVerifier(),
      now,
      logger,
    },
    signer,
    tokenLifetimeSec: () => tokenLifetimeSec,
    wire: new EntraWire(now),
    stats,
    faults: faultQueue,
    throttle: () => throttle,
    now,
    logger,
  };
  const trustIssuerCa = (pem: string): void => {
    issuerKeys.trust(pem);
  };

  const listening = await listenMock({
    name: "mock-aad",
    options,
    adminRoutes: {
      ...entraAdminRoutes({
        directory,
        trustIssuerCa,
        tokenLifetimeSec: () => tokenLifetimeSec,
        setTokenLifetime,
        federationErrors: () => federationErrors,
        setFederationErrors,
        faults: () => faultQueue.list(),
      }),
      ...faults.adminRoutes,
      ...stats.adminRoutes(),
    },
    serve: (call) => serveRequest(call, service),
    logger,
  });
  return {
    ...listening,
    accessTokenIssuer,
    jwks: () => structuredClone(signer.jwks),
    addTenant: (tenant) => {
      directory.addTenant(tenant);
    },
    addApp: (tenantId, app) => directory.addApp(tenantId, app),
    addFederatedCredential: (tenantId, clientId, credential) => {
      directory.addFederatedCredential(tenantId, clientId, credential);
    },
    removeFederatedCredential: (tenantId, clientId, name) => {
      directory.removeFederatedCredential(tenantId, clientId, name);
    },
    trustIssuerCa,
    setTokenLifetime,
    setFederationErrors,
    setThrottle,
    ...faults.methods,
    ...stats.handleMethods(),
  };
}
