/**
 * The chart's default certificate mode, `self`, against the real apiserver:
 * two webhook replicas (the chart's Deployment, run by the test kubelet with
 * the chart's service account and RBAC) start at the same moment and race to
 * create the certificate. They must end with one Secret and one caBundle,
 * both serving the same certificate; with a short validity the serving
 * certificate is renewed while pods keep being admitted, and the renewal
 * reaches both replicas without a restart.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { X509Certificate } from "node:crypto";
import { request as httpsRequest } from "node:https";
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Injected } from "../common/names.ts";
import { startEnvironment, type Environment } from "./cluster/environment.ts";
import { RELEASE } from "./cluster/release.ts";
import { buildPod, eventually, WORKLOAD, type ScenarioContext } from "./scenarios.ts";

/** Short enough to renew within the test (at two thirds: 20 s), long enough to serve meanwhile. */
const VALIDITY = "30s";

let env: Environment;
let ctx: ScenarioContext;

beforeAll(async () => {
  env = await startEnvironment({
    certMode: "self",
    replicas: 2,
    values: { certificates: { mode: "self", self: { validity: VALIDITY } } },
  });
  await env.addWorkload({ namespace: WORKLOAD.namespace, serviceAccount: WORKLOAD.serviceAccount });
  ctx = { vaultUrl: env.vault.url, secondVaultUrl: env.secondVaultUrl, appImage: "busybox:1.37" };
});

afterAll(async () => {
  await env.stop();
});

/** The port each replica serves HTTPS on (its rewritten `https` container port). */
function replicaPorts(): number[] {
  return env.webhookPods.map(
    (p) =>
      p.pod.spec?.containers[0]?.ports?.find((port) => port.name === "https")?.containerPort ?? 0,
  );
}

/** The certificate a replica serves, verified against `caPem` as the apiserver does. */
function servedCertificate(port: number, caPem: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, ca: caPem }, () => {
      const raw = socket.getPeerX509Certificate();
      socket.end();
      if (raw === undefined) reject(new Error("no certificate"));
      else resolve(raw);
    });
    socket.once("error", reject);
  });
}

async function caBundle(): Promise<string> {
  const response = await env.api(
    "GET",
    `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${RELEASE.name}`,
  );
  const config = response.body as { webhooks: { clientConfig: { caBundle?: string } }[] };
  const bundles = new Set(config.webhooks.map((w) => w.clientConfig.caBundle ?? ""));
  expect(bundles.size).toBe(1);
  return Buffer.from([...bundles][0] ?? "", "base64").toString("utf8");
}

/** POSTs a labelled pod's AdmissionReview straight to one replica. */
function postReview(
  port: number,
  caPem: string,
): Promise<{ response: { allowed: boolean; patchType?: string } }> {
  const pod = buildPod(
    {
      pod: "direct",
      serviceAccount: WORKLOAD.serviceAccount,
      annotations: { "akv-injector.io/vault": ctx.vaultUrl, "akv-injector.io/secrets": "db" },
    },
    ctx,
  );
  const body = JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "00000000-0000-0000-0000-000000000001",
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      namespace: WORKLOAD.namespace,
      name: "direct",
      operation: "CREATE",
      userInfo: { username: "e2e" },
      object: pod,
      dryRun: true,
    },
  });
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: "127.0.0.1",
        port,
        path: "/mutate",
        method: "POST",
        ca: caPem,
        headers: { "content-type": "application/json" },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => {
          resolve(JSON.parse(text) as { response: { allowed: boolean; patchType?: string } });
        });
      },
    );
    req.once("error", reject);
    req.end(body);
  });
}

let created = 0;
async function admitOne(): Promise<void> {
  const name = `self-${String(created++)}`;
  const response = await env.api(
    "POST",
    `/api/v1/namespaces/${WORKLOAD.namespace}/pods`,
    buildPod(
      {
        pod: name,
        serviceAccount: WORKLOAD.serviceAccount,
        annotations: { "akv-injector.io/vault": ctx.vaultUrl, "akv-injector.io/secrets": "db" },
      },
      ctx,
    ),
  );
  if (response.status !== 201) {
    throw new Error(
      `admission of ${name} failed (${response.status}): ${JSON.stringify(response.body)}`,
    );
  }
  const pod = response.body as V1Pod;
  expect(pod.spec?.initContainers?.[0]?.name).toBe(Injected.containerName);
}

describe("self-managed certificates, two replicas racing", () => {
  it("ends with one Secret and one caBundle, and both replicas serve", async () => {
    const secrets = await env.api("GET", `/api/v1/namespaces/${RELEASE.namespace}/secrets`);
    const names = (secrets.body as { items: { metadata: { name: string } }[] }).items.map(
      (s) => s.metadata.name,
    );
    expect(names).toEqual([`${RELEASE.name}-tls`]);

    const bundle = await caBundle();
    expect(bundle).toContain("BEGIN CERTIFICATE");
    const [a, b] = await Promise.all(replicaPorts().map((port) => servedCertificate(port, bundle)));
    expect(a?.fingerprint256).toBe(b?.fingerprint256);
    expect(a?.subjectAltName).toContain("IP Address:127.0.0.1");
    expect(a?.subjectAltName).toContain(`DNS:${RELEASE.name}.${RELEASE.namespace}.svc`);

    // Each replica answers an AdmissionReview over TLS that trusts only the caBundle.
    for (const port of replicaPorts()) {
      const review = await postReview(port, bundle);
      expect(review.response.allowed).toBe(true);
      expect(review.response.patchType).toBe("JSONPatch");
    }
    // And through the apiserver.
    await admitOne();

    // Exactly one replica created the Secret; the other yielded and read the winner's.
    const logs = await Promise.all(
      env.webhookPods.map(async (p) => (await p.process("webhook")?.readLog()) ?? ""),
    );
    const stored = logs
      .join("\n")
      .split("\n")
      .filter((l) => l.includes('"msg":"webhook certificate stored"'));
    expect(stored).toHaveLength(1);
    expect(stored[0]).toContain('"action":"created"');
  });

  it("renews the serving certificate before it expires, without dropping an admission", async () => {
    const bundle = await caBundle();
    const ports = replicaPorts();
    const initial = await servedCertificate(ports[0] ?? 0, bundle);
    const renewBy = Date.parse(initial.validTo) + 5000;
    let admitted = 0;
    const failures: string[] = [];
    await eventually(
      async () => {
        try {
          await admitOne();
          admitted++;
        } catch (error) {
          failures.push(String(error));
        }
        const served = await Promise.all(ports.map((port) => servedCertificate(port, bundle)));
        for (const cert of served) expect(cert.fingerprint256).not.toBe(initial.fingerprint256);
      },
      Math.max(10_000, renewBy - Date.now()),
      500,
    );
    expect(failures).toEqual([]);
    expect(admitted).toBeGreaterThan(5);
    // The CA was kept, so the caBundle did not change.
    expect(await caBundle()).toBe(bundle);
    // Still one Secret.
    const secrets = await env.api("GET", `/api/v1/namespaces/${RELEASE.namespace}/secrets`);
    expect((secrets.body as { items: unknown[] }).items).toHaveLength(1);
  });
});
