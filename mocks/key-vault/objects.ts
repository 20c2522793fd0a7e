/**
 * Certificates and keys as Key Vault's certificates and keys APIs serve
 * them: a certificate version is its leaf certificate (`cer`, DER, no
 * chain) and its thumbprint; a key version is its public JWK (an RSA or EC
 * key's public part; an `oct` key shows no material). A certificate written
 * through `addCertificate` gets a certificate and a key version with the
 * secret's version id, as Key Vault makes all three at once. Names compare
 * case-insensitively and keep the case they were first written with.
 */
import { createHash, createPublicKey, randomBytes, X509Certificate } from "node:crypto";
import { AdminInputError } from "../admin.ts";
import type { Call, Reply } from "../https-server.ts";
import { pkcs12ToPem } from "../../certs/index.ts";
import { SECRET_NAME, type CertificateInput } from "./store.ts";
import type { VaultError } from "./wire.ts";

/** One version of a certificate. */
export interface StoredCertificateVersion {
  readonly version: string;
  /** The leaf certificate, DER. */
  readonly cer: Buffer;
  readonly created: number;
  enabled: boolean;
}

/** A public JWK as the keys API shows it (`kid` added on the way out). */
export type PublicJwk = Readonly<Record<string, string | readonly string[]>>;

/** One version of a key. */
export interface StoredKeyVersion {
  readonly version: string;
  readonly jwk: PublicJwk;
  readonly created: number;
  enabled: boolean;
}

/** An object's name as first written, and its versions, oldest first. */
export interface Named<V> {
  readonly name: string;
  readonly versions: V[];
}

/** What a new key is made from. */
export type KeyInput =
  /** An RSA or EC key: its public part, from a PEM public or private key. */
  | { readonly pem: string }
  /** A symmetric key: Key Vault never shows its material. */
  | { readonly oct: true };

const RSA_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"];
const EC_OPS = ["sign", "verify"];
const OCT_OPS = ["encrypt", "decrypt", "wrapKey", "unwrapKey"];

/** The certificates and keys of one vault. */
export class ObjectStore {
  readonly #certificates = new Map<string, Named<StoredCertificateVersion>>();
  readonly #keys = new Map<string, Named<StoredKeyVersion>>();
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  certificate(name: string): Named<StoredCertificateVersion> | undefined {
    return this.#certificates.get(name.toLowerCase());
  }

  key(name: string): Named<StoredKeyVersion> | undefined {
    return this.#keys.get(name.toLowerCase());
  }

  /**
   * Writes a certificate version from its leaf (PEM or DER) and the key
   * version of its public key, with `version` (the secret's) or a new one.
   */
  addCertificate(name: string, leafPem: string, version = newVersion()): string {
    checkName(name);
    const cert = new X509Certificate(leafPem);
    const created = this.#nowSec();
    push(this.#certificates, name, { version, cer: cert.raw, created, enabled: true });
    push(this.#keys, name, {
      version,
      jwk: publicJwk(cert.publicKey.export({ format: "jwk" }) as Record<string, string>),
      created,
      enabled: true,
    });
    return version;
  }

