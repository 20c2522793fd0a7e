import { X509Certificate } from "node:crypto";
// Over 400 lines on purpose: the HTTP contract (status codes, bodies, logs, metrics, TLS reload) shares one harness of a real HTTPS server.
import { mkdir, mkdtemp, readlink, rename, rm, symlink, writeFile } from "node:fs/promises";
import { Agent, request as httpsRequest, type RequestOptions } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SecureVersion } from "node:tls";
import fc from "fast-check";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  createCertificateAuthority,
  createServingCertificate,
  type CertificateAndKey,
} from "../certs/index.ts";
import { createLogger } from "../common/logger.ts";
import type { ServiceAccount } from "./injection-config.ts";
import { JsonMemberCounter } from "./member-bound.ts";
import {
  createAdmissionLogger,
  createWebhookServer,
  KEEP_ALIVE_TIMEOUT_MS,
  LARGE_BODY,
  type WebhookServer,
} from "./server.ts";
import { bodyArbitrary, checkAnswer } from "../testing/webhook-arbitraries.ts";
import {
  TEST_ANNOTATIONS as annotations,
  applyTestPatch,
  decodePatch,
  testPod,
  testReview,
  testServiceAccount,
  testSettings,
} from "../testing/webhook.ts";

interface Pki {
  readonly ca: CertificateAndKey;
  readonly serving: CertificateAndKey;
}
function makePki(commonName: string): Pki {
  const now = new Date();
  const ca = createCertificateAuthority({ commonName, now });
  const serving = createServingCertificate(ca, {
    dnsNames: ["akv-injector.akv-injector.svc"],
    ipAddresses: ["127.0.0.1"],
    now,
  });
  return { ca, serving };
}

let pkiA: Pki;
let pkiB: Pki;
beforeAll(() => {
  pkiA = makePki("ca-a");
  pkiB = makePki("ca-b");
});

/**
 * Lays out TLS files as the kubelet does for a Secret volume: a timestamped
 * directory, a `..data` symlink to it swapped by one rename, and the visible
 * names linking through `..data`.
 */
async function writeSecretVolume(
  dir: string,
  version: string,
  files: Record<string, string>,
): Promise<void> {
  const data = join(dir, `..${version}`);
  await mkdir(data);
  for (const [name, content] of Object.entries(files)) await writeFile(join(data, name), content);
  await symlink(`..${version}`, join(dir, "..data_tmp"));
  await rename(join(dir, "..data_tmp"), join(dir, "..data"));
  for (const name of Object.keys(files)) {
    await symlink(join("..data", name), join(dir, name)).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    });
  }
}

interface Harness {
  readonly server: WebhookServer;
  readonly dir: string;
  readonly logs: Record<string, unknown>[];
  readonly lookups: string[];
}
const open: { server: WebhookServer; dir: string }[] = [];
afterEach(async () => {
  for (const { server, dir } of open.splice(0)) {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

async function harness(
  options: {
    pki?: Pki | null;
    lookup?: (namespace: string, name: string) => Promise<ServiceAccount | undefined>;
    synced?: () => boolean;
    bodyLimit?: number;
    maxMembers?: number;
  } = {},
): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), "akv-webhook-tls-"));
  const pki = options.pki === undefined ? pkiA : options.pki;
  if (pki !== null)
    await writeSecretVolume(dir, "1", {
      "tls.crt": pki.serving.certPem,
      "tls.key": pki.serving.keyPem,
    });
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    name: "webhook",
    level: "debug",
    destination: {
      write: (line: string) => {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  });
  const lookups: string[] = [];
  const accounts = [testServiceAccount()];
  const server = await createWebhookServer({
    settings: {
      ...testSettings(),
      tlsCertFile: join(dir, "tls.crt"),
      tlsKeyFile: join(dir, "tls.key"),
    },
    logger,
    serviceAccounts: {
      lookup:
        options.lookup ??
        ((namespace, name) => {
          lookups.push(`${namespace}/${name}`);
          return Promise.resolve(
            accounts.find((a) => a.metadata?.namespace === namespace && a.metadata.name === name),
          );
        }),
      isSynced: options.synced ?? (() => true),
    },
    ...(options.bodyLimit === undefined ? {} : { bodyLimit: options.bodyLimit }),
    ...(options.maxMembers === undefined ? {} : { maxMembers: options.maxMembers }),
    certificatePollMs: 60_000,
    certificateDebounceMs: 20,
  });
  open.push({ server, dir });
  return { server, dir, logs, lookups };
}

