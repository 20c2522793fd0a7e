// Over 400 lines on purpose: the tests of the library's one public module, each certificate checked by OpenSSL through node:crypto.
// What certs/ makes is checked with node:crypto and OpenSSL, never with
// node-forge, so a forge bug cannot hide behind a forge-based check.
import { execFileSync } from "node:child_process";
import { X509Certificate, createPrivateKey, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import * as tls from "node:tls";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import {
  CLOCK_SKEW_MS,
  createCertificateAuthority,
  createPkcs12,
  createServingCertificate,
  parsePemBundle,
  pkcs12ToPem,
} from "./index.ts";

const NOW = new Date("2030-01-02T03:04:05.000Z");
const DAY = 86_400_000;
const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";

/** `fn` throws `AKV_CERTIFICATE_INVALID` with a message that says `words`. */
function expectCertificateInvalid(fn: () => unknown, words: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(isAkvError(caught, ErrorCode.CERTIFICATE_INVALID), String(caught)).toBe(true);
  expect((caught as Error).message).toContain(words);
}

/** Same certificate, whatever the PEM line wrapping. */
function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

describe("createCertificateAuthority", () => {
  const ca = createCertificateAuthority({ commonName: "akv-injector-ca", now: NOW });
  const x509 = new X509Certificate(ca.certPem);

  it("is a self-signed CA whose key matches", () => {
    expect(x509.ca).toBe(true);
    expect(x509.subject).toBe("CN=akv-injector-ca");
    expect(x509.issuer).toBe("CN=akv-injector-ca");
    expect(x509.verify(x509.publicKey)).toBe(true);
    expect(x509.checkPrivateKey(createPrivateKey(ca.keyPem))).toBe(true);
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it("is RSA 2048 signed with SHA-256", () => {
    expect(x509.publicKey.asymmetricKeyType).toBe("rsa");
    expect(x509.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    const text = execFileSync("openssl", ["x509", "-noout", "-text"], { input: ca.certPem });
    expect(text.toString()).toContain("sha256WithRSAEncryption");
    expect(text.toString()).toMatch(/Certificate Sign, CRL Sign/);
  });

  it("takes its validity from the clock, starting a little early for skew", () => {
    expect(x509.validFromDate.getTime()).toBe(NOW.getTime() - CLOCK_SKEW_MS);
    expect(x509.validToDate.getTime()).toBe(NOW.getTime() + 3650 * DAY);
    const short = new X509Certificate(
      createCertificateAuthority({ commonName: "x", now: NOW, validityDays: 2 }).certPem,
    );
    expect(short.validToDate.getTime()).toBe(NOW.getTime() + 2 * DAY);
  });

  it("gives each certificate its own positive serial", () => {
    const other = new X509Certificate(
      createCertificateAuthority({ commonName: "x", now: NOW }).certPem,
    );
    expect(other.serialNumber).not.toBe(x509.serialNumber);
    expect(Number.parseInt(x509.serialNumber.slice(0, 2), 16)).toBeLessThan(0x80);
  });

  it("refuses a nonsense validity", () => {
    expectCertificateInvalid(
      () => createCertificateAuthority({ commonName: "x", now: NOW, validityDays: 0 }),
      "validityDays must be a positive number, got 0",
    );
    expectCertificateInvalid(
      () => createCertificateAuthority({ commonName: "x", now: new Date(Number.NaN) }),
      "now is not a valid date",
    );
  });
});

/** The X509v3 extensions as OpenSSL prints them (name line, then its value). */
function extensionsOf(certPem: string): string {
  return execFileSync("openssl", ["x509", "-noout", "-ext", "basicConstraints,keyUsage"], {
    input: certPem,
  }).toString();
}

describe("extensions, read by OpenSSL", () => {
  const ca = createCertificateAuthority({ commonName: "ext-ca", now: NOW });
  const leaf = createServingCertificate(ca, { dnsNames: ["a.example"], now: NOW });

  it("the CA: critical basic constraints CA:TRUE, pathlen 0; critical key usage to sign certificates", () => {
    const text = extensionsOf(ca.certPem);
    expect(text).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(text).toMatch(/Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
  });

  it("the serving certificate: critical CA:FALSE; critical key usage for TLS", () => {
    const text = extensionsOf(leaf.certPem);
    expect(text).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment\s*$/);
  });
});

describe("createServingCertificate", () => {
  const ca = createCertificateAuthority({ commonName: "akv-injector-ca", now: NOW });
  const caX509 = new X509Certificate(ca.certPem);
  const dnsNames = ["svc", "svc.ns", "svc.ns.svc", "svc.ns.svc.cluster.local"];
  const serving = createServingCertificate(ca, {
    dnsNames,
    ipAddresses: ["127.0.0.1", "::1"],
    now: NOW,
  });
  const x509 = new X509Certificate(serving.certPem);

  it("is a leaf for serverAuth, issued and signed by the CA", () => {
    expect(x509.ca).toBe(false);
    expect(x509.issuer).toBe(caX509.subject);
    expect(x509.checkIssued(caX509)).toBe(true);
    expect(x509.verify(caX509.publicKey)).toBe(true);
    expect(x509.keyUsage).toEqual([SERVER_AUTH]);
    expect(x509.checkPrivateKey(createPrivateKey(serving.keyPem))).toBe(true);
    expect(x509.subject).toBe("CN=svc");
    // certPem is the leaf alone.
    expect(serving.certPem.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
  });

  it("names every DNS and IP subject alternative name", () => {
    expect(x509.subjectAltName).toBe(
      "DNS:svc, DNS:svc.ns, DNS:svc.ns.svc, DNS:svc.ns.svc.cluster.local, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1",
    );
    for (const name of dnsNames) expect(x509.checkHost(name)).toBe(name);
    expect(x509.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(x509.checkHost("other.ns.svc")).toBeUndefined();
  });

  it("takes its validity from the clock, never past the CA's", () => {
    expect(x509.validFromDate.getTime()).toBe(NOW.getTime() - CLOCK_SKEW_MS);
    expect(x509.validToDate.getTime()).toBe(NOW.getTime() + 365 * DAY);
    const shortCa = createCertificateAuthority({ commonName: "x", now: NOW, validityDays: 10 });
    const clamped = createServingCertificate(shortCa, {
      dnsNames: ["a"],
      now: NOW,
      validityDays: 30,
    });
    expect(new X509Certificate(clamped.certPem).validTo).toBe(
      new X509Certificate(shortCa.certPem).validTo,
    );
    const later = new Date(NOW.getTime() + 5 * DAY);
    const renewed = createServingCertificate(ca, { dnsNames: ["a"], now: later, validityDays: 1 });
    expect(new X509Certificate(renewed.certPem).validToDate.getTime()).toBe(later.getTime() + DAY);
  });

  it("takes a common name, and an IP alone", () => {
    const named = createServingCertificate(ca, {
      dnsNames: ["a.b"],
      commonName: "webhook",
      now: NOW,
    });
    expect(new X509Certificate(named.certPem).subject).toBe("CN=webhook");
    const ipOnly = createServingCertificate(ca, {
      dnsNames: [],
      ipAddresses: ["10.0.0.1"],
      now: NOW,
    });
    expect(new X509Certificate(ipOnly.certPem).subjectAltName).toBe("IP Address:10.0.0.1");
  });

  it("is fast: keys come from OpenSSL, not JavaScript RSA", () => {
    const start = performance.now();
    for (let i = 0; i < 3; i++) {
      const fresh = createCertificateAuthority({ commonName: "x", now: NOW });
      createServingCertificate(fresh, { dnsNames: ["a"], now: NOW });
    }
    // Natively a pair takes ~100 ms on two cores; forge's pure RSA takes seconds.
    expect(performance.now() - start).toBeLessThan(3000);
  });

  it("refuses a bad CA, a mismatched key, bad IPs and no names", () => {
    const other = createCertificateAuthority({ commonName: "other", now: NOW });
    expectCertificateInvalid(
      () =>
        createServingCertificate(
          { certPem: "x", keyPem: ca.keyPem },
          { dnsNames: ["a"], now: NOW },
        ),
      "the CA certificate is not an RSA CA certificate in PEM",
    );
    expectCertificateInvalid(
      () =>
        createServingCertificate(
          { certPem: ca.certPem, keyPem: "x" },
          { dnsNames: ["a"], now: NOW },
        ),
      "the CA private key does not parse",
    );
    expectCertificateInvalid(
      () =>
        createServingCertificate(
          { certPem: ca.certPem, keyPem: other.keyPem },
          { dnsNames: ["a"], now: NOW },
        ),
      "the CA private key does not match the CA certificate",
    );
    // A leaf is no CA.
    expectCertificateInvalid(
      () => createServingCertificate(serving, { dnsNames: ["a"], now: NOW }),
      "the CA certificate is not an RSA CA certificate in PEM",
    );
    expectCertificateInvalid(
      () => createServingCertificate(ca, { dnsNames: ["a"], ipAddresses: ["localhost"], now: NOW }),
      "'localhost' is not an IP address",
    );
    expectCertificateInvalid(
      () => createServingCertificate(ca, { dnsNames: [], now: NOW }),
      "a serving certificate needs a DNS name or an IP address",
    );
  });
});

describe("a real TLS handshake", () => {
  // Real time here: OpenSSL checks validity against the system clock.
  const now = new Date();
  const ca = createCertificateAuthority({ commonName: "handshake-ca", now });
  const serving = createServingCertificate(ca, {
    dnsNames: ["svc.ns.svc"],
    ipAddresses: ["127.0.0.1"],
    now,
  });
  let server: tls.Server;
  let port: number;

  beforeAll(async () => {
    server = tls.createServer({ cert: serving.certPem, key: serving.keyPem }, (socket) => {
      socket.end("hello");
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => {
    server.close();
  });

  async function connect(options: tls.ConnectionOptions): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port, ...options }, () => {
        let data = "";
        socket.on("data", (chunk: Buffer) => (data += chunk.toString()));
        socket.on("end", () => {
          resolve(data);
        });
      });
      socket.on("error", reject);
    });
  }

  it("succeeds for a client that trusts only the CA, by DNS name and by IP", async () => {
    await expect(connect({ ca: ca.certPem, servername: "svc.ns.svc" })).resolves.toBe("hello");
    await expect(connect({ ca: ca.certPem })).resolves.toBe("hello");
  });

  it("fails for a name outside the SANs and for a client trusting another CA", async () => {
    await expect(connect({ ca: ca.certPem, servername: "evil.ns.svc" })).rejects.toThrow(
      /does not match|not in the cert/,
    );
    const other = createCertificateAuthority({ commonName: "other", now });
    await expect(connect({ ca: other.certPem, servername: "svc.ns.svc" })).rejects.toThrow(
      /self-signed|unable to verify|UNABLE_TO_VERIFY/i,
    );
  });
});

/** A three-level chain (root → intermediate → leaf) made by OpenSSL alone. */
interface OpenSslChain {
  readonly dir: string;
  readonly root: string;
  readonly intermediate: string;
  readonly leaf: string;
  readonly leafKey: string;
}

function openssl(dir: string, args: string[], input?: string): Buffer {
  return execFileSync("openssl", args, { cwd: dir, input, stdio: ["pipe", "pipe", "pipe"] });
}

function makeOpenSslChain(keyAlgorithm: "rsa" | "ec"): OpenSslChain {
  const dir = mkdtempSync(join(tmpdir(), "akv-certs-"));
  const newKey =
    keyAlgorithm === "rsa"
      ? ["-newkey", "rsa:2048"]
      : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
  writeFileSync(
    join(dir, "ext.cnf"),
    [
      "[ca]",
      "basicConstraints=critical,CA:TRUE",
      "keyUsage=critical,keyCertSign,cRLSign",
      "subjectKeyIdentifier=hash",
      "authorityKeyIdentifier=keyid",
      "[leaf]",
      "basicConstraints=CA:FALSE",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=DNS:app.example.com",
      "",
    ].join("\n"),
  );
  openssl(dir, [
    "req",
    "-x509",
    ...newKey,
    "-nodes",
    "-keyout",
    "root.key",
    "-out",
    "root.pem",
    "-days",
    "30",
    "-subj",
    "/CN=Test Root",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  openssl(dir, [
    "req",
    "-new",
    ...newKey,
    "-nodes",
    "-keyout",
    "int.key",
    "-out",
    "int.csr",
    "-subj",
    "/CN=Test Intermediate",
  ]);
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    "int.csr",
    "-CA",
    "root.pem",
    "-CAkey",
    "root.key",
    "-CAcreateserial",
    "-out",
    "int.pem",
    "-days",
    "30",
    "-extfile",
    "ext.cnf",
    "-extensions",
    "ca",
  ]);
  openssl(dir, [
    "req",
    "-new",
    ...newKey,
    "-nodes",
    "-keyout",
    "leaf.key",
    "-out",
    "leaf.csr",
    "-subj",
    "/CN=app.example.com",
  ]);
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    "leaf.csr",
    "-CA",
    "int.pem",
    "-CAkey",
    "int.key",
    "-CAcreateserial",
    "-out",
    "leaf.pem",
    "-days",
    "30",
    "-extfile",
    "ext.cnf",
    "-extensions",
    "leaf",
  ]);
  const read = (name: string): string => readFileSync(join(dir, name), "utf8");
  return {
    dir,
    root: read("root.pem"),
    intermediate: read("int.pem"),
    leaf: read("leaf.pem"),
    leafKey: read("leaf.key"),
  };
}

function exportPkcs12(chain: OpenSslChain, extra: string[]): string {
  // The chain file lists root first on purpose: the reader must put it in order.
  writeFileSync(join(chain.dir, "chain.pem"), chain.root + chain.intermediate);
  return openssl(chain.dir, [
    "pkcs12",
    "-export",
    "-inkey",
    "leaf.key",
    "-in",
    "leaf.pem",
    "-certfile",
    "chain.pem",
    ...extra,
  ]).toString("base64");
}

function expectChain(certPems: readonly string[], chain: OpenSslChain): void {
  expect(certPems.map(fingerprint)).toEqual(
    [chain.leaf, chain.intermediate, chain.root].map(fingerprint),
  );
}

function expectSameKey(keyPem: string, chain: OpenSslChain): void {
  expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  expect(new X509Certificate(chain.leaf).checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
}

describe.each(["rsa", "ec"] as const)("pkcs12ToPem with OpenSSL's %s archives", (algorithm) => {
  let chain: OpenSslChain;
  beforeAll(() => {
    chain = makeOpenSslChain(algorithm);
  });
  afterAll(() => {
    rmSync(chain.dir, { recursive: true, force: true });
  });

  it.each([
    ["OpenSSL 3 default (PBES2 AES-256, SHA-256 MAC), empty password", ["-passout", "pass:"]],
    ["legacy (RC2-40 / 3DES, SHA-1 MAC), empty password", ["-legacy", "-passout", "pass:"]],
    [
      "3DES for both, SHA-1 MAC",
      [
        "-keypbe",
        "PBE-SHA1-3DES",
        "-certpbe",
        "PBE-SHA1-3DES",
        "-macalg",
        "sha1",
        "-passout",
        "pass:",
      ],
    ],
    ["unencrypted with a MAC", ["-keypbe", "NONE", "-certpbe", "NONE", "-passout", "pass:"]],
    [
      "unencrypted without a MAC",
      ["-keypbe", "NONE", "-certpbe", "NONE", "-nomac", "-passout", "pass:"],
    ],
  ])("reads %s: key, then leaf, intermediate, root", (_name, args) => {
    const base64 = exportPkcs12(chain, args);
    const pem = pkcs12ToPem(base64);
    expectSameKey(pem.keyPem, chain);
    expectChain(pem.certPems, chain);
    // Raw DER bytes work as well as base64.
    expect(pkcs12ToPem(Buffer.from(base64, "base64")).certPems).toEqual(pem.certPems);
  });

  it("reads a password-protected archive with its password and refuses a wrong one", () => {
    const base64 = exportPkcs12(chain, ["-passout", "pass:s3cret"]);
    expectChain(pkcs12ToPem(base64, "s3cret").certPems, chain);
    expectCertificateInvalid(
      () => pkcs12ToPem(base64, "wrong"),
      "cannot read the PKCS#12 archive with the given password",
    );
    expectCertificateInvalid(
      () => pkcs12ToPem(base64),
      "cannot read the PKCS#12 archive without a password",
    );
  });
});

describe("pkcs12ToPem's two readings of no password", () => {
  // OpenSSL's PKCS12_create with a NULL password: MAC and bags keyed from no
  // password bytes, which only the `null` candidate opens (every `openssl
  // pkcs12 -export -passout pass:` archive above needs the empty BMPString,
  // the `""` candidate). Made by testdata/make-no-password-bytes-p12.py.
  const fixture = readFileSync(new URL("testdata/no-password-bytes.p12", import.meta.url));

  it("opens an archive keyed from no password bytes, which the empty password does not open", () => {
    const pem = pkcs12ToPem(fixture.toString("base64"));
    const [leaf, ...rest] = pem.certPems.map((c) => new X509Certificate(c));
    expect(rest).toEqual([]);
    expect(leaf?.subject).toBe("CN=no-password-bytes.example");
    expect(leaf?.checkPrivateKey(createPrivateKey(pem.keyPem))).toBe(true);
    expect(pem.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    // The empty password alone (the other candidate) does not open it.
    expectCertificateInvalid(
      () => pkcs12ToPem(fixture, ""),
      "cannot read the PKCS#12 archive with the given password",
    );
  });

  it("is a standard archive: OpenSSL reads it with no password", () => {
    const out = execFileSync("openssl", ["pkcs12", "-passin", "pass:", "-nodes"], {
      input: fixture,
      stdio: ["pipe", "pipe", "pipe"],
    }).toString();
    expect(out).toContain("BEGIN CERTIFICATE");
    expect(out).toContain("BEGIN PRIVATE KEY");
  });
});

describe("certificate errors", () => {
  it("carry the lower error as their cause, and none when there is none", () => {
    const caught = (fn: () => unknown): Error => {
      try {
        fn();
      } catch (error) {
        return error as Error;
      }
      throw new Error("did not throw");
    };
    expect(caught(() => pkcs12ToPem(Buffer.from("hello").toString("base64"))).cause).toBeDefined();
    const ca = createCertificateAuthority({ commonName: "x", now: NOW });
    expect(
      caught(() => createServingCertificate(ca, { dnsNames: [], now: NOW })),
    ).not.toHaveProperty("cause");
  });
});

describe("pkcs12ToPem refuses what is not an archive", () => {
  it.each([
    ["not base64", "not base64!", "the PKCS#12 value is not base64"],
    ["empty", "", "the PKCS#12 value is not base64"],
    ["base64 with blanks in it", " AAAA\nAAAA ", "the PKCS#12 archive is not DER"],
    ["base64 of something else", Buffer.from("hello").toString("base64"), "not DER"],
  ])("%s", (_name, value, words) => {
    expectCertificateInvalid(() => pkcs12ToPem(value), words);
  });

  it("an archive without a key", () => {
    const ca = createCertificateAuthority({ commonName: "x", now: new Date() });
    const dir = mkdtempSync(join(tmpdir(), "akv-certs-"));
    try {
      writeFileSync(join(dir, "ca.pem"), ca.certPem);
      const base64 = openssl(dir, [
        "pkcs12",
        "-export",
        "-nokeys",
        "-in",
        "ca.pem",
        "-passout",
        "pass:",
      ]).toString("base64");
      expectCertificateInvalid(
        () => pkcs12ToPem(base64),
        "the PKCS#12 archive holds no private key",
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("createPkcs12", () => {
  const now = new Date();
  const ca = createCertificateAuthority({ commonName: "p12-ca", now });
  const leaf = createServingCertificate(ca, { dnsNames: ["app.example.com"], now });

  it("round-trips through pkcs12ToPem, leaf first", () => {
    const base64 = createPkcs12({ keyPem: leaf.keyPem, certPems: [leaf.certPem, ca.certPem] });
    expect(base64).toMatch(/^[A-Za-z0-9+/]+=*$/);
    const pem = pkcs12ToPem(base64);
    expect(pem.certPems.map(fingerprint)).toEqual([leaf.certPem, ca.certPem].map(fingerprint));
    expect(new X509Certificate(leaf.certPem).checkPrivateKey(createPrivateKey(pem.keyPem))).toBe(
      true,
    );
  });

  it("is read by OpenSSL and by Node's TLS with the empty password, as Key Vault's are", () => {
    const base64 = createPkcs12({ keyPem: leaf.keyPem, certPems: [leaf.certPem, ca.certPem] });
    const dir = mkdtempSync(join(tmpdir(), "akv-certs-"));
    try {
      writeFileSync(join(dir, "a.p12"), Buffer.from(base64, "base64"));
      const out = openssl(dir, [
        "pkcs12",
        "-in",
        "a.p12",
        "-passin",
        "pass:",
        "-nodes",
        "-legacy",
      ]).toString();
      expect(out.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
      expect(out).toContain("BEGIN PRIVATE KEY");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() =>
      tls.createSecureContext({ pfx: Buffer.from(base64, "base64"), passphrase: "" }),
    ).not.toThrow();
  });

  it("honours a password", () => {
    const base64 = createPkcs12({ keyPem: leaf.keyPem, certPems: [leaf.certPem], password: "pw" });
    expect(pkcs12ToPem(base64, "pw").certPems).toHaveLength(1);
    expectCertificateInvalid(
      () => pkcs12ToPem(base64),
      "cannot read the PKCS#12 archive without a password",
    );
  });

  it("refuses what it cannot pack", () => {
    const words = "createPkcs12 needs an RSA private key and RSA certificates in PEM";
    expectCertificateInvalid(
      () => createPkcs12({ keyPem: "nope", certPems: [leaf.certPem] }),
      words,
    );
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const ecPem = ec.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    expectCertificateInvalid(
      () => createPkcs12({ keyPem: ecPem, certPems: [leaf.certPem] }),
      words,
    );
  });
});

describe("parsePemBundle", () => {
  let chain: OpenSslChain;
  let ecChain: OpenSslChain;
  beforeAll(() => {
    chain = makeOpenSslChain("rsa");
    ecChain = makeOpenSslChain("ec");
  });
  afterAll(() => {
    rmSync(chain.dir, { recursive: true, force: true });
    rmSync(ecChain.dir, { recursive: true, force: true });
  });

  it("puts a shuffled bundle leaf first and returns the key as PKCS#8", () => {
    const bundle = parsePemBundle(
      [chain.root, chain.leafKey, chain.intermediate, chain.leaf].join("\n"),
    );
    expectChain(bundle.certPems, chain);
    expectSameKey(bundle.keyPem ?? "", chain);
  });

  it("orders by issuer when there is no key", () => {
    const bundle = parsePemBundle([chain.intermediate, chain.root, chain.leaf].join(""));
    expect(bundle.keyPem).toBeUndefined();
    expectChain(bundle.certPems, chain);
  });

  it("reads Key Vault's layout (key first, then leaf and chain) and EC keys", () => {
    const bundle = parsePemBundle(
      [ecChain.leafKey, ecChain.leaf, ecChain.intermediate, ecChain.root].join(""),
    );
    expectChain(bundle.certPems, ecChain);
    expectSameKey(bundle.keyPem ?? "", ecChain);
  });

  it("reads PKCS#1 and SEC1 keys", () => {
    const rsa = createPrivateKey(chain.leafKey).export({ type: "pkcs1", format: "pem" }).toString();
    expect(rsa).toMatch(/BEGIN RSA PRIVATE KEY/);
    expectSameKey(parsePemBundle(rsa + chain.leaf).keyPem ?? "", chain);
    const ec = createPrivateKey(ecChain.leafKey).export({ type: "sec1", format: "pem" }).toString();
    expect(ec).toMatch(/BEGIN EC PRIVATE KEY/);
    expectSameKey(parsePemBundle(ec + ecChain.leaf).keyPem ?? "", ecChain);
  });

  it("keeps certificates outside the chain, after it", () => {
    const stray = createCertificateAuthority({ commonName: "stray", now: new Date() }).certPem;
    const bundle = parsePemBundle([stray, chain.leaf, chain.intermediate].join(""));
    expect(bundle.certPems.map(fingerprint)).toEqual(
      [chain.leaf, chain.intermediate, stray].map(fingerprint),
    );
  });

  it("refuses encrypted keys, two keys, broken blocks and text without PEM", () => {
    const encrypted = createPrivateKey(chain.leafKey)
      .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "x" })
      .toString();
    expectCertificateInvalid(
      () => parsePemBundle(encrypted + chain.leaf),
      "the private key is encrypted",
    );
    expectCertificateInvalid(
      () => parsePemBundle(chain.leafKey + ecChain.leafKey + chain.leaf),
      "the PEM bundle holds 2 private keys, expected one",
    );
    expectCertificateInvalid(
      () => parsePemBundle("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
      "a CERTIFICATE block does not parse",
    );
    expectCertificateInvalid(
      () => parsePemBundle("just text"),
      "the text holds no PEM certificate or private key",
    );
  });
});
