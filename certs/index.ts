/**
 * Certificates for the webhook, the mocks and the sidecar's `pem`/`cert`/`key`
 * formats: a CA and serving certificates (node-forge builds the X.509
 * structures), PKCS#12 ↔ PEM, and PEM bundles put in leaf-first order.
 *
 * Keys are generated and certificates signed with `node:crypto` (OpenSSL), not
 * node-forge's JavaScript RSA: a 2048-bit key takes tens of milliseconds
 * natively and seconds in pure JavaScript, and the webhook makes one at
 * start-up. Every function takes the clock as a parameter (`now`), so tests
 * and renewals can move time without touching the system clock.
 *
 * Over 400 lines on purpose: the one public module of the certificates library, which the mocks, the webhook and the sidecar import as one.
 */
import {
  X509Certificate,
  createPrivateKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  type KeyObject,
} from "node:crypto";
import { isIP } from "node:net";
import forge from "node-forge";
import { AkvError, ErrorCode } from "../common/errors.ts";
import { CLOCK_SKEW_MS } from "./clock-skew.ts";

/** A certificate and its private key, both PEM (the key is PKCS#8). */
export interface CertificateAndKey {
  readonly certPem: string;
  readonly keyPem: string;
}

/** Options of {@link createCertificateAuthority}. */
export interface CertificateAuthorityOptions {
  readonly commonName: string;
  /** The clock: validity starts {@link CLOCK_SKEW_MS} before this. */
  readonly now: Date;
  /** Default {@link DEFAULT_CA_VALIDITY_DAYS}. */
  readonly validityDays?: number;
}

/** Options of {@link createServingCertificate}. */
export interface ServingCertificateOptions {
  /** DNS subject alternative names, e.g. `svc.ns.svc`. At least one of these or `ipAddresses`. */
  readonly dnsNames: readonly string[];
  /** IP subject alternative names (IPv4 or IPv6), e.g. `127.0.0.1` for a URL webhook in tests. */
  readonly ipAddresses?: readonly string[];
  /** Subject CN; default the first DNS name (clients check the SANs, not this). */
  readonly commonName?: string;
  /** The clock: validity starts {@link CLOCK_SKEW_MS} before this. */
  readonly now: Date;
  /** Default {@link DEFAULT_SERVING_VALIDITY_DAYS}; never past the CA's own expiry. */
  readonly validityDays?: number;
}

/** A private key and a certificate chain, leaf first. */
export interface PemBundle {
  /** PKCS#8 PEM (`BEGIN PRIVATE KEY`), whatever form it came in. */
  readonly keyPem?: string;
  /** Leaf first, then each issuer in turn; certificates outside that chain follow in input order. */
  readonly certPems: string[];
}

/** Options of {@link createPkcs12}. */
export interface Pkcs12Options {
  /** An RSA private key, PEM (PKCS#1 or PKCS#8). */
  readonly keyPem: string;
  /** Leaf first. */
  readonly certPems: readonly string[];
  /** Default: the empty password, as Key Vault's certificate-backed secrets have. */
  readonly password?: string;
}

/** Default lifetime of a CA. */
export const DEFAULT_CA_VALIDITY_DAYS = 3650;
/** Default lifetime of a serving certificate. */
export const DEFAULT_SERVING_VALIDITY_DAYS = 365;
export { CLOCK_SKEW_MS };

const DAY_MS = 86_400_000;
const SHA256_WITH_RSA = "1.2.840.113549.1.1.11";
/** forge exports `getTBSCertificate` (what `cert.sign` hashes) but its types omit it. */
const pki = forge.pki as typeof forge.pki & {
  getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1;
};
const RSA_BITS = 2048;

/**
 * Creates a self-signed CA (RSA 2048, SHA-256) that may sign serving
 * certificates but no further CAs (`pathLenConstraint: 0`).
 * @example createCertificateAuthority({ commonName: "akv-injector-ca", now: new Date() })
 */
export function createCertificateAuthority(opts: CertificateAuthorityOptions): CertificateAndKey {
  const key = generateRsaKey();
  const cert = newCertificate(
    key.publicKey,
    opts.now,
    opts.validityDays ?? DEFAULT_CA_VALIDITY_DAYS,
  );
  const name = [{ name: "commonName", value: opts.commonName }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: "basicConstraints", critical: true, cA: true, pathLenConstraint: 0 },
    { name: "keyUsage", critical: true, keyCertSign: true, cRLSign: true, digitalSignature: true },
    { name: "subjectKeyIdentifier" },
  ]);
  return { certPem: signCertificate(cert, key.privateKey), keyPem: exportKey(key.privateKey) };
}

