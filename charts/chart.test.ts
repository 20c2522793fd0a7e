// Over 400 lines on purpose: the chart rendered by the real Helm, one describe per concern (lint, schema, defaults, clouds, certificate modes, other values, conventions, NOTES), sharing one build of Helm.
// The chart, rendered by the real Helm (built from Go modules) and checked on
// the parsed objects: what fails closed, what is excluded, who may do what,
// and that the environment it gives the webhook is what the webhook parses.
import { X509Certificate } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { createCertificateAuthority } from "../certs/index.ts";
import {
  AZURE_VAULT_SUFFIXES,
  CERT_MODES,
  DEFAULT_AUTHORITY_HOST,
  ENTRA_AUTHORITY_HOSTS,
  INJECT_LABEL,
  Annotation,
  ServiceAccountAnnotation,
  WebhookEnv,
} from "../common/names.ts";
import { createLogger } from "../common/logger.ts";
import { FakeCertApiServer } from "../testing/cert-apiserver.ts";
import { serviceDnsNames } from "../webhook/cert-reconcile.ts";
import { ensureSelfManagedCerts } from "../webhook/self-managed-certs.ts";
import { parseSettings } from "../webhook/settings.ts";
import { CONVENTIONS } from "./convention-values.ts";
import { ensureHelm, lintChart, renderChart, renderNotes, type KubeObject } from "./helm.ts";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const NS = "akv-system";
const RELEASE = "akv";
const FULLNAME = "akv-akv-injector";
const BASE = { tenantId: TENANT };
const CA_PEM = createCertificateAuthority({ commonName: "corp-proxy-ca", now: new Date() }).certPem;
/** The default security contexts: the `restricted` Pod Security Standard, user 65532. */
const RESTRICTED_POD = {
  runAsNonRoot: true,
  runAsUser: 65532,
  runAsGroup: 65532,
  fsGroup: 65532,
  seccompProfile: { type: "RuntimeDefault" },
};
const RESTRICTED_CONTAINER = {
  runAsNonRoot: true,
  runAsUser: 65532,
  runAsGroup: 65532,
  readOnlyRootFilesystem: true,
  allowPrivilegeEscalation: false,
  privileged: false,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
};
// Minimal shapes of what the tests read; the rendered YAML is checked, not trusted.
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
interface Container {
  name: string;
  image: string;
  imagePullPolicy?: string;
  env: EnvVar[];
  ports: { name: string; containerPort: number }[];
  securityContext?: Record<string, unknown>;
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  startupProbe: { httpGet: { path: string; port: string } };
  resources: Record<string, unknown>;
}
interface Volume {
  name: string;
  emptyDir?: { medium?: string };
  secret?: { secretName: string };
  configMap?: { name: string };
}
interface PodSpec {
  serviceAccountName: string;
  terminationGracePeriodSeconds?: number;
  priorityClassName?: string;
  securityContext?: Record<string, unknown>;
  nodeSelector?: Record<string, string>;
  affinity: { podAntiAffinity?: { preferredDuringSchedulingIgnoredDuringExecution: unknown[] } };
  containers: Container[];
  volumes: Volume[];
}
interface Deployment {
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string>; annotations: Record<string, string> };
      spec: PodSpec;
    };
  };
}
interface Webhook {
  name: string;
  admissionReviewVersions: string[];
  clientConfig: {
    service: { name: string; namespace: string; path: string; port: number };
    caBundle?: string;
  };
  rules: {
    operations: string[];
    apiGroups: string[];
    apiVersions: string[];
    resources: string[];
    scope: string;
  }[];
  objectSelector: { matchLabels: Record<string, string> };
  namespaceSelector: { matchExpressions: { key: string; operator: string; values: string[] }[] };
  failurePolicy: string;
  sideEffects: string;
  timeoutSeconds: number;
  reinvocationPolicy: string;
  matchPolicy: string;
}
interface Rule {
  apiGroups: string[];
  resources: string[];
  resourceNames?: string[];
  verbs: string[];
}

/** The one object of a kind (and name, if given); fails the test when it is not exactly one. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- a typed view of parsed YAML, which the assertions then check
function one<T>(docs: readonly KubeObject[], kind: string, name?: string): KubeObject & T {
  const found = docs.filter(
    (d) => d.kind === kind && (name === undefined || d.metadata.name === name),
  );
  expect(found, `${kind} ${name ?? ""}`).toHaveLength(1);
  return found[0] as KubeObject & T;
}

/** The pod-creation webhook (`name` picks another of the configuration's two). */
function webhookOf(docs: readonly KubeObject[], name = "pods.akv-injector.io"): Webhook {
  const config = one<{ webhooks: Webhook[] }>(docs, "MutatingWebhookConfiguration");
  expect(config.webhooks.map((w) => w.name)).toEqual([
    "pods.akv-injector.io",
    "ephemeral.akv-injector.io",
  ]);
  const webhook = config.webhooks.find((w) => w.name === name);
  expect(webhook, name).toBeDefined();
  return webhook as Webhook;
}

function containerOf(docs: readonly KubeObject[]): Container {
  const containers = one<Deployment>(docs, "Deployment").spec.template.spec.containers;
  expect(containers).toHaveLength(1);
  return containers[0] as Container;
}

/** The container's env as the process would see it, downward-API fields resolved. */
function envOf(docs: readonly KubeObject[], namespace = NS): Record<string, string> {
  const env: Record<string, string> = {};
  for (const variable of containerOf(docs).env) {
    const fieldPath = variable.valueFrom?.fieldRef?.fieldPath;
    env[variable.name] = fieldPath === "metadata.namespace" ? namespace : (variable.value ?? "");
  }
  return env;
}

function render(values: Record<string, unknown>, namespace = NS): Promise<KubeObject[]> {
  return renderChart({ values: { ...BASE, ...values }, releaseName: RELEASE, namespace });
}

beforeAll(async () => {
  // Builds helm from Go modules when the cache lacks it (minutes, once).
  await ensureHelm();
}, 1_800_000);

describe("helm lint", () => {
  it.each<[string, Record<string, unknown>]>([
    ["defaults", {}],
    ["AzureChinaCloud", { cloud: "AzureChinaCloud" }],
    ["AzureUSGovernmentCloud", { cloud: "AzureUSGovernmentCloud" }],
    [
      "Custom cloud",
      {
        cloud: "Custom",
        custom: {
          authorityHost: "https://login.example.test/",
          vaultSuffixes: [".vault.example.test"],
        },
      },
    ],
    ["cert-manager", { certificates: { mode: "cert-manager" } }],
    [
      "provided",
      { certificates: { mode: "provided", provided: { secretName: "my-tls", caBundle: CA_PEM } } },
    ],
    ["extra CA", { sidecar: { extraCaCerts: CA_PEM } }],
    ["OpenShift, extras, ServiceMonitor, an existing ServiceAccount", CONVENTIONS],
    [
      "one replica, Ignore",
      {
        webhook: {
          replicas: 1,
          failurePolicy: "Ignore",
          priorityClassName: "system-cluster-critical",
        },
      },
    ],
  ])("passes --strict with %s", async (_name, values) => {
    const result = await lintChart({ values: { ...BASE, ...values } });
    expect(result.stdout + result.stderr).toContain("1 chart(s) linted, 0 chart(s) failed");
    expect(result.code).toBe(0);
  });

  it("fails without a tenant id, naming it", async () => {
    const result = await lintChart({});
    expect(result.code).not.toBe(0);
    expect(result.stdout + result.stderr).toContain("at '/tenantId'");
  });
});

