/**
 * The decisions of the `self` certificate mode, apart from its I/O
 * (`self-managed-certs.ts`), so each can be checked on its own, without an
 * apiserver or a clock: from what the Secret holds and the time it is, what
 * the Secret should hold and when to look again. Nothing here reads a clock,
 * a file or the apiserver; `now` is always passed in. How the result is
 * written into Kubernetes objects is in `cert-objects.ts`.
 *
 * {@link planCerts} decides and is deterministic; {@link reconcileCerts}
 * carries the plan out, which makes keys, so its only impurity is their
 * randomness. It is handed the issuer (`certs/index.ts`) rather than
 * importing it: node-forge is most of the webhook's code and only issuing
 * needs it, so the webhook loads it when a plan needs new certificates
 * ({@link needsIssuer}), which most starts do not.
 *
 * Renewal keeps the CA, so the caBundle stays valid while replicas pick the
 * new serving certificate up one by one. When the CA itself is renewed (at two
 * thirds of its ten years), the old CA stays in the bundle until it expires,
 * so a replica still serving a certificate of the old CA is trusted meanwhile.
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import { isIP } from "node:net";
import { CLOCK_SKEW_MS } from "../certs/clock-skew.ts";
import type {
  CertificateAndKey,
  createCertificateAuthority,
  createServingCertificate,
} from "../certs/index.ts";

/** What carrying out a plan needs from `certs/index.ts`. */
export interface CertIssuer {
  readonly createCertificateAuthority: typeof createCertificateAuthority;
  readonly createServingCertificate: typeof createServingCertificate;
}

/** Default lifetime of the serving certificate (a year); renewed at two thirds. */
export const DEFAULT_SERVING_VALIDITY_MS = 365 * 86_400_000;
/** Default lifetime of the CA (ten years); renewed at two thirds. */
export const DEFAULT_CA_VALIDITY_MS = 3650 * 86_400_000;
/** Longest pause between two checks. */
export const DEFAULT_CHECK_INTERVAL_MS = 30_000;
/** Pause before retrying a failed pass, or one that found no webhook configuration to patch. */
export const DEFAULT_RETRY_INTERVAL_MS = 5_000;
/** Fraction of a certificate's lifetime after which it is renewed. */
export const RENEW_AT_FRACTION = 2 / 3;

const DAY_MS = 86_400_000;

/** The certificates as the Secret holds them. */
export interface StoredCerts {
  /** Trusted CAs, the signing one first (more than one only while a CA rotation settles). */
  readonly caCertPems: readonly string[];
  readonly caKeyPem: string;
  readonly tlsCertPem: string;
  readonly tlsKeyPem: string;
}

/** What a serving certificate must be. */
export interface CertRequirements {
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly servingValidityMs: number;
  readonly caValidityMs: number;
}

/**
 * What {@link planCerts} decided, and what carrying it out needs:
 * - `keep`: the stored certificates are fine as they are;
 * - `drop-expired-cas`: the same, less expired CAs in the bundle;
 * - `new-serving`: a new serving certificate signed by `signer`, the stored CA;
 * - `new-ca`: a new CA and serving certificate, still trusting `trustedCaPems`.
 */
export type CertPlan =
  | { readonly action: "keep"; readonly certs: StoredCerts }
  | { readonly action: "drop-expired-cas"; readonly reason: string; readonly certs: StoredCerts }
  | {
      readonly action: "new-serving";
      readonly reason: string;
      readonly caCertPems: readonly string[];
      readonly signer: CertificateAndKey;
    }
  | {
      readonly action: "new-ca";
      readonly reason: string;
      readonly trustedCaPems: readonly string[];
    };

/** The outcome of {@link reconcileCerts}: what the Secret should hold, and why it changes (if it does). */
export interface Reconciled {
  readonly certs: StoredCerts;
  /** Why the stored certificates had to change; `undefined` when they are fine as they are. */
  readonly reason: string | undefined;
}

/** What became of the caBundle in a pass: `missing` when the webhook configuration does not exist (yet). */
export type CaBundleOutcome = "patched" | "unchanged" | "missing";

/** The Service's DNS names, short to fully qualified: `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`. */
export function serviceDnsNames(serviceName: string, namespace: string): string[] {
  return [
    serviceName,
    `${serviceName}.${namespace}`,
    `${serviceName}.${namespace}.svc`,
    `${serviceName}.${namespace}.svc.cluster.local`,
  ];
}

/**
 * The serving certificate's requirements: the Service's DNS names, then the
 * extra SANs (an IP address becomes an IP SAN, anything else a DNS SAN).
 */
