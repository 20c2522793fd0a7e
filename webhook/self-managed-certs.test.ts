// The certificate manager against an in-process fake Kubernetes API over
// HTTPS: enough of the apiserver's Secret and MutatingWebhookConfiguration
// semantics (409 on create of an existing name, 409 on a stale
// resourceVersion, JSON Patch with `test`) to race two managers for real.
// The real-apiserver race belongs to the e2e suite.
import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { KubeConfig } from "@kubernetes/client-node";
import jsonpatch from "fast-json-patch";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createCertificateAuthority } from "../certs/index.ts";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import { createLogger, type Logger } from "../common/logger.ts";
import {
  CertSecretKey,
  caBundleOf,
  ensureSelfManagedCerts,
  readStoredCerts,
  reconcileCerts,
  renewalTime,
  serviceDnsNames,
  startSelfManagedCerts,
  type CertRequirements,
  type SelfManagedCertsOptions,
  type StoredCerts,
} from "./self-managed-certs.ts";
import { fakeApiServerTls, fakeKubeConfig } from "./testing-apiserver.ts";

const NS = "akv-injector";
const SECRET = "akv-injector-webhook-tls";
const CONFIG = "akv-injector";
const SERVICE = "akv-injector-webhook";
const DAY = 86_400_000;
const START = new Date("2031-05-06T07:08:09.000Z");

type KubeObject = Record<string, unknown> & { metadata: Record<string, unknown> };
type Handler = (
  req: IncomingMessage,
  body: unknown,
) => { status: number; body: unknown } | undefined;

/** A few routes of the apiserver, in memory. */
class FakeApiServer {
  readonly secrets = new Map<string, KubeObject>();
  readonly configs = new Map<string, KubeObject>();
  readonly requests: string[] = [];
  /** Runs before the built-in handling: answer instead, or return undefined to carry on. */
  intercept: Handler | undefined;
  /** Awaited before each request is handled: lets a test hold requests to force an interleaving. */
  gate: ((req: IncomingMessage) => Promise<void>) | undefined;
  private version = 100;
  private server: Server | undefined;
  private caPem = "";

  async start(): Promise<void> {
    const tls = fakeApiServerTls();
    this.caPem = tls.caPem;
    this.server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        res.writeHead(500).end(String(error));
      });
    });
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }

  kubeConfig(): KubeConfig {
    const { port } = this.server?.address() as AddressInfo;
    return fakeKubeConfig(`https://127.0.0.1:${port}`, this.caPem).kubeConfig;
  }

  nextVersion(): string {
    this.version += 1;
    return String(this.version);
  }

  addConfig(name: string, webhookCount = 2): void {
    this.configs.set(name, {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingWebhookConfiguration",
      metadata: { name, resourceVersion: this.nextVersion() },
      webhooks: Array.from({ length: webhookCount }, (_, i) => ({
        name: `pods-${i}.akv-injector.io`,
        admissionReviewVersions: ["v1"],
        sideEffects: "None",
        clientConfig: { service: { name: SERVICE, namespace: NS, path: "/mutate", port: 443 } },
      })),
    });
  }

  /** The stored configuration's webhooks, to edit in place. */
  webhooks(name: string): { clientConfig: { caBundle?: string } }[] {
    return (this.configs.get(name)?.webhooks ?? []) as { clientConfig: { caBundle?: string } }[];
  }

  /** The stored Secret's data, to edit in place. */
  secretData(): Record<string, string> {
    return (this.secrets.get(`${NS}/${SECRET}`)?.data ?? {}) as Record<string, string>;
  }

  caBundles(name: string): (string | undefined)[] {
    const webhooks = this.webhooks(name);
    return webhooks.map((w) =>
      w.clientConfig.caBundle === undefined ? undefined : decode(w.clientConfig.caBundle),
    );
  }

  secretText(key: string): string {
    return decode(this.secretData()[key] ?? "");
  }

  writes(): string[] {
    return this.requests.filter((r) => !r.startsWith("GET "));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const body: unknown = text === "" ? undefined : JSON.parse(text);
    const path = new URL(req.url ?? "/", "https://x").pathname;
    this.requests.push(`${req.method ?? ""} ${path}`);
    await this.gate?.(req);
    const answer = this.intercept?.(req, body) ?? this.route(req.method ?? "", path, body, req);
    res
      .writeHead(answer.status, { "content-type": "application/json" })
      .end(JSON.stringify(answer.body));
  }

  private route(
    method: string,
    path: string,
    body: unknown,
    req: IncomingMessage,
  ): { status: number; body: unknown } {
    let match = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(path);
    if (match) {
      const [, ns = "", name] = match;
      if (method === "POST") {
        const secret = structuredClone(body) as KubeObject;
        const key = `${ns}/${String(secret.metadata.name)}`;
        if (this.secrets.has(key))
          return status(
            409,
            "AlreadyExists",
            `secrets "${String(secret.metadata.name)}" already exists`,
          );
        secret.metadata.resourceVersion = this.nextVersion();
        this.secrets.set(key, secret);
        return { status: 201, body: secret };
      }
      const key = `${ns}/${name ?? ""}`;
      const existing = this.secrets.get(key);
      if (existing === undefined)
        return status(404, "NotFound", `secrets "${name ?? ""}" not found`);
      if (method === "GET") return { status: 200, body: existing };
      if (method === "PUT") {
        const secret = structuredClone(body) as KubeObject;
        if (secret.metadata.resourceVersion !== existing.metadata.resourceVersion) {
          return status(
            409,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version and try again",
          );
        }
        secret.metadata.resourceVersion = this.nextVersion();
        this.secrets.set(key, secret);
        return { status: 200, body: secret };
      }
    }
    match =
      /^\/apis\/admissionregistration\.k8s\.io\/v1\/mutatingwebhookconfigurations\/([^/]+)$/.exec(
        path,
      );
    if (match) {
      const name = match[1] ?? "";
      const existing = this.configs.get(name);
      if (existing === undefined) return status(404, "NotFound", "not found");
      if (method === "GET") return { status: 200, body: existing };
      if (method === "PATCH") {
        expect(req.headers["content-type"]).toBe("application/json-patch+json");
        try {
          const patched = jsonpatch.applyPatch(
            structuredClone(existing),
            body as jsonpatch.Operation[],
            true,
          ).newDocument;
          patched.metadata.resourceVersion = this.nextVersion();
          this.configs.set(name, patched);
          return { status: 200, body: patched };
        } catch (error) {
          // As kube-apiserver 1.36 (measured): a failed `test`, like any patch error, is 422.
          return status(422, "Invalid", String(error));
        }
      }
    }
    return status(404, "NotFound", `no route for ${method} ${path}`);
  }
}

