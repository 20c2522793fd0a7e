/**
 * The whole installation, on this machine, as a user would have it in a
 * cluster: the real control plane; the mock Entra ID and Key Vault behind a
 * private CA; the chart rendered by Helm and applied to the apiserver; the
 * webhook's pods made from the chart's Deployment and run by the test
 * kubelet with the chart's env, volumes, user, service account and RBAC;
 * the rendered MutatingWebhookConfiguration pointed at them through a URL
 * (a loopback forwarder stands in for the Service), as envtest does.
 *
 * Adaptations, each because this is one machine and not a cluster:
 * - pods share the host network, so each webhook pod gets free ports (its
 *   env and container ports are rewritten together);
 * - no controller-manager: the webhook pods are created from the Deployment
 *   template here, `kube-root-ca.crt` is published here, and the
 *   `kube-api-access` volume the ServiceAccount admission plugin would add is
 *   added here (envtest turns that plugin off, since nothing creates the
 *   `default` service accounts it insists on).
 *
 * The e2e suite and the demo both start from here.
 */
import {
  CoreV1Api,
  KubernetesObjectApi,
  PatchStrategy,
  type KubeConfig,
  type V1Pod,
} from "@kubernetes/client-node";
import { randomUUID } from "node:crypto";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { pino } from "pino";
import { stringify } from "yaml";
import { createCertificateAuthority, createServingCertificate } from "../../certs/index.ts";
import { renderChart, type KubeObject } from "../../charts/helm.ts";
import { createLogger } from "../../common/logger.ts";
import { ServiceAccountAnnotation, WebhookEnv } from "../../common/names.ts";
import { createMockTls, startMocks, type MockAad, type MockKeyVault } from "../../mocks/index.ts";
import { freePort } from "../host/network.ts";
import { TestKubelet, type RunOptions, type RunningPod } from "../kubelet/kubelet.ts";
import { detectLayout } from "../kubelet/layout.ts";
import { startBalancer, type Balancer } from "./balancer.ts";
import { startControlPlane, type ControlPlane } from "./control-plane.ts";
import { localImages } from "./images.ts";

/** The images the chart is told to use (the kubelet maps them to this checkout). */
export const WEBHOOK_IMAGE = { repository: "localhost/akv-injector-webhook", tag: "e2e" } as const;
export const SIDECAR_IMAGE = { repository: "localhost/akv-injector-sidecar", tag: "e2e" } as const;
const imageRef = (i: { repository: string; tag: string }): string => `${i.repository}:${i.tag}`;

/** The Helm release. */
export const RELEASE = { name: "akv-injector", namespace: "akv-injector" } as const;

/** How the webhook gets its certificate, as the chart's `certificates.mode`. */
export type E2eCertMode = "provided" | "self";

export interface EnvironmentOptions {
  readonly onProgress?: (line: string) => void;
  /** Default `provided`: a certificate made with `certs/`, in a Secret the chart names. */
  readonly certMode?: E2eCertMode;
  /** Webhook pods to run; default 1. */
  readonly replicas?: number;
  /** Chart values merged over the e2e ones (one level deep per top key). */
  readonly values?: Record<string, unknown>;
  /** The chart's `sidecar.refreshInterval`; default `5m`. */
  readonly refreshInterval?: string;
  /** Keep the run folder (logs, PKI) after stop. */
  readonly keepDir?: boolean;
}

/** A workload identity: a service account federated with an app of the mock tenant. */
export interface Workload {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly clientId: string;
  /** `system:serviceaccount:<ns>:<sa>`. */
  readonly subject: string;
}

/** What the apiserver answered to a raw request. */
export interface ApiResponse {
  readonly status: number;
  readonly body: unknown;
  /** `Warning` headers (admission warnings among them), decoded. */
  readonly warnings: readonly string[];
}