  /** Writes a new key version; returns its version. */
  addKey(name: string, input: KeyInput): string {
    checkName(name);
    const version = newVersion();
    let jwk: PublicJwk;
    if ("oct" in input) jwk = { kty: "oct", key_ops: OCT_OPS };
    else {
      let exported: Record<string, string>;
      try {
        exported = createPublicKey(input.pem).export({ format: "jwk" }) as Record<string, string>;
      } catch {
        throw new AdminInputError("key: a PEM RSA or EC public or private key");
      }
      jwk = publicJwk(exported);
    }
    push(this.#keys, name, { version, jwk, created: this.#nowSec(), enabled: true });
    return version;
  }

  #nowSec(): number {
    return Math.floor(this.#now() / 1000);
  }
}

function newVersion(): string {
  return randomBytes(16).toString("hex");
}

function checkName(name: string): void {
  if (!SECRET_NAME.test(name))
    throw new AdminInputError(`bad object name '${name}': 1-127 of [0-9A-Za-z-]`);
}

function push<V>(map: Map<string, Named<V>>, name: string, version: V): void {
  const entry = map.get(name.toLowerCase()) ?? { name, versions: [] };
  entry.versions.push(version);
  map.set(name.toLowerCase(), entry);
}

/** The public members of an exported JWK, with the operations Key Vault lists. */
function publicJwk(jwk: Record<string, string>): PublicJwk {
  if (jwk.kty === "RSA") return { kty: "RSA", key_ops: RSA_OPS, n: jwk.n ?? "", e: jwk.e ?? "" };
  if (jwk.kty === "EC")
    return { kty: "EC", key_ops: EC_OPS, crv: jwk.crv ?? "", x: jwk.x ?? "", y: jwk.y ?? "" };
  throw new AdminInputError(`key: an RSA or EC key, not ${jwk.kty ?? "unknown"}`);
}

/** The version asked for (latest when none), if it exists. */
export function findVersion<V extends { readonly version: string }>(
  entry: Named<V> | undefined,
  wanted: string | undefined,
): V | undefined {
  if (wanted === undefined) return entry?.versions.at(-1);
  if (!/^[0-9a-fA-F]{32}$/.test(wanted)) return undefined;
  return entry?.versions.find((v) => v.version === wanted.toLowerCase());
}

function attributes(v: { created: number; enabled: boolean }): Record<string, unknown> {
  return {
    enabled: v.enabled,
    created: v.created,
    updated: v.created,
    recoveryLevel: "Recoverable+Purgeable",
    recoverableDays: 90,
  };
}

/** The certificate bundle of `GET /certificates/{name}[/{version}]`. */
export function certificateBody(
  call: Call,
  name: string,
  v: StoredCertificateVersion,
): Record<string, unknown> {
  const x5t = createHash("sha1").update(v.cer).digest("base64url");
  return {
    id: `${call.origin}/certificates/${name}/${v.version}`,
    kid: `${call.origin}/keys/${name}/${v.version}`,
    sid: `${call.origin}/secrets/${name}/${v.version}`,
    x5t,
    cer: v.cer.toString("base64"),
    attributes: attributes(v),
  };
}

/** The key bundle of `GET /keys/{name}[/{version}]`. */
export function keyBody(call: Call, name: string, v: StoredKeyVersion): Record<string, unknown> {
  return {
    key: { kid: `${call.origin}/keys/${name}/${v.version}`, ...v.jwk },
    attributes: { ...attributes(v), exportable: false },
  };
}

/** 404 `CertificateNotFound` for `what`: a name, or `name/version`. */
export function certificateNotFound(what: string): VaultError {
  return {
    status: 404,
    code: "CertificateNotFound",
    message: `A certificate with (name/id) ${what} was not found in this key vault. If you recently deleted this certificate you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
  };
}

/** 404 `KeyNotFound` for `what`: a name, or `name/version`. */
export function keyNotFound(what: string): VaultError {
  return {
    status: 404,
    code: "KeyNotFound",
    message: `A key with (name/id) ${what} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
  };
}

/** An answer with the vault's headers. */
export function objectReply(headers: Record<string, string>, json: Record<string, unknown>): Reply {
  return { status: 200, headers, json };
}

/** The leaf certificate (PEM) of a certificate as `addCertificate` takes it. */
export function leafOf(certificate: CertificateInput): string {
  const pems =
    "pkcs12Base64" in certificate
      ? pkcs12ToPem(certificate.pkcs12Base64).certPems
      : "pem" in certificate
        ? (certificate.pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ??
          [])
        : certificate.certPems;
  const leaf = pems[0];
  if (leaf === undefined) throw new AdminInputError("certificate: no certificate in it");
  return leaf;
}