function status(code: number, reason: string, message: string): { status: number; body: unknown } {
  return {
    status: code,
    body: { kind: "Status", apiVersion: "v1", status: "Failure", reason, message, code },
  };
}

function decode(b64: string): string {
  return Buffer.from(b64, "base64").toString("utf8");
}

/** A gate that holds the first `count` matching requests until all have arrived. */
function barrier(
  count: number,
  matches: (req: IncomingMessage) => boolean,
): (req: IncomingMessage) => Promise<void> {
  let waiting = 0;
  let release: () => void = () => undefined;
  const all = new Promise<void>((resolve) => {
    release = resolve;
  });
  return async (req) => {
    if (!matches(req) || waiting >= count) return;
    waiting += 1;
    if (waiting === count) release();
    await all;
  };
}

describe("self-managed certificates", () => {
  const api = new FakeApiServer();
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
      kubeConfig: api.kubeConfig(),
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

describe("reconcileCerts", () => {
  const requirements: CertRequirements = {
    dnsNames: serviceDnsNames("svc", "ns"),
    ipAddresses: [],
    servingValidityMs: 10 * DAY,
    caValidityMs: 100 * DAY,
  };
  const made = reconcileCerts(undefined, requirements, START);

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
    const kept = reconcileCerts(made.certs, requirements, new Date(renewAt.getTime() - 1));
    expect(kept).toEqual({ certs: made.certs, reason: undefined });
    expect(reconcileCerts(made.certs, requirements, renewAt).reason).toBe(
      "the serving certificate is due for renewal",
    );
  });

  it("renews the CA before it would cut a serving certificate short", () => {
    const at = new Date(START.getTime() + 91 * DAY);
    const next = reconcileCerts(made.certs, requirements, at);
    // 2/3 of 100 days came first.
    expect(next.reason).toBe("the CA is due for renewal");
    const longServing = { ...requirements, servingValidityMs: 50 * DAY };
    expect(
      reconcileCerts(made.certs, longServing, new Date(START.getTime() + 60 * DAY)).reason,
    ).toBe("the CA expires before a new serving certificate would");
  });

  it("refuses a serving certificate from another CA or with a foreign key", () => {
    const other = reconcileCerts(undefined, requirements, START).certs;
    const mixed: StoredCerts = {
      ...made.certs,
      tlsCertPem: other.tlsCertPem,
      tlsKeyPem: other.tlsKeyPem,
    };
    expect(reconcileCerts(mixed, requirements, START).reason).toBe(
      "the serving certificate was not issued by the CA",
    );
    const wrongKey: StoredCerts = { ...made.certs, tlsKeyPem: other.tlsKeyPem };
    expect(reconcileCerts(wrongKey, requirements, START).reason).toBe(
      "the serving key does not match its certificate",
    );
  });

  it("round-trips through the Secret's data", () => {
    const data = {
      [CertSecretKey.caCert]: Buffer.from(caBundleOf(made.certs)).toString("base64"),
      [CertSecretKey.caKey]: Buffer.from(made.certs.caKeyPem).toString("base64"),
      [CertSecretKey.tlsCert]: Buffer.from(made.certs.tlsCertPem).toString("base64"),
      [CertSecretKey.tlsKey]: Buffer.from(made.certs.tlsKeyPem).toString("base64"),
    };
    expect(readStoredCerts({ data })).toEqual(made.certs);
    expect(
      readStoredCerts({ data: { [CertSecretKey.caCert]: data[CertSecretKey.caCert] } }),
    ).toBeUndefined();
  });
});