export function certRequirements(options: {
  readonly serviceName: string;
  readonly namespace: string;
  readonly extraSans?: readonly string[] | undefined;
  readonly servingValidityMs?: number | undefined;
  readonly caValidityMs?: number | undefined;
}): CertRequirements {
  const extra = options.extraSans ?? [];
  return {
    dnsNames: [
      ...serviceDnsNames(options.serviceName, options.namespace),
      ...extra.filter((san) => isIP(san) === 0),
    ],
    ipAddresses: extra.filter((san) => isIP(san) !== 0),
    servingValidityMs: options.servingValidityMs ?? DEFAULT_SERVING_VALIDITY_MS,
    caValidityMs: options.caValidityMs ?? DEFAULT_CA_VALIDITY_MS,
  };
}

/** When a certificate is due for renewal: two thirds into its life (counted from issue, not the skew-adjusted notBefore). */
export function renewalTime(cert: X509Certificate): Date {
  const notAfter = cert.validToDate.getTime();
  const issued = Math.min(cert.validFromDate.getTime() + CLOCK_SKEW_MS, notAfter);
  return new Date(issued + (notAfter - issued) * RENEW_AT_FRACTION);
}

/**
 * Decides what the Secret should hold at `now`, given what it holds
 * (`undefined`: missing or unreadable). It keeps what is fine, renews the
 * serving certificate with the same CA when it is due, unreadable, mismatched
 * or lacks a required name, renews the CA (keeping the old one in the bundle
 * while it is valid) when that is due or too short-lived for a full serving
 * certificate, and drops expired CAs from the bundle.
 */
export function planCerts(
  stored: StoredCerts | undefined,
  requirements: CertRequirements,
  now: Date,
): CertPlan {
  const nowMs = now.getTime();
  const ca = stored && readCa(stored);
  const caReason =
    stored === undefined
      ? "no certificates yet"
      : ca === undefined
        ? "the stored CA is unreadable or does not match its key"
        : checkCa(ca.cert, requirements, nowMs);

  // Every CA still valid stays trusted, the signing one first.
  const keep = (pems: readonly string[]): string[] =>
    pems.filter((pem) => {
      const cert = tryX509(pem);
      return cert !== undefined && cert.validToDate.getTime() > nowMs;
    });

  if (stored === undefined || ca === undefined || caReason !== undefined) {
    return {
      action: "new-ca",
      reason: caReason ?? "the CA must be renewed",
      trustedCaPems: keep(stored?.caCertPems ?? []),
    };
  }

  const caCertPems = keep(ca.pems);
  const servingReason = checkServing(ca.cert, stored, requirements, nowMs);
  if (servingReason !== undefined) {
    return {
      action: "new-serving",
      reason: servingReason,
      caCertPems,
      signer: { certPem: ca.pems[0], keyPem: stored.caKeyPem },
    };
  }
  if (caCertPems.length !== stored.caCertPems.length) {
    return {
      action: "drop-expired-cas",
      reason: "an expired CA left the bundle",
      certs: { ...stored, caCertPems },
    };
  }
  return { action: "keep", certs: stored };
}

/** Whether carrying `plan` out makes certificates, and so needs a {@link CertIssuer}. */
export function needsIssuer(plan: CertPlan): boolean {
  return plan.action === "new-serving" || plan.action === "new-ca";
}

/**
 * What the Secret should hold at `now`: `plan` ({@link planCerts}) carried
 * out. New certificates start at `now` (less the clock skew `certs/` allows).
 */
export function reconcileCerts(
  plan: CertPlan,
  requirements: CertRequirements,
  now: Date,
  issuer: CertIssuer,
): Reconciled {
  switch (plan.action) {
    case "keep":
      return { certs: plan.certs, reason: undefined };
    case "drop-expired-cas":
      return { certs: plan.certs, reason: plan.reason };
    case "new-serving":
      return {
        certs: {
          caCertPems: plan.caCertPems,
          caKeyPem: plan.signer.keyPem,
          ...newServing(issuer, plan.signer, requirements, now),
        },
        reason: plan.reason,
      };
    case "new-ca": {
      const ca = issuer.createCertificateAuthority({
        commonName: "akv-injector-ca",
        now,
        validityDays: requirements.caValidityMs / DAY_MS,
      });
      return {
        certs: {
          caCertPems: [ca.certPem, ...plan.trustedCaPems],
          caKeyPem: ca.keyPem,
          ...newServing(issuer, ca, requirements, now),
        },
        reason: plan.reason,
      };
    }
  }
}

