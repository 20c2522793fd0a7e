/**
 * Key Vault's answers as the SDK reads them: the headers every answer
 * carries, the error envelope (and the 403 that names caller, action and
 * scope), secret bundles and list items, `nextLink` paging with the
 * service's skip tokens, and the bodies of injected statuses. Shapes only:
 * which answer a request gets is decided in routes.ts.
 */
import { pkcs12ToPem } from "../../certs/index.ts";
import type { CommonFaultAction, FaultAction } from "../faults.ts";
import { header, newGuid, type Call, type Reply } from "../https-server.ts";
import { PEM, PKCS12, pemBundle, type StoredSecret, type StoredVersion } from "./store.ts";

/** A Key Vault error on its way to the client. */
export interface VaultError {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly inner?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** What the service says about the vault itself: in headers and in a 403. */
export interface VaultIdentity {
  readonly name: string;
  /** `/subscriptions/…/resourcegroups/…/providers/microsoft.keyvault/vaults/<name>`. */
  readonly resourceId: string;
  /** The region. */
  readonly location: string;
}

/** Most items a listing page holds (the service's limit), and the default page size. */
export const MAX_PAGE = 25;

const THROTTLED_MESSAGE =
  "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached";

/** The answers of one vault. */
export class VaultWire {
  readonly #vault: VaultIdentity;
  readonly #pageSize: number;

  /** @param pageSize listing page size when the request sets no `maxresults`. */
  constructor(vault: VaultIdentity, pageSize: number) {
    this.#vault = vault;
    this.#pageSize = pageSize;
  }

  /** The headers of every answer; the client's request id echoed. */
  headers(call: Call): Record<string, string> {
    const clientRequestId = header(call, "x-ms-client-request-id");
    return {
      "cache-control": "no-cache",
      pragma: "no-cache",
      expires: "-1",
      "x-ms-request-id": newGuid(),
      "x-ms-keyvault-service-version": "1.9.0.0",
      "x-ms-keyvault-region": this.#vault.location,
      "x-ms-keyvault-network-info": `conn_type=Ipv4;addr=${call.remoteAddress};act_addr_fam=InterNetwork;`,
      "x-content-type-options": "nosniff",
      ...(clientRequestId === undefined ? {} : { "x-ms-client-request-id": clientRequestId }),
    };
  }

  /** `{"error":{"code","message","innererror"?}}` with the error's status and headers. */
  error(call: Call, e: VaultError): Reply {
    return {
      status: e.status,
      headers: { ...this.headers(call), ...e.headers },
      json: {
        error: {
          code: e.code,
          message: e.message,
          ...(e.inner === undefined ? {} : { innererror: { code: e.inner } }),
        },
      },
    };
  }

  /** 200 with a secret bundle: the value (PKCS#12 converted to PEM when asked), id, attributes. */
  secret(call: Call, s: StoredSecret, v: StoredVersion, apiVersion: string): Reply {
    let value = v.value;
    let contentType = v.contentType;
    // 7.6 / 2025-07-01 can convert a PKCS#12 certificate to PEM on the way out.
    if (call.url.searchParams.get("outContentType") === PEM && contentType === PKCS12) {
      const { keyPem, certPems } = pkcs12ToPem(value);
      value = pemBundle(keyPem, certPems);
      contentType = PEM;
    }
    const index = s.versions.indexOf(v);
    const previous = index > 0 ? s.versions[index - 1] : undefined;
    const json = {
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
    return { status: 200, headers: this.headers(call), json };
  }

  /** 200 with one page of `items` and the `nextLink` to the next (`null` on the last). */
  page(call: Call, apiVersion: string, items: readonly unknown[]): Reply {
    const maxParam = call.url.searchParams.get("maxresults");
    const requested = maxParam === null ? this.#pageSize : Number.parseInt(maxParam, 10);
    const size = Number.isFinite(requested)
      ? Math.min(Math.max(requested, 1), MAX_PAGE)
      : this.#pageSize;
    const offset = decodeSkipToken(call.url.searchParams.get("$skiptoken"));
    const slice = items.slice(offset, offset + size);
    const next = offset + size < items.length ? offset + size : undefined;
    return {
      status: 200,
      headers: this.headers(call),
      json: {
        value: slice,
        nextLink:
          next === undefined
            ? null
            : `${call.origin}${call.url.pathname}?api-version=${apiVersion}&$skiptoken=${encodeSkipToken(next)}${maxParam === null ? "" : `&maxresults=${size}`}`,
      },
    };
  }

  /** An injected status: the service's own error body for it unless the fault gives one. */
  fault(call: Call, action: Exclude<FaultAction, CommonFaultAction>): Reply {
    const headers = {
      ...this.headers(call),
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

  /** 403 `ForbiddenByRbac`, naming the caller, the action and the scope as the service does. */
  forbiddenByRbac(
    caller: { readonly appid: string; readonly oid: string; readonly iss: string },
    action: string,
    /** `secrets/<name>`, `certificates/<name>` or `keys/<name>`; undefined: the vault. */
    object: string | undefined,
  ): VaultError {
    const { resourceId, name, location } = this.#vault;
    const scope = object === undefined ? resourceId : `${resourceId}/${object}`;
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
        `Vault: ${name};location=${location}\r\n`,
    };
  }
}

/** A list item: everything of a version but its value and id. */
export function listItem(v: StoredVersion): Record<string, unknown> {
  return {
    ...(v.contentType === undefined ? {} : { contentType: v.contentType }),
    attributes: attributes(v),
    ...(v.tags === undefined ? {} : { tags: v.tags }),
    ...(v.kidPath === undefined ? {} : { managed: true }),
  };
}

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

/** 404 `SecretNotFound` for `what`: a name, or `name/version`. */
export function secretNotFound(what: string): VaultError {
  return {
    status: 404,
    code: "SecretNotFound",
    message: `A secret with (name/id) ${what} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
  };
}

/** 429 `Throttled` with the seconds until the throttle frees a slot (at least 1). */
export function throttled(waitMs: number): VaultError {
  return {
    status: 429,
    code: "Throttled",
    message: THROTTLED_MESSAGE,
    headers: { "retry-after": String(Math.max(1, Math.ceil(waitMs / 1000))) },
  };
}

/** The error code of an answer, as logged: the inner code when there is one. */
export function vaultErrorCode(reply: Reply): string | undefined {
  if (!("status" in reply) || typeof reply.json !== "object" || reply.json === null)
    return undefined;
  const error = (reply.json as { error?: { code?: unknown; innererror?: { code?: unknown } } })
    .error;
  const inner = error?.innererror?.code;
  if (typeof inner === "string") return inner;
  return typeof error?.code === "string" ? error.code : undefined;
}

/** The service's error body for a status a fault answers with. */
function defaultErrorBody(status: number): { code: string; message: string } {
  if (status === 429) return { code: "Throttled", message: THROTTLED_MESSAGE };
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