/**
 * Creates a TLS server certificate (RSA 2048, SHA-256, `serverAuth`) signed
 * by `ca`, with the given DNS and IP subject alternative names. `certPem` is
 * the leaf alone; clients trust the CA.
 * @example createServingCertificate(ca, { dnsNames: ["svc.ns.svc"], ipAddresses: ["127.0.0.1"], now })
 */
export function createServingCertificate(
  ca: CertificateAndKey,
  opts: ServingCertificateOptions,
): CertificateAndKey {
  const ipAddresses = opts.ipAddresses ?? [];
  for (const ip of ipAddresses) {
    if (isIP(ip) === 0) throw invalid(`'${ip}' is not an IP address`);
  }
  const commonName = opts.commonName ?? opts.dnsNames[0] ?? ipAddresses[0];
  if (commonName === undefined)
    throw invalid("a serving certificate needs a DNS name or an IP address");
  const caCert = parseCaCertificate(ca.certPem);
  const caKey = parsePrivateKey(ca.keyPem, "CA private key");
  if (!caCert.node.checkPrivateKey(caKey))
    throw invalid("the CA private key does not match the CA certificate");

  const key = generateRsaKey();
  const cert = newCertificate(
    key.publicKey,
    opts.now,
    opts.validityDays ?? DEFAULT_SERVING_VALIDITY_DAYS,
  );
  // A leaf that outlives its CA fails verification anyway; stopping at the
  // CA's expiry makes the renewal time computed from the leaf honest.
  const caNotAfter = new Date(caCert.node.validTo);
  if (cert.validity.notAfter > caNotAfter) cert.validity.notAfter = caNotAfter;
  cert.setSubject([{ name: "commonName", value: commonName }]);
  cert.setIssuer(caCert.forge.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", critical: true, cA: false },
    { name: "keyUsage", critical: true, digitalSignature: true, keyEncipherment: true },
    { name: "extKeyUsage", serverAuth: true },
    {
      name: "subjectAltName",
      altNames: [
        ...opts.dnsNames.map((value) => ({ type: 2, value })),
        ...ipAddresses.map((ip) => ({ type: 7, ip })),
      ],
    },
    { name: "subjectKeyIdentifier" },
    {
      name: "authorityKeyIdentifier",
      keyIdentifier: caCert.forge.generateSubjectKeyIdentifier().getBytes(),
    },
  ]);
  return { certPem: signCertificate(cert, caKey), keyPem: exportKey(key.privateKey) };
}

/**
 * Turns a PKCS#12 (PFX) archive into a PEM key and chain, as the sidecar's
 * `pem`/`cert`/`key` formats need for Key Vault's certificate-backed secrets
 * (`application/x-pkcs12`, base64, no password). Reads the legacy
 * (3DES/RC2, SHA-1 MAC) and the OpenSSL 3 default (PBES2 AES-256, SHA-256
 * MAC) encodings, RSA and EC keys.
 * @param pkcs12 DER bytes, or base64 text as Key Vault returns it.
 * @param password Default: none. Without one, both readings of "no password"
 *   are tried (the empty BMPString, and no bytes at all), since writers differ.
 * @throws {AkvError} `CERTIFICATE_INVALID` when it does not parse, the password
 *   is wrong, or it lacks a key or a certificate.
 */