/** Why the CA must be replaced, or `undefined` when it can stay. */
function checkCa(
  ca: X509Certificate,
  requirements: CertRequirements,
  nowMs: number,
): string | undefined {
  const notAfter = ca.validToDate.getTime();
  if (nowMs >= notAfter) return "the CA has expired";
  if (nowMs >= renewalTime(ca).getTime()) return "the CA is due for renewal";
  if (notAfter - nowMs < requirements.servingValidityMs) {
    return "the CA expires before a new serving certificate would";
  }
  return undefined;
}

/** Why the stored serving certificate cannot stay, or `undefined` when it can. */
function checkServing(
  ca: X509Certificate,
  stored: StoredCerts,
  requirements: CertRequirements,
  nowMs: number,
): string | undefined {
  const cert = tryX509(stored.tlsCertPem);
  if (cert === undefined) return "the serving certificate is unreadable";
  try {
    if (!cert.checkPrivateKey(createPrivateKey(stored.tlsKeyPem))) {
      return "the serving key does not match its certificate";
    }
  } catch {
    return "the serving key is unreadable";
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    return "the serving certificate was not issued by the CA";
  }
  for (const name of requirements.dnsNames) {
    if (cert.checkHost(name, { subject: "never", wildcards: false }) === undefined) {
      return `the serving certificate lacks the DNS name ${name}`;
    }
  }
  for (const ip of requirements.ipAddresses) {
    if (cert.checkIP(ip) === undefined) return `the serving certificate lacks the IP address ${ip}`;
  }
  if (nowMs < cert.validFromDate.getTime()) return "the serving certificate is not valid yet";
  if (nowMs >= cert.validToDate.getTime()) return "the serving certificate has expired";
  if (nowMs >= renewalTime(cert).getTime()) return "the serving certificate is due for renewal";
  return undefined;
}

function newServing(
  issuer: CertIssuer,
  ca: CertificateAndKey,
  requirements: CertRequirements,
  now: Date,
): { tlsCertPem: string; tlsKeyPem: string } {
  const serving = issuer.createServingCertificate(ca, {
    dnsNames: requirements.dnsNames,
    ipAddresses: requirements.ipAddresses,
    now,
    validityDays: requirements.servingValidityMs / DAY_MS,
  });
  return { tlsCertPem: serving.certPem, tlsKeyPem: serving.keyPem };
}

/** The signing CA (first of the bundle) when it is a CA and matches the stored key. */
function readCa(
  stored: StoredCerts,
): { cert: X509Certificate; pems: readonly [string, ...string[]] } | undefined {
  const [first, ...rest] = stored.caCertPems;
  const cert = first === undefined ? undefined : tryX509(first);
  if (first === undefined || cert === undefined || !cert.ca) return undefined;
  try {
    if (!cert.checkPrivateKey(createPrivateKey(stored.caKeyPem))) return undefined;
  } catch {
    return undefined;
  }
  return { cert, pems: [first, ...rest] };
}

function tryX509(pem: string): X509Certificate | undefined {
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

/** How often the certificates are checked. */
export interface CheckIntervals {
  readonly checkIntervalMs: number;
  readonly retryIntervalMs: number;
}

/**
 * The check and retry pauses: the check never longer than a sixth of the
 * serving lifetime (so a renewal is never missed by much) nor under 1 ms, the
 * retry never longer than the check.
 */
export function checkIntervals(options: {
  readonly servingValidityMs?: number | undefined;
  readonly checkIntervalMs?: number | undefined;
  readonly retryIntervalMs?: number | undefined;
}): CheckIntervals {
  const servingValidityMs = options.servingValidityMs ?? DEFAULT_SERVING_VALIDITY_MS;
  const checkIntervalMs = Math.max(
    1,
    Math.min(options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS, servingValidityMs / 6),
  );
  const retryIntervalMs = Math.min(
    options.retryIntervalMs ?? DEFAULT_RETRY_INTERVAL_MS,
    checkIntervalMs,
  );
  return { checkIntervalMs, retryIntervalMs };
}

/**
 * The pause before the next pass, after `last` (`undefined`: it failed): the
 * retry pause after a failure or while the webhook configuration is missing,
 * else until the renewal time or the check interval, whichever is sooner.
 */
export function nextCheckDelay(
  last: { readonly caBundle: CaBundleOutcome; readonly renewAt: Date } | undefined,
  now: Date,
  intervals: CheckIntervals,
): number {
  if (last === undefined || last.caBundle === "missing") return intervals.retryIntervalMs;
  return Math.min(intervals.checkIntervalMs, Math.max(0, last.renewAt.getTime() - now.getTime()));
}