describe("the schema refuses nonsense, with Helm's message", () => {
  it.each<[string, Record<string, unknown>, string[]]>([
    ["a missing tenant", { tenantId: "" }, ["at '/tenantId': '' does not match pattern"]],
    [
      "a tenant's domain name",
      { tenantId: "contoso.onmicrosoft.com" },
      ["at '/tenantId': 'contoso.onmicrosoft.com' does not match pattern"],
    ],
    ["a tenant with a slash", { tenantId: "contoso/../x" }, ["at '/tenantId'"]],
    ["an unknown cloud", { cloud: "AzureGermanCloud" }, ["at '/cloud'", "AzurePublicCloud"]],
    [
      "Custom without authority or suffixes",
      { cloud: "Custom" },
      [
        "at '/custom/authorityHost': minLength: got 0, want 1",
        "at '/custom/vaultSuffixes': minItems: got 0, want 1",
      ],
    ],
    [
      "an http authority",
      {
        cloud: "Custom",
        custom: { authorityHost: "http://login.example.test/", vaultSuffixes: [".v.test"] },
      },
      ["at '/custom/authorityHost'"],
    ],
    [
      "a custom authority with a named cloud",
      { custom: { authorityHost: "https://evil.example/", vaultSuffixes: [] } },
      ["at '/custom/authorityHost'", "value must be ''"],
    ],
    [
      "a suffix with a path",
      {
        cloud: "Custom",
        custom: { authorityHost: "https://l.test/", vaultSuffixes: [".vault.test/x"] },
      },
      ["at '/custom/vaultSuffixes/0'"],
    ],
    [
      "a typo in a key",
      { webhok: { replicas: 2 } },
      ["additional properties 'webhok' not allowed"],
    ],
    [
      "a typo in a nested key",
      { webhook: { failurPolicy: "Fail" } },
      ["at '/webhook'", "'failurPolicy'"],
    ],
    [
      "failurePolicy Maybe",
      { webhook: { failurePolicy: "Maybe" } },
      ["at '/webhook/failurePolicy'"],
    ],
    [
      "a 60 s timeout",
      { webhook: { timeoutSeconds: 60 } },
      ["at '/webhook/timeoutSeconds': maximum: got 60, want 30"],
    ],
    [
      "zero replicas",
      { webhook: { replicas: 0 } },
      ["at '/webhook/replicas': minimum: got 0, want 1"],
    ],
    ["a log level", { webhook: { logLevel: "verbose" } }, ["at '/webhook/logLevel'"]],
    [
      "a shutdown delay over a minute",
      { webhook: { shutdownDelaySeconds: 61 } },
      ["at '/webhook/shutdownDelaySeconds': maximum: got 61, want 60"],
    ],
    [
      "an unquoted file mode",
      { sidecar: { fileMode: 644 } },
      ["at '/sidecar/fileMode': got number, want string"],
    ],
    ["a file mode 999", { sidecar: { fileMode: "0999" } }, ["at '/sidecar/fileMode'"]],
    [
      "a refresh interval in words",
      { sidecar: { refreshInterval: "5 minutes" } },
      ["at '/sidecar/refreshInterval'"],
    ],
    ["a zero tmpfs", { sidecar: { tmpfsSizeLimit: "0" } }, ["at '/sidecar/tmpfsSizeLimit'"]],
    [
      "a bad quantity",
      { sidecar: { resources: { limits: { memory: "lots" } } } },
      ["at '/sidecar/resources/limits/memory'"],
    ],
    [
      "resources with claims",
      { sidecar: { resources: { claims: [] } } },
      ["at '/sidecar/resources'", "'claims'"],
    ],
    [
      "an extra CA that is not PEM",
      { sidecar: { extraCaCerts: "trust me" } },
      ["at '/sidecar/extraCaCerts'"],
    ],
    [
      "an unknown certificate mode",
      { certificates: { mode: "vault" } },
      ["at '/certificates/mode'"],
    ],
    [
      "provided without a Secret",
      { certificates: { mode: "provided" } },
      ["at '/certificates/provided/secretName': minLength: got 0, want 1"],
    ],
    [
      "a bad digest",
      { images: { webhook: { repository: "r.io/w", digest: "latest" } } },
      ["at '/images/webhook/digest'"],
    ],
    [
      "a tag in the repository",
      { images: { sidecar: { repository: "r.io/s:1.0" } } },
      ["at '/images/sidecar/repository'"],
    ],
    [
      "a pull policy",
      { images: { webhook: { repository: "r.io/w", pullPolicy: "Sometimes" } } },
      ["at '/images/webhook/pullPolicy'"],
    ],
    [
      "an excluded namespace with capitals",
      { webhook: { excludedNamespaces: ["Kube-System"] } },
      ["at '/webhook/excludedNamespaces/0'"],
    ],
    [
      "a typo in the security context",
      { webhook: { securityContext: { runAsUsr: 1000 } } },
      ["at '/webhook/securityContext'", "'runAsUsr'"],
    ],
    [
      "a user id in quotes",
      { webhook: { podSecurityContext: { runAsUser: "1000" } } },
      ["at '/webhook/podSecurityContext/runAsUser': got string, want integer"],
    ],
    [
      "an unknown seccomp profile",
      { webhook: { podSecurityContext: { seccompProfile: { type: "Default" } } } },
      ["at '/webhook/podSecurityContext/seccompProfile/type'"],
    ],
    [
      "an env var without a name",
      { webhook: { extraEnv: [{ value: "x" }] } },
      ["at '/webhook/extraEnv/0'", "'name'"],
    ],
    [
      "an env var with value and valueFrom",
      {
        webhook: {
          extraEnv: [{ name: "A", value: "x", valueFrom: { fieldRef: { fieldPath: "x" } } }],
        },
      },
      ["at '/webhook/extraEnv/0'"],
    ],
    [
      "an env var name with '='",
      { webhook: { extraEnv: [{ name: "A=B", value: "x" }] } },
      ["at '/webhook/extraEnv/0/name'"],
    ],
    [
      "a volume without a source",
      { webhook: { extraVolumes: [{ name: "scratch" }] } },
      ["at '/webhook/extraVolumes/0'"],
    ],
    [
      "a relative mount path",
      { webhook: { extraVolumeMounts: [{ name: "scratch", mountPath: "scratch" }] } },
      ["at '/webhook/extraVolumeMounts/0/mountPath'"],
    ],
    [
      "a node selector that is not a string",
      { webhook: { nodeSelector: { "kubernetes.io/os": true } } },
      ["at '/webhook/nodeSelector/kubernetes.io~1os': got boolean, want string"],
    ],
    [
      "a configuration annotation that is not a string",
      { webhook: { configurationAnnotations: { "example.com/n": 1 } } },
      ["at '/webhook/configurationAnnotations/example.com~1n'"],
    ],
    [
      "a scrape interval in words",
      { metrics: { serviceMonitor: { interval: "30 seconds" } } },
      ["at '/metrics/serviceMonitor/interval'"],
    ],
    [
      "a typo in the ServiceMonitor",
      { metrics: { serviceMonitor: { enable: true } } },
      ["at '/metrics/serviceMonitor'", "'enable'"],
    ],
    [
      "serviceAccount.create in quotes",
      { serviceAccount: { create: "false" } },
      ["at '/serviceAccount/create': got string, want boolean"],
    ],
  ])("%s", async (_name, values, messages) => {
    const error = await render(values).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toContain("values don't meet the specifications of the schema(s)");
    for (const message of messages) expect(error?.message).toContain(message);
  });
});