const mutate = (server: WebhookServer, payload: unknown, contentType = "application/json") =>
  server.app.inject({
    method: "POST",
    url: "/mutate",
    headers: { "content-type": contentType },
    payload: typeof payload === "string" ? payload : JSON.stringify(payload),
  });

interface HttpsAnswer {
  readonly status: number;
  readonly body: string;
  /** The `Connection` header of the answer. */
  readonly connection: string | undefined;
}
function post(
  port: number,
  body: unknown,
  options: {
    ca: string;
    agent?: Agent;
    minVersion?: SecureVersion;
    maxVersion?: SecureVersion;
    ciphers?: string;
  },
): Promise<HttpsAnswer> {
  const payload = JSON.stringify(body);
  const requestOptions: RequestOptions = {
    host: "127.0.0.1",
    port,
    method: "POST",
    path: "/mutate",
    headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
    ca: options.ca,
    agent: options.agent ?? false,
    ...(options.minVersion === undefined ? {} : { minVersion: options.minVersion }),
    ...(options.maxVersion === undefined ? {} : { maxVersion: options.maxVersion }),
    ...(options.ciphers === undefined ? {} : { ciphers: options.ciphers }),
  };
  return new Promise((resolve, reject) => {
    const req = httpsRequest(requestOptions, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString(),
          connection: res.headers.connection,
        });
      });
    });
    req.on("error", reject);
    req.end(payload);
  });
}

const listen = (server: WebhookServer) =>
  server.listen({ host: "127.0.0.1", port: 0, healthPort: 0 });

