/**
 * A test OIDC issuer that plays the kube-apiserver's service-account issuer
 * for tests that have no control plane: HTTPS discovery
 * (`/.well-known/openid-configuration`) and JWKS (`/openid/v1/jwks`, served
 * as `application/jwk-set+json` with the apiserver's 406 for a client that
 * accepts only `application/json`), and
 * `mint()` for projected-token-like JWTs (RS256, `iss`, `sub`, `aud`, `exp`,
 * `nbf`, `iat`, `jti`, `kubernetes.io`). The mock Entra ID verifies them the
 * way it verifies a real apiserver's.
 */
import {
  SignJWT,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  type CryptoKey,
  type JSONWebKeySet,
} from "jose";
import { randomUUID } from "node:crypto";
import { createLogger, type Logger } from "../common/logger.ts";
import { header, startHttpsServer, type Call, type Reply } from "./https-server.ts";
import { TOKEN_EXCHANGE_AUDIENCE } from "./azure.ts";
import { createMockTls, type ServingTls } from "./tls.ts";

/** Options of {@link startTestOidcIssuer}. */
export interface TestOidcIssuerOptions {
  readonly host?: string;
  readonly port?: number;
  /** Default: a fresh CA and a leaf for localhost/127.0.0.1. */
  readonly tls?: ServingTls;
  /**
   * Path of the issuer under the origin: `""` (default) gives
   * `https://127.0.0.1:PORT` like a kube-apiserver; `"/tenant/cluster/"`
   * gives an AKS-style issuer with a trailing slash.
   */
  readonly path?: string;
  readonly logger?: Logger;
}

/** Claims of a minted token. */
export interface MintOptions {
  /** e.g. `system:serviceaccount:default:app`. */
  readonly subject: string;
  /** Default `api://AzureADTokenExchange`. */
  readonly audience?: string | readonly string[];
  /** Lifetime from now; default 3600 s. Negative for an expired token. */
  readonly expiresInSec?: number;
  /** `nbf` relative to now; default 0. */
  readonly notBeforeSec?: number;
  /** Override `iss` (a token that names another issuer). */
  readonly issuer?: string;
  /** Sign with a key the JWKS does not publish (a forged or stale token). */
  readonly foreignKey?: boolean;
}

/** A running test issuer. */
export interface TestOidcIssuer {
  /** The issuer (`iss`), exactly as tokens carry it. */
  readonly issuer: string;
  /** PEM of the CA of its serving certificate. */
  readonly ca: string | undefined;
  /** Signs a token; see {@link MintOptions}. */
  mint(options: MintOptions): Promise<string>;
  /** Replaces the signing key (the JWKS then publishes only the new one). */
  rotateKey(): Promise<void>;
  /** When false, discovery and JWKS answer 503 (an unreachable issuer). */
  setAvailable(available: boolean): void;
  /** Discovery and JWKS fetches so far. */
  fetches(): { discovery: number; jwks: number };
  close(): Promise<void>;
}

interface SigningKey {
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly jwks: JSONWebKeySet;
}

async function newSigningKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair("RS256");
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { kid, privateKey, jwks: { keys: [{ ...jwk, use: "sig", alg: "RS256", kid }] } };
}

/** Starts a test OIDC issuer. */
export async function startTestOidcIssuer(
  options: TestOidcIssuerOptions = {},
): Promise<TestOidcIssuer> {
  const tls = options.tls ?? createMockTls();
  const logger = options.logger ?? createLogger({ name: "test-oidc-issuer", level: "silent" });
  let key = await newSigningKey();
  const foreign = await newSigningKey();
  let available = true;
  const fetched = { discovery: 0, jwks: 0 };
  const basePath = (options.path ?? "").replace(/\/$/, "");
  let issuer = "";

  function answer(call: Call): Reply {
    const path = call.url.pathname;
    const isDiscovery = path === `${basePath}/.well-known/openid-configuration`;
    const isJwks = path === `${basePath}/openid/v1/jwks`;
    if (isDiscovery) fetched.discovery++;
    if (isJwks) fetched.jwks++;
    if ((isDiscovery || isJwks) && !available)
      return { status: 503, json: { error: "unavailable" } };
    if (isDiscovery) {
      // What a kube-apiserver serves.
      return {
        status: 200,
        json: {
          issuer,
          jwks_uri: `${call.origin}${basePath}/openid/v1/jwks`,
          response_types_supported: ["id_token"],
          subject_types_supported: ["public"],
          id_token_signing_alg_values_supported: ["RS256"],
        },
      };
    }
    if (isJwks) {
      // As a kube-apiserver: the JWKS is application/jwk-set+json, and a
      // client that accepts only application/json gets 406.
      const accept = header(call, "accept") ?? "*/*";
      if (!/application\/jwk-set\+json|\*\/\*|application\/\*/.test(accept)) {
        return { status: 406, json: { error: "not acceptable" } };
      }
      return {
        status: 200,
        headers: { "content-type": "application/jwk-set+json" },
        json: key.jwks,
      };
    }
    return { status: 404, json: { error: "not found" } };
  }
  const handle = (call: Call): Promise<Reply> => Promise.resolve(answer(call));

  const server = await startHttpsServer({
    host: options.host,
    port: options.port,
    tls,
    handle,
    logger,
  });
  issuer = `${server.url}${options.path ?? ""}`;

  return {
    issuer,
    ca: tls.caPem,
    async mint(m) {
      const nowSec = Math.floor(Date.now() / 1000);
      const signer = m.foreignKey === true ? foreign : key;
      const [, namespace = "default", serviceAccount = "default"] =
        /^system:serviceaccount:([^:]+):(.+)$/.exec(m.subject) ?? [];
      return new SignJWT({
        "kubernetes.io": {
          namespace,
          serviceaccount: { name: serviceAccount, uid: randomUUID() },
        },
      })
        .setProtectedHeader({ alg: "RS256", kid: signer.kid })
        .setIssuer(m.issuer ?? issuer)
        .setSubject(m.subject)
        .setAudience(
          typeof m.audience === "string"
            ? m.audience
            : [...(m.audience ?? [TOKEN_EXCHANGE_AUDIENCE])],
        )
        .setIssuedAt(nowSec)
        .setNotBefore(nowSec + (m.notBeforeSec ?? 0))
        .setExpirationTime(nowSec + (m.expiresInSec ?? 3600))
        .setJti(randomUUID())
        .sign(signer.privateKey);
    },
    async rotateKey() {
      key = await newSigningKey();
    },
    setAvailable(value) {
      available = value;
    },
    fetches: () => ({ ...fetched }),
    close: () => server.close(),
  };
}
