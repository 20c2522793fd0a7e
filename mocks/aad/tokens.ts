/**
 * The access tokens the mock Entra ID issues: v1 JWTs, as Key Vault
 * receives them, signed by the mock's own RSA key (its `kid` and `x5t` are
 * the key's thumbprint, as Entra's are), and the token endpoint's answer.
 * The public half is what Key Vault, in-process or over HTTPS, verifies with.
 */
import {
  SignJWT,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  type CryptoKey,
  type JSONWebKeySet,
  type JWTPayload,
} from "jose";
import { randomBytes } from "node:crypto";
import { accessTokenIssuer } from "../azure.ts";
import type { App } from "./store.ts";

/** What a token request was granted. */
export interface Grant {
  readonly app: App;
  readonly tenantId: string;
  /** The resource of the `…/.default` scope, e.g. `https://vault.azure.net`. */
  readonly resource: string;
  /** The client asked for CAE (`cp1`): the token says `xms_cc: ["CP1"]`. */
  readonly capabilities: boolean;
}

/** Signs access tokens with one RSA key. */
export class TokenSigner {
  /** The public keys that verify the tokens. */
  readonly jwks: JSONWebKeySet;
  readonly #privateKey: CryptoKey;
  readonly #kid: string;

  private constructor(privateKey: CryptoKey, kid: string, jwks: JSONWebKeySet) {
    this.#privateKey = privateKey;
    this.#kid = kid;
    this.jwks = jwks;
  }

  /** A signer with a fresh key. */
  static async create(): Promise<TokenSigner> {
    const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    return new TokenSigner(privateKey, kid, {
      keys: [{ ...publicJwk, kty: "RSA", use: "sig", kid, x5t: kid, alg: "RS256" }],
    });
  }

  /**
   * The token endpoint's answer to a grant: `token_type`, `expires_in`,
   * `ext_expires_in`, `refresh_in` for long lifetimes, and the token.
   */
  async answer(grant: Grant, lifetimeSec: number, nowMs: number): Promise<Record<string, unknown>> {
    const accessToken = await new SignJWT(accessTokenClaims(grant, lifetimeSec, nowMs))
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: this.#kid, x5t: this.#kid })
      .sign(this.#privateKey);
    return {
      token_type: "Bearer",
      expires_in: lifetimeSec,
      ext_expires_in: lifetimeSec,
      // Entra tells clients to refresh at half-life for long-lived tokens.
      ...(lifetimeSec > 7200 ? { refresh_in: Math.floor(lifetimeSec / 2) } : {}),
      access_token: accessToken,
    };
  }
}

/** The claims of a v1 app-only access token, as Entra writes them. */
function accessTokenClaims(grant: Grant, lifetimeSec: number, nowMs: number): JWTPayload {
  const nowSec = Math.floor(nowMs / 1000);
  const issuer = accessTokenIssuer(grant.tenantId);
  // Entra back-dates iat/nbf by five minutes to absorb clock skew.
  return {
    aud: grant.resource,
    iss: issuer,
    iat: nowSec - 300,
    nbf: nowSec - 300,
    exp: nowSec + lifetimeSec,
    aio: randomBytes(24).toString("base64url"),
    appid: grant.app.clientId,
    appidacr: "2",
    idp: issuer,
    idtyp: "app",
    oid: grant.app.objectId,
    rh: randomBytes(16).toString("base64url"),
    sub: grant.app.objectId,
    tid: grant.tenantId,
    uti: randomBytes(16).toString("base64url"),
    ver: "1.0",
    ...(grant.capabilities ? { xms_cc: ["CP1"] } : {}),
  };
}
