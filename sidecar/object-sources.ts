/**
 * Certificates and keys as Key Vault stores them, through their own APIs
 * and the official clients (`@azure/keyvault-certificates`,
 * `@azure/keyvault-keys`): a certificate's public certificate as PEM, and a
 * key's public part as PEM (SPKI). Neither needs `secrets/getSecret`: the
 * point of reading them so is an identity that may not read secret values.
 *
 * The certificates API gives the leaf certificate only (`cer`, DER): no
 * chain. A certificate's chain, and its private key, are in its secret
 * (`https://<vault>/secrets/<name>` with format `pem` or `cert`).
 *
 * app.ts imports this module lazily, only for a spec with a certificate or
 * key, so a secrets-only sidecar never loads these clients. Each source
 * keeps the Key Vault source's request discipline: its own warm-up gate (one
 * read alone until the challenge and token are cached: N + 1 requests per
 * cold sync per vault and API), the SDK's retries off, errors classified as
 * a secret's are (`classifyKeyVaultError`), naming the object.
 */
import { X509Certificate, createPublicKey, type JsonWebKey as NodeJwk } from "node:crypto";
import { CertificateClient } from "@azure/keyvault-certificates";
import { KeyClient, type JsonWebKey } from "@azure/keyvault-keys";
import { ErrorCode } from "../common/errors.ts";
import { formatSecretRef } from "../common/refs.ts";
import {
  createGatedSource,
  keyVaultClientOptions,
  type KeyVaultSourceOptions,
} from "./key-vault-source.ts";
import { SourceError, type SecretSource } from "./secret-source.ts";

/** What {@link createCertificateSource} and {@link createKeySource} need: what the secrets source does. */
export type ObjectSourceOptions = KeyVaultSourceOptions;

/** Reads certificates: the leaf certificate (`cer`) as one PEM block. */
export function createCertificateSource(options: ObjectSourceOptions): SecretSource {
  return createGatedSource(options, (gate) => {
    const c = new CertificateClient(
      options.vaultUrl,
      options.credential,
      keyVaultClientOptions(options, gate),
    );
    return async (ref, signal) => {
      const abort = signal === undefined ? {} : { abortSignal: signal };
      const certificate =
        ref.version === undefined
          ? await c.getCertificate(ref.name, abort)
          : await c.getCertificateVersion(ref.name, ref.version, abort);
      if (certificate.cer === undefined || certificate.cer.length === 0) {
        throw new SourceError(
          ErrorCode.SECRET_NOT_FOUND,
          `Key Vault ${options.vaultUrl} returned certificate '${formatSecretRef(ref)}' without its certificate (cer): is it still pending?`,
        );
      }
      return {
        value: derToPem(certificate.cer),
        contentType: "application/x-pem-file",
        version: certificate.properties.version ?? ref.version ?? "",
      };
    };
  });
}

/** Reads keys: the public part of an RSA or EC key as PEM (SPKI). */
export function createKeySource(options: ObjectSourceOptions): SecretSource {
  return createGatedSource(options, (gate) => {
    const c = new KeyClient(
      options.vaultUrl,
      options.credential,
      keyVaultClientOptions(options, gate),
    );
    return async (ref, signal) => {
      const key = await c.getKey(ref.name, {
        ...(ref.version === undefined ? {} : { version: ref.version }),
        ...(signal === undefined ? {} : { abortSignal: signal }),
      });
      return {
        value: publicKeyPem(
          key.key,
          `key '${formatSecretRef(ref)}' in Key Vault ${options.vaultUrl}`,
        ),
        contentType: "application/x-pem-file",
        version: key.properties.version ?? ref.version ?? "",
      };
    };
  });
}

/**
 * A DER certificate as one PEM block, checked to be a certificate.
 * @throws {SourceError} `KEY_VAULT_REFUSED` when the bytes are no X.509 certificate.
 */
export function derToPem(der: Uint8Array): string {
  try {
    return new X509Certificate(der).toString();
  } catch (cause) {
    throw new SourceError(
      ErrorCode.KEY_VAULT_REFUSED,
      "Key Vault returned a certificate (cer) that is no X.509 certificate",
      { cause },
    );
  }
}

/** Key Vault's curve names, as node:crypto's JWK import names them. */
const CURVES: Readonly<Record<string, string>> = {
  "P-256": "P-256",
  "P-384": "P-384",
  "P-521": "P-521",
  "P-256K": "secp256k1",
};

const b64url = (bytes: Uint8Array | undefined): string | undefined =>
  bytes === undefined ? undefined : Buffer.from(bytes).toString("base64url");

/**
 * The public key of a Key Vault JWK as PEM (SPKI). RSA and EC keys (HSM
 * ones too) have a public part; a symmetric (`oct`) key has none.
 * @param what the key, for messages.
 * @throws {SourceError} `FORMAT_FAILED` for an `oct` key or a JWK without its public members.
 */
export function publicKeyPem(jwk: JsonWebKey | undefined, what: string): string {
  const kty = jwk?.kty ?? "";
  let nodeJwk: NodeJwk | undefined;
  if (kty === "RSA" || kty === "RSA-HSM") {
    const n = b64url(jwk?.n);
    const e = b64url(jwk?.e);
    if (n !== undefined && e !== undefined) nodeJwk = { kty: "RSA", n, e };
  } else if (kty === "EC" || kty === "EC-HSM") {
    const crv = CURVES[jwk?.crv ?? ""];
    const x = b64url(jwk?.x);
    const y = b64url(jwk?.y);
    if (crv !== undefined && x !== undefined && y !== undefined) nodeJwk = { kty: "EC", crv, x, y };
  } else if (kty === "oct" || kty === "oct-HSM") {
    throw new SourceError(
      ErrorCode.FORMAT_FAILED,
      `${what} is a symmetric (${kty}) key: it has no public part, and Key Vault never gives its material; only RSA and EC keys can be written`,
    );
  }
  if (nodeJwk === undefined) {
    throw new SourceError(
      ErrorCode.FORMAT_FAILED,
      `${what} has no usable public key (type '${kty}'${jwk?.crv === undefined ? "" : `, curve '${jwk.crv}'`}): only RSA and EC keys on P-256, P-384, P-521 or P-256K can be written`,
    );
  }
  try {
    return createPublicKey({ key: nodeJwk, format: "jwk" }).export({
      type: "spki",
      format: "pem",
    }) as string;
  } catch (cause) {
    throw new SourceError(ErrorCode.FORMAT_FAILED, `${what}: its public key does not parse`, {
      cause,
    });
  }
}