/** A running installation. Stop it with `stop()` or `await using`. */
export interface Environment extends AsyncDisposable {
  readonly cp: ControlPlane;
  readonly kubeConfig: KubeConfig;
  readonly core: CoreV1Api;
  readonly aad: MockAad;
  readonly vault: MockKeyVault;
  readonly kubelet: TestKubelet;
  readonly tenantId: string;
  /** PEM of the CA behind both mocks (what the chart's `sidecar.extraCaCerts` holds). */
  readonly mockCaPem: string;
  /** The chart as rendered and applied (before the webhook URL was set). */
  readonly rendered: readonly KubeObject[];
  readonly webhookPods: readonly RunningPod[];
  /** `https://127.0.0.1:<port>/mutate`, the URL in the webhook configuration. */
  readonly webhookUrl: string;
  readonly balancer: Balancer;
  readonly sidecarImage: string;
  /** Milliseconds of each step of the start. */
  readonly timings: Readonly<Record<string, number>>;
  /** Creates the namespace (if new), the annotated service account, the app and federated credential in the mock tenant, and its role on the vault. */
  addWorkload(options: {
    namespace: string;
    serviceAccount: string;
    clientId?: string;
    /** Default true. */
    federate?: boolean;
    /** Default true. */
    grantVault?: boolean;
  }): Promise<Workload>;
  /** `POST`/`GET`/… to the apiserver as the admin, keeping the warnings. */
  api(method: string, path: string, body?: unknown): Promise<ApiResponse>;
  /** Runs a stored pod with the test kubelet; it is stopped with the environment if not before. */
  runPod(namespace: string, name: string, options?: RunOptions): Promise<RunningPod>;
  /** Every log of the run (file name → text): control plane, mocks, webhook and sidecar containers. */
  logs(): Promise<Map<string, string>>;
  stop(): Promise<void>;
}

