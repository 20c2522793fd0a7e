/**
 * Helpers for the mocks' admin HTTP API: JSON in, JSON out, under the path
 * prefix {@link ADMIN_PREFIX} on the mock's own port (one port to expose in a
 * cluster). The real services have no such paths, so they cannot collide.
 * Admin calls are never faulted, throttled or counted.
 */
import { header, parseJsonBody, type Call, type Reply } from "./https-server.ts";

/** Every admin path starts with this. */
export const ADMIN_PREFIX = "/_mock/";

/** The header that carries the admin token, when the mock was started with one. */
export const ADMIN_TOKEN_HEADER = "x-mock-admin-token";

/** A bad admin request; answered 400 with its message. */
export class AdminInputError extends Error {
  override readonly name = "AdminInputError";
}

/** An admin route: `METHOD` and the path after the prefix, split on `/`. */
export type AdminHandler = (body: Record<string, unknown>, params: readonly string[]) => unknown;

/**
 * Serves an admin call: checks the token, decodes the body (a JSON object,
 * merged over the query parameters), finds the route by method and first
 * path segment, and encodes the answer.
 * @param routes keyed `"METHOD segment"`, e.g. `"POST faults"`; the remaining segments are `params`.
 */
export function serveAdmin(
  call: Call,
  adminToken: string | undefined,
  routes: Readonly<Record<string, AdminHandler>>,
): Reply {
  if (adminToken !== undefined && header(call, ADMIN_TOKEN_HEADER) !== adminToken) {
    return { status: 401, json: { error: `missing or wrong ${ADMIN_TOKEN_HEADER}` } };
  }
  const segments = call.url.pathname
    .slice(ADMIN_PREFIX.length)
    .split("/")
    .filter((s) => s !== "")
    .map((s) => decodeURIComponent(s));
  const route = routes[`${call.method} ${segments[0] ?? ""}`];
  if (route === undefined) {
    return { status: 404, json: { error: `no admin route ${call.method} ${call.url.pathname}` } };
  }
  try {
    const raw: unknown = parseJsonBody(call) ?? {};
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new AdminInputError("the body must be a JSON object");
    }
    // Query parameters count as string fields, so `curl -X DELETE '…?principal=x'` works
    // (Node's and many clients' DELETE sends no body).
    const fields = {
      ...Object.fromEntries(call.url.searchParams),
      ...(raw as Record<string, unknown>),
    };
    const result = route(fields, segments.slice(1));
    return { status: 200, json: result ?? { ok: true } };
  } catch (error) {
    if (
      error instanceof AdminInputError ||
      error instanceof SyntaxError ||
      error instanceof RangeError
    ) {
      return { status: 400, json: { error: error.message } };
    }
    throw error;
  }
}

/** A required string field of an admin body. */
export function requireString(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  if (typeof v !== "string" || v === "")
    throw new AdminInputError(`'${key}' must be a non-empty string`);
  return v;
}

/** An optional string field. */
export function optionalString(body: Record<string, unknown>, key: string): string | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new AdminInputError(`'${key}' must be a string`);
  return v;
}

/** An optional number field. */
export function optionalNumber(body: Record<string, unknown>, key: string): number | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new AdminInputError(`'${key}' must be a number`);
  return v;
}

/** An optional boolean field. */
export function optionalBoolean(body: Record<string, unknown>, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") throw new AdminInputError(`'${key}' must be a boolean`);
  return v;
}

/** An optional array of strings. */
export function optionalStrings(body: Record<string, unknown>, key: string): string[] | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw new AdminInputError(`'${key}' must be an array of strings`);
  }
  return v;
}

/** An optional string map (tags). */
export function optionalStringMap(
  body: Record<string, unknown>,
  key: string,
): Record<string, string> | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (
    typeof v !== "object" ||
    v === null ||
    Array.isArray(v) ||
    !Object.values(v).every((x) => typeof x === "string")
  ) {
    throw new AdminInputError(`'${key}' must be an object of strings`);
  }
  return v as Record<string, string>;
}
