/**
 * Serving certificates for the mocks, made with `certs/` as the product's own
 * are: a private CA and a leaf for the names clients use. The Azure SDKs
 * refuse plain HTTP authorities, so the mocks are HTTPS and clients trust the
 * CA, as a user behind a private CA would (`NODE_EXTRA_CA_CERTS`, or
 * `tls.setDefaultCACertificates` inside a running process).
 */
import { getCACertificates, setDefaultCACertificates } from "node:tls";
import { createCertificateAuthority, createServingCertificate } from "../certs/index.ts";

/** What an HTTPS mock serves with. */
export interface ServingTls {
  /** The leaf certificate, PEM (may be followed by intermediates). */
  readonly certPem: string;
  /** Its private key, PEM. */
  readonly keyPem: string;
  /** The CA clients must trust, when known (always, for generated certificates). */
  readonly caPem?: string | undefined;
}

/** Options of {@link createMockTls}. */
export interface MockTlsOptions {
  /** DNS names of the leaf; default `localhost`. */
  readonly dnsNames?: readonly string[];
  /** IP addresses of the leaf; default `127.0.0.1` and `::1`. */
  readonly ipAddresses?: readonly string[];
  /** The clock; default now. */
  readonly now?: Date;
}

/**
 * Makes a fresh CA and a serving certificate signed by it. Pass the result to
 * several mocks so that clients trust one CA for all of them.
 * @example const tls = createMockTls({ dnsNames: ["localhost", "mock-aad.akv-e2e.svc"] });
 */
export function createMockTls(
  options: MockTlsOptions = {},
): ServingTls & { readonly caPem: string } {
  const now = options.now ?? new Date();
  const ca = createCertificateAuthority({ commonName: "akv-injector mock CA", now });
  const leaf = createServingCertificate(ca, {
    dnsNames: options.dnsNames ?? ["localhost"],
    ipAddresses: options.ipAddresses ?? ["127.0.0.1", "::1"],
    now,
  });
  return { certPem: leaf.certPem, keyPem: leaf.keyPem, caPem: ca.certPem };
}

/**
 * Adds CA certificates to this process's default trust store, for TLS
 * connections opened from now on (Node 24's `tls.setDefaultCACertificates`).
 * In-process tests use it so the real SDKs, unmodified, trust the mocks;
 * child processes get `NODE_EXTRA_CA_CERTS` instead. Idempotent.
 */
export function trustCaInThisProcess(...caPems: readonly string[]): void {
  const current = getCACertificates("default");
  const missing = caPems.filter((pem) => !current.some((c) => samePem(c, pem)));
  if (missing.length > 0) setDefaultCACertificates([...current, ...missing]);
}

function samePem(a: string, b: string): boolean {
  const body = (pem: string): string => pem.replace(/-----[^-]+-----|\s/g, "");
  return body(a) === body(b);
}