/** Starts everything; on any failure, stops what had started. */
export async function startEnvironment(options: EnvironmentOptions = {}): Promise<Environment> {
  const progress = options.onProgress ?? (() => undefined);
  const timings: Record<string, number> = {};
  const step = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const value = await run();
    timings[name] = Math.round(performance.now() - t0);
    return value;
  };
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.reverse()) {
      try {
        await stop();
      } catch {
        // Keep stopping the rest.
      }
    }
    stops.length = 0;
  };
  try {
    const cp = await step("controlPlane", () =>
      startControlPlane({
        onProgress: progress,
        ...(options.keepDir === undefined ? {} : { keepDir: options.keepDir }),
      }),
    );
    stops.push(() => cp.stop());
    const kubeConfig = cp.kubeConfig();
    const core = kubeConfig.makeApiClient(CoreV1Api);

    progress("mocks: starting Entra ID and Key Vault (HTTPS, private CA)");
    const tenantId = randomUUID();
    const tls = createMockTls({ dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
    const mockCaPem = tls.caPem;
    const fileLogger = (name: string) =>
      createLogger({
        name,
        destination: pino.destination({ dest: join(cp.logDir, `${name}.log`), sync: true }),
      });
    const mocks = await step("mocks", () =>
      startMocks({
        tls,
        aad: {
          tenants: [{ id: tenantId }],
          // Entra ID reads the issuer's discovery and keys; here the issuer is
          // the apiserver, behind its own CA.
          trustedCaPems: [cp.caPem],
          logger: fileLogger("mock-aad"),
        },
        keyVault: { logger: fileLogger("mock-key-vault") },
      }),
    );
    stops.push(() => mocks.close());
    const { aad, keyVault: vault } = mocks;

    const certMode = options.certMode ?? "provided";
    const replicas = options.replicas ?? 1;
    const ports = await Promise.all(
      Array.from({ length: replicas }, async () => ({
        https: await freePort(),
        health: await freePort(),
      })),
    );
    const balancer = await startBalancer(ports.map((p) => p.https));
    stops.push(() => balancer.close());
    const webhookUrl = `https://127.0.0.1:${balancer.port}/mutate`;

    // Provided mode: a CA and serving certificate from certs/, for the
    // Service's names and for 127.0.0.1 (the URL the apiserver calls here).
    const now = new Date();
    const webhookCa = createCertificateAuthority({
      commonName: "akv-injector e2e webhook CA",
      now,
    });
    const serving = createServingCertificate(webhookCa, {
      dnsNames: [`${RELEASE.name}.${RELEASE.namespace}.svc`],
      ipAddresses: ["127.0.0.1"],
      now,
    });

    const values = mergeValues(
      {
        tenantId,
        cloud: "Custom",
        custom: { authorityHost: `${aad.url}/`, vaultSuffixes: [`127.0.0.1:${vault.port}`] },
        images: { webhook: WEBHOOK_IMAGE, sidecar: SIDECAR_IMAGE },
        webhook: { replicas },
        sidecar: { extraCaCerts: mockCaPem, refreshInterval: options.refreshInterval ?? "5m" },
        certificates:
          certMode === "provided"
            ? {
                mode: "provided",
                provided: { secretName: `${RELEASE.name}-e2e-tls`, caBundle: webhookCa.certPem },
              }
            : { mode: "self" },
      },
      options.values ?? {},
    );
    progress("chart: helm template, then server-side apply to the apiserver");
    const rendered = await step("helmTemplate", () =>
      renderChart({ values, releaseName: RELEASE.name, namespace: RELEASE.namespace }),
    );
    await step("apply", async () => {
      await ensureNamespace(core, RELEASE.namespace);
      await publishRootCa(core, RELEASE.namespace, cp.caPem);
      if (certMode === "provided") {
        await core.createNamespacedSecret({
          namespace: RELEASE.namespace,
          body: {
            metadata: { name: `${RELEASE.name}-e2e-tls` },
            type: "kubernetes.io/tls",
            stringData: { "tls.crt": serving.certPem, "tls.key": serving.keyPem },
          },
        });
      }
      await applyObjects(
        kubeConfig,
        rendered.map((o) => pointWebhookAt(o, webhookUrl)),
      );
    });

    const layout = await detectLayout();
    const { images, files } = localImages({
      webhook: imageRef(WEBHOOK_IMAGE),
      sidecar: imageRef(SIDECAR_IMAGE),
    });
    const kubelet = new TestKubelet({
      kubeConfig,
      logDir: cp.logDir,
      images,
      files,
      layout,
      apiserver: cp.server,
    });

    progress(
      `webhook: running ${replicas} pod(s) of the chart's Deployment with the test kubelet (${layout} layout)`,
    );
    const deployment = rendered.find((o) => o.kind === "Deployment");
    if (deployment === undefined) throw new Error("the chart rendered no Deployment");
    const webhookPods = await step("webhookPods", () =>
      Promise.all(
        ports.map(async (port, i) => {
          const pod = webhookPodFrom(deployment, i, port);
          if (layout === "folders") await useKubeconfigInstead(cp, core, pod);
          await core.createNamespacedPod({ namespace: RELEASE.namespace, body: pod });
          const running = await kubelet.runPod(RELEASE.namespace, pod.metadata?.name ?? "");
          stops.push(async () => {
            await running.stop();
          });
          return running;
        }),
      ),
    );

    const pods: RunningPod[] = [];
    stops.push(async () => {
      for (const pod of pods) await pod.stop();
      // And any pod still starting when stop was called (Ctrl-C in the demo).
      await kubelet.stopAll();
    });
    let stopped: Promise<void> | undefined;
    const stop = (): Promise<void> => (stopped ??= stopAll());
    progress(`ready: control plane ${cp.timings.total} ms, webhook ${timings.webhookPods ?? 0} ms`);
    const env: Environment = {
      cp,
      kubeConfig,
      core,
      aad,
      vault,
      kubelet,
      tenantId,
      mockCaPem,
      rendered,
      webhookPods,
      webhookUrl,
      balancer,
      sidecarImage: imageRef(SIDECAR_IMAGE),
      timings,
      async addWorkload(w) {
        const clientId = w.clientId ?? randomUUID();
        const subject = `system:serviceaccount:${w.namespace}:${w.serviceAccount}`;
        await ensureNamespace(core, w.namespace);
        await core.createNamespacedServiceAccount({
          namespace: w.namespace,
          body: {
            metadata: {
              name: w.serviceAccount,
              annotations: { [ServiceAccountAnnotation.clientId]: clientId },
            },
          },
        });
        aad.addApp(tenantId, {
          clientId,
          federatedCredentials: w.federate === false ? [] : [{ issuer: cp.issuer, subject }],
        });
        if (w.grantVault !== false) vault.grantRole({ principal: clientId });
        return { namespace: w.namespace, serviceAccount: w.serviceAccount, clientId, subject };
      },
      api: (method, path, body) => apiRequest(cp, method, path, body),
      async runPod(namespace, name, runOptions) {
        const pod = await kubelet.runPod(namespace, name, runOptions);
        pods.push(pod);
        return pod;
      },
      async logs() {
        const out = new Map<string, string>();
        for (const name of await readdir(cp.logDir)) {
          out.set(name, await readFile(join(cp.logDir, name), "utf8"));
        }
        return out;
      },
      stop,
      [Symbol.asyncDispose]: stop,
    };
    return env;
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** Merges e2e values with overrides, one level deep per top key (so `webhook: {x}` keeps `webhook.replicas`). */
function mergeValues(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? { ...current, ...value } : value;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Creates a namespace unless it exists (the `kubernetes.io/metadata.name` label is the apiserver's). */
export async function ensureNamespace(core: CoreV1Api, name: string): Promise<void> {
  try {
    await core.createNamespace({ body: { metadata: { name } } });
  } catch (error) {
    if (!isConflict(error)) throw error;
  }
}

function isConflict(error: unknown): boolean {
  return typeof error === "object" && error !== null && "code" in error && error.code === 409;
}

/** What the root-ca-cert-publisher controller does in every namespace. */
async function publishRootCa(core: CoreV1Api, namespace: string, caPem: string): Promise<void> {
  try {
    await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: "kube-root-ca.crt" }, data: { "ca.crt": caPem } },
    });
  } catch (error) {
    if (!isConflict(error)) throw error;
  }
}

/**
 * Server-side applies objects in dependency order (namespaces and RBAC
 * before what uses them, the webhook configuration last), as one field
 * manager, the way `helm install --server-side` or `kubectl apply
 * --server-side` would.
 * @throws the apiserver's refusal, naming the object.
 */
export async function applyObjects(
  kubeConfig: KubeConfig,
  objects: readonly KubeObject[],
  fieldManager = "akv-e2e",
): Promise<void> {
  const client = KubernetesObjectApi.makeApiClient(kubeConfig);
  const order = [
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
  ];
  const rank = (kind: string): number => {
    const i = order.indexOf(kind);
    return i === -1 ? order.length : i;
  };
  const sorted = [...objects].sort((a, b) => rank(a.kind) - rank(b.kind));
  for (const object of sorted) {
    try {
      await client.patch(
        object,
        undefined,
        undefined,
        fieldManager,
        true,
        PatchStrategy.ServerSideApply,
      );
    } catch (cause) {
      const body = (cause as { body?: unknown }).body;
      throw new Error(
        `the apiserver refused ${object.kind} ${object.metadata.name}: ${typeof body === "string" ? body : JSON.stringify(body)}`,
        { cause },
      );
    }
  }
}

/** The rendered webhook configuration with a URL client config (as envtest); other objects unchanged. */
export function pointWebhookAt(object: KubeObject, url: string): KubeObject {
  if (object.kind !== "MutatingWebhookConfiguration") return object;
  const webhooks =
    (object.webhooks as { clientConfig?: { caBundle?: string } }[] | undefined) ?? [];
  return {
    ...object,
    webhooks: webhooks.map((w) => ({
      ...w,
      clientConfig: {
        url,
        ...(w.clientConfig?.caBundle === undefined ? {} : { caBundle: w.clientConfig.caBundle }),
      },
    })),
  };
}

/** The `kube-api-access-*` volume and mount the ServiceAccount admission plugin adds. */
const API_ACCESS_VOLUME = "kube-api-access-e2e";
const API_ACCESS_PATH = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * A pod of the chart's Deployment, as the ReplicaSet controller would make it,
 * with the host-network port rewrite and the ServiceAccount plugin's volume.
 */
export function webhookPodFrom(
  deployment: KubeObject,
  index: number,
  ports: { https: number; health: number },
): V1Pod {
  const template = (deployment.spec as { template: V1Pod }).template;
  const spec = structuredClone(template.spec);
  if (spec === undefined) throw new Error("the Deployment has no pod template spec");
  // The template is a deep copy: change it in place.
  for (const container of spec.containers) {
    for (const port of container.ports ?? []) {
      if (port.name === "health") port.containerPort = ports.health;
      if (port.name === "https") port.containerPort = ports.https;
    }
    const env = container.env ?? [];
    for (const variable of env) {
      if (variable.name === WebhookEnv.port) variable.value = String(ports.https);
      if (variable.name === WebhookEnv.healthPort) variable.value = String(ports.health);
    }
    // In self mode the certificate must also name 127.0.0.1, the host of
    // the URL the apiserver calls here (in a cluster: the Service's names).
    if (env.some((e) => e.name === WebhookEnv.certMode && e.value === "self")) {
      env.push({ name: WebhookEnv.certExtraSans, value: "127.0.0.1" });
    }
    container.env = env;
    container.volumeMounts = [
      ...(container.volumeMounts ?? []),
      { name: API_ACCESS_VOLUME, mountPath: API_ACCESS_PATH, readOnly: true },
    ];
  }
  spec.volumes = [
    ...(spec.volumes ?? []),
    {
      name: API_ACCESS_VOLUME,
      projected: {
        defaultMode: 0o644,
        sources: [
          { serviceAccountToken: { path: "token", expirationSeconds: 3607 } },
          { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
          {
            downwardAPI: {
              items: [
                {
                  path: "namespace",
                  fieldRef: { apiVersion: "v1", fieldPath: "metadata.namespace" },
                },
              ],
            },
          },
        ],
      },
    },
  ];
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: `${deployment.metadata.name}-e2e-${index}`,
      namespace: RELEASE.namespace,
      labels: template.metadata?.labels ?? {},
      annotations: template.metadata?.annotations ?? {},
    },
    spec,
  };
}

