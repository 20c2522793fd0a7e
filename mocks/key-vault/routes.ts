/**
 * What each data-plane request gets, in the service's order: a fault, the
 * throttle, `api-version`, the token, then the operation with its role and
 * secret checks. Adding an endpoint means a case in {@link parseRoute} and
 * one in {@link serveOperation}. Every request is counted and logged here,
 * never with a value or a token.
 */
import type { Logger } from "../../common/logger.ts";
import { applyFault, type FaultAction, type FaultQueue, type Throttle } from "../faults.ts";
import { header, type Call, type Reply } from "../https-server.ts";
import { replyStatus, type RequestStats } from "../request-stats.ts";
import { authorize, type Caller, type TokenValidator } from "./auth.ts";
import {
  certificateBody,
  certificateNotFound,
  findVersion,
  keyBody,
  keyNotFound,
  objectReply,
  type Named,
  type ObjectStore,
  type StoredCertificateVersion,
  type StoredKeyVersion,
} from "./objects.ts";
import { SECRET_NAME, type RoleTable, type SecretStore, type StoredVersion } from "./store.ts";
import {
  listItem,
  secretNotFound,
  throttled,
  vaultErrorCode,
  type VaultError,
  type VaultWire,
} from "./wire.ts";

/** What a request asks for. */
export type KeyVaultOperation =
  "getSecret" | "getSecretVersions" | "getSecrets" | "getCertificate" | "getKey" | "other";

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
  /** Authenticated GETs of a certificate, by name as asked. */
  certificateGets: Record<string, number>;
  /** Authenticated GETs of a key, by name as asked. */
  keyGets: Record<string, number>;
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

/** A request as fault rules see it. */
export interface RequestContext {
  readonly operation: KeyVaultOperation;
  readonly secret: string | undefined;
  readonly authenticated: boolean;
}

/** Everything the data plane reads and counts. */
export interface DataPlane {
  readonly store: SecretStore;
  /** Certificates and keys. */
  readonly objects: ObjectStore;
  readonly roles: RoleTable;
  readonly tokens: TokenValidator;
  readonly wire: VaultWire;
  readonly stats: RequestStats<KeyVaultCounters, KeyVaultRequestRecord>;
  readonly faults: FaultQueue<FaultAction, KeyVaultFaultMatch, RequestContext>;
  /** The throttle in force, if any. */
  readonly throttle: () => Throttle | undefined;
  readonly now: () => number;
  readonly logger: Logger;
}

/** A request's target, from its method and path. */
interface Route {
  readonly operation: KeyVaultOperation;
  readonly secret?: string;
  readonly version?: string;
}

/** An answer, and the client id of the token it was served to. */
interface Outcome {
  readonly reply: Reply;
  readonly clientId?: string;
}

/** Api versions the SDKs send: `7.x[-preview[.n]]` and dated ones. */
const API_VERSION = /^(\d+\.\d+(-preview(\.\d+)?)?|\d{4}-\d{2}-\d{2}(-preview)?|2016-10-01)$/;
/** A secret version id: 32 hex digits. */
const VERSION = /^[0-9a-fA-F]{32}$/;

/** Counters at zero. */
export function emptyCounters(): KeyVaultCounters {
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
    certificateGets: {},
    keyGets: {},
    lists: 0,
    byStatus: {},
  };
}

/** Whether a fault rule's filter accepts a request. */
export function matchesFault(match: KeyVaultFaultMatch, request: RequestContext): boolean {
  return (
    (match.operation === undefined || match.operation === request.operation) &&
    (match.secret === undefined || match.secret.toLowerCase() === request.secret?.toLowerCase()) &&
    (match.authenticated === undefined || match.authenticated === request.authenticated)
  );
}

/** Serves one data-plane request, counts it and logs it. */
export async function serveRequest(call: Call, plane: DataPlane): Promise<Reply> {
  plane.stats.counters.total++;
  const route = parseRoute(call);
  const authorization = header(call, "authorization");
  const early = await faultOrThrottle(
    call,
    {
      operation: route.operation,
      secret: route.secret,
      authenticated: authorization !== undefined,
    },
    plane,
  );
  const outcome =
    early === undefined ? await serveChecked(call, route, authorization, plane) : { reply: early };
  record(call, route, authorization !== undefined, outcome, plane);
  return outcome.reply;
}

/**
 * `/secrets`, `/secrets/{name}/versions`, `/secrets/{name}[/{version}]`,
 * `/certificates/{name}[/{version}]`, `/keys/{name}[/{version}]`; anything
 * else is `other`.
 */