export function pkcs12ToPem(
  pkcs12: Uint8Array | string,
  password?: string,
): { keyPem: string; certPems: string[] } {
  const der = typeof pkcs12 === "string" ? decodeBase64(pkcs12) : pkcs12;
  let asn1: forge.asn1.Asn1;
  try {
    asn1 = forge.asn1.fromDer(forge.util.createBuffer(Buffer.from(der).toString("binary")), false);
  } catch (cause) {
    throw invalid("the PKCS#12 archive is not DER", cause);
  }
  const candidates: (string | null)[] = password === undefined ? ["", null] : [password];
  let pfx: forge.pkcs12.Pkcs12Pfx | undefined;
  let lastError: unknown;
  for (const candidate of candidates) {
    try {
      // forge's types say string, but its key derivation treats null as "no password bytes".
      pfx = forge.pkcs12.pkcs12FromAsn1(asn1, false, candidate as string);
      break;
    } catch (cause) {
      lastError = cause;
    }
  }
  if (pfx === undefined) {
    throw invalid(
      password === undefined
        ? "cannot read the PKCS#12 archive without a password"
        : "cannot read the PKCS#12 archive with the given password",
      lastError,
    );
  }

  const keys: KeyObject[] = [];
  const certs: X509Certificate[] = [];
  for (const safeContents of pfx.safeContents) {
    for (const parsed of safeContents.safeBags) {
      // forge sets `asn1` only when it could not parse the bag itself; its types say always.
      const bag: Omit<forge.pkcs12.Bag, "asn1"> & { asn1?: forge.asn1.Asn1 } = parsed;
      if (bag.type === forge.pki.oids.certBag) {
        // forge parses RSA certificates only and leaves others as ASN.1.
        const asn1Cert = bag.cert ? forge.pki.certificateToAsn1(bag.cert) : bag.asn1;
        if (asn1Cert !== undefined) certs.push(parseCertificateDer(toDer(asn1Cert)));
      } else if (
        bag.type === forge.pki.oids.keyBag ||
        bag.type === forge.pki.oids.pkcs8ShroudedKeyBag
      ) {
        // Likewise keys: RSA comes parsed, EC as a PrivateKeyInfo.
        const info = bag.key
          ? forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(bag.key))
          : bag.asn1;
        if (info !== undefined) keys.push(parsePrivateKeyDer(toDer(info)));
      }
    }
  }
  const [key] = keys;
  if (key === undefined) throw invalid("the PKCS#12 archive holds no private key");
  if (certs.length === 0) throw invalid("the PKCS#12 archive holds no certificate");
  return { keyPem: exportKey(key), certPems: orderChain(certs, key).map((c) => c.toString()) };
}

/**
 * Reads a PEM bundle (Key Vault's `application/x-pem-file` certificate-backed
 * secrets: a private key and a chain, in any order) and puts the chain leaf
 * first. The key, if any, comes back as PKCS#8; other PEM blocks are ignored.
 * @throws {AkvError} `CERTIFICATE_INVALID` when a block does not parse, the key
 *   is encrypted, there is more than one key, or there is neither key nor certificate.
 */
export function parsePemBundle(text: string): PemBundle {
  const blocks = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g)];
  const certs: X509Certificate[] = [];
  const keys: KeyObject[] = [];
  for (const [block, label] of blocks) {
    if (label === "CERTIFICATE") {
      try {
        certs.push(new X509Certificate(block));
      } catch (cause) {
        throw invalid("a CERTIFICATE block does not parse", cause);
      }
    } else if (label === "ENCRYPTED PRIVATE KEY") {
      throw invalid("the private key is encrypted; a certificate-backed secret's key must not be");
    } else if (label !== undefined && /^(RSA |EC )?PRIVATE KEY$/.test(label)) {
      keys.push(parsePrivateKey(block, "private key"));
    }
  }
  if (keys.length > 1)
    throw invalid(`the PEM bundle holds ${keys.length} private keys, expected one`);
  const [key] = keys;
  if (key === undefined && certs.length === 0) {
    throw invalid("the text holds no PEM certificate or private key");
  }
  const certPems = orderChain(certs, key).map((c) => c.toString());
  return key === undefined ? { certPems } : { keyPem: exportKey(key), certPems };
}

/**
 * Packs a key and chain into a base64 PKCS#12 archive in the legacy encoding
 * (3DES, SHA-1 MAC) that Key Vault serves for certificate-backed secrets, so
 * a mock Key Vault serves realistic values. RSA keys only.
 * @throws {AkvError} `CERTIFICATE_INVALID` when the key or a certificate does not parse.
 */
export function createPkcs12(opts: Pkcs12Options): string {
  let key: forge.pki.rsa.PrivateKey;
  let certs: forge.pki.Certificate[];
  try {
    key = forge.pki.privateKeyFromPem(opts.keyPem);
    certs = opts.certPems.map((pem) => forge.pki.certificateFromPem(pem));
  } catch (cause) {
    throw invalid("createPkcs12 needs an RSA private key and RSA certificates in PEM", cause);
  }
  const asn1 = forge.pkcs12.toPkcs12Asn1(key, certs, opts.password ?? "", {
    algorithm: "3des",
    generateLocalKeyId: true,
  });
  return Buffer.from(toDer(asn1)).toString("base64");
}

/**
 * Puts certificates in chain order: the leaf first (the one that matches
 * `key`; without a key, the one that starts the longest chain, a non-CA
 * winning a tie), then its issuer, and so on; certificates outside that chain
 * follow in their original order.
 */