describe("POST /mutate (inject)", () => {
  it("answers an AdmissionReview with a patch that applies", async () => {
    const { server } = await harness();
    const pod = testPod(annotations);
    const res = await mutate(server, testReview(pod, { uid: "uid-1" }));
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^application\/json/);
    const answer = res.json<Parameters<typeof decodePatch>[0]>();
    expect(answer.response).toMatchObject({ uid: "uid-1", allowed: true, patchType: "JSONPatch" });
    const patched = applyTestPatch(pod, decodePatch(answer)) as {
      spec: { initContainers: { name: string }[] };
    };
    expect(patched.spec.initContainers[0]?.name).toBe("akv-injector");
  });

  it("answers a refusal with 200 and allowed: false (the apiserver reads status.code)", async () => {
    const { server } = await harness();
    const res = await mutate(
      server,
      testReview(testPod({ ...annotations, "akv-injector.io/mode": "x" })),
    );
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      response: {
        allowed: false,
        status: { code: 400, message: 'akv-injector.io/mode: expected sidecar or init (got "x")' },
      },
    });
  });

  it.each([
    [
      "a JSON object that is not a review",
      { hello: "world" },
      "AKV_BAD_ADMISSION_REVIEW",
      "apiVersion must be admission.k8s.io/v1",
    ],
    [
      "a review without uid",
      { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", request: {} },
      "AKV_BAD_ADMISSION_REVIEW",
      "request.uid",
    ],
    ["a JSON string", '"just text"', "AKV_BAD_ADMISSION_REVIEW", "the body must be a JSON object"],
    ["broken JSON", "{", "FST_ERR_CTP_INVALID_JSON_BODY", "JSON"],
    ["an empty body", "", "FST_ERR_CTP_EMPTY_JSON_BODY", "empty"],
    ["a prototype-poisoning body", '{"__proto__":{"x":1}}', "FST_ERR_CTP_INVALID_JSON_BODY", ""],
  ])("refuses %s with HTTP 400 and a JSON error", async (_name, payload, code, message) => {
    const { server, logs } = await harness();
    const res = await mutate(server, payload);
    expect(res.statusCode).toBe(400);
    expect(res.headers["content-type"]).toMatch(/^application\/json/);
    expect(res.json()).toMatchObject({
      error: "Bad Request",
      code,
      message: expect.stringContaining(message) as string,
    });
    expect(logs.filter((l) => l.msg === "admission").at(-1)).toMatchObject({ outcome: "invalid" });
  });

  it("refuses other content types with HTTP 400 (the contract's), naming the media type", async () => {
    const { server } = await harness();
    const res = await mutate(server, "x: 1", "application/yaml");
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      error: "Bad Request",
      code: "FST_ERR_CTP_INVALID_MEDIA_TYPE",
      message: expect.stringContaining("application/yaml") as string,
    });
  });

  it("refuses bodies over the limit with HTTP 400 (the contract's), saying so", async () => {
    const { server } = await harness({ bodyLimit: 1024 });
    const res = await mutate(
      server,
      testReview(testPod({ ...annotations, big: "x".repeat(2000) })),
    );
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      error: "Bad Request",
      code: "FST_ERR_CTP_BODY_TOO_LARGE",
      message: "the body is over the webhook's limit of 1024 bytes",
    });
  });

  it("refuses a review with more JSON object members than the bound with HTTP 400, unparsed", async () => {
    const review = testReview(testPod(annotations));
    const members = new JsonMemberCounter().feed(JSON.stringify(review));
    const at = await harness({ maxMembers: members });
    expect((await mutate(at.server, review)).json()).toMatchObject({
      response: { allowed: true },
    });
    const over = await harness({ maxMembers: members - 1 });
    const res = await mutate(over.server, review);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      error: "Bad Request",
      code: "AKV_BAD_ADMISSION_REVIEW",
      message: `the AdmissionReview has more than ${String(members - 1)} JSON object members, more than any pod Kubernetes stores; akv-injector does not read it`,
    });
    expect(over.lookups).toEqual([]);
  });

  it("collects garbage after answering a body over LARGE_BODY, when node exposes gc, and only then", async () => {
    const gc = vi.fn();
    vi.stubGlobal("gc", gc);
    try {
      const { server } = await harness();
      await mutate(server, testReview(testPod(annotations)));
      expect(gc).not.toHaveBeenCalled();
      const large = testReview(testPod({ ...annotations, big: "x".repeat(LARGE_BODY) }));
      await mutate(server, large);
      expect(gc).toHaveBeenCalledOnce();
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it("answers unknown routes with 404 JSON", async () => {
    const { server } = await harness();
    const res = await server.app.inject({ method: "GET", url: "/mutate" });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: "NOT_FOUND" });
  });

  it("refuses with code 500 and no details when a lookup throws something unexpected", async () => {
    const { server } = await harness({
      lookup: () => {
        throw new TypeError("secret internals");
      },
    });
    const res = await mutate(server, testReview(testPod(annotations)));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      response: {
        allowed: false,
        status: { code: 500, message: "cannot read service account team-a/app: the lookup failed" },
      },
    });
  });

  it("logs one line per admission with uid, namespace, pod, outcome and duration, and nothing secret", async () => {
    const { server, logs } = await harness();
    const pod = testPod(annotations, {}, { generateName: "web-" });
    delete (pod.metadata as Record<string, unknown>).name;
    await mutate(server, testReview(pod, { uid: "log-uid" }));
    await mutate(
      server,
      testReview(testPod({ ...annotations, "akv-injector.io/file-mode": "x" }), {
        uid: "log-uid-2",
      }),
    );
    const lines = logs.filter((l) => l.msg === "admission");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      level: "info",
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) as string,
      name: "webhook",
      uid: "log-uid",
      namespace: "team-a",
      pod: "web-*",
      outcome: "injected",
      durationMs: expect.any(Number) as number,
    });
    expect(lines[1]).toMatchObject({
      uid: "log-uid-2",
      pod: "app",
      outcome: "refused",
      reason: expect.stringContaining("akv-injector.io/file-mode") as string,
    });
    const text = JSON.stringify(logs);
    expect(text).not.toContain("AKV_INJECTOR_SPEC");
    expect(text).not.toContain("BEGIN PRIVATE KEY");
    expect(text).not.toContain("serviceAccountToken");
  });

  it("answers an unexpected failure with 500 JSON that hides the details", async () => {
    const { server, logs } = await harness();
    server.app.post("/boom", () => {
      throw new Error("internal detail");
    });
    const res = await server.app.inject({ method: "POST", url: "/boom", payload: {} });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({
      error: "Internal Server Error",
      code: "INTERNAL",
      message: "internal error",
    });
    expect(logs.at(-1)).toMatchObject({ level: "error", msg: "request failed" });
  });

  it("censors secret-named keys in admission lines", () => {
    const lines: string[] = [];
    const logger = createLogger({
      name: "webhook",
      destination: { write: (l: string) => lines.push(l) },
    });
    createAdmissionLogger(logger).info(
      { uid: "u", token: "tok-123", password: "pw-456" },
      "admission",
    );
    expect(lines[0]).toContain('"uid":"u"');
    expect(lines[0]).not.toContain("tok-123");
    expect(lines[0]).not.toContain("pw-456");
  });

  it("property: random and malformed reviews never crash it and always get JSON", async () => {
    const { server } = await harness({
      lookup: (namespace, name) =>
        Promise.resolve(name === "ghost" ? undefined : testServiceAccount(name, namespace)),
    });
    await fc.assert(
      fc.asyncProperty(bodyArbitrary, async (body) => {
        const res = await server.app.inject({
          method: "POST",
          url: "/mutate",
          headers: { "content-type": body.contentType },
          payload: body.payload,
        });
        checkAnswer(body, res.statusCode, res.headers["content-type"], res.body);
      }),
      { numRuns: 400 },
    );
    // Still serving.
    expect((await mutate(server, testReview(testPod(annotations)))).statusCode).toBe(200);
  });
});

