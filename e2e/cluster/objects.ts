/**
 * Objects put into the apiserver the way a cluster would have them, because
 * this control plane has no controller-manager and no Helm release: the
 * rendered chart applied server-side, namespaces, and the `kube-root-ca.crt`
 * a controller publishes. Also used by the chart and kind tests, which apply
 * objects without the rest of the installation.
 */
import {
  KubernetesObjectApi,
  PatchStrategy,
  type CoreV1Api,
  type KubeConfig,
} from "@kubernetes/client-node";
import type { KubeObject } from "../../charts/helm.ts";

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
export async function publishRootCa(
  core: CoreV1Api,
  namespace: string,
  caPem: string,
): Promise<void> {
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