function parseRoute(call: Call): Route {
  const parts = call.url.pathname.split("/").slice(1);
  // A trailing slash leaves an empty last part: `/secrets/x/` is the latest version of x.
  if (parts.at(-1) === "" && parts.length > 1) parts.pop();
  const [collection, name, third, ...more] = parts.map((p) => decodeURIComponent(p));
  if (call.method !== "GET" || more.length > 0) return { operation: "other" };
  if ((collection === "certificates" || collection === "keys") && name !== undefined) {
    return {
      operation: collection === "keys" ? "getKey" : "getCertificate",
      secret: name,
      ...(third === undefined ? {} : { version: third }),
    };
  }
  if (collection !== "secrets") return { operation: "other" };
  if (name === undefined) return { operation: "getSecrets" };
  if (third === "versions") return { operation: "getSecretVersions", secret: name };
  return {
    operation: "getSecret",
    secret: name,
    ...(third === undefined ? {} : { version: third }),
  };
}

/** The answer of a fault that fired or of the throttle, if either stops the request. */
async function faultOrThrottle(
  call: Call,
  request: RequestContext,
  plane: DataPlane,
): Promise<Reply | undefined> {
  const faulted = await applyFault(plane.faults.take(request), plane.stats.counters, (action) =>
    plane.wire.fault(call, action),
  );
  if (faulted !== undefined) return faulted;
  const waitMs = plane.throttle()?.admit(plane.now());
  if (waitMs === undefined) return undefined;
  plane.stats.counters.throttled++;
  return plane.wire.error(call, throttled(waitMs));
}

/** `api-version`, then the token, then the operation. */
async function serveChecked(
  call: Call,
  route: Route,
  authorization: string | undefined,
  plane: DataPlane,
): Promise<Outcome> {
  const apiVersion = call.url.searchParams.get("api-version");
  if (apiVersion === null || !API_VERSION.test(apiVersion)) {
    return { reply: plane.wire.error(call, badApiVersion(apiVersion)) };
  }
  if (authorization === undefined) {
    plane.stats.counters.challenges++;
    return { reply: plane.wire.error(call, plane.tokens.missingToken()) };
  }
  const caller = await plane.tokens.authenticate(authorization);
  if ("status" in caller) {
    plane.stats.counters.rejectedTokens++;
    return { reply: plane.wire.error(call, caller) };
  }
  plane.stats.counters.authenticated++;
  return { reply: serveOperation(call, route, caller, apiVersion, plane), clientId: caller.appid };
}

function badApiVersion(apiVersion: string | null): VaultError {
  return {
    status: 400,
    code: "BadParameter",
    message:
      apiVersion === null
        ? "Missing required query parameter 'api-version'."
        : `The specified version (${apiVersion}) is not recognized. Consider using the latest supported version (2025-07-01).`,
  };
}

/** An authenticated request: its role check and its answer. */
function serveOperation(
  call: Call,
  route: Route,
  caller: Caller,
  apiVersion: string,
  plane: DataPlane,
): Reply {
  const name = route.secret;
  if (name !== undefined && !SECRET_NAME.test(name)) {
    return plane.wire.error(call, {
      status: 400,
      code: "BadParameter",
      message: `The request URI contains an invalid name: ${name}`,
    });
  }
  switch (route.operation) {
    case "getSecrets":
      return listSecrets(call, caller, apiVersion, plane);
    case "getSecretVersions":
      return listVersions(call, name ?? "", caller, apiVersion, plane);
    case "getSecret":
      return getSecret(call, name ?? "", route.version, caller, apiVersion, plane);
    case "getCertificate":
      return getObject(CERTIFICATES, call, name ?? "", route.version, caller, plane);
    case "getKey":
      return getObject(KEYS, call, name ?? "", route.version, caller, plane);
    case "other":
      return plane.wire.error(call, {
        status: 405,
        code: "MethodNotAllowed",
        message: `${call.method} ${call.url.pathname} is not supported by this mock.`,
      });
  }
}

/** `GET /secrets`: the latest version of each, ids without a version. */
function listSecrets(call: Call, caller: Caller, apiVersion: string, plane: DataPlane): Reply {
  plane.stats.counters.lists++;
  const denied = authorize(plane.roles, plane.wire, caller, "readMetadata", undefined);
  if (denied !== undefined) return plane.wire.error(call, denied);
  const items = plane.store
    .all()
    .filter((s) => s.versions.length > 0)
    .map((s) => ({
      id: `${call.origin}/secrets/${s.name}`,
      ...listItem(s.versions.at(-1) as StoredVersion),
    }));
  return plane.wire.page(call, apiVersion, items);
}

/** `GET /secrets/{name}/versions`: every version, ids with it. */
function listVersions(
  call: Call,
  name: string,
  caller: Caller,
  apiVersion: string,
  plane: DataPlane,
): Reply {
  plane.stats.counters.lists++;
  const denied = authorize(plane.roles, plane.wire, caller, "readMetadata", name);
  if (denied !== undefined) return plane.wire.error(call, denied);
  const s = plane.store.get(name);
  // The service lists no versions (200, empty) for a name it does not know.
  const items = (s?.versions ?? [])
    .map((v) => ({ id: `${call.origin}/secrets/${s?.name ?? ""}/${v.version}`, ...listItem(v) }))
    .sort((a, b) => (a.id < b.id ? -1 : 1));
  return plane.wire.page(call, apiVersion, items);
}

