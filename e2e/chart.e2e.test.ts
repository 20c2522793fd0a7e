/**
 * The chart against the real apiserver: every object Helm renders, for
 * several value sets, is accepted by server-side apply (schema validation,
 * defaulting, admission), twice in a row without conflicts; the stored
 * webhook configuration is the fail-closed, opt-in one the chart promises;
 * and the RBAC really is least privilege, as the apiserver's own authorizer
 * answers for the webhook's service account.
 */
import {
  AdmissionregistrationV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  type V1ResourceAttributes,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCertificateAuthority } from "../certs/index.ts";
import { CONVENTIONS } from "../charts/convention-values.ts";
import { renderChart } from "../charts/helm.ts";
import { INJECT_LABEL } from "../common/names.ts";
import { startControlPlane, type ControlPlane } from "./cluster/control-plane.ts";
import { applyObjects, ensureNamespace } from "./cluster/objects.ts";

let cp: ControlPlane;

beforeAll(async () => {
  cp = await startControlPlane();
});

afterAll(async () => {
  await cp.stop();
});

const tenantId = "00000000-0000-0000-0000-00000000a11c";
const caPem = createCertificateAuthority({ commonName: "chart test CA", now: new Date() }).certPem;

/** Value sets, each its own release (cluster-scoped names differ) and namespace. */
const valueSets: [string, Record<string, unknown>][] = [
  ["defaults (self certificates, public cloud)", { tenantId }],
  [
    "provided certificate, two excluded namespaces, Ignore",
    {
      tenantId,
      certificates: { mode: "provided", provided: { secretName: "my-tls", caBundle: caPem } },
      webhook: { failurePolicy: "Ignore", excludedNamespaces: ["kube-system", "monitoring"] },
    },
  ],
  [
    "custom cloud with an extra CA, priority class, three replicas",
    {
      tenantId,
      cloud: "Custom",
      custom: {
        authorityHost: "https://login.example.test/",
        vaultSuffixes: [".vault.example.test"],
      },
      sidecar: { extraCaCerts: caPem, refreshInterval: "90s", fileMode: "0440" },
      webhook: { replicas: 3, priorityClassName: "system-cluster-critical" },
    },
  ],
  ["China cloud", { tenantId, cloud: "AzureChinaCloud" }],
  ["US Government cloud", { tenantId, cloud: "AzureUSGovernmentCloud" }],
];

describe("the rendered chart, applied to the real apiserver", () => {
  it.each(valueSets)("%s", async (_title, values) => {
    const index = valueSets.findIndex(([, v]) => v === values);
    const release = `akv-${index}`;
    const namespace = `akv-system-${index}`;
    const objects = await renderChart({ values, releaseName: release, namespace });
    expect(objects.length).toBeGreaterThan(5);
    await ensureNamespace(cp.kubeConfig().makeApiClient(CoreV1Api), namespace);
    await applyObjects(cp.kubeConfig(), objects);
    // Applying again changes nothing and conflicts with nothing.
    await applyObjects(cp.kubeConfig(), objects);

    const admission = cp.kubeConfig().makeApiClient(AdmissionregistrationV1Api);
    const name = objects.find((o) => o.kind === "MutatingWebhookConfiguration")?.metadata.name;
    expect(name).toBeDefined();
    const config = await admission.readMutatingWebhookConfiguration({ name: name ?? "" });
    const webhook = config.webhooks?.[0];
    expect(config.webhooks?.map((w) => w.name)).toEqual([
      "pods.akv-injector.io",
      "ephemeral.akv-injector.io",
    ]);
    expect(config.webhooks?.[1]?.rules?.[0]?.resources).toEqual(["pods/ephemeralcontainers"]);
    expect(webhook?.rules).toEqual([
      {
        operations: ["CREATE"],
        apiGroups: [""],
        apiVersions: ["v1"],
        resources: ["pods"],
        scope: "Namespaced",
      },
    ]);
    expect(webhook?.objectSelector).toEqual({ matchLabels: { [INJECT_LABEL]: "true" } });
    const excluded = webhook?.namespaceSelector?.matchExpressions?.[0]?.values ?? [];
    expect(excluded).toEqual(expect.arrayContaining(["kube-system", namespace]));
    expect(webhook?.failurePolicy).toBe(
      (values.webhook as { failurePolicy?: string } | undefined)?.failurePolicy ?? "Fail",
    );
    expect(webhook?.sideEffects).toBe("None");
    expect(webhook?.reinvocationPolicy).toBe("IfNeeded");
    expect(webhook?.admissionReviewVersions).toEqual(["v1"]);
    expect(webhook?.timeoutSeconds).toBeLessThanOrEqual(10);
  });

  it("applies the cert-manager mode too, but for the cert-manager objects this cluster has no CRDs for", async () => {
    const objects = await renderChart({
      values: { tenantId, certificates: { mode: "cert-manager" } },
      releaseName: "akv-cm",
      namespace: "akv-cm",
    });
    const certManager = objects.filter((o) => o.apiVersion.startsWith("cert-manager.io/"));
    expect(certManager.map((o) => o.kind).sort()).toEqual(expect.arrayContaining(["Certificate"]));
    await ensureNamespace(cp.kubeConfig().makeApiClient(CoreV1Api), "akv-cm");
    await applyObjects(
      cp.kubeConfig(),
      objects.filter((o) => !o.apiVersion.startsWith("cert-manager.io/")),
    );
  });
});