/**
 * In the folder layout the in-cluster paths cannot be laid out, so the
 * webhook gets a kubeconfig with its service account's token instead: the
 * same identity, hence the same RBAC.
 */
async function useKubeconfigInstead(cp: ControlPlane, core: CoreV1Api, pod: V1Pod): Promise<void> {
  const sa = pod.spec?.serviceAccountName ?? "default";
  const minted = await core.createNamespacedServiceAccountToken({
    name: sa,
    namespace: RELEASE.namespace,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const dir = join(cp.dir, "webhook-kubeconfig");
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${pod.metadata?.name ?? "webhook"}.yaml`);
  await writeFile(
    path,
    stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "e2e",
          cluster: {
            server: cp.server,
            "certificate-authority-data": Buffer.from(cp.caPem).toString("base64"),
          },
        },
      ],
      users: [{ name: sa, user: { token: minted.status?.token ?? "" } }],
      contexts: [{ name: "e2e", context: { cluster: "e2e", user: sa } }],
      "current-context": "e2e",
    }),
    { mode: 0o644 },
  );
  for (const container of pod.spec?.containers ?? []) {
    container.env = [...(container.env ?? []), { name: WebhookEnv.kubeconfig, value: path }];
  }
}

/** A raw admin request, for what client-node hides: the status of a refusal and the warnings. */
export function apiRequest(
  cp: ControlPlane,
  method: string,
  path: string,
  body?: unknown,
): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = httpsRequest(
      `${cp.server}${path}`,
      {
        method,
        ca: cp.caPem,
        cert: cp.adminCertPem,
        key: cp.adminKeyPem,
        headers: {
          accept: "application/json",
          ...(payload === undefined
            ? {}
            : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }),
        },
        timeout: 30_000,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => {
          const raw = res.headers.warning;
          const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
          resolve({
            status: res.statusCode ?? 0,
            body: text === "" ? undefined : (JSON.parse(text) as unknown),
            warnings: list.flatMap(splitWarnings),
          });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`timeout: ${method} ${path}`)));
    req.on("error", reject);
    req.end(payload);
  });
}

/** `299 - "text", 299 - "more"` → the texts (RFC 7234 warn-text, as the apiserver writes it). */
function splitWarnings(header: string): string[] {
  return [...header.matchAll(/\d{3} \S+ "((?:[^"\\]|\\.)*)"/g)].map((m) =>
    (m[1] ?? "").replace(/\\(.)/g, "$1"),
  );
}