/** `GET /secrets/{name}[/{version}]`: the latest or that version, if enabled. */
function getSecret(
  call: Call,
  name: string,
  wanted: string | undefined,
  caller: Caller,
  apiVersion: string,
  plane: DataPlane,
): Reply {
  const s = plane.store.get(name);
  const counted = s?.name ?? name;
  plane.stats.counters.secretGets[counted] = (plane.stats.counters.secretGets[counted] ?? 0) + 1;
  const denied = authorize(plane.roles, plane.wire, caller, "getSecret", name);
  if (denied !== undefined) return plane.wire.error(call, denied);
  const v =
    wanted === undefined
      ? s?.versions.at(-1)
      : VERSION.test(wanted)
        ? s?.versions.find((x) => x.version === wanted.toLowerCase())
        : undefined;
  if (s === undefined || v === undefined) {
    return plane.wire.error(
      call,
      secretNotFound(wanted === undefined ? name : `${name}/${wanted}`),
    );
  }
  if (!v.enabled) {
    return plane.wire.error(call, {
      status: 403,
      code: "Forbidden",
      inner: "SecretDisabled",
      message: "Operation get is not allowed on a disabled secret.",
    });
  }
  return plane.wire.secret(call, s, v, apiVersion);
}

/** What tells the certificates API's GET from the keys API's. */
interface ObjectApi<V extends { readonly version: string }> {
  readonly permission: "getCertificate" | "getKey";
  readonly counter: "certificateGets" | "keyGets";
  readonly find: (objects: ObjectStore, name: string) => Named<V> | undefined;
  readonly notFound: (what: string) => VaultError;
  readonly body: (call: Call, name: string, v: V) => Record<string, unknown>;
}

/** `GET /certificates/{name}[/{version}]`: the leaf certificate (`cer`), needing `certificates/read`. */
const CERTIFICATES: ObjectApi<StoredCertificateVersion> = {
  permission: "getCertificate",
  counter: "certificateGets",
  find: (objects, name) => objects.certificate(name),
  notFound: certificateNotFound,
  body: certificateBody,
};

/** `GET /keys/{name}[/{version}]`: the public JWK, needing `keys/read`. */
const KEYS: ObjectApi<StoredKeyVersion> = {
  permission: "getKey",
  counter: "keyGets",
  find: (objects, name) => objects.key(name),
  notFound: keyNotFound,
  body: keyBody,
};

/** A GET of the certificates or keys API: counted, authorized, then the version asked for. */
function getObject<V extends { readonly version: string }>(
  api: ObjectApi<V>,
  call: Call,
  name: string,
  wanted: string | undefined,
  caller: Caller,
  plane: DataPlane,
): Reply {
  const gets = plane.stats.counters[api.counter];
  gets[name] = (gets[name] ?? 0) + 1;
  const denied = authorize(plane.roles, plane.wire, caller, api.permission, name);
  if (denied !== undefined) return plane.wire.error(call, denied);
  const entry = api.find(plane.objects, name);
  const v = findVersion(entry, wanted);
  if (entry === undefined || v === undefined)
    return plane.wire.error(call, api.notFound(wanted === undefined ? name : `${name}/${wanted}`));
  return objectReply(plane.wire.headers(call), api.body(call, entry.name, v));
}

/** Counts the answer by status and appends it to the request log. */
function record(
  call: Call,
  route: Route,
  withToken: boolean,
  outcome: Outcome,
  plane: DataPlane,
): void {
  const counters = plane.stats.counters;
  const status = replyStatus(outcome.reply);
  if (status === 403) counters.forbidden++;
  if (status === 404) counters.notFound++;
  counters.byStatus[String(status)] = (counters.byStatus[String(status)] ?? 0) + 1;
  const errorCode = vaultErrorCode(outcome.reply);
  const { clientId } = outcome;
  const entry: KeyVaultRequestRecord = {
    at: plane.now(),
    method: call.method,
    path: `${call.url.pathname}${call.url.search}`,
    operation: route.operation,
    ...(route.secret === undefined ? {} : { secret: route.secret }),
    ...(route.version === undefined ? {} : { version: route.version }),
    withToken,
    status,
    ...(clientId === undefined ? {} : { clientId }),
    ...(errorCode === undefined ? {} : { errorCode }),
  };
  plane.stats.record(entry);
  plane.logger.info(
    { method: entry.method, path: call.url.pathname, status, clientId, errorCode },
    "mock-key-vault request",
  );
}
