/**
 * Who is calling, and may they. A bearer token is checked as Key Vault
 * checks it: signature against Entra's keys, then audience, issuer and
 * lifetime, each refusal a 401 with the service's AKV/IDX wording and the
 * challenge that tells the SDK where to get a token. Then the role table
 * decides, and a refusal is the service's 403 `ForbiddenByRbac`. Entra's
 * keys come from the authority: in-process, or fetched over HTTPS (cached a
 * minute, refetched on an unknown `kid`).
 */
import {
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  type JSONWebKeySet,
  type JWTPayload,
} from "jose";
import type { Logger } from "../../common/logger.ts";
import { accessTokenIssuer, trimSlash } from "../azure.ts";
import { fetchJson } from "../fetch-json.ts";
import { KeySetVerifier } from "../key-sets.ts";
import { PERMISSION_ACTIONS, type Permission, type RoleTable } from "./store.ts";
import type { VaultError, VaultWire } from "./wire.ts";

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

/** Who a valid token says is calling. */
export interface Caller {
  readonly appid: string;
  readonly oid: string;
  readonly iss: string;
}

/** Options of a {@link TokenValidator}. */
export interface TokenValidatorOptions {
  readonly authority: KeyVaultAuthority;
  /** The expected audience, without a trailing slash. */
  readonly resource: string;
  /** Clock skew allowed on token lifetimes, in seconds. */
  readonly clockSkewSec: number;
  readonly now: () => number;
  readonly logger: Logger;
}

/** How long fetched keys are trusted before a refetch. */
const REMOTE_KEYS_CACHE_MS = 60_000;

/** Checks bearer tokens as the vault's service does. */
export class TokenValidator {
  readonly #options: TokenValidatorOptions;
  readonly #issuer: string;
  /** `WWW-Authenticate` of every 401. */
  readonly #challenge: string;
  #remoteKeys: { at: number; jwks: JSONWebKeySet } | undefined;
  readonly #verifier = new KeySetVerifier();

  constructor(options: TokenValidatorOptions) {
    const { authority, resource } = options;
    this.#options = options;
    this.#issuer = authority.issuer ?? accessTokenIssuer(authority.tenantId);
    this.#challenge = `Bearer authorization="${trimSlash(authority.url)}/${authority.tenantId}", resource="${resource}"`;
  }

  /** The 401 of a request without a token: the challenge. */
  missingToken(): VaultError {
    return this.#unauthorized("AKV10000: Request is missing a Bearer or PoP token.");
  }

  /** Validates an `Authorization` header; returns the caller or the error to send. */
  async authenticate(authorization: string): Promise<Caller | VaultError> {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
    if (match === null) return this.missingToken();
    const token = match[1] ?? "";
    let payload: JWTPayload;
    let kid: string | undefined;
    try {
      payload = decodeJwt(token);
      kid = decodeProtectedHeader(token).kid;
    } catch {
      return this.#unauthorized("Error validating token: IDX14100: JWT is not well formed.");
    }
    const refusal = (await this.#checkSignature(token, kid)) ?? this.#checkClaims(payload);
    if (refusal !== undefined) return refusal;
    const claim = (name: string): string => {
      const v = payload[name];
      return typeof v === "string" ? v : "";
    };
    return { appid: claim("appid") || claim("azp"), oid: claim("oid"), iss: payload.iss ?? "" };
  }

  async #checkSignature(token: string, kid: string | undefined): Promise<VaultError | undefined> {
    let keys: JSONWebKeySet;
    try {
      keys = await this.#entraKeys(false);
      if (!keys.keys.some((k) => k.kid === kid)) keys = await this.#entraKeys(true);
    } catch (error) {
      this.#options.logger.warn(
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
      await this.#verifier.verify(token, keys);
      return undefined;
    } catch (error) {
      if (error instanceof joseErrors.JWKSNoMatchingKey) {
        const encodedHeader = token.split(".")[0] ?? "";
        return this.#unauthorized(
          `AKV10046: Unable to resolve the key used for signature validation. EncodedJwtHeader: '${encodedHeader}'.`,
        );
      }
      return this.#unauthorized("Error validating token: IDX10511: Signature validation failed.");
    }
  }

  /** Audience, issuer, then lifetime, in the service's order. */
  #checkClaims(payload: JWTPayload): VaultError | undefined {
    const { resource, clockSkewSec, now } = this.#options;
    const auds = typeof payload.aud === "string" ? [payload.aud] : (payload.aud ?? []);
    if (!auds.some((a) => trimSlash(a) === resource)) {
      return this.#unauthorized(
        `AKV10022: Invalid audience. Expected ${resource}, found: ${auds.join(", ")}.`,
      );
    }
    if (payload.iss !== this.#issuer) {
      return this.#unauthorized(
        `AKV10032: Invalid issuer. Expected one of ${this.#issuer}, found ${payload.iss ?? ""}.`,
      );
    }
    const t = now() / 1000;
    if (payload.exp === undefined || t > payload.exp + clockSkewSec) {
      return this.#unauthorized(
        `Error validating token: IDX10223: Lifetime validation failed. The token is expired. ValidTo (UTC): '${utc(payload.exp)}', Current time (UTC): '${utc(t)}'.`,
      );
    }
    if (payload.nbf !== undefined && t + clockSkewSec < payload.nbf) {
      return this.#unauthorized(
        `Error validating token: IDX10222: Lifetime validation failed. The token is not yet valid. ValidFrom (UTC): '${utc(payload.nbf)}', Current time (UTC): '${utc(t)}'.`,
      );
    }
    return undefined;
  }

  /** Entra's signing keys; `fresh` skips the cache of fetched ones. */
  async #entraKeys(fresh: boolean): Promise<JSONWebKeySet> {
    const { authority, now } = this.#options;
    if (authority.keys !== undefined) return authority.keys();
    const cached = this.#remoteKeys;
    if (!fresh && cached !== undefined && now() - cached.at < REMOTE_KEYS_CACHE_MS)
      return cached.jwks;
    const url =
      authority.jwksUrl ?? `${trimSlash(authority.url)}/${authority.tenantId}/discovery/v2.0/keys`;
    const jwks = (await fetchJson(url, { caPems: authority.caPems ?? [] })) as JSONWebKeySet;
    this.#remoteKeys = { at: now(), jwks };
    return jwks;
  }

  #unauthorized(message: string): VaultError {
    return {
      status: 401,
      code: "Unauthorized",
      message,
      headers: { "www-authenticate": this.#challenge },
    };
  }
}

/**
 * The role table's verdict on a caller, by client id or object id: nothing
 * when allowed, else the service's 403.
 */
export function authorize(
  roles: RoleTable,
  wire: VaultWire,
  caller: Caller,
  permission: Permission,
  secret: string | undefined,
): VaultError | undefined {
  const who = [caller.appid.toLowerCase(), caller.oid.toLowerCase(), "*"];
  if (roles.allows(who, permission, secret)) return undefined;
  const collection =
    permission === "getCertificate" ? "certificates" : permission === "getKey" ? "keys" : "secrets";
  return wire.forbiddenByRbac(
    caller,
    PERMISSION_ACTIONS[permission],
    secret === undefined ? undefined : `${collection}/${secret}`,
  );
}

/** `MM/dd/yyyy HH:mm:ss`, as the .NET token validator prints times. */
function utc(seconds: number | undefined): string {
  if (seconds === undefined) return "(none)";
  const d = new Date(seconds * 1000);
  const p = (n: number): string => String(n).padStart(2, "0");
  return `${p(d.getUTCMonth() + 1)}/${p(d.getUTCDate())}/${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
}
