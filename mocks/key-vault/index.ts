/**
 * A mock of Azure Key Vault's secrets data plane that the real
 * `@azure/keyvault-secrets` talks to unmodified over HTTPS:
 *
 * - The bearer challenge: a request without a token gets 401 and
 *   `WWW-Authenticate: Bearer authorization="<aad>/<tenant>", resource="https://vault.azure.net"`.
 * - Token checks: signature (the mock Entra ID's keys), audience, issuer
 *   (the vault's tenant), lifetime; a bad token gets 401 with the service's
 *   AKV/IDX message.
 * - A role table ("Key Vault Secrets User" / "Key Vault Reader", vault-wide
 *   or per secret, by client id or object id): 403 `ForbiddenByRbac`.
 * - `GET /secrets/{name}/` (latest), `/secrets/{name}/{version}`,
 *   `/secrets/{name}/versions` and `/secrets` with `nextLink` paging
 *   (`maxresults`, default page 25); 404 `SecretNotFound`; a disabled
 *   secret 403 `SecretDisabled`; certificate-backed secrets with `kid`,
 *   `managed` and PKCS#12 or PEM content (and `outContentType` PEM conversion).
 * - Faults (status with or without Retry-After, latency, dropped connection,
 *   no answer) for the next N or a fraction of requests, and a throttle of N
 *   requests per window answering 429 `Throttled` with Retry-After.
 * - Counters by kind (challenges, authenticated, per-secret GETs…) and a
 *   request log, for tests that count what a sync costs.
 *
 * Admin (secrets, rotation, roles, faults, throttle, counters) through the
 * returned handle or the HTTP API under `/_mock/` (docs/mocks.md). Secret
 * values and tokens are never logged.
 */
import {
  compactVerify,
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  type JSONWebKeySet,
  type JWTPayload,
} from "jose";
import { randomBytes } from "node:crypto";
import { createPkcs12, pkcs12ToPem } from "../../certs/index.ts";
import { createLogger, type Logger } from "../../common/logger.ts";
import {
  ADMIN_PREFIX,
  AdminInputError,
  optionalBoolean,
  optionalNumber,
  optionalString,
  optionalStringMap,
  requireString,
  serveAdmin,
} from "../admin.ts";
import {
  FaultQueue,
  Throttle,
  checkFaultAction,
  seededRandom,
  type ActiveFault,
  type FaultAction,
  type FaultRule,
  type ThrottleOptions,
} from "../faults.ts";
import { fetchJson } from "../fetch-json.ts";
import { header, newGuid, type Call, type Reply } from "../https-server.ts";
import { KEY_VAULT_RESOURCE, type MockAad } from "../aad/mock-aad.ts";
import {
  RequestStats,
  applyFault,
  faultControls,
  listenMock,
  replyStatus,
  type CommonFaultAction,
} from "../mock-core.ts";
import { createMockTls, type ServingTls } from "../tls.ts";

/** Where the vault's tokens come from: the Entra authority it challenges with, and its keys. */
export interface KeyVaultAuthority {
  /** Entra's origin, e.g. the mock's `https://127.0.0.1:PORT`; the challenge names `<url>/<tenantId>`. */
  readonly url: string;
  /** The vault's tenant: tokens must be issued by it. */
  readonly tenantId: string;
  /** Entra's token-signing keys, in-process. Else fetched from `jwksUrl`. */
  readonly keys?: () => JSONWebKeySet;
  /** Default `<url>/<tenantId>/discovery/v2.0/keys`. */
  readonly jwksUrl?: string;
  /** CAs (PEM) to trust when fetching `jwksUrl`. */
  readonly caPems?: readonly string[];
  /** Accepted `iss`; default `https://sts.windows.net/<tenantId>/`. */
  readonly issuer?: string;
}

/** The authority of a mock Entra ID started in the same process. */
export function authorityOf(aad: MockAad, tenantId: string): KeyVaultAuthority {
  return {
    url: aad.url,
    tenantId,
    keys: () => aad.jwks(),
    issuer: aad.accessTokenIssuer(tenantId),
  };
}

/** The data-plane roles the mock knows. */
export const KEY_VAULT_ROLES = ["Key Vault Secrets User", "Key Vault Reader"] as const;
/** One of {@link KEY_VAULT_ROLES}: Secrets User reads values and metadata; Reader reads metadata only. */
export type KeyVaultRole = (typeof KEY_VAULT_ROLES)[number];

/** A role assignment. */
export interface RoleAssignment {
  /** Client id (appid) or object id (oid) of the caller; `*` for everyone. */
  readonly principal: string;
  /** Scope: one secret by name; default the whole vault. */
  readonly secret?: string;
  /** Default `Key Vault Secrets User`. */
  readonly role?: KeyVaultRole;
}

/** Attributes of a new secret version. */
export interface SecretOptions {
  readonly contentType?: string;
  readonly tags?: Readonly<Record<string, string>>;
  /** Default true. */
  readonly enabled?: boolean;
  /** `nbf`, seconds since the epoch (stored and returned; not enforced). */
  readonly notBefore?: number;
  /** `exp`, seconds since the epoch (stored and returned; not enforced). */
  readonly expiresOn?: number;
}