describe("what the server says, exactly", () => {
  it("logs a dry run, the warnings and the reason of each admission", async () => {
    const { server, logs } = await harness();
    const dry = testReview(testPod(annotations), { uid: "dry" }) as {
      request: Record<string, unknown>;
    };
    dry.request.dryRun = true;
    await mutate(server, dry);
    await mutate(
      server,
      testReview(testPod({ ...annotations, "akv-injector.io/refresh-interval": "5s" }), {
        uid: "warned",
      }),
    );
    await mutate(
      server,
      testReview(testPod({ ...annotations, "akv-injector.io/mode": "x" }), { uid: "refused" }),
    );
    const byUid = (uid: string) => logs.find((l) => l.msg === "admission" && l.uid === uid);
    expect(byUid("dry")).toMatchObject({ dryRun: true, outcome: "injected" });
    expect(byUid("dry")).not.toHaveProperty("warnings");
    expect(byUid("dry")).not.toHaveProperty("reason");
    expect(byUid("warned")).toMatchObject({
      warnings: [
        expect.stringContaining("akv-injector.io/refresh-interval: 5s is under 30s") as string,
      ],
    });
    expect(byUid("warned")).not.toHaveProperty("dryRun");
    expect(byUid("refused")).toMatchObject({
      outcome: "refused",
      reason: expect.stringContaining("akv-injector.io/mode: expected sidecar or init") as string,
    });
    const duration = byUid("dry")?.durationMs as number;
    expect(duration).toBeGreaterThan(0);
    expect(duration).toBeLessThan(5000);
  });

  it("logs and counts a body that is no AdmissionReview as invalid, with the reason", async () => {
    const { server, logs } = await harness();
    const res = await mutate(server, { kind: "Nope" });
    expect(res.json()).toEqual({
      error: "Bad Request",
      code: "AKV_BAD_ADMISSION_REVIEW",
      message: "not a valid AdmissionReview: apiVersion must be admission.k8s.io/v1, got nothing",
    });
    expect(logs.find((l) => l.msg === "admission")).toMatchObject({
      outcome: "invalid",
      reason: "not a valid AdmissionReview: apiVersion must be admission.k8s.io/v1, got nothing",
    });
    const metrics = await server.health.inject({ url: "/metrics" });
    expect(metrics.body).toContain('akv_injector_admissions_total{outcome="invalid"} 1');
    expect(metrics.body).toMatch(
      /akv_injector_admission_duration_seconds_count\{outcome="invalid"\} 1/,
    );
    expect(metrics.body).toContain(
      'akv_injector_admission_duration_seconds_bucket{le="0.0005",outcome="invalid"}',
    );
  });

  it.each(["application/yaml", "text/plain"])(
    "counts a %s body as invalid too, naming the media type",
    async (type) => {
      const { server, logs } = await harness();
      const res = await mutate(server, "x: 1", type);
      expect(res.statusCode).toBe(400);
      expect(logs.find((l) => l.msg === "admission")).toMatchObject({
        status: 400,
        outcome: "invalid",
        code: "FST_ERR_CTP_INVALID_MEDIA_TYPE",
        reason: `content type '${type}' is not an AdmissionReview's: send application/json`,
      });
      const metrics = await server.health.inject({ url: "/metrics" });
      expect(metrics.body).toContain('akv_injector_admissions_total{outcome="invalid"} 1');
    },
  );

  it("answers an unknown route with the route it does serve", async () => {
    const { server } = await harness();
    const res = await server.app.inject({ method: "PUT", url: "/x" });
    expect(res.json()).toEqual({
      error: "Not Found",
      code: "NOT_FOUND",
      message: "no route PUT /x; the webhook serves POST /mutate",
    });
  });

  it("says it is ready in words, and the certificate's expiry in seconds", async () => {
    const { server } = await harness();
    expect((await server.health.inject({ url: "/readyz" })).json()).toEqual({ status: "ready" });
    const metrics = await server.health.inject({ url: "/metrics" });
    const expiry = Number(
      /akv_injector_tls_certificate_expiry_timestamp_seconds (\d+)/.exec(metrics.body)?.[1],
    );
    const notAfter = new X509Certificate(pkiA.serving.certPem).validToDate.getTime() / 1000;
    expect(expiry).toBe(notAfter);
  });
});

