// The `self` mode's decisions, without an apiserver: one table of what
// planCerts makes of each state the Secret can be in, then how reconcileCerts
// carries a plan out, what the requirements are, and when the next check is.
// The certificates are made once, at fixed times, with the real `certs/`.
import { X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import * as certs from "../certs/index.ts";
import { createCertificateAuthority } from "../certs/index.ts";
import {
  DEFAULT_CA_VALIDITY_MS,
  DEFAULT_CHECK_INTERVAL_MS,
  DEFAULT_RETRY_INTERVAL_MS,
  DEFAULT_SERVING_VALIDITY_MS,
  certRequirements,
  checkIntervals,
  nextCheckDelay,
  planCerts,
  needsIssuer,
  reconcileCerts,
  renewalTime,
  serviceDnsNames,
  type CertPlan,
  type CertRequirements,
  type StoredCerts,
} from "./cert-reconcile.ts";
import { reconcile } from "../testing/certs.ts";

const DAY = 86_400_000;
const START = new Date("2031-05-06T07:08:09.000Z");
const atDay = (days: number, ms = 0): Date => new Date(START.getTime() + days * DAY + ms);

const requirements: CertRequirements = {
  dnsNames: serviceDnsNames("svc", "ns"),
  ipAddresses: [],
  servingValidityMs: 10 * DAY,
  caValidityMs: 100 * DAY,
};

describe("planCerts", () => {
  const made = reconcile(undefined, requirements, START).certs;
  const other = reconcile(undefined, requirements, START).certs;
  const [ca = ""] = made.caCertPems;
  // Issued ten days before START for eleven: expired from a day after START.
  const oldCa = createCertificateAuthority({
    commonName: "old",
    now: atDay(-10),
    validityDays: 11,
  }).certPem;

  const newCa = (reason: string, trustedCaPems: string[]): CertPlan => ({
    action: "new-ca",
    reason,
    trustedCaPems,
  });
  const newServing = (reason: string): CertPlan => ({
    action: "new-serving",
    reason,
    caCertPems: [ca],
    signer: { certPem: ca, keyPem: made.caKeyPem },
  });
  const unreadableCa = "the stored CA is unreadable or does not match its key";

  it.each<[string, StoredCerts | undefined, Partial<CertRequirements>, Date, CertPlan]>([
    ["nothing stored", undefined, {}, START, newCa("no certificates yet", [])],
    [
      "a CA with another CA's key (still trusted while valid)",
      { ...made, caKeyPem: other.caKeyPem },
      {},
      START,
      newCa(unreadableCa, [ca]),
    ],
    [
      "a serving certificate where the CA should be",
      { ...made, caCertPems: [made.tlsCertPem] },
      {},
      START,
      newCa(unreadableCa, [made.tlsCertPem]),
    ],
    [
      "a CA that is not PEM",
      { ...made, caCertPems: ["garbage"] },
      {},
      START,
      newCa(unreadableCa, []),
    ],
    ["an empty bundle", { ...made, caCertPems: [] }, {}, START, newCa(unreadableCa, [])],
    [
      "a CA key that is not PEM",
      { ...made, caKeyPem: "garbage" },
      {},
      START,
      newCa(unreadableCa, [ca]),
    ],
    ["an expired CA", made, {}, atDay(100), newCa("the CA has expired", [])],
    [
      "a CA two thirds into its life",
      made,
      {},
      atDay(67),
      newCa("the CA is due for renewal", [ca]),
    ],
    [
      "a CA that would expire before a new serving certificate",
      made,
      { servingValidityMs: 50 * DAY },
      atDay(60),
      newCa("the CA expires before a new serving certificate would", [ca]),
    ],
    [
      "a serving certificate that is not PEM",
      { ...made, tlsCertPem: "garbage" },
      {},
      START,
      newServing("the serving certificate is unreadable"),
    ],
    [
      "a serving key that is not PEM",
      { ...made, tlsKeyPem: "garbage" },
      {},
      START,
      newServing("the serving key is unreadable"),
    ],
    [
      "a serving key of another certificate",
      { ...made, tlsKeyPem: other.tlsKeyPem },
      {},
      START,
      newServing("the serving key does not match its certificate"),
    ],
    [
      "a serving pair of another CA",
      { ...made, tlsCertPem: other.tlsCertPem, tlsKeyPem: other.tlsKeyPem },
      {},
      START,
      newServing("the serving certificate was not issued by the CA"),
    ],
    [
      "a serving certificate without a required DNS name",
      made,
      { dnsNames: [...requirements.dnsNames, "webhook.local"] },
      START,
      newServing("the serving certificate lacks the DNS name webhook.local"),
    ],
    [
      "a serving certificate without a required IP address",
      made,
      { ipAddresses: ["127.0.0.1"] },
      START,
      newServing("the serving certificate lacks the IP address 127.0.0.1"),
    ],
    [
      "a serving certificate not valid yet",
      made,
      {},
      atDay(-1),
      newServing("the serving certificate is not valid yet"),
    ],
    [
      "an expired serving certificate",
      made,
      {},
      atDay(10),
      newServing("the serving certificate has expired"),
    ],
    [
      "a serving certificate two thirds into its life",
      made,
      {},
      atDay(7),
      newServing("the serving certificate is due for renewal"),
    ],
    [
      "an expired CA behind the signing one",
      { ...made, caCertPems: [ca, oldCa] },
      {},
      atDay(2),
      { action: "drop-expired-cas", reason: "an expired CA left the bundle", certs: made },
    ],
    [
      "an old CA still valid behind the signing one",
      { ...made, caCertPems: [ca, oldCa] },
      {},
      START,
      { action: "keep", certs: { ...made, caCertPems: [ca, oldCa] } },
    ],
    ["all fine", made, {}, atDay(6), { action: "keep", certs: made }],
  ])("%s", (_name, stored, changed, now, expected) => {
    const wanted = { ...requirements, ...changed };
    const plan = planCerts(stored, wanted, now);
    expect(plan).toEqual(expected);
    // The webhook loads the issuer (node-forge) only for plans that say they need it.
    let issued = 0;
    const counting = {
      createCertificateAuthority: (o: Parameters<typeof certs.createCertificateAuthority>[0]) => {
        issued++;
        return certs.createCertificateAuthority(o);
      },
      createServingCertificate: (...a: Parameters<typeof certs.createServingCertificate>) => {
        issued++;
        return certs.createServingCertificate(...a);
      },
    };
    reconcileCerts(plan, wanted, now, counting);
    expect(issued > 0).toBe(needsIssuer(plan));
  });

  it("keeps the very object it was given when all is fine", () => {
    const plan = planCerts(made, requirements, START);
    expect(plan.action === "keep" && plan.certs).toBe(made);
  });
});

describe("reconcileCerts", () => {
  const made = reconcile(undefined, requirements, START);

  it("makes a CA and a serving certificate from nothing", () => {
    expect(made.reason).toBe("no certificates yet");
    expect(made.certs.caCertPems).toHaveLength(1);
    const leaf = new X509Certificate(made.certs.tlsCertPem);
    expect(leaf.validToDate.getTime()).toBe(START.getTime() + 10 * DAY);
    expect(new X509Certificate(made.certs.caCertPems[0] ?? "").validToDate.getTime()).toBe(
      START.getTime() + 100 * DAY,
    );
  });

  it("keeps what is fine, to the millisecond before renewal", () => {
    const renewAt = renewalTime(new X509Certificate(made.certs.tlsCertPem));
    expect(renewAt.getTime()).toBe(START.getTime() + (10 * DAY * 2) / 3);
    const kept = reconcile(made.certs, requirements, new Date(renewAt.getTime() - 1));
    expect(kept).toEqual({ certs: made.certs, reason: undefined });
    expect(reconcile(made.certs, requirements, renewAt).reason).toBe(
      "the serving certificate is due for renewal",
    );
  });

  it("renews the CA before it would cut a serving certificate short", () => {
    const at = new Date(START.getTime() + 91 * DAY);
    const next = reconcile(made.certs, requirements, at);
    // 2/3 of 100 days came first.
    expect(next.reason).toBe("the CA is due for renewal");
    const longServing = { ...requirements, servingValidityMs: 50 * DAY };
    expect(reconcile(made.certs, longServing, new Date(START.getTime() + 60 * DAY)).reason).toBe(
      "the CA expires before a new serving certificate would",
    );
  });

  it("refuses a serving certificate from another CA or with a foreign key", () => {
    const other = reconcile(undefined, requirements, START).certs;
    const mixed: StoredCerts = {
      ...made.certs,
      tlsCertPem: other.tlsCertPem,
      tlsKeyPem: other.tlsKeyPem,
    };
    expect(reconcile(mixed, requirements, START).reason).toBe(
      "the serving certificate was not issued by the CA",
    );
    const wrongKey: StoredCerts = { ...made.certs, tlsKeyPem: other.tlsKeyPem };
    expect(reconcile(wrongKey, requirements, START).reason).toBe(
      "the serving key does not match its certificate",
    );
  });

  it("renews the serving certificate with the stored CA, from now", () => {
    const now = atDay(7);
    const renewed = reconcile(made.certs, requirements, now);
    expect(renewed.certs.caCertPems).toEqual(made.certs.caCertPems);
    expect(renewed.certs.caKeyPem).toBe(made.certs.caKeyPem);
    const leaf = new X509Certificate(renewed.certs.tlsCertPem);
    expect(leaf.verify(new X509Certificate(made.certs.caCertPems[0] ?? "").publicKey)).toBe(true);
    expect(leaf.validToDate.getTime()).toBe(now.getTime() + 10 * DAY);
  });

  it("puts a new CA first and keeps trusting the old one while it is valid", () => {
    const rotated = reconcile(made.certs, requirements, atDay(67));
    const [first, second] = rotated.certs.caCertPems;
    expect(second).toBe(made.certs.caCertPems[0]);
    const newCa = new X509Certificate(first ?? "");
    expect(newCa.ca).toBe(true);
    expect(newCa.validToDate.getTime()).toBe(atDay(167).getTime());
    expect(new X509Certificate(rotated.certs.tlsCertPem).verify(newCa.publicKey)).toBe(true);
  });
});

describe("certRequirements", () => {
  it("names the Service four ways, then the extra SANs split into DNS names and IP addresses", () => {
    expect(
      certRequirements({
        serviceName: "svc",
        namespace: "ns",
        extraSans: ["127.0.0.1", "webhook.local", "::1"],
        servingValidityMs: DAY,
        caValidityMs: 2 * DAY,
      }),
    ).toEqual({
      dnsNames: ["svc", "svc.ns", "svc.ns.svc", "svc.ns.svc.cluster.local", "webhook.local"],
      ipAddresses: ["127.0.0.1", "::1"],
      servingValidityMs: DAY,
      caValidityMs: 2 * DAY,
    });
  });

  it("defaults to a year's serving certificate and a ten-year CA", () => {
    expect(certRequirements({ serviceName: "svc", namespace: "ns" })).toEqual({
      dnsNames: serviceDnsNames("svc", "ns"),
      ipAddresses: [],
      servingValidityMs: DEFAULT_SERVING_VALIDITY_MS,
      caValidityMs: DEFAULT_CA_VALIDITY_MS,
    });
    expect(DEFAULT_SERVING_VALIDITY_MS).toBe(365 * DAY);
    expect(DEFAULT_CA_VALIDITY_MS).toBe(3650 * DAY);
  });
});

describe("checkIntervals", () => {
  it.each([
    ["the defaults", {}, DEFAULT_CHECK_INTERVAL_MS, DEFAULT_RETRY_INTERVAL_MS],
    ["a sixth of a short serving life", { servingValidityMs: 60_000 }, 10_000, 5_000],
    ["never under 1 ms", { servingValidityMs: 3, checkIntervalMs: 20 }, 1, 1],
    ["the retry no longer than the check", { checkIntervalMs: 20 }, 20, 20],
    ["both as asked", { checkIntervalMs: 40, retryIntervalMs: 20 }, 40, 20],
  ])("%s", (_name, options, checkIntervalMs, retryIntervalMs) => {
    expect(checkIntervals(options)).toEqual({ checkIntervalMs, retryIntervalMs });
  });
});

describe("nextCheckDelay", () => {
  const intervals = { checkIntervalMs: 30_000, retryIntervalMs: 5_000 };
  it.each<[string, Parameters<typeof nextCheckDelay>[0], number]>([
    ["after a failed pass, the retry pause", undefined, 5_000],
    [
      "while the webhook configuration is missing, the retry pause",
      { caBundle: "missing", renewAt: atDay(1) },
      5_000,
    ],
    [
      "before a renewal sooner than the check",
      { caBundle: "patched", renewAt: atDay(0, 1_000) },
      1_000,
    ],
    ["at once, when renewal is past", { caBundle: "unchanged", renewAt: atDay(0, -1) }, 0],
    ["otherwise, the check interval", { caBundle: "unchanged", renewAt: atDay(1) }, 30_000],
  ])("%s", (_name, last, delay) => {
    expect(nextCheckDelay(last, START, intervals)).toBe(delay);
  });
});