/** A secret to start with. */
export interface SecretSeed extends SecretOptions {
  readonly name: string;
  readonly value: string;
}

/** A certificate-backed secret's content. */
export type CertificateInput =
  /** Stored as given, `application/x-pkcs12`. */
  | { readonly pkcs12Base64: string }
  /** Stored as given, `application/x-pem-file`. */
  | { readonly pem: string }
  /** Packed as Key Vault would: PKCS#12 without a password (default) or PEM key + chain. */
  | {
      readonly keyPem: string;
      readonly certPems: readonly string[];
      readonly format?: "pkcs12" | "pem";
    };

/** A new version's coordinates. */
export interface SecretVersionInfo {
  readonly name: string;
  /** 32 lowercase hex digits, new for every write. */
  readonly version: string;
  /** `/secrets/<name>/<version>`: prefix the vault URL for the `id` clients see. */
  readonly path: string;
}

/** Which requests a fault applies to. */
export interface KeyVaultFaultMatch {
  readonly operation?: KeyVaultOperation;
  /** Only requests about this secret (case-insensitive). */
  readonly secret?: string;
  /**
   * `false`: only the SDK's unauthenticated challenge probes; `true`: only
   * requests that carry a token; default both.
   */
  readonly authenticated?: boolean;
}

/** What a request asks for. */
export type KeyVaultOperation = "getSecret" | "getSecretVersions" | "getSecrets" | "other";

/** Request counts since start or the last reset. */
export interface KeyVaultCounters {
  /** Every request but admin ones. */
  total: number;
  /** Requests without a token, answered with the bearer challenge. */
  challenges: number;
  /** Requests whose token was accepted. */
  authenticated: number;
  /** Requests whose token was refused (401). */
  rejectedTokens: number;
  forbidden: number;
  notFound: number;
  /** 429s from the throttle. */
  throttled: number;
  /** Requests a fault applied to. */
  faults: number;
  /** Authenticated GETs of a secret's value, by secret name as stored. */
  secretGets: Record<string, number>;
  /** Authenticated list calls (secrets or versions, each page). */
  lists: number;
  /** Answers by HTTP status (`dropped`, `hung` for faults without one). */
  byStatus: Record<string, number>;
}

/** One line of the request log (no values, no tokens). */
export interface KeyVaultRequestRecord {
  readonly at: number;
  readonly method: string;
  /** Path and query, e.g. `/secrets/db/?api-version=2025-07-01`. */
  readonly path: string;
  readonly operation: KeyVaultOperation;
  readonly secret?: string;
  readonly version?: string;
  /** Whether it carried a token (valid or not). */
  readonly withToken: boolean;
  readonly status: number | "dropped" | "hung";
  /** `appid` of an accepted token. */
  readonly clientId?: string;
  readonly errorCode?: string;
}

/** Options of {@link startMockKeyVault}. */
export interface MockKeyVaultOptions {
  readonly authority: KeyVaultAuthority;
  /** Bind address; default `127.0.0.1`. */
  readonly host?: string;
  readonly port?: number;
  /** The vault URL clients use, if not what their `Host` header says. */
  readonly publicUrl?: string;
  /** Default: a fresh CA and a leaf for localhost/127.0.0.1/::1. */
  readonly tls?: ServingTls;
  /** Default `https://vault.azure.net`. */
  readonly resource?: string;
  readonly secrets?: readonly SecretSeed[];
  readonly roles?: readonly RoleAssignment[];
  /** Default page size of listings (the service's is 25; `maxresults` up to 25 overrides). */
  readonly pageSize?: number;
  readonly throttle?: ThrottleOptions;
  /** Clock skew allowed on token lifetimes; default 300 s (as the service's validator). */
  readonly clockSkewSec?: number;
  /** For the 403 message: the vault's name, subscription, resource group, region. */
  readonly vaultName?: string;
  readonly subscriptionId?: string;
  readonly resourceGroup?: string;
  readonly location?: string;
  readonly adminToken?: string;
  readonly now?: () => number;
  readonly seed?: number;
  readonly logger?: Logger;
}

/** A running mock Key Vault. */
export interface MockKeyVault {
  /** The vault URL, `https://host:port`. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** PEM of the CA clients must trust, when known. */
  readonly ca: string | undefined;
  /** Writes a new version (a rotation when the secret exists). */
  setSecret(name: string, value: string, options?: SecretOptions): SecretVersionInfo;
  /** Writes a new version of a certificate-backed secret (`managed`, `kid`). */
  addCertificate(
    name: string,
    certificate: CertificateInput,
    options?: Pick<SecretOptions, "tags">,
  ): SecretVersionInfo;
  /** Enables or disables the latest version, or the given one. */
  setSecretEnabled(name: string, enabled: boolean, version?: string): void;
  /** Removes a secret and all its versions. */
  deleteSecret(name: string): void;
  /** Versions of a secret, oldest first. */
  versions(name: string): string[];
  grantRole(assignment: RoleAssignment): void;
  revokeRole(assignment: RoleAssignment): void;
  injectFault(rule: FaultRule<FaultAction, KeyVaultFaultMatch>): number;
  clearFaults(id?: number): void;
  faults(): ActiveFault<FaultAction, KeyVaultFaultMatch>[];
  /** Sets or (with `undefined`) removes the throttle. */
  setThrottle(options: ThrottleOptions | undefined): void;
  counters(): KeyVaultCounters;
  resetCounters(): void;
  requests(): readonly KeyVaultRequestRecord[];
  close(): Promise<void>;
}

