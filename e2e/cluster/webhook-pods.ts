/**
 * The webhook as the chart's Deployment runs it, so that its env, volumes,
 * user, service account and RBAC are the chart's and a chart change shows up
 * here. Each change made to the rendered template is there because this is
 * one machine and not a cluster:
 * - pods share the host network, so each pod gets free ports (its env and
 *   container ports are rewritten together);
 * - no controller-manager: the pods are made from the Deployment's template
 *   here, and the `kube-api-access` volume the ServiceAccount admission
 *   plugin would add is added here (envtest turns that plugin off, since
 *   nothing creates the `default` service accounts it insists on);
 * - in `self` mode the certificate must also name 127.0.0.1, the host of the
 *   URL the apiserver calls;
 * - in the folder layout, where in-cluster paths cannot be laid out, the
 *   webhook reads a kubeconfig with its own service account's token.
 */
import type { CoreV1Api, V1Pod } from "@kubernetes/client-node";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";
import type { KubeObject } from "../../charts/helm.ts";
import { WebhookEnv } from "../../common/names.ts";
import { freePort } from "../host/network.ts";
import type { RunningPod } from "../kubelet/kubelet.ts";
import type { LayoutKind } from "../kubelet/layout.ts";
import type { ControlPlane } from "./control-plane.ts";
import type { Environment } from "./environment.ts";
import { RELEASE } from "./release.ts";

/** The ports of one webhook pod on this machine (8443 and 8080 in a cluster). */
export interface WebhookPorts {
  readonly https: number;
  readonly health: number;
}

/** Free ports for each of `replicas` webhook pods. */
export function freeWebhookPorts(replicas: number): Promise<WebhookPorts[]> {
  return Promise.all(
    Array.from({ length: replicas }, async () => ({
      https: await freePort(),
      health: await freePort(),
    })),
  );
}

/**
 * What running the webhook's pods takes: the parts of the environment started
 * so far (the Deployment is in `rendered`), and each pod's ports.
 */
export interface WebhookPodsInput extends Pick<
  Environment,
  "cp" | "core" | "kubelet" | "rendered"
> {
  readonly layout: LayoutKind;
  /** One entry per pod. */
  readonly ports: readonly WebhookPorts[];
  /** Called as each pod is running, so it is stopped with the rest even if another fails. */
  readonly onRunning: (pod: RunningPod) => void;
}

/** Stores one pod per entry of `ports` and runs them with the test kubelet, together. */
export async function runWebhookPods(input: WebhookPodsInput): Promise<RunningPod[]> {
  const { cp, core, kubelet } = input;
  const deployment = input.rendered.find((o) => o.kind === "Deployment");
  if (deployment === undefined) throw new Error("the chart rendered no Deployment");
  return Promise.all(
    input.ports.map(async (port, i) => {
      const pod = webhookPodFrom(deployment, i, port);
      if (input.layout === "folders") await useKubeconfigInstead(cp, core, pod);
      await core.createNamespacedPod({ namespace: RELEASE.namespace, body: pod });
      const running = await kubelet.runPod(RELEASE.namespace, pod.metadata?.name ?? "");
      input.onRunning(running);
      return running;
    }),
  );
}

/** The `kube-api-access-*` volume and mount the ServiceAccount admission plugin adds. */
const API_ACCESS_VOLUME = "kube-api-access-e2e";
const API_ACCESS_PATH = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * A pod of the chart's Deployment, as the ReplicaSet controller would make it,
 * with the host-network port rewrite and the ServiceAccount plugin's volume.
 */
export function webhookPodFrom(deployment: KubeObject, index: number, ports: WebhookPorts): V1Pod {
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