describe("health server", () => {
  it("serves /healthz, /readyz and /metrics", async () => {
    const { server } = await harness();
    expect((await server.health.inject({ url: "/healthz" })).json()).toEqual({ status: "ok" });
    const ready = await server.health.inject({ url: "/readyz" });
    expect(ready.statusCode).toBe(200);
    await mutate(server, testReview(testPod(annotations)));
    await mutate(server, testReview(testPod({ ...annotations, "akv-injector.io/mode": "x" })));
    await mutate(server, { not: "a review" });
    const metrics = await server.health.inject({ url: "/metrics" });
    expect(metrics.headers["content-type"]).toMatch(/^text\/plain/);
    expect(metrics.body).toContain('akv_injector_admissions_total{outcome="injected"} 1');
    expect(metrics.body).toContain('akv_injector_admissions_total{outcome="refused"} 1');
    expect(metrics.body).toContain('akv_injector_admissions_total{outcome="invalid"} 1');
    expect(metrics.body).toContain('akv_injector_admissions_total{outcome="skipped"} 0');
    expect(metrics.body).toMatch(
      /akv_injector_admission_duration_seconds_count\{outcome="injected"\} 1/,
    );
    expect(metrics.body).toMatch(/akv_injector_tls_certificate_expiry_timestamp_seconds \d+/);
  });

  it("is not ready before the service account cache synced", async () => {
    let synced = false;
    const { server } = await harness({ synced: () => synced });
    const res = await server.health.inject({ url: "/readyz" });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({
      status: "not ready",
      reasons: ["service account cache not synced"],
    });
    synced = true;
    expect((await server.health.inject({ url: "/readyz" })).statusCode).toBe(200);
  });

  it("is not ready without a certificate, and becomes ready when the files appear", async () => {
    const { server, dir } = await harness({ pki: null });
    const res = await server.health.inject({ url: "/readyz" });
    expect(res.json()).toEqual({ status: "not ready", reasons: ["no TLS certificate loaded"] });
    const { port } = await listen(server);
    await writeSecretVolume(dir, "1", {
      "tls.crt": pkiA.serving.certPem,
      "tls.key": pkiA.serving.keyPem,
    });
    await vi.waitFor(() => {
      expect(server.certificate()).toBeDefined();
    });
    expect((await server.health.inject({ url: "/readyz" })).statusCode).toBe(200);
    expect(
      (await post(port, testReview(testPod(annotations)), { ca: pkiA.ca.certPem })).status,
    ).toBe(200);
  });
});