describe("the chart's conventions, applied to the real apiserver", () => {
  it("takes OpenShift's contexts, the extras and an existing ServiceAccount, bound by name; all but the ServiceMonitor this cluster has no CRD for", async () => {
    const namespace = "akv-conventions";
    const objects = await renderChart({
      values: {
        tenantId,
        ...CONVENTIONS,
      },
      releaseName: "akv-conventions",
      namespace,
    });
    expect(objects.filter((o) => o.kind === "ServiceMonitor")).toHaveLength(1);
    expect(objects.filter((o) => o.kind === "ServiceAccount")).toEqual([]);
    const core = cp.kubeConfig().makeApiClient(CoreV1Api);
    await ensureNamespace(core, namespace);
    await core.createNamespacedServiceAccount({
      namespace,
      body: { metadata: { name: "akv-webhook" } },
    });
    await applyObjects(
      cp.kubeConfig(),
      objects.filter((o) => o.kind !== "ServiceMonitor"),
    );
    const authz = cp.kubeConfig().makeApiClient(AuthorizationV1Api);
    const review = await authz.createSubjectAccessReview({
      body: {
        spec: {
          user: `system:serviceaccount:${namespace}:akv-webhook`,
          groups: ["system:serviceaccounts", `system:serviceaccounts:${namespace}`],
          resourceAttributes: { verb: "watch", resource: "serviceaccounts", namespace: "team-a" },
        },
      },
    });
    expect(review.status?.allowed).toBe(true);
  });
});

describe("RBAC, as the apiserver's authorizer answers it", () => {
  const namespace = "akv-system-0";
  const user = `system:serviceaccount:${namespace}:akv-0-akv-injector`;

  async function allowed(attributes: V1ResourceAttributes): Promise<boolean> {
    const authz = cp.kubeConfig().makeApiClient(AuthorizationV1Api);
    const review = await authz.createSubjectAccessReview({
      body: {
        spec: {
          user,
          groups: [
            "system:serviceaccounts",
            `system:serviceaccounts:${namespace}`,
            "system:authenticated",
          ],
          resourceAttributes: attributes,
        },
      },
    });
    return review.status?.allowed ?? false;
  }

  it("lets the webhook read service accounts, its own Secret and patch its own configuration", async () => {
    // The service account's name follows the release (defaults set).
    const objects = await renderChart({
      values: { tenantId },
      releaseName: "akv-0",
      namespace,
    });
    const sa = objects.find((o) => o.kind === "ServiceAccount");
    expect(`system:serviceaccount:${namespace}:${sa?.metadata.name ?? ""}`).toBe(user);

    for (const verb of ["get", "list", "watch"]) {
      expect(await allowed({ verb, resource: "serviceaccounts", namespace: "team-a" })).toBe(true);
    }
    expect(
      await allowed({
        verb: "get",
        resource: "secrets",
        namespace,
        name: "akv-0-akv-injector-tls",
      }),
    ).toBe(true);
    expect(
      await allowed({
        verb: "patch",
        group: "admissionregistration.k8s.io",
        resource: "mutatingwebhookconfigurations",
        name: "akv-0-akv-injector",
      }),
    ).toBe(true);
  });

  it("refuses the webhook everything else", async () => {
    const refused: V1ResourceAttributes[] = [
      { verb: "get", resource: "secrets", namespace, name: "someone-elses" },
      { verb: "list", resource: "secrets", namespace },
      { verb: "get", resource: "secrets", namespace: "team-a", name: "akv-0-akv-injector-tls" },
      { verb: "create", resource: "pods", namespace: "team-a" },
      { verb: "update", resource: "serviceaccounts", namespace: "team-a" },
      { verb: "create", resource: "serviceaccounts/token", namespace: "team-a", name: "app" },
      {
        verb: "patch",
        group: "admissionregistration.k8s.io",
        resource: "mutatingwebhookconfigurations",
        name: "someone-elses",
      },
      {
        verb: "list",
        group: "admissionregistration.k8s.io",
        resource: "mutatingwebhookconfigurations",
      },
    ];
    for (const attributes of refused) {
      const what = JSON.stringify(attributes);
      expect(`${what}: ${String(await allowed(attributes))}`).toBe(`${what}: false`);
    }
  });
});