describe("defaults (self-managed certificates)", () => {
  let docs: KubeObject[];
  beforeAll(async () => {
    docs = await render({});
  });

  it("renders exactly the objects a webhook needs", () => {
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`).sort()).toEqual(
      [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "MutatingWebhookConfiguration",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
      ].map((kind) => `${kind}/${FULLNAME}`),
    );
    for (const doc of docs.filter(
      (d) => !d.kind.startsWith("Cluster") && d.kind !== "MutatingWebhookConfiguration",
    )) {
      expect(doc.metadata.namespace, doc.kind).toBe(NS);
    }
  });

  it("sends only labelled pods' creation, never from kube-system or its own namespace", () => {
    const webhook = webhookOf(docs);
    expect(webhook.rules).toEqual([
      {
        operations: ["CREATE"],
        apiGroups: [""],
        apiVersions: ["v1"],
        resources: ["pods"],
        scope: "Namespaced",
      },
    ]);
    expect(webhook.objectSelector).toEqual({ matchLabels: { [INJECT_LABEL]: "true" } });
    expect(webhook.namespaceSelector).toEqual({
      matchExpressions: [
        { key: "kubernetes.io/metadata.name", operator: "NotIn", values: ["kube-system", NS] },
      ],
    });
  });

  it("sends every pod's new ephemeral containers, outside the same namespaces", () => {
    const pods = webhookOf(docs);
    const ephemeral = webhookOf(docs, "ephemeral.akv-injector.io");
    expect(ephemeral.rules).toEqual([
      {
        operations: ["UPDATE"],
        apiGroups: [""],
        apiVersions: ["v1"],
        resources: ["pods/ephemeralcontainers"],
        scope: "Namespaced",
      },
    ]);
    // The opt-in label can be removed from a running pod: no objectSelector here.
    expect(ephemeral.objectSelector).toBeUndefined();
    expect(ephemeral.namespaceSelector).toEqual(pods.namespaceSelector);
    expect(ephemeral.clientConfig).toEqual(pods.clientConfig);
    expect(ephemeral.failurePolicy).toBe(pods.failurePolicy);
    expect(ephemeral.sideEffects).toBe("None");
    expect(ephemeral.reinvocationPolicy).toBe("Never");
  });

  it("fails closed, quickly, without side effects, and is reinvoked", () => {
    const webhook = webhookOf(docs);
    expect(webhook.failurePolicy).toBe("Fail");
    expect(webhook.sideEffects).toBe("None");
    expect(webhook.timeoutSeconds).toBeLessThanOrEqual(10);
    expect(webhook.reinvocationPolicy).toBe("IfNeeded");
    expect(webhook.admissionReviewVersions).toEqual(["v1"]);
    // No caBundle from `helm template`: the webhook writes it (upgrades keep the live one via lookup).
    expect(webhook.clientConfig.caBundle).toBeUndefined();
  });

  it("points at its Service, which selects the webhook pods on the HTTPS port, and offers the metrics port", () => {
    const webhook = webhookOf(docs);
    const service = one<{
      spec: { selector: Record<string, string>; ports: { port: number; targetPort: string }[] };
    }>(docs, "Service");
    expect(webhook.clientConfig.service).toEqual({
      name: service.metadata.name,
      namespace: NS,
      path: "/mutate",
      port: 443,
    });
    expect(service.spec.ports).toEqual([
      { name: "https", port: 443, targetPort: "https", protocol: "TCP" },
      // /metrics is served on the plain health port.
      { name: "metrics", port: 8080, targetPort: "health", protocol: "TCP" },
    ]);
    const deployment = one<Deployment>(docs, "Deployment");
    expect(deployment.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    expect(deployment.spec.selector.matchLabels).toEqual(service.spec.selector);
    const https = containerOf(docs).ports.find((p) => p.name === "https");
    expect(https?.containerPort).toBe(Number(envOf(docs)[WebhookEnv.port]));
  });

  it("runs two spread replicas with a disruption budget", () => {
    const deployment = one<Deployment>(docs, "Deployment");
    expect(deployment.spec.replicas).toBe(2);
    expect(
      deployment.spec.template.spec.affinity.podAntiAffinity
        ?.preferredDuringSchedulingIgnoredDuringExecution,
    ).toEqual([
      {
        weight: 100,
        podAffinityTerm: {
          topologyKey: "kubernetes.io/hostname",
          labelSelector: { matchLabels: deployment.spec.selector.matchLabels },
        },
      },
    ]);
    const pdb = one<{
      spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } };
    }>(docs, "PodDisruptionBudget");
    expect(pdb.spec).toEqual({
      minAvailable: 1,
      selector: { matchLabels: deployment.spec.selector.matchLabels },
    });
    expect(deployment.spec.template.spec.priorityClassName).toBeUndefined();
  });

  it("runs on Linux nodes, with the chart's pod labels and annotations alone", () => {
    const deployment = one<Deployment>(docs, "Deployment");
    expect(deployment.spec.template.spec.nodeSelector).toEqual({ "kubernetes.io/os": "linux" });
    expect(deployment.spec.template.metadata.labels).toEqual(deployment.spec.selector.matchLabels);
    expect(Object.keys(deployment.spec.template.metadata.annotations)).toEqual([
      "checksum/sidecar-ca",
    ]);
    // Self mode writes its own caBundle: nothing annotates the configuration.
    expect(one(docs, "MutatingWebhookConfiguration").metadata.annotations).toBeUndefined();
  });

  it("probes /healthz and /readyz on the health port", () => {
    const container = containerOf(docs);
    const health = container.ports.find((p) => p.name === "health");
    expect(health?.containerPort).toBe(Number(envOf(docs)[WebhookEnv.healthPort]));
    expect(container.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "health" });
    expect(container.startupProbe.httpGet).toEqual({ path: "/healthz", port: "health" });
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "health" });
  });

  it("runs restricted: numeric non-root user, read-only root, no escalation, no capabilities, RuntimeDefault", () => {
    const pod = one<Deployment>(docs, "Deployment").spec.template.spec;
    // Exactly what the chart rendered before the contexts became values.
    expect(pod.securityContext).toEqual(RESTRICTED_POD);
    expect(containerOf(docs).securityContext).toEqual(RESTRICTED_CONTAINER);
    expect(containerOf(docs).resources).toEqual({
      requests: { cpu: "50m", memory: "96Mi" },
      limits: { memory: "256Mi" },
    });
  });

  it("sets only WebhookEnv names, and the webhook's own parser accepts them", () => {
    const env = envOf(docs);
    const known = new Set<string>(Object.values(WebhookEnv));
    for (const name of Object.keys(env)) expect(known, name).toContain(name);
    const settings = parseSettings(env);
    expect(settings).toMatchObject({
      port: 8443,
      healthPort: 8080,
      tenantId: TENANT,
      authorityHost: DEFAULT_AUTHORITY_HOST,
      sidecarImage: "ghcr.io/akv-injector/akv-injector-sidecar:0.1.0",
      refreshIntervalMs: 300_000,
      tmpfsSizeLimit: "4Mi",
      fileMode: 0o644,
      sidecarResources: { requests: { cpu: "10m", memory: "64Mi" }, limits: { memory: "128Mi" } },
      logLevel: "info",
      shutdownDelayMs: 5000,
    });
    expect(settings.vaultSuffixes.map((s) => s.value)).toEqual([".vault.azure.net"]);
  });

  it("gives self mode a writable in-memory TLS folder and the names it manages", () => {
    const env = envOf(docs);
    expect(env).toMatchObject({
      [WebhookEnv.certMode]: "self",
      [WebhookEnv.certSecret]: `${FULLNAME}-tls`,
      [WebhookEnv.webhookConfigName]: FULLNAME,
      [WebhookEnv.serviceName]: one(docs, "Service").metadata.name,
      [WebhookEnv.namespace]: NS,
      [WebhookEnv.certValidity]: "8760h",
      [WebhookEnv.tlsCertFile]: "/var/run/akv-injector/tls/tls.crt",
      [WebhookEnv.tlsKeyFile]: "/var/run/akv-injector/tls/tls.key",
    });
    expect(parseSettings(env).selfCerts).toEqual({
      namespace: NS,
      secretName: `${FULLNAME}-tls`,
      webhookConfigName: FULLNAME,
      serviceName: FULLNAME,
      validityMs: 365 * 86_400_000,
      extraSans: [],
    });
    const container = containerOf(docs);
    expect(container.volumeMounts).toEqual([
      { name: "tls", mountPath: "/var/run/akv-injector/tls", readOnly: false },
    ]);
    const pod = one<Deployment>(docs, "Deployment").spec.template.spec;
    expect(pod.volumes).toEqual([
      { name: "tls", emptyDir: { medium: "Memory", sizeLimit: "1Mi" } },
    ]);
  });

  it("grants least privilege: service accounts, its one Secret, its own webhook configuration", () => {
    const clusterRole = one<{ rules: Rule[] }>(docs, "ClusterRole");
    expect(clusterRole.rules).toEqual([
      { apiGroups: [""], resources: ["serviceaccounts"], verbs: ["get", "list", "watch"] },
      {
        apiGroups: ["admissionregistration.k8s.io"],
        resources: ["mutatingwebhookconfigurations"],
        resourceNames: [FULLNAME],
        verbs: ["get", "patch"],
      },
    ]);
    const role = one<{ rules: Rule[] }>(docs, "Role");
    expect(role.rules).toEqual([
      {
        apiGroups: [""],
        resources: ["secrets"],
        resourceNames: [`${FULLNAME}-tls`],
        verbs: ["get", "update"],
      },
      // create cannot be limited by name in RBAC; it is the only unnamed Secret verb.
      { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
    ]);
    for (const rule of [...clusterRole.rules, ...role.rules]) {
      expect(rule.verbs).not.toContain("*");
      expect(rule.resources).not.toContain("*");
      if (rule.resources.includes("secrets"))
        expect(rule.verbs).not.toEqual(expect.arrayContaining(["list"]));
    }
    const sa = one(docs, "ServiceAccount");
    expect(one<Deployment>(docs, "Deployment").spec.template.spec.serviceAccountName).toBe(
      sa.metadata.name,
    );
    for (const kind of ["ClusterRoleBinding", "RoleBinding"]) {
      const binding = one<{ roleRef: { kind: string; name: string }; subjects: unknown[] }>(
        docs,
        kind,
      );
      expect(binding.roleRef.name).toBe(FULLNAME);
      expect(binding.subjects).toEqual([
        { kind: "ServiceAccount", name: sa.metadata.name, namespace: NS },
      ]);
    }
  });

  it("grants the self-mode verbs that the certificate manager's API calls need, and no more", async () => {
    // What the manager sends, recorded by the fake apiserver: a first pass
    // (create the Secret, patch the caBundle), then one past the renewal time.
    const api = new FakeCertApiServer({
      namespace: NS,
      secretName: `${FULLNAME}-tls`,
      serviceName: FULLNAME,
    });
    await api.start();
    const dir = await mkdtemp(join(tmpdir(), "akv-chart-rbac-"));
    try {
      api.addConfig(FULLNAME);
      let now = new Date();
      const options = {
        client: api.client(),
        namespace: NS,
        secretName: `${FULLNAME}-tls`,
        webhookConfigName: FULLNAME,
        serviceName: FULLNAME,
        certFile: join(dir, "tls.crt"),
        keyFile: join(dir, "tls.key"),
        logger: createLogger({ name: "webhook", level: "silent" }),
        clock: () => now,
      };
      const first = await ensureSelfManagedCerts(options);
      now = new Date(first.renewAt.getTime() + 1);
      expect((await ensureSelfManagedCerts(options)).secret).toBe("updated");
      const verbOf: Record<string, string> = {
        GET: "get",
        POST: "create",
        PUT: "update",
        PATCH: "patch",
      };
      const used = (resource: string): string[] =>
        [
          ...new Set(
            api.requests
              .filter((r) => r.split(" ")[1]?.includes(`/${resource}`))
              .map((r) => verbOf[r.split(" ")[0] ?? ""] ?? r),
          ),
        ].sort();
      const granted = (rules: Rule[], resource: string): string[] =>
        [
          ...new Set(rules.filter((r) => r.resources.includes(resource)).flatMap((r) => r.verbs)),
        ].sort();
      const clusterRole = one<{ rules: Rule[] }>(docs, "ClusterRole");
      const role = one<{ rules: Rule[] }>(docs, "Role");
      expect(used("mutatingwebhookconfigurations")).toEqual(["get", "patch"]);
      expect(granted(clusterRole.rules, "mutatingwebhookconfigurations")).toEqual(
        used("mutatingwebhookconfigurations"),
      );
      expect(used("secrets")).toEqual(["create", "get", "update"]);
      expect(granted(role.rules, "secrets")).toEqual(used("secrets"));
    } finally {
      await api.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("uses the chart's appVersion as the images' tag", () => {
    expect(containerOf(docs).image).toBe("ghcr.io/akv-injector/akv-injector-webhook:0.1.0");
    expect(containerOf(docs).imagePullPolicy).toBe("IfNotPresent");
    expect(envOf(docs)[WebhookEnv.sidecarImagePullPolicy]).toBeUndefined();
  });
});

describe("clouds", () => {
  it.each([
    ["AzurePublicCloud", "https://login.microsoftonline.com/", ".vault.azure.net"],
    ["AzureChinaCloud", "https://login.chinacloudapi.cn/", ".vault.azure.cn"],
    ["AzureUSGovernmentCloud", "https://login.microsoftonline.us/", ".vault.usgovcloudapi.net"],
  ])("%s: authority %s, vaults under %s", async (cloud, authority, suffix) => {
    const env = envOf(await render({ cloud }));
    expect(env[WebhookEnv.authorityHost]).toBe(authority);
    expect(env[WebhookEnv.vaultSuffixes]).toBe(suffix);
    // The same hosts and suffixes the webhook and sidecar know as Azure's.
    expect(ENTRA_AUTHORITY_HOSTS).toContain(new URL(authority).host);
    expect(AZURE_VAULT_SUFFIXES).toContain(suffix);
    expect(parseSettings(env).authorityHost).toBe(authority);
  });

  it("Custom: the given authority and suffix list", async () => {
    const env = envOf(
      await render({
        cloud: "Custom",
        custom: {
          authorityHost: "https://127.0.0.1:9443/",
          vaultSuffixes: ["127.0.0.1:8443", ".vault.example.test"],
        },
      }),
    );
    expect(env[WebhookEnv.authorityHost]).toBe("https://127.0.0.1:9443/");
    expect(env[WebhookEnv.vaultSuffixes]).toBe("127.0.0.1:8443,.vault.example.test");
    expect(parseSettings(env).vaultSuffixes).toEqual([
      { value: "127.0.0.1:8443", exactHost: true },
      { value: ".vault.example.test", exactHost: false },
    ]);
  });
});

describe("certificate modes", () => {
  it("knows every mode the webhook does", async () => {
    for (const mode of CERT_MODES) {
      const values =
        mode === "provided"
          ? { certificates: { mode, provided: { secretName: "my-tls" } } }
          : { certificates: { mode } };
      const env = envOf(await render(values));
      expect(env[WebhookEnv.certMode]).toBe(mode);
      expect(parseSettings(env).certMode).toBe(mode);
    }
  });

  it("cert-manager: a CA chain, a serving Certificate for the Service's names, CA injection, no Secret rights", async () => {
    const docs = await render({ certificates: { mode: "cert-manager" } });
    const certificate = one<{
      spec: {
        secretName: string;
        dnsNames: string[];
        usages: string[];
        issuerRef: { kind: string; name: string };
      };
    }>(docs, "Certificate", FULLNAME);
    const serviceName = one(docs, "Service").metadata.name;
    expect(certificate.spec.dnsNames).toEqual(serviceDnsNames(serviceName, NS));
    expect(certificate.spec.usages).toContain("server auth");
    expect(certificate.spec.issuerRef).toEqual({ kind: "Issuer", name: `${FULLNAME}-ca` });
    const caIssuer = one<{ spec: { ca: { secretName: string } } }>(
      docs,
      "Issuer",
      `${FULLNAME}-ca`,
    );
    const ca = one<{ spec: { isCA: boolean; secretName: string; issuerRef: { name: string } } }>(
      docs,
      "Certificate",
      `${FULLNAME}-ca`,
    );
    expect(ca.spec.isCA).toBe(true);
    expect(caIssuer.spec.ca.secretName).toBe(ca.spec.secretName);
    one(docs, "Issuer", ca.spec.issuerRef.name);

    const config = one<{ metadata: { annotations: Record<string, string> } }>(
      docs,
      "MutatingWebhookConfiguration",
    );
    expect(config.metadata.annotations["cert-manager.io/inject-ca-from"]).toBe(`${NS}/${FULLNAME}`);
    const pod = one<Deployment>(docs, "Deployment").spec.template.spec;
    expect(pod.volumes.find((v) => v.name === "tls")?.secret?.secretName).toBe(
      certificate.spec.secretName,
    );
    expect(containerOf(docs).volumeMounts.find((m) => m.name === "tls")?.readOnly).toBe(true);
    expect(docs.filter((d) => d.kind === "Role" || d.kind === "RoleBinding")).toEqual([]);
    const clusterRole = one<{ rules: Rule[] }>(docs, "ClusterRole");
    expect(clusterRole.rules.map((r) => r.resources)).toEqual([["serviceaccounts"]]);
    const env = envOf(docs);
    expect(env[WebhookEnv.certSecret]).toBeUndefined();
    expect(env[WebhookEnv.webhookConfigName]).toBeUndefined();
  });

  it("cert-manager with an existing issuer: the serving Certificate alone", async () => {
    const docs = await render({
      certificates: {
        mode: "cert-manager",
        certManager: { issuerRef: { kind: "ClusterIssuer", name: "corp-ca" } },
      },
    });
    expect(docs.filter((d) => d.kind === "Issuer")).toEqual([]);
    const certificate = one<{ spec: { issuerRef: unknown } }>(docs, "Certificate");
    expect(certificate.spec.issuerRef).toEqual({ kind: "ClusterIssuer", name: "corp-ca" });
  });

  it("provided: the named Secret, its CA as caBundle", async () => {
    const docs = await render({
      certificates: { mode: "provided", provided: { secretName: "my-tls", caBundle: CA_PEM } },
    });
    const pod = one<Deployment>(docs, "Deployment").spec.template.spec;
    expect(pod.volumes.find((v) => v.name === "tls")?.secret?.secretName).toBe("my-tls");
    const caBundle = webhookOf(docs).clientConfig.caBundle ?? "";
    expect(new X509Certificate(Buffer.from(caBundle, "base64")).fingerprint256).toBe(
      new X509Certificate(CA_PEM).fingerprint256,
    );
    expect(docs.filter((d) => d.kind === "Certificate" || d.kind === "Role")).toEqual([]);
    // Its own namespace, whose pods it refuses, in every mode.
    expect(envOf(docs)[WebhookEnv.namespace]).toBe(NS);
  });
});

describe("other values", () => {
  it.each([
    ["1.30.0", "auto", "false"],
    ["1.31.9", "auto", "false"],
    ["1.32.0", "auto", "true"],
    ["1.30.0", true, "true"],
    ["1.33.1", false, "false"],
  ])("native sidecars on apiserver %s with %s: %s", async (version, value, expected) => {
    const docs = await renderChart({
      values: { ...BASE, sidecar: { nativeSidecars: value } },
      releaseName: RELEASE,
      namespace: NS,
      args: ["--kube-version", version],
    });
    expect(envOf(docs)[WebhookEnv.nativeSidecars]).toBe(expected);
  });

  it("extra CA: a ConfigMap mounted where AKV_INJECTOR_SIDECAR_EXTRA_CA_FILE points", async () => {
    const docs = await render({ sidecar: { extraCaCerts: CA_PEM } });
    const configMap = one<{ data: Record<string, string> }>(
      docs,
      "ConfigMap",
      `${FULLNAME}-sidecar-ca`,
    );
    expect(new X509Certificate(configMap.data["ca.crt"] ?? "").fingerprint256).toBe(
      new X509Certificate(CA_PEM).fingerprint256,
    );
    const file = envOf(docs)[WebhookEnv.sidecarExtraCaFile] ?? "";
    const mount = containerOf(docs).volumeMounts.find((m) => m.name === "sidecar-ca");
    expect(mount).toEqual({
      name: "sidecar-ca",
      mountPath: file.replace(/\/ca\.crt$/, ""),
      readOnly: true,
    });
    expect(file).toBe(`${mount?.mountPath ?? ""}/ca.crt`);
    const volume = one<Deployment>(docs, "Deployment").spec.template.spec.volumes.find(
      (v) => v.name === "sidecar-ca",
    );
    expect(volume?.configMap?.name).toBe(configMap.metadata.name);
  });

  it("self mode: extra SANs reach the certificate manager", async () => {
    const docs = await render({
      certificates: { self: { extraSans: ["127.0.0.1", "webhook.local"] } },
    });
    const env = envOf(docs);
    expect(env[WebhookEnv.certExtraSans]).toBe("127.0.0.1,webhook.local");
    expect(parseSettings(env).selfCerts?.extraSans).toEqual(["127.0.0.1", "webhook.local"]);
    expect(envOf(await render({}))[WebhookEnv.certExtraSans]).toBeUndefined();
  });

  it("no extra CA: no ConfigMap, no variable", async () => {
    const docs = await render({});
    expect(docs.filter((d) => d.kind === "ConfigMap")).toEqual([]);
    expect(envOf(docs)[WebhookEnv.sidecarExtraCaFile]).toBeUndefined();
  });

  it("sidecar settings reach the webhook's parser", async () => {
    const resources = {
      requests: { cpu: "20m", memory: "80Mi" },
      limits: { cpu: "1", memory: "160Mi" },
    };
    const docs = await render({
      sidecar: { resources, refreshInterval: "90s", tmpfsSizeLimit: "8Mi", fileMode: "0440" },
      images: {
        webhook: { repository: "registry.example/akv/webhook", tag: "1.2.3", pullPolicy: "Always" },
        sidecar: {
          repository: "registry.example/akv/sidecar",
          tag: "1.2.3",
          digest: `sha256:${"a".repeat(64)}`,
          pullPolicy: "Always",
        },
      },
      webhook: { logLevel: "debug", port: 9443, healthPort: 9090 },
    });
    const env = envOf(docs);
    expect(JSON.parse(env[WebhookEnv.sidecarResources] ?? "")).toEqual(resources);
    expect(env[WebhookEnv.sidecarImagePullPolicy]).toBe("Always");
    expect(parseSettings(env)).toMatchObject({
      sidecarImage: `registry.example/akv/sidecar:1.2.3@sha256:${"a".repeat(64)}`,
      refreshIntervalMs: 90_000,
      tmpfsSizeLimit: "8Mi",
      fileMode: 0o440,
      sidecarResources: resources,
      logLevel: "debug",
      port: 9443,
      healthPort: 9090,
    });
    const container = containerOf(docs);
    expect(container.image).toBe("registry.example/akv/webhook:1.2.3");
    expect(container.imagePullPolicy).toBe("Always");
    expect(container.ports.map((p) => p.containerPort)).toEqual([9443, 9090]);
  });

  it("drains for webhook.shutdownDelaySeconds after SIGTERM, within the grace period", async () => {
    const grace = (d: readonly KubeObject[]) =>
      one<Deployment>(d, "Deployment").spec.template.spec.terminationGracePeriodSeconds;
    const docs = await render({});
    // The drain, then the longest admission (30 s) before Kubernetes kills it.
    expect(parseSettings(envOf(docs)).shutdownDelayMs).toBe(5000);
    expect(grace(docs)).toBe(35);
    // The process drains: no preStop pause to hold SIGTERM back.
    expect(containerOf(docs)).not.toHaveProperty("lifecycle");
    const none = await render({ webhook: { shutdownDelaySeconds: 0 } });
    expect(parseSettings(envOf(none)).shutdownDelayMs).toBe(0);
    expect(grace(none)).toBe(30);
    const long = await render({ webhook: { shutdownDelaySeconds: 60 } });
    expect(parseSettings(envOf(long)).shutdownDelayMs).toBe(60_000);
    expect(grace(long)).toBe(90);
  });

  it("failurePolicy, timeout, excluded namespaces, priority class and one replica", async () => {
    const docs = await render({
      webhook: {
        replicas: 1,
        failurePolicy: "Ignore",
        timeoutSeconds: 3,
        excludedNamespaces: ["kube-system", "kube-public", NS],
        priorityClassName: "system-cluster-critical",
      },
    });
    const webhook = webhookOf(docs);
    expect(webhook.failurePolicy).toBe("Ignore");
    expect(webhook.timeoutSeconds).toBe(3);
    expect(webhook.namespaceSelector.matchExpressions[0]?.values).toEqual([
      "kube-system",
      "kube-public",
      NS,
    ]);
    expect(one<Deployment>(docs, "Deployment").spec.template.spec.priorityClassName).toBe(
      "system-cluster-critical",
    );
    // One replica cannot honour minAvailable 1 through a drain: no budget then.
    expect(docs.filter((d) => d.kind === "PodDisruptionBudget")).toEqual([]);
  });

  it("takes a null list of excluded namespaces as empty", async () => {
    const docs = await render({ webhook: { excludedNamespaces: null } });
    expect(webhookOf(docs).namespaceSelector.matchExpressions[0]?.values).toEqual([NS]);
    const notes = await renderNotes({
      values: { ...BASE, webhook: { excludedNamespaces: null } },
      releaseName: RELEASE,
      namespace: NS,
    });
    expect(notes).toContain(`Pods in ${NS} are never injected.`);
  });

  it("another release namespace is excluded instead", async () => {
    const docs = await render({}, "security");
    expect(webhookOf(docs).namespaceSelector.matchExpressions[0]?.values).toEqual([
      "kube-system",
      "security",
    ]);
    expect(envOf(docs, "security")[WebhookEnv.namespace]).toBe("security");
  });
});

describe("chart conventions", () => {
  /** Helm's message when rendering fails, else undefined. */
  async function renderError(values: Record<string, unknown>): Promise<string | undefined> {
    return render(values).then(
      () => undefined,
      (e: unknown) => (e as Error).message,
    );
  }
  const podOf = (docs: readonly KubeObject[]) => one<Deployment>(docs, "Deployment").spec.template;

  describe("security contexts", () => {
    it("take overrides, merged into the restricted defaults", async () => {
      const docs = await render({
        webhook: {
          podSecurityContext: { runAsUser: 1000, fsGroupChangePolicy: "OnRootMismatch" },
          securityContext: { runAsUser: 1000, capabilities: { drop: ["ALL", "NET_RAW"] } },
        },
      });
      expect(podOf(docs).spec.securityContext).toEqual({
        ...RESTRICTED_POD,
        runAsUser: 1000,
        fsGroupChangePolicy: "OnRootMismatch",
      });
      expect(containerOf(docs).securityContext).toEqual({
        ...RESTRICTED_CONTAINER,
        runAsUser: 1000,
        capabilities: { drop: ["ALL", "NET_RAW"] },
      });
    });

    it("OpenShift: null drops the fixed ids, which its SCC assigns, and keeps the rest", async () => {
      const docs = await render({ webhook: CONVENTIONS.webhook });
      const without = (context: Record<string, unknown>, ...fields: string[]) =>
        Object.fromEntries(Object.entries(context).filter(([key]) => !fields.includes(key)));
      expect(podOf(docs).spec.securityContext).toEqual(
        without(RESTRICTED_POD, "runAsUser", "runAsGroup", "fsGroup"),
      );
      expect(containerOf(docs).securityContext).toEqual(
        without(RESTRICTED_CONTAINER, "runAsUser", "runAsGroup"),
      );
    });

    it("null drops a whole context", async () => {
      const docs = await render({ webhook: { podSecurityContext: null, securityContext: null } });
      expect(podOf(docs).spec).not.toHaveProperty("securityContext");
      expect(containerOf(docs)).not.toHaveProperty("securityContext");
    });
  });

  it("nodeSelector: merged into kubernetes.io/os: linux, which null drops", async () => {
    const merged = await render({ webhook: { nodeSelector: { pool: "system" } } });
    expect(podOf(merged).spec.nodeSelector).toEqual({
      "kubernetes.io/os": "linux",
      pool: "system",
    });
    const dropped = await render({ webhook: CONVENTIONS.webhook });
    expect(podOf(dropped).spec.nodeSelector).toEqual({ "node-role.example/system": "true" });
    const none = await render({ webhook: { nodeSelector: { "kubernetes.io/os": null } } });
    expect(podOf(none).spec).not.toHaveProperty("nodeSelector");
  });

  it("extraEnv, extraVolumes and extraVolumeMounts follow the chart's, which the webhook still parses", async () => {
    const docs = await render({ webhook: CONVENTIONS.webhook });
    const container = containerOf(docs);
    expect(container.env.slice(-2)).toEqual(CONVENTIONS.webhook.extraEnv);
    const defaults = containerOf(await render({}));
    expect(container.env.slice(0, -2)).toEqual(defaults.env);
    expect(parseSettings(envOf(docs))).toEqual(parseSettings(envOf(await render({}))));
    expect(container.volumeMounts).toEqual([
      ...defaults.volumeMounts,
      ...CONVENTIONS.webhook.extraVolumeMounts,
    ]);
    expect(podOf(docs).spec.volumes).toEqual([
      ...podOf(await render({})).spec.volumes,
      ...CONVENTIONS.webhook.extraVolumes,
    ]);
  });

  it("extraEnv may set no variable the chart sets, in any configuration", async () => {
    // The chart's names are WebhookEnv's ("sets only WebhookEnv names"), but KUBECONFIG, which it never sets.
    const chartNames = Object.values(WebhookEnv).filter((name) => name !== WebhookEnv.kubeconfig);
    const everything = await render({
      images: { sidecar: { repository: "r.example/s", pullPolicy: "Always" } },
      sidecar: { extraCaCerts: CA_PEM },
      certificates: { self: { extraSans: ["127.0.0.1"] } },
    });
    expect(Object.keys(envOf(everything)).sort()).toEqual([...chartNames].sort());
    for (const name of chartNames) {
      const message = await renderError({ webhook: { extraEnv: [{ name, value: "x" }] } });
      expect(message, name).toMatch(
        new RegExp(`webhook\\.extraEnv: ${name} is set by the chart \\(from [a-z]`),
      );
    }
    const kubeconfig = await render({
      webhook: { extraEnv: [{ name: WebhookEnv.kubeconfig, value: "/etc/kube/config" }] },
    });
    expect(envOf(kubeconfig)[WebhookEnv.kubeconfig]).toBe("/etc/kube/config");
  });

  it("extraEnv names the chart's value to use instead, and refuses a name given twice", async () => {
    expect(
      await renderError({ webhook: { extraEnv: [{ name: WebhookEnv.logLevel, value: "debug" }] } }),
    ).toContain(
      `webhook.extraEnv: ${WebhookEnv.logLevel} is set by the chart (from webhook.logLevel)`,
    );
    expect(
      await renderError({
        webhook: {
          extraEnv: [
            { name: "NODE_OPTIONS", value: "a" },
            { name: "NODE_OPTIONS", value: "b" },
          ],
        },
      }),
    ).toContain("webhook.extraEnv: NODE_OPTIONS is given twice");
  });

  describe("service account", () => {
    it("created by default, annotated, and bound", async () => {
      const docs = await render({
        serviceAccount: { name: "akv-webhook", annotations: { "example.com/owner": "security" } },
      });
      const sa = one(docs, "ServiceAccount", "akv-webhook");
      expect(sa.metadata.annotations).toEqual({ "example.com/owner": "security" });
      expect(podOf(docs).spec.serviceAccountName).toBe("akv-webhook");
    });

    it("create: false renders none, runs as and binds the named one", async () => {
      const docs = await render({ serviceAccount: CONVENTIONS.serviceAccount });
      expect(docs.filter((d) => d.kind === "ServiceAccount")).toEqual([]);
      expect(podOf(docs).spec.serviceAccountName).toBe("akv-webhook");
      for (const kind of ["ClusterRoleBinding", "RoleBinding"]) {
        expect(one<{ subjects: unknown[] }>(docs, kind).subjects, kind).toEqual([
          { kind: "ServiceAccount", name: "akv-webhook", namespace: NS },
        ]);
      }
    });

    it("create: false needs a name and takes no annotations", async () => {
      expect(await renderError({ serviceAccount: { create: false } })).toContain(
        "serviceAccount.name is required when serviceAccount.create is false",
      );
      expect(
        await renderError({
          serviceAccount: { create: false, name: "akv-webhook", annotations: { a: "b" } },
        }),
      ).toContain("serviceAccount.annotations apply only to a ServiceAccount the chart creates");
    });
  });

  describe("labels and annotations", () => {
    it("pod labels and annotations join the chart's", async () => {
      const docs = await render({ webhook: CONVENTIONS.webhook });
      const template = podOf(docs);
      expect(template.metadata.labels).toEqual({
        ...one<Deployment>(docs, "Deployment").spec.selector.matchLabels,
        team: "security",
      });
      expect(Object.keys(template.metadata.annotations).sort()).toEqual([
        "checksum/sidecar-ca",
        "example.com/owner",
      ]);
      expect(template.metadata.annotations["example.com/owner"]).toBe("security");
    });

    it("configuration annotations join cert-manager's CA injection without replacing it", async () => {
      const docs = await render({
        certificates: { mode: "cert-manager" },
        webhook: { configurationAnnotations: { "example.com/owner": "security" } },
      });
      expect(one(docs, "MutatingWebhookConfiguration").metadata.annotations).toEqual({
        "cert-manager.io/inject-ca-from": `${NS}/${FULLNAME}`,
        "example.com/owner": "security",
      });
      const self = await render({ webhook: CONVENTIONS.webhook });
      expect(one(self, "MutatingWebhookConfiguration").metadata.annotations).toEqual({
        "example.com/owner": "security",
      });
    });

    it("provided certificates may have cainjector write the caBundle", async () => {
      const docs = await render({
        certificates: { mode: "provided", provided: { secretName: "my-tls" } },
        webhook: {
          configurationAnnotations: { "cert-manager.io/inject-ca-from-secret": `${NS}/my-tls` },
        },
      });
      expect(one(docs, "MutatingWebhookConfiguration").metadata.annotations).toEqual({
        "cert-manager.io/inject-ca-from-secret": `${NS}/my-tls`,
      });
    });

    it.each<[string, Record<string, unknown>, string]>([
      [
        "a selector label among the pod labels",
        { webhook: { podLabels: { "app.kubernetes.io/name": "other" } } },
        "webhook.podLabels: app.kubernetes.io/name is set by the chart",
      ],
      [
        "the chart's checksum among the pod annotations",
        { webhook: { podAnnotations: { "checksum/sidecar-ca": "x" } } },
        "webhook.podAnnotations: checksum/sidecar-ca is set by the chart",
      ],
      [
        "cert-manager's own annotation, replaced",
        {
          certificates: { mode: "cert-manager" },
          webhook: { configurationAnnotations: { "cert-manager.io/inject-ca-from": "x/y" } },
        },
        "webhook.configurationAnnotations: cert-manager.io/inject-ca-from is set by the chart",
      ],
      [
        "a second cainjector source in cert-manager mode",
        {
          certificates: { mode: "cert-manager" },
          webhook: { configurationAnnotations: { "cert-manager.io/inject-ca-from-secret": "x/y" } },
        },
        "cert-manager.io/inject-ca-from-secret would have cert-manager's cainjector write the caBundle, which certificates.mode cert-manager already writes",
      ],
      [
        "cainjector in self mode, where the webhook writes the caBundle",
        { webhook: { configurationAnnotations: { "cert-manager.io/inject-ca-from": "x/y" } } },
        "cert-manager.io/inject-ca-from would have cert-manager's cainjector write the caBundle, which certificates.mode self already writes",
      ],
      [
        "a chart label among the ServiceMonitor's",
        { metrics: { serviceMonitor: { enabled: true, labels: { "helm.sh/chart": "x" } } } },
        "metrics.serviceMonitor.labels: helm.sh/chart is set by the chart",
      ],
    ])("refuses %s, naming it", async (_name, values, message) => {
      expect(await renderError(values)).toContain(message);
    });
  });

  describe("ServiceMonitor", () => {
    interface ServiceMonitor {
      metadata: { labels: Record<string, string> };
      spec: {
        selector: { matchLabels: Record<string, string> };
        namespaceSelector: { matchNames: string[] };
        endpoints: Record<string, unknown>[];
      };
    }
    interface Service {
      metadata: { labels: Record<string, string> };
      spec: { ports: { name: string; port: number; targetPort: string }[] };
    }

    it("scrapes /metrics over HTTP on the metrics port of the chart's Service", async () => {
      const docs = await render({
        metrics: CONVENTIONS.metrics,
        webhook: { healthPort: 9090 },
      });
      const monitor = one<ServiceMonitor>(docs, "ServiceMonitor", FULLNAME);
      expect(monitor.apiVersion).toBe("monitoring.coreos.com/v1");
      expect(monitor.metadata.namespace).toBe(NS);
      expect(monitor.metadata.labels).toMatchObject({
        ...one<Service>(docs, "Service").metadata.labels,
        release: "kube-prometheus-stack",
      });
      expect(monitor.spec.endpoints).toEqual([
        {
          port: "metrics",
          path: "/metrics",
          scheme: "http",
          interval: "45s",
          scrapeTimeout: "20s",
        },
      ]);
      expect(monitor.spec.namespaceSelector).toEqual({ matchNames: [NS] });
      // Its selector picks the chart's Service, by the chart's selector labels...
      const deployment = one<Deployment>(docs, "Deployment");
      expect(monitor.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
      const service = one<Service>(docs, "Service");
      expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
      // ...whose metrics port reaches the container port the webhook serves /metrics on.
      const port = service.spec.ports.find((p) => p.name === "metrics");
      expect(port).toMatchObject({ port: 9090, targetPort: "health" });
      expect(containerOf(docs).ports.find((p) => p.name === port?.targetPort)?.containerPort).toBe(
        parseSettings(envOf(docs)).healthPort,
      );
    });

    it("leaves the interval and timeout to Prometheus unless given; none unless enabled", async () => {
      const docs = await render({ metrics: { serviceMonitor: { enabled: true } } });
      expect(one<ServiceMonitor>(docs, "ServiceMonitor").spec.endpoints).toEqual([
        { port: "metrics", path: "/metrics", scheme: "http" },
      ]);
      const timeoutOnly = await render({
        metrics: { serviceMonitor: { enabled: true, scrapeTimeout: "5s" } },
      });
      expect(one<ServiceMonitor>(timeoutOnly, "ServiceMonitor").spec.endpoints).toEqual([
        { port: "metrics", path: "/metrics", scheme: "http", scrapeTimeout: "5s" },
      ]);
      expect(one<ServiceMonitor>(docs, "ServiceMonitor").metadata.labels).toEqual(
        one<Service>(docs, "Service").metadata.labels,
      );
      const off = await render({ metrics: { serviceMonitor: { interval: "30s" } } });
      expect(off.filter((d) => d.kind === "ServiceMonitor")).toEqual([]);
    });
  });
});

describe("NOTES.txt", () => {
  it("shows how to annotate a first pod with the names the webhook uses", async () => {
    const notes = await renderNotes({ values: BASE, releaseName: RELEASE, namespace: NS });
    expect(notes).toContain(`${INJECT_LABEL}: "true"`);
    expect(notes).toContain(`${Annotation.vault}: <vault name>`);
    expect(notes).toContain(`${Annotation.secrets}: my-secret`);
    expect(notes).toContain(`${ServiceAccountAnnotation.clientId}=<identity client id>`);
    expect(notes).toContain("/mnt/secrets/my-secret");
    expect(notes).toContain(`kubectl -n ${NS} rollout status deployment/${FULLNAME}`);
  });
});
