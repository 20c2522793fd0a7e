// The certificate manager against an in-process fake Kubernetes API over
// HTTPS (testing/cert-apiserver.ts), which races two managers for real. The
// decisions alone are in cert-reconcile.test.ts; the real-apiserver race
// belongs to the e2e suite.
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createCertificateAuthority } from "../certs/index.ts";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import { createLogger, type Logger } from "../common/logger.ts";
import { CertSecretKey } from "./cert-objects.ts";
import { serviceDnsNames } from "./cert-reconcile.ts";
import {
  ensureSelfManagedCerts,
  startSelfManagedCerts,
  type SelfManagedCertsOptions,
} from "./self-managed-certs.ts";
import { FakeCertApiServer, barrier, status } from "../testing/cert-apiserver.ts";

const NS = "akv-injector";
const SECRET = "akv-injector-webhook-tls";
const CONFIG = "akv-injector";
const SERVICE = "akv-injector-webhook";
const DAY = 86_400_000;
const START = new Date("2031-05-06T07:08:09.000Z");

describe("self-managed certificates", () => {
  const api = new FakeCertApiServer({ namespace: NS, secretName: SECRET, serviceName: SERVICE });
  let dir: string;
  let now: Date;
  let logLines: string[];
  let logger: Logger;

  beforeAll(async () => {
    await api.start();
  });
  afterAll(async () => {
    await api.stop();
  });
  beforeEach(async () => {
    api.secrets.clear();
    api.configs.clear();
    api.requests.length = 0;
    api.intercept = undefined;
    api.gate = undefined;
    api.addConfig(CONFIG);
    dir = await mkdtemp(join(tmpdir(), "akv-self-certs-"));
    now = START;
    logLines = [];
    logger = createLogger({
      name: "webhook",
      level: "debug",
      destination: new Writable({
        write(chunk: Buffer, _encoding, callback) {
          logLines.push(chunk.toString());
          callback();
        },
      }),
    });
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function options(
    replica = "a",
    extra: Partial<SelfManagedCertsOptions> = {},
  ): SelfManagedCertsOptions {
    return {
      client: api.client(),
      namespace: NS,
      secretName: SECRET,
      webhookConfigName: CONFIG,
      serviceName: SERVICE,
      certFile: join(dir, replica, "tls.crt"),
      keyFile: join(dir, replica, "tls.key"),
      logger,
      clock: () => now,
      ...extra,
    };
  }

  async function files(replica = "a"): Promise<{ cert: string; key: string }> {
    return {
      cert: await readFile(join(dir, replica, "tls.crt"), "utf8"),
      key: await readFile(join(dir, replica, "tls.key"), "utf8"),
    };
  }

  it("creates the Secret, writes the files and patches every webhook's caBundle", async () => {
    const result = await ensureSelfManagedCerts(options());
    expect(result).toMatchObject({ secret: "created", filesWritten: true, caBundle: "patched" });

    const secret = api.secrets.get(`${NS}/${SECRET}`);
    expect(secret?.type).toBe("kubernetes.io/tls");
    expect(Object.keys(secret?.data as object).sort()).toEqual([
      "ca.crt",
      "ca.key",
      "tls.crt",
      "tls.key",
    ]);

    const ca = new X509Certificate(api.secretText(CertSecretKey.caCert));
    const { cert, key } = await files();
    expect(cert).toBe(api.secretText(CertSecretKey.tlsCert));
    expect(key).toBe(api.secretText(CertSecretKey.tlsKey));
    const leaf = new X509Certificate(cert);
    expect(ca.ca).toBe(true);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.subjectAltName).toBe(
      serviceDnsNames(SERVICE, NS)
        .map((n) => `DNS:${n}`)
        .join(", "),
    );
    expect(leaf.subjectAltName).toContain(
      "DNS:akv-injector-webhook.akv-injector.svc.cluster.local",
    );
    expect(leaf.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]);
    expect(result.renewAt.getTime()).toBe(START.getTime() + (365 * DAY * 2) / 3);
    // The key is readable by the webhook alone.
    expect((await stat(join(dir, "a", "tls.key"))).mode & 0o777).toBe(0o600);

    expect(api.caBundles(CONFIG)).toEqual([ca.toString(), ca.toString()]);
    expect(api.writes()).toEqual([
      `POST /api/v1/namespaces/${NS}/secrets`,
      `PATCH /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${CONFIG}`,
    ]);
  });

  it("changes nothing on a second pass when all is well", async () => {
    await ensureSelfManagedCerts(options());
    api.requests.length = 0;
    const before = await files();
    const result = await ensureSelfManagedCerts(options());
    expect(result).toMatchObject({
      secret: "unchanged",
      filesWritten: false,
      caBundle: "unchanged",
    });
    expect(api.writes()).toEqual([]);
    expect(await files()).toEqual(before);
  });

  it("uses the Secret another replica made", async () => {
    await ensureSelfManagedCerts(options("a"));
    api.requests.length = 0;
    const result = await ensureSelfManagedCerts(options("b"));
    expect(result).toMatchObject({
      secret: "unchanged",
      filesWritten: true,
      caBundle: "unchanged",
    });
    expect(await files("b")).toEqual(await files("a"));
    expect(api.writes()).toEqual([]);
  });

  it("two replicas racing to create: one Secret, one caBundle, the same files", async () => {
    // Both read "not found" before either creates.
    api.gate = barrier(2, (req) => req.method === "GET" && (req.url ?? "").includes("/secrets/"));
    const [a, b] = await Promise.all([
      ensureSelfManagedCerts(options("a")),
      ensureSelfManagedCerts(options("b")),
    ]);
    expect([a.secret, b.secret].sort()).toEqual(["created", "unchanged"]);
    expect(api.requests.filter((r) => r.startsWith("POST "))).toHaveLength(2);
    expect(api.secrets.size).toBe(1);
    expect(await files("a")).toEqual(await files("b"));
    expect((await files("a")).cert).toBe(api.secretText(CertSecretKey.tlsCert));
    const bundle = api.secretText(CertSecretKey.caCert);
    expect(api.caBundles(CONFIG)).toEqual([bundle, bundle]);
    expect(a.certs).toEqual(b.certs);
  });

  it("renews the serving certificate at two thirds of its life, keeping the CA and caBundle", async () => {
    const first = await ensureSelfManagedCerts(options());
    const caBefore = api.secretText(CertSecretKey.caCert);
    now = new Date(first.renewAt.getTime() - 1000);
    expect((await ensureSelfManagedCerts(options())).secret).toBe("unchanged");

    now = first.renewAt;
    api.requests.length = 0;
    const renewed = await ensureSelfManagedCerts(options());
    expect(renewed).toMatchObject({ secret: "updated", filesWritten: true, caBundle: "unchanged" });
    expect(api.writes()).toEqual([`PUT /api/v1/namespaces/${NS}/secrets/${SECRET}`]);
    expect(api.secretText(CertSecretKey.caCert)).toBe(caBefore);
    const leaf = new X509Certificate((await files()).cert);
    expect(leaf.serialNumber).not.toBe(new X509Certificate(first.certs.tlsCertPem).serialNumber);
    expect(leaf.verify(new X509Certificate(caBefore).publicKey)).toBe(true);
    expect(leaf.validFromDate.getTime()).toBeLessThanOrEqual(now.getTime());
    expect(renewed.renewAt.getTime()).toBeGreaterThan(now.getTime());
    expect(logLines.join("")).toContain("the serving certificate is due for renewal");
  });

  it("two replicas racing to renew: one update wins, the other takes its certificate", async () => {
    const first = await ensureSelfManagedCerts(options("a"));
    await ensureSelfManagedCerts(options("b"));
    now = new Date(first.renewAt.getTime() + 1);
    api.requests.length = 0;
    api.gate = barrier(2, (req) => req.method === "GET" && (req.url ?? "").includes("/secrets/"));
    const [a, b] = await Promise.all([
      ensureSelfManagedCerts(options("a")),
      ensureSelfManagedCerts(options("b")),
    ]);
    expect([a.secret, b.secret].sort()).toEqual(["unchanged", "updated"]);
    expect(api.requests.filter((r) => r.startsWith("PUT "))).toHaveLength(2);
    expect(await files("a")).toEqual(await files("b"));
    expect((await files("a")).cert).toBe(api.secretText(CertSecretKey.tlsCert));
    expect((await files("a")).cert).not.toBe(first.certs.tlsCertPem);
  });

  it("renews the CA at two thirds of its life, trusting old and new until the old expires", async () => {
    const short = { caValidityMs: 30 * DAY, servingValidityMs: 3 * DAY };
    const first = await ensureSelfManagedCerts(options("a", short));
    const oldCa = first.certs.caCertPems[0] ?? "";

    now = new Date(START.getTime() + 20 * DAY + 1);
    const rotated = await ensureSelfManagedCerts(options("a", short));
    expect(rotated).toMatchObject({ secret: "updated", caBundle: "patched" });
    const [newCa, keptCa] = rotated.certs.caCertPems;
    expect(keptCa).toBe(oldCa);
    expect(newCa).not.toBe(oldCa);
    expect(
      new X509Certificate(rotated.certs.tlsCertPem).verify(
        new X509Certificate(newCa ?? "").publicKey,
      ),
    ).toBe(true);
    // The apiserver trusts both, so a replica still serving the old leaf keeps working.
    const bundle = api.caBundles(CONFIG)[0] ?? "";
    expect(bundle).toContain(oldCa.trim());
    expect(bundle).toContain((newCa ?? "").trim());

    now = new Date(START.getTime() + 30 * DAY + 1);
    const pruned = await ensureSelfManagedCerts(options("a", short));
    expect(pruned.certs.caCertPems).toEqual([newCa]);
    expect(api.caBundles(CONFIG)).toEqual([newCa, newCa]);
  });

  it("repairs a caBundle that a helm upgrade wiped, and one that is stale", async () => {
    await ensureSelfManagedCerts(options());
    const bundle = api.secretText(CertSecretKey.caCert);
    const [wiped, stale] = api.webhooks(CONFIG);
    delete wiped?.clientConfig.caBundle;
    const other = createCertificateAuthority({ commonName: "stale", now: START });
    if (stale) stale.clientConfig.caBundle = Buffer.from(other.certPem).toString("base64");
    const result = await ensureSelfManagedCerts(options());
    expect(result.caBundle).toBe("patched");
    expect(api.caBundles(CONFIG)).toEqual([bundle, bundle]);
  });

  it("reads the configuration again when it changed between read and patch", async () => {
    let bumped = false;
    api.gate = (req) => {
      if (req.method === "PATCH" && !bumped) {
        bumped = true;
        const config = api.configs.get(CONFIG);
        if (config) config.metadata.resourceVersion = api.nextVersion();
      }
      return Promise.resolve();
    };
    const result = await ensureSelfManagedCerts(options());
    expect(result.caBundle).toBe("patched");
    expect(api.requests.filter((r) => r.startsWith("PATCH "))).toHaveLength(2);
    const bundle = api.secretText(CertSecretKey.caCert);
    expect(api.caBundles(CONFIG)).toEqual([bundle, bundle]);
  });

  it("replaces an unreadable or misnamed serving certificate but keeps a good CA", async () => {
    const first = await ensureSelfManagedCerts(options());
    api.secretData()[CertSecretKey.tlsCert] = Buffer.from("garbage").toString("base64");
    const repaired = await ensureSelfManagedCerts(options());
    expect(repaired.secret).toBe("updated");
    expect(repaired.certs.caCertPems).toEqual(first.certs.caCertPems);

    const renamed = await ensureSelfManagedCerts(options("a", { serviceName: "renamed" }));
    expect(renamed.secret).toBe("updated");
    expect(
      new X509Certificate(renamed.certs.tlsCertPem).checkHost("renamed.akv-injector.svc"),
    ).toBeDefined();
    expect(renamed.certs.caCertPems).toEqual(first.certs.caCertPems);

    const withIp = await ensureSelfManagedCerts(
      options("a", { serviceName: "renamed", extraSans: ["127.0.0.1", "webhook.local"] }),
    );
    const leaf = new X509Certificate(withIp.certs.tlsCertPem);
    expect(leaf.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(leaf.checkHost("webhook.local")).toBe("webhook.local");
  });

  it("makes everything anew when the CA key is gone", async () => {
    const first = await ensureSelfManagedCerts(options());
    Reflect.deleteProperty(api.secretData(), CertSecretKey.caKey);
    const result = await ensureSelfManagedCerts(options());
    expect(result).toMatchObject({ secret: "updated", caBundle: "patched" });
    expect(result.certs.caCertPems[0]).not.toBe(first.certs.caCertPems[0]);
  });

  it("serves while the webhook configuration does not exist yet, and patches it once it does", async () => {
    api.configs.clear();
    const manager = await startSelfManagedCerts(options("a", { retryIntervalMs: 20 }));
    try {
      expect(manager.initial).toMatchObject({
        secret: "created",
        filesWritten: true,
        caBundle: "missing",
      });
      expect(logLines.join("")).toContain("webhook configuration not found");
      api.addConfig(CONFIG, 1);
      await expect
        .poll(() => api.caBundles(CONFIG)[0], { timeout: 5000 })
        .toBe(api.secretText(CertSecretKey.caCert));
    } finally {
      await manager.stop();
    }
  });

  it("renews on its timer, and stop() ends it", async () => {
    const manager = await startSelfManagedCerts(options("a", { checkIntervalMs: 20 }));
    const before = (await files()).cert;
    now = new Date(manager.initial.renewAt.getTime() + 1);
    await expect.poll(async () => (await files()).cert, { timeout: 5000 }).not.toBe(before);
    await manager.stop();
    const count = api.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(api.requests.length).toBe(count);
  });

  it("keeps retrying on its timer after a failure", async () => {
    const manager = await startSelfManagedCerts(
      options("a", { checkIntervalMs: 20, retryIntervalMs: 20 }),
    );
    try {
      api.intercept = () => status(500, "InternalError", "etcd is down");
      await expect
        .poll(() => logLines.join(""), { timeout: 5000 })
        .toContain("webhook certificate check failed");
      api.intercept = undefined;
      delete api.webhooks(CONFIG)[0]?.clientConfig.caBundle;
      await expect
        .poll(() => api.caBundles(CONFIG)[0], { timeout: 5000 })
        .toBe(api.secretText(CertSecretKey.caCert));
    } finally {
      await manager.stop();
    }
  });

  it("fails start-up with a clear error when the API refuses", async () => {
    api.intercept = () => status(403, "Forbidden", "secrets is forbidden");
    const error: unknown = await startSelfManagedCerts(options()).catch((e: unknown) => e);
    expect(isAkvError(error, ErrorCode.KUBERNETES_UNAVAILABLE)).toBe(true);
    expect((error as Error).message).toMatch(
      /cannot read Secret akv-injector\/akv-injector-webhook-tls: HTTP 403 \(forbidden/,
    );
  });

  it("fails with TLS_INVALID when the files cannot be written", async () => {
    await writeFile(join(dir, "file"), "");
    const error: unknown = await ensureSelfManagedCerts(
      options("a", {
        certFile: join(dir, "file", "tls.crt"),
        keyFile: join(dir, "file", "tls.key"),
      }),
    ).catch((e: unknown) => e);
    expect(isAkvError(error, ErrorCode.TLS_INVALID)).toBe(true);
  });

  it("never logs a private key", async () => {
    await ensureSelfManagedCerts(options());
    now = new Date(START.getTime() + 300 * DAY);
    await ensureSelfManagedCerts(options());
    const logs = logLines.join("");
    expect(logs).not.toContain("PRIVATE KEY");
    expect(logs).not.toContain(api.secretText(CertSecretKey.tlsKey).split("\n")[1]);
  });
});