describe("start-up", () => {
  it("stops when the directory of the TLS files does not exist, naming the variables", async () => {
    await expect(
      createWebhookServer({
        settings: {
          ...testSettings(),
          tlsCertFile: "/nonexistent/tls.crt",
          tlsKeyFile: "/nonexistent/tls.key",
        },
        logger: createLogger({ name: "webhook", level: "silent" }),
        serviceAccounts: { lookup: () => Promise.resolve(undefined), isSynced: () => true },
      }),
    ).rejects.toThrow(
      /AKV_INJECTOR_TLS_CERT_FILE, AKV_INJECTOR_TLS_KEY_FILE: cannot watch \/nonexistent/,
    );
  });
});

describe("HTTPS", () => {
  it("serves a client that trusts only the CA", async () => {
    const { server } = await harness();
    const { port, healthPort } = await listen(server);
    const answer = await post(port, testReview(testPod(annotations), { uid: "tls-1" }), {
      ca: pkiA.ca.certPem,
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ response: { uid: "tls-1", allowed: true } });
    await expect(post(port, testReview(testPod()), { ca: pkiB.ca.certPem })).rejects.toThrow(
      /self-signed|unable to verify|certificate/i,
    );
    const health = await fetch(`http://127.0.0.1:${healthPort}/healthz`);
    expect(await health.json()).toEqual({ status: "ok" });
  });

  it("speaks TLS 1.2 and refuses older versions", async () => {
    const { server } = await harness();
    const { port } = await listen(server);
    const tls12 = await post(port, testReview(testPod()), {
      ca: pkiA.ca.certPem,
      maxVersion: "TLSv1.2",
    });
    expect(tls12.status).toBe(200);
    await expect(
      post(port, testReview(testPod()), {
        ca: pkiA.ca.certPem,
        minVersion: "TLSv1",
        maxVersion: "TLSv1.1",
      }),
    ).rejects.toThrow();
  });

  it("takes TLS 1.2 suites with forward secrecy and AEAD only", async () => {
    const { server } = await harness();
    const { port } = await listen(server);
    const tls12 = { ca: pkiA.ca.certPem, maxVersion: "TLSv1.2" as const };
    // ECDHE with AES-GCM, for an RSA or an ECDSA serving key alike.
    const good = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256";
    expect((await post(port, testReview(testPod()), { ...tls12, ciphers: good })).status).toBe(200);
    for (const ciphers of ["AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA"]) {
      await expect(
        post(port, testReview(testPod()), { ...tls12, ciphers }),
        ciphers,
      ).rejects.toThrow();
    }
  });

  it("reloads a rotated certificate without dropping open connections", async () => {
    const { server, dir, logs } = await harness();
    const { port } = await listen(server);
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 1, ca: pkiA.ca.certPem });
    try {
      const review = () => testReview(testPod(annotations));
      expect((await post(port, review(), { ca: pkiA.ca.certPem, agent: keepAlive })).status).toBe(
        200,
      );
      const before = server.certificate()?.fingerprint;

      await writeSecretVolume(dir, "2", {
        "tls.crt": pkiB.serving.certPem,
        "tls.key": pkiB.serving.keyPem,
      });
      expect(await readlink(join(dir, "..data"))).toBe("..2");
      await vi.waitFor(() => {
        expect(server.certificate()?.fingerprint).not.toBe(before);
      });
      expect(logs.some((l) => l.msg === "TLS certificate reloaded")).toBe(true);

      // New handshakes get the new certificate...
      expect((await post(port, review(), { ca: pkiB.ca.certPem })).status).toBe(200);
      await expect(post(port, review(), { ca: pkiA.ca.certPem })).rejects.toThrow();
      // ...while the connection opened before keeps working.
      expect((await post(port, review(), { ca: pkiA.ca.certPem, agent: keepAlive })).status).toBe(
        200,
      );
    } finally {
      keepAlive.destroy();
    }
  });

  it("keeps the certificate in use while the files do not match, then takes the pair", async () => {
    const { server, dir } = await harness();
    const before = server.certificate()?.fingerprint;
    // A writer caught between the two files: new certificate, old key.
    await writeSecretVolume(dir, "2", {
      "tls.crt": pkiB.serving.certPem,
      "tls.key": pkiA.serving.keyPem,
    });
    expect(await server.reloadCertificate()).toBe(false);
    expect(server.certificate()?.fingerprint).toBe(before);
    const metrics = (await server.health.inject({ url: "/metrics" })).body;
    expect(metrics).toContain('akv_injector_tls_reloads_total{result="failure"} 1');

    await writeSecretVolume(dir, "3", {
      "tls.crt": pkiB.serving.certPem,
      "tls.key": pkiB.serving.keyPem,
    });
    await vi.waitFor(() => {
      expect(server.certificate()?.fingerprint).not.toBe(before);
    });
  });

  it("lets in-flight requests finish on close", async () => {
    let release: () => void = () => undefined;
    let arrived: () => void = () => undefined;
    const arrival = new Promise<void>((r) => (arrived = r));
    const { server } = await harness({
      lookup: (namespace, name) => {
        arrived();
        return new Promise((resolve) => {
          release = () => {
            resolve(testServiceAccount(name, namespace));
          };
        });
      },
    });
    const { port } = await listen(server);
    const inflight = post(port, testReview(testPod(annotations)), { ca: pkiA.ca.certPem });
    await arrival;
    let closed = false;
    const closing = server.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);
    expect((await server.health.inject({ url: "/readyz" })).json()).toMatchObject({
      reasons: ["shutting down"],
    });
    release();
    const answer = await inflight;
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({
      response: { allowed: true, patchType: "JSONPatch" },
    });
    await closing;
    expect(closed).toBe(true);
    await expect(post(port, testReview(testPod()), { ca: pkiA.ca.certPem })).rejects.toThrow();
  });

  it("drains: still answers, unready, and closes each connection after its answer", async () => {
    const { server } = await harness();
    const { port } = await listen(server);
    const agent = new Agent({ keepAlive: true });
    const options = { ca: pkiA.ca.certPem, agent };
    const review = testReview(testPod(annotations));
    try {
      const before = await post(port, review, options);
      expect(before.connection).toBe("keep-alive");
      expect(Object.keys(agent.freeSockets)).toHaveLength(1);

      server.drain();
      expect((await server.health.inject({ url: "/readyz" })).json()).toEqual({
        status: "not ready",
        reasons: ["shutting down"],
      });
      const during = await post(port, review, options);
      expect(during.status).toBe(200);
      expect(JSON.parse(during.body)).toMatchObject({ response: { allowed: true } });
      expect(during.connection).toBe("close");
      // The client keeps no connection to send its next request on.
      await vi.waitFor(() => {
        expect(Object.keys(agent.freeSockets)).toHaveLength(0);
      });
    } finally {
      agent.destroy();
    }
  });

  it("keeps idle connections longer than the apiserver does (90 s), so the apiserver closes them", async () => {
    const { server } = await harness();
    expect(server.app.server.keepAliveTimeout).toBe(KEEP_ALIVE_TIMEOUT_MS);
    expect(KEEP_ALIVE_TIMEOUT_MS).toBeGreaterThan(90_000);
  });
});