interface StoredVersion {
  readonly version: string;
  readonly value: string;
  readonly contentType?: string;
  readonly tags?: Readonly<Record<string, string>>;
  enabled: boolean;
  readonly created: number;
  updated: number;
  readonly nbf?: number;
  readonly exp?: number;
  /** Certificate-backed: the key's path, `/keys/<name>/<version>`. */
  readonly kidPath?: string;
}

interface StoredSecret {
  readonly name: string;
  readonly versions: StoredVersion[];
}

interface Caller {
  readonly appid: string;
  readonly oid: string;
  readonly iss: string;
}

interface RequestContext {
  readonly operation: KeyVaultOperation;
  readonly secret: string | undefined;
  readonly authenticated: boolean;
}

/** A Key Vault error on its way to the client. */
interface VaultError {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly inner?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;
const VERSION = /^[0-9a-fA-F]{32}$/;
/** Api versions the SDKs send: `7.x[-preview[.n]]` and dated ones. */
const API_VERSION = /^(\d+\.\d+(-preview(\.\d+)?)?|\d{4}-\d{2}-\d{2}(-preview)?|2016-10-01)$/;
const MAX_PAGE = 25;
const PKCS12 = "application/x-pkcs12";
const PEM = "application/x-pem-file";

/** Starts a mock Key Vault. */
export async function startMockKeyVault(options: MockKeyVaultOptions): Promise<MockKeyVault> {
  const logger = options.logger ?? createLogger({ name: "mock-key-vault", level: "silent" });
  const now = options.now ?? Date.now;
  const tls = options.tls ?? createMockTls();
  const authority = options.authority;
  const resource = trimSlash(options.resource ?? KEY_VAULT_RESOURCE);
  const expectedIssuer = authority.issuer ?? `https://sts.windows.net/${authority.tenantId}/`;
  const challenge = `Bearer authorization="${trimSlash(authority.url)}/${authority.tenantId}", resource="${resource}"`;
  const clockSkewSec = options.clockSkewSec ?? 300;
  const pageSize = Math.min(Math.max(options.pageSize ?? MAX_PAGE, 1), MAX_PAGE);
  const vaultName = options.vaultName ?? "mock-vault";
  const resourceId = `/subscriptions/${options.subscriptionId ?? "00000000-0000-0000-0000-000000000000"}/resourcegroups/${options.resourceGroup ?? "mock-rg"}/providers/microsoft.keyvault/vaults/${vaultName}`;
  const location = options.location ?? "mock";

  const secrets = new Map<string, StoredSecret>();
  let roles: Required<RoleAssignment>[] = [];
  let throttle = options.throttle === undefined ? undefined : new Throttle(options.throttle);
  const faultQueue = new FaultQueue<FaultAction, KeyVaultFaultMatch, RequestContext>(
    (match, ctx) =>
      (match.operation === undefined || match.operation === ctx.operation) &&
      (match.secret === undefined || match.secret.toLowerCase() === ctx.secret?.toLowerCase()) &&
      (match.authenticated === undefined || match.authenticated === ctx.authenticated),
    seededRandom(options.seed ?? randomBytes(4).readUInt32LE()),
  );
  const faults = faultControls(faultQueue, checkFaultAction);
  const stats = new RequestStats<KeyVaultCounters, KeyVaultRequestRecord>(emptyCounters);
  let remoteKeys: { at: number; jwks: JSONWebKeySet } | undefined;

  // ---- state ----------------------------------------------------------------

  const nowSec = (): number => Math.floor(now() / 1000);

  function writeVersion(
    name: string,
    value: string,
    opts: SecretOptions,
    kid: boolean,
  ): SecretVersionInfo {
    if (!SECRET_NAME.test(name))
      throw new AdminInputError(`bad secret name '${name}': 1-127 of [0-9A-Za-z-]`);
    const key = name.toLowerCase();
    const secret = secrets.get(key) ?? { name, versions: [] };
    secrets.set(key, secret);
    const version = randomBytes(16).toString("hex");
    const t = nowSec();
    secret.versions.push({
      version,
      value,
      ...(opts.contentType === undefined ? {} : { contentType: opts.contentType }),
      ...(opts.tags === undefined ? {} : { tags: { ...opts.tags } }),
      enabled: opts.enabled ?? true,
      created: t,
      updated: t,
      ...(opts.notBefore === undefined ? {} : { nbf: opts.notBefore }),
      ...(opts.expiresOn === undefined ? {} : { exp: opts.expiresOn }),
      ...(kid ? { kidPath: `/keys/${secret.name}/${version}` } : {}),
    });
    return { name: secret.name, version, path: `/secrets/${secret.name}/${version}` };
  }

  const setSecret = (name: string, value: string, opts: SecretOptions = {}): SecretVersionInfo =>
    writeVersion(name, value, opts, false);

  function addCertificate(
    name: string,
    certificate: CertificateInput,
    opts: Pick<SecretOptions, "tags"> = {},
  ): SecretVersionInfo {
    let value: string;
    let contentType: string;
    if ("pkcs12Base64" in certificate) {
      value = certificate.pkcs12Base64;
      contentType = PKCS12;
    } else if ("pem" in certificate) {
      value = certificate.pem;
      contentType = PEM;
    } else if (certificate.format === "pem") {
      value = [certificate.keyPem, ...certificate.certPems].map((p) => p.trim()).join("\n") + "\n";
      contentType = PEM;
    } else {
      value = createPkcs12({ keyPem: certificate.keyPem, certPems: certificate.certPems });
      contentType = PKCS12;
    }
    return writeVersion(name, value, { ...opts, contentType }, true);
  }

  function findSecret(name: string): StoredSecret {
    const s = secrets.get(name.toLowerCase());
    if (s === undefined) throw new AdminInputError(`no secret '${name}'`);
    return s;
  }

  function setSecretEnabled(name: string, enabled: boolean, version?: string): void {
    const s = findSecret(name);
    const v =
      version === undefined
        ? s.versions.at(-1)
        : s.versions.find((x) => x.version === version.toLowerCase());
    if (v === undefined) throw new AdminInputError(`no version '${version ?? ""}' of '${name}'`);
    v.enabled = enabled;
    v.updated = nowSec();
  }

  const completeRole = (a: RoleAssignment): Required<RoleAssignment> => {
    const role = a.role ?? "Key Vault Secrets User";
    if (!(KEY_VAULT_ROLES as readonly string[]).includes(role)) {
      throw new AdminInputError(`role: one of ${KEY_VAULT_ROLES.join(", ")}`);
    }
    return { principal: a.principal.toLowerCase(), secret: a.secret?.toLowerCase() ?? "", role };
  };
  const sameRole = (a: Required<RoleAssignment>, b: Required<RoleAssignment>): boolean =>
    a.principal === b.principal && a.secret === b.secret && a.role === b.role;
  const grantRole = (a: RoleAssignment): void => {
    const r = completeRole(a);
    if (!roles.some((x) => sameRole(x, r))) roles.push(r);
  };
  const revokeRole = (a: RoleAssignment): void => {
    const r = completeRole(a);
    roles = roles.filter((x) => !sameRole(x, r));
  };

  for (const s of options.secrets ?? []) setSecret(s.name, s.value, s);
  for (const r of options.roles ?? []) grantRole(r);

  // ---- answers ----------------------------------------------------------------

  function baseHeaders(call: Call): Record<string, string> {
    const clientRequestId = header(call, "x-ms-client-request-id");
    return {
      "cache-control": "no-cache",
      pragma: "no-cache",
      expires: "-1",
      "x-ms-request-id": newGuid(),
      "x-ms-keyvault-service-version": "1.9.0.0",
      "x-ms-keyvault-region": location,
      "x-ms-keyvault-network-info": `conn_type=Ipv4;addr=${call.remoteAddress};act_addr_fam=InterNetwork;`,
      "x-content-type-options": "nosniff",
      ...(clientRequestId === undefined ? {} : { "x-ms-client-request-id": clientRequestId }),
    };
  }

  function fail(call: Call, e: VaultError): Reply {
    return {
      status: e.status,
      headers: { ...baseHeaders(call), ...e.headers },
      json: {
        error: {
          code: e.code,
          message: e.message,
          ...(e.inner === undefined ? {} : { innererror: { code: e.inner } }),
        },
      },
    };
  }

  const unauthorized = (message: string): VaultError => ({
    status: 401,
    code: "Unauthorized",
    message,
    headers: { "www-authenticate": challenge },
  });

  function attributes(v: StoredVersion): Record<string, unknown> {
    return {
      enabled: v.enabled,
      ...(v.nbf === undefined ? {} : { nbf: v.nbf }),
      ...(v.exp === undefined ? {} : { exp: v.exp }),
      created: v.created,
      updated: v.updated,
      recoveryLevel: "Recoverable+Purgeable",
      recoverableDays: 90,
    };
  }

  function metadata(s: StoredSecret, v: StoredVersion): Record<string, unknown> {
    return {
      ...(v.contentType === undefined ? {} : { contentType: v.contentType }),
      attributes: attributes(v),
      ...(v.tags === undefined ? {} : { tags: v.tags }),
      ...(v.kidPath === undefined ? {} : { managed: true }),
    };
  }

  function bundle(
    call: Call,
    s: StoredSecret,
    v: StoredVersion,
    apiVersion: string,
  ): Record<string, unknown> {
    let value = v.value;
    let contentType = v.contentType;
    // 7.6 / 2025-07-01 can convert a PKCS#12 certificate to PEM on the way out.
    if (call.url.searchParams.get("outContentType") === PEM && contentType === PKCS12) {
      const { keyPem, certPems } = pkcs12ToPem(value);
      value = [keyPem, ...certPems].map((p) => p.trim()).join("\n") + "\n";
      contentType = PEM;
    }
    const index = s.versions.indexOf(v);
    const previous = index > 0 ? s.versions[index - 1] : undefined;
    return {
      value,
      ...(contentType === undefined ? {} : { contentType }),
      id: `${call.origin}/secrets/${s.name}/${v.version}`,
      ...(v.kidPath === undefined ? {} : { managed: true, kid: `${call.origin}${v.kidPath}` }),
      attributes: attributes(v),
      ...(v.tags === undefined ? {} : { tags: v.tags }),
      ...(v.kidPath !== undefined &&
      previous !== undefined &&
      apiVersion >= "2025-07-01" &&
      /^\d{4}-/.test(apiVersion)
        ? { previousVersion: previous.version }
        : {}),
    };
  }

  function page(call: Call, apiVersion: string, items: readonly unknown[]): Reply {
    const maxParam = call.url.searchParams.get("maxresults");
    const requested = maxParam === null ? pageSize : Number.parseInt(maxParam, 10);
    const size = Number.isFinite(requested) ? Math.min(Math.max(requested, 1), MAX_PAGE) : pageSize;
    const offset = decodeSkipToken(call.url.searchParams.get("$skiptoken"));
    const slice = items.slice(offset, offset + size);
    const next = offset + size < items.length ? offset + size : undefined;
    return {
      status: 200,
      headers: baseHeaders(call),
      json: {
        value: slice,
        nextLink:
          next === undefined
            ? null
            : `${call.origin}${call.url.pathname}?api-version=${apiVersion}&$skiptoken=${encodeSkipToken(next)}${maxParam === null ? "" : `&maxresults=${size}`}`,
      },
    };
  }

  // ---- authentication and authorization --------------------------------------

  async function entraKeys(fresh: boolean): Promise<JSONWebKeySet> {
    if (authority.keys !== undefined) return authority.keys();
    if (!fresh && remoteKeys !== undefined && now() - remoteKeys.at < 60_000)
      return remoteKeys.jwks;
    const url =
      authority.jwksUrl ?? `${trimSlash(authority.url)}/${authority.tenantId}/discovery/v2.0/keys`;
    const jwks = (await fetchJson(url, { caPems: authority.caPems ?? [] })) as JSONWebKeySet;
    remoteKeys = { at: now(), jwks };
    return jwks;
  }

  /** Validates a bearer token as the service does; returns the caller or the 401 to send. */
  async function authenticate(authorization: string): Promise<Caller | VaultError> {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
    if (match === null) return unauthorized("AKV10000: Request is missing a Bearer or PoP token.");
    const token = match[1] ?? "";
    let payload: JWTPayload;
    let kid: string | undefined;
    try {
      payload = decodeJwt(token);
      kid = decodeProtectedHeader(token).kid;
    } catch {
      return unauthorized("Error validating token: IDX14100: JWT is not well formed.");
    }
    let keys: JSONWebKeySet;
    try {
      keys = await entraKeys(false);
      if (!keys.keys.some((k) => k.kid === kid)) keys = await entraKeys(true);
    } catch (error) {
      logger.warn(
        { reason: (error as Error).message },
        "mock-key-vault: cannot fetch Entra's keys",
      );
      return {
        status: 500,
        code: "InternalServerError",
        message: "Unable to fetch token signing keys.",
      };
    }
    try {
      await compactVerify(token, createLocalJWKSet(keys), { algorithms: ["RS256"] });
    } catch (error) {
      if (error instanceof joseErrors.JWKSNoMatchingKey) {
        const encodedHeader = token.split(".")[0] ?? "";
        return unauthorized(
          `AKV10046: Unable to resolve the key used for signature validation. EncodedJwtHeader: '${encodedHeader}'.`,
        );
      }
      return unauthorized("Error validating token: IDX10511: Signature validation failed.");
    }
    const auds = typeof payload.aud === "string" ? [payload.aud] : (payload.aud ?? []);
    if (!auds.some((a) => trimSlash(a) === resource)) {
      return unauthorized(
        `AKV10022: Invalid audience. Expected ${resource}, found: ${auds.join(", ")}.`,
      );
    }
    if (payload.iss !== expectedIssuer) {
      return unauthorized(
        `AKV10032: Invalid issuer. Expected one of ${expectedIssuer}, found ${payload.iss ?? ""}.`,
      );
    }
    const t = now() / 1000;
    if (payload.exp === undefined || t > payload.exp + clockSkewSec) {
      return unauthorized(
        `Error validating token: IDX10223: Lifetime validation failed. The token is expired. ValidTo (UTC): '${utc(payload.exp)}', Current time (UTC): '${utc(t)}'.`,
      );
    }
    if (payload.nbf !== undefined && t + clockSkewSec < payload.nbf) {
      return unauthorized(
        `Error validating token: IDX10222: Lifetime validation failed. The token is not yet valid. ValidFrom (UTC): '${utc(payload.nbf)}', Current time (UTC): '${utc(t)}'.`,
      );
    }
    const claim = (name: string): string => {
      const v = payload[name];
      return typeof v === "string" ? v : "";
    };
    return { appid: claim("appid") || claim("azp"), oid: claim("oid"), iss: payload.iss };
  }

  type Permission = "getSecret" | "readMetadata";
  function authorize(
    caller: Caller,
    permission: Permission,
    secret: string | undefined,
  ): VaultError | undefined {
    const who = [caller.appid.toLowerCase(), caller.oid.toLowerCase(), "*"];
    const allowed = roles.some(
      (r) =>
        who.includes(r.principal) &&
        (r.secret === "" || (secret !== undefined && r.secret === secret.toLowerCase())) &&
        (r.role === "Key Vault Secrets User" || permission === "readMetadata"),
    );
    if (allowed) return undefined;
    const action = `Microsoft.KeyVault/vaults/secrets/${permission}/action`;
    const scope = secret === undefined ? resourceId : `${resourceId}/secrets/${secret}`;
    return {
      status: 403,
      code: "Forbidden",
      inner: "ForbiddenByRbac",
      message:
        "Caller is not authorized to perform action on resource.\r\n" +
        "If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n" +
        `Caller: appid=${caller.appid};oid=${caller.oid};iss=${caller.iss}\r\n` +
        `Action: '${action}'\r\n` +
        `Resource: '${scope.toLowerCase()}'\r\n` +
        "Assignment: (not found)\r\n" +
        "DenyAssignmentId: null\r\n" +
        "DecisionReason: 'DeniedWithNoValidRBAC' \r\n" +
        `Vault: ${vaultName};location=${location}\r\n`,
    };
  }

  // ---- the data plane -----------------------------------------------------------

  const notFound = (what: string): VaultError => ({
    status: 404,
    code: "SecretNotFound",
    message: `A secret with (name/id) ${what} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
  });

  interface Route {
    readonly operation: KeyVaultOperation;
    readonly secret?: string;
    readonly version?: string;
  }

  function parseRoute(call: Call): Route {
    const parts = call.url.pathname.split("/").slice(1);
    // A trailing slash leaves an empty last part: `/secrets/x/` is the latest version of x.
    if (parts.at(-1) === "" && parts.length > 1) parts.pop();
    if (call.method !== "GET" || parts[0] !== "secrets") return { operation: "other" };
    const [, name, third, ...more] = parts.map((p) => decodeURIComponent(p));
    if (more.length > 0) return { operation: "other" };
    if (name === undefined) return { operation: "getSecrets" };
    if (third === "versions") return { operation: "getSecretVersions", secret: name };
    return {
      operation: "getSecret",
      secret: name,
      ...(third === undefined ? {} : { version: third }),
    };
  }

  function serveOperation(call: Call, route: Route, caller: Caller, apiVersion: string): Reply {
    const name = route.secret;
    if (name !== undefined && !SECRET_NAME.test(name)) {
      return fail(call, {
        status: 400,
        code: "BadParameter",
        message: `The request URI contains an invalid name: ${name}`,
      });
    }
    switch (route.operation) {
      case "getSecrets": {
        stats.counters.lists++;
        const denied = authorize(caller, "readMetadata", undefined);
        if (denied !== undefined) return fail(call, denied);
        const items = [...secrets.values()]
          .filter((s) => s.versions.length > 0)
          .map((s) => {
            const latest = s.versions.at(-1) as StoredVersion;
            return { id: `${call.origin}/secrets/${s.name}`, ...metadata(s, latest) };
          });
        return page(call, apiVersion, items);
      }
      case "getSecretVersions": {
        stats.counters.lists++;
        const denied = authorize(caller, "readMetadata", name);
        if (denied !== undefined) return fail(call, denied);
        const s = secrets.get((name ?? "").toLowerCase());
        // The service lists no versions (200, empty) for a name it does not know.
        const items = (s?.versions ?? [])
          .map((v) => ({
            id: `${call.origin}/secrets/${s?.name ?? ""}/${v.version}`,
            ...metadata(s as StoredSecret, v),
          }))
          .sort((a, b) => (a.id < b.id ? -1 : 1));
        return page(call, apiVersion, items);
      }
      case "getSecret": {
        const secretName = name ?? "";
        const s = secrets.get(secretName.toLowerCase());
        stats.counters.secretGets[s?.name ?? secretName] =
          (stats.counters.secretGets[s?.name ?? secretName] ?? 0) + 1;
        const denied = authorize(caller, "getSecret", secretName);
        if (denied !== undefined) return fail(call, denied);
        const wanted = route.version;
        const v =
          wanted === undefined
            ? s?.versions.at(-1)
            : VERSION.test(wanted)
              ? s?.versions.find((x) => x.version === wanted.toLowerCase())
              : undefined;
        if (s === undefined || v === undefined) {
          return fail(
            call,
            notFound(wanted === undefined ? secretName : `${secretName}/${wanted}`),
          );
        }
        if (!v.enabled) {
          return fail(call, {
            status: 403,
            code: "Forbidden",
            inner: "SecretDisabled",
            message: "Operation get is not allowed on a disabled secret.",
          });
        }
        return { status: 200, headers: baseHeaders(call), json: bundle(call, s, v, apiVersion) };
      }
      case "other":
        return fail(call, {
          status: 405,
          code: "MethodNotAllowed",
          message: `${call.method} ${call.url.pathname} is not supported by this mock.`,
        });
    }
  }

  function faultReply(call: Call, action: Exclude<FaultAction, CommonFaultAction>): Reply {
    const headers = {
      ...baseHeaders(call),
      ...(action.retryAfterSeconds === undefined
        ? {}
        : { "retry-after": String(action.retryAfterSeconds) }),
      ...action.headers,
    };
    return {
      status: action.status,
      headers,
      json: action.body ?? { error: defaultErrorBody(action.status) },
    };
  }

  async function handle(call: Call): Promise<Reply> {
    if (call.url.pathname.startsWith(ADMIN_PREFIX))
      return serveAdmin(call, options.adminToken, adminRoutes);

    stats.counters.total++;
    const route = parseRoute(call);
    const authorization = header(call, "authorization");
    const ctx: RequestContext = {
      operation: route.operation,
      secret: route.secret,
      authenticated: authorization !== undefined,
    };
    let clientId: string | undefined;
    let reply = await applyFault(faultQueue.take(ctx), stats.counters, (action) =>
      faultReply(call, action),
    );
    if (reply === undefined && throttle !== undefined) {
      const waitMs = throttle.admit(now());
      if (waitMs !== undefined) {
        stats.counters.throttled++;
        reply = fail(call, {
          status: 429,
          code: "Throttled",
          message:
            "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
          headers: { "retry-after": String(Math.max(1, Math.ceil(waitMs / 1000))) },
        });
      }
    }
    if (reply === undefined) {
      const apiVersion = call.url.searchParams.get("api-version");
      if (apiVersion === null || !API_VERSION.test(apiVersion)) {
        reply = fail(call, {
          status: 400,
          code: "BadParameter",
          message:
            apiVersion === null
              ? "Missing required query parameter 'api-version'."
              : `The specified version (${apiVersion}) is not recognized. Consider using the latest supported version (2025-07-01).`,
        });
      } else if (authorization === undefined) {
        stats.counters.challenges++;
        reply = fail(call, unauthorized("AKV10000: Request is missing a Bearer or PoP token."));
      } else {
        const caller = await authenticate(authorization);
        if ("status" in caller) {
          stats.counters.rejectedTokens++;
          reply = fail(call, caller);
        } else {
          stats.counters.authenticated++;
          clientId = caller.appid;
          reply = serveOperation(call, route, caller, apiVersion);
        }
      }
    }

    const status = replyStatus(reply);
    if (status === 403) stats.counters.forbidden++;
    if (status === 404) stats.counters.notFound++;
    stats.counters.byStatus[String(status)] = (stats.counters.byStatus[String(status)] ?? 0) + 1;
    const errorCode = vaultErrorCode(reply);
    const entry: KeyVaultRequestRecord = {
      at: now(),
      method: call.method,
      path: `${call.url.pathname}${call.url.search}`,
      operation: route.operation,
      ...(route.secret === undefined ? {} : { secret: route.secret }),
      ...(route.version === undefined ? {} : { version: route.version }),
      withToken: authorization !== undefined,
      status,
      ...(clientId === undefined ? {} : { clientId }),
      ...(errorCode === undefined ? {} : { errorCode }),
    };
    stats.record(entry);
    logger.info(
      { method: entry.method, path: call.url.pathname, status, clientId, errorCode },
      "mock-key-vault request",
    );
    return reply;
  }

  // ---- admin ----------------------------------------------------------------------

  const secretOptionsOf = (body: Record<string, unknown>): SecretOptions => {
    const contentType = optionalString(body, "contentType");
    const tags = optionalStringMap(body, "tags");
    const enabled = optionalBoolean(body, "enabled");
    const notBefore = optionalNumber(body, "notBefore");
    const expiresOn = optionalNumber(body, "expiresOn");
    return {
      ...(contentType === undefined ? {} : { contentType }),
      ...(tags === undefined ? {} : { tags }),
      ...(enabled === undefined ? {} : { enabled }),
      ...(notBefore === undefined ? {} : { notBefore }),
      ...(expiresOn === undefined ? {} : { expiresOn }),
    };
  };
  const roleOf = (body: Record<string, unknown>): RoleAssignment => {
    const secret = optionalString(body, "secret");
    const role = optionalString(body, "role");
    if (role !== undefined && !(KEY_VAULT_ROLES as readonly string[]).includes(role)) {
      throw new AdminInputError(`role: one of ${KEY_VAULT_ROLES.join(", ")}`);
    }
    return {
      principal: requireString(body, "principal"),
      ...(secret === undefined ? {} : { secret }),
      ...(role === undefined ? {} : { role: role as KeyVaultRole }),
    };
  };
  const nameParam = (params: readonly string[]): string => {
    const name = params[0];
    if (name === undefined) throw new AdminInputError("the path needs a secret name");
    return name;
  };

  const adminRoutes = {
    "GET secrets": () =>
      [...secrets.values()].map((s) => ({
        name: s.name,
        versions: s.versions.map((v) => ({
          version: v.version,
          enabled: v.enabled,
          contentType: v.contentType,
          managed: v.kidPath !== undefined,
        })),
      })),
    "PUT secrets": (body: Record<string, unknown>, params: readonly string[]) => {
      const value = body.value;
      if (typeof value !== "string") throw new AdminInputError("'value' must be a string");
      return setSecret(nameParam(params), value, secretOptionsOf(body));
    },
    "PATCH secrets": (body: Record<string, unknown>, params: readonly string[]) => {
      const enabled = optionalBoolean(body, "enabled");
      if (enabled === undefined) throw new AdminInputError("'enabled' must be a boolean");
      setSecretEnabled(nameParam(params), enabled, params[1]);
    },
    "DELETE secrets": (_body: Record<string, unknown>, params: readonly string[]) => {
      findSecret(nameParam(params));
      secrets.delete(nameParam(params).toLowerCase());
    },
    "PUT certificates": (body: Record<string, unknown>, params: readonly string[]) => {
      const tags = optionalStringMap(body, "tags");
      const pkcs12Base64 = optionalString(body, "pkcs12Base64");
      const pem = optionalString(body, "pem");
      const input: CertificateInput | undefined =
        pkcs12Base64 !== undefined ? { pkcs12Base64 } : pem !== undefined ? { pem } : undefined;
      if (input === undefined) throw new AdminInputError("give 'pkcs12Base64' or 'pem'");
      return addCertificate(nameParam(params), input, tags === undefined ? {} : { tags });
    },
    "POST roles": (body: Record<string, unknown>) => {
      grantRole(roleOf(body));
    },
    "DELETE roles": (body: Record<string, unknown>) => {
      revokeRole(roleOf(body));
    },
    "GET roles": () => roles,
    ...faults.adminRoutes,
    "PUT throttle": (body: Record<string, unknown>) => {
      throttle = new Throttle({
        limit: optionalNumber(body, "limit") ?? 4000,
        windowMs: optionalNumber(body, "windowMs") ?? 10_000,
      });
    },
    "DELETE throttle": () => {
      throttle = undefined;
    },
    ...stats.adminRoutes(),
  };

  return {
    ...(await listenMock("mock-key-vault", options, tls, handle, logger)),
    setSecret,
    addCertificate,
    setSecretEnabled,
    deleteSecret(name) {
      findSecret(name);
      secrets.delete(name.toLowerCase());
    },
    versions: (name) => findSecret(name).versions.map((v) => v.version),
    grantRole,
    revokeRole,
    ...faults.methods,
    setThrottle(t) {
      throttle = t === undefined ? undefined : new Throttle(t);
    },
    ...stats.handleMethods(),
  };
}

/** The service's error body for a status a fault answers with. */
function defaultErrorBody(status: number): { code: string; message: string } {
  if (status === 429) {
    return {
      code: "Throttled",
      message:
        "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
    };
  }
  if (status === 503)
    return {
      code: "ServiceUnavailable",
      message: "The service is temporarily unavailable. Please retry.",
    };
  if (status === 500)
    return {
      code: "InternalServerError",
      message: "An internal server error occurred. Please retry.",
    };
  if (status === 502 || status === 504)
    return { code: "BadGateway", message: "The gateway could not reach the service." };
  return { code: `Status${status}`, message: `Injected status ${status}.` };
}

function emptyCounters(): KeyVaultCounters {
  return {
    total: 0,
    challenges: 0,
    authenticated: 0,
    rejectedTokens: 0,
    forbidden: 0,
    notFound: 0,
    throttled: 0,
    faults: 0,
    secretGets: {},
    lists: 0,
    byStatus: {},
  };
}

function vaultErrorCode(reply: Reply): string | undefined {
  if (!("status" in reply) || typeof reply.json !== "object" || reply.json === null)
    return undefined;
  const error = (reply.json as { error?: { code?: unknown; innererror?: { code?: unknown } } })
    .error;
  const inner = error?.innererror?.code;
  if (typeof inner === "string") return inner;
  return typeof error?.code === "string" ? error.code : undefined;
}

function encodeSkipToken(offset: number): string {
  return Buffer.from(JSON.stringify({ NextMarker: offset })).toString("base64url");
}

function decodeSkipToken(token: string | null): number {
  if (token === null) return 0;
  try {
    const marker = (
      JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { NextMarker?: unknown }
    ).NextMarker;
    return typeof marker === "number" && Number.isInteger(marker) && marker >= 0 ? marker : 0;
  } catch {
    return 0;
  }
}

function trimSlash(url: string): string {
  return url.endsWith("/") ? url.slice(0, -1) : url;
}

/** `MM/dd/yyyy HH:mm:ss`, as the .NET token validator prints times. */
function utc(seconds: number | undefined): string {
  if (seconds === undefined) return "(none)";
  const d = new Date(seconds * 1000);
  const p = (n: number): string => String(n).padStart(2, "0");
  return `${p(d.getUTCMonth() + 1)}/${p(d.getUTCDate())}/${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
}