function orderChain(certs: readonly X509Certificate[], key?: KeyObject): X509Certificate[] {
  const keyed = key && certs.find((c) => c.checkPrivateKey(key));
  let best: X509Certificate[] = [];
  for (const start of keyed ? [keyed] : certs) {
    const chain = followIssuers(start, certs);
    const better =
      chain.length > best.length ||
      (chain.length === best.length && best[0]?.ca === true && !start.ca);
    if (better) best = chain;
  }
  return [...best, ...certs.filter((c) => !best.includes(c))];
}

/** `start`, its issuer among `certs`, that one's issuer, … up to a self-issued root. */
function followIssuers(
  start: X509Certificate,
  certs: readonly X509Certificate[],
): X509Certificate[] {
  const chain = [start];
  for (let current = start; !isSelfIssued(current);) {
    const issuer = certs.find((c) => !chain.includes(c) && current.checkIssued(c));
    if (issuer === undefined) break;
    chain.push(issuer);
    current = issuer;
  }
  return chain;
}

function isSelfIssued(cert: X509Certificate): boolean {
  return cert.subject === cert.issuer && cert.checkIssued(cert);
}

/** A new certificate with a random serial and validity [now − skew, now + days). */
function newCertificate(
  publicKey: KeyObject,
  now: Date,
  validityDays: number,
): forge.pki.Certificate {
  if (!(validityDays > 0) || !Number.isFinite(validityDays)) {
    throw invalid(`validityDays must be a positive number, got ${validityDays}`);
  }
  if (Number.isNaN(now.getTime())) throw invalid("now is not a valid date");
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(
    publicKey.export({ type: "spki", format: "pem" }).toString(),
  );
  // RFC 5280: a positive integer of at most 20 octets; clear the top bit so
  // its DER encoding needs no sign byte, and make it non-zero.
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x01;
  cert.serialNumber = serial.toString("hex");
  cert.validity.notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
  cert.validity.notAfter = new Date(now.getTime() + validityDays * DAY_MS);
  return cert;
}

/** Signs with OpenSSL (what `cert.sign` does, minus the slow JavaScript RSA). */
function signCertificate(cert: forge.pki.Certificate, key: KeyObject): string {
  cert.signatureOid = SHA256_WITH_RSA;
  cert.siginfo.algorithmOid = SHA256_WITH_RSA;
  cert.tbsCertificate = pki.getTBSCertificate(cert);
  const tbs = Buffer.from(toDer(cert.tbsCertificate));
  cert.signature = sign("sha256", tbs, key).toString("binary");
  // forge ends PEM lines with CRLF; files and caBundles read better with LF.
  return forge.pki.certificateToPem(cert).replace(/\r\n/g, "\n");
}

function generateRsaKey(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync("rsa", { modulusLength: RSA_BITS, publicExponent: 0x10001 });
}

function exportKey(key: KeyObject): string {
  return key.export({ type: "pkcs8", format: "pem" }).toString();
}

function parsePrivateKey(pem: string, what: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (cause) {
    throw invalid(`the ${what} does not parse`, cause);
  }
}

function parsePrivateKeyDer(der: Uint8Array): KeyObject {
  try {
    return createPrivateKey({ key: Buffer.from(der), format: "der", type: "pkcs8" });
  } catch (cause) {
    throw invalid("a private key in the PKCS#12 archive does not parse", cause);
  }
}

function parseCertificateDer(der: Uint8Array): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (cause) {
    throw invalid("a certificate in the PKCS#12 archive does not parse", cause);
  }
}

function parseCaCertificate(pem: string): { node: X509Certificate; forge: forge.pki.Certificate } {
  try {
    const node = new X509Certificate(pem);
    if (!node.ca) throw new Error("basicConstraints cA is not set");
    // forge needs an RSA certificate to copy the subject and key identifier
    // from; the caller checks that the key matches.
    return { node, forge: forge.pki.certificateFromPem(pem) };
  } catch (cause) {
    throw invalid("the CA certificate is not an RSA CA certificate in PEM", cause);
  }
}

function toDer(asn1: forge.asn1.Asn1): Uint8Array {
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), "binary");
}

function decodeBase64(text: string): Uint8Array {
  const compact = text.replace(/\s+/g, "");
  if (compact.length === 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) {
    throw invalid("the PKCS#12 value is not base64");
  }
  return Buffer.from(compact, "base64");
}

function invalid(message: string, cause?: unknown): AkvError {
  return new AkvError(
    ErrorCode.CERTIFICATE_INVALID,
    message,
    cause === undefined ? undefined : { cause },
  );
}
