/**
 * Rules about the pod itself, apart from its annotations: where it may run,
 * which of its mounts would break the contract, and which folders the
 * secrets may not cover. Pure; each rule says what is wrong in words that
 * `kubectl` shows as they are.
 */
import { Injected } from "../common/names.ts";
import { OS_LABEL, type Pod, type PodContainer } from "./admission-review.ts";

/** A problem with a place in the pod: the field, and what is wrong. */
export interface PodProblem {
  readonly field: string;
  readonly text: string;
}

/**
 * Why the pod runs on Windows, or undefined. The sidecar is a Linux image
 * with a Linux security context; the apiserver would refuse such a pod later
 * with errors that never name akv-injector.
 */
export function findWindowsPod(pod: Pick<Pod, "os">): PodProblem | undefined {
  const why = (field: string, value: string): PodProblem => ({
    field,
    text: `the pod runs on Windows (${value}), and akv-injector's sidecar runs on Linux nodes only; remove the label akv-injector.io/inject from this pod`,
  });
  if (pod.os.name === "windows") return why("spec.os.name", `spec.os.name: windows`);
  if (pod.os.nodeSelector === "windows") return why("spec.nodeSelector", `${OS_LABEL}: windows`);
  const terms = pod.os.affinityTerms;
  if (terms.length > 0 && terms.every((t) => t !== undefined && !t.includes("linux"))) {
    return why(
      "spec.affinity.nodeAffinity",
      `required node affinity ${OS_LABEL} in [${[...new Set(terms.flat())].join(", ")}]`,
    );
  }
  return undefined;
}

/**
 * Whether the webhook injected this pod: it has the sidecar and the secrets
 * volume. The sidecar is an init container, which cannot change once the pod
 * exists (its labels and annotations can, so they prove nothing).
 */
export function isInjectedPod(pod: Pick<Pod, "initContainers" | "volumeNames">): boolean {
  return (
    pod.volumeNames.includes(Injected.secretsVolume) &&
    pod.initContainers.some((c) => c.name === Injected.containerName)
  );
}

/**
 * Mounts of akv-injector's volumes that the pod may not have: the token
 * volume anywhere (it is the sidecar's alone), and the secrets volume
 * read-write (only the sidecar writes: a container that could plant a folder
 * at a file's name would break every later publish). Checked for containers
 * the pod brings, ephemeral containers, and containers another webhook adds.
 * @param list the pod field the containers come from, for the message.
 * @returns one at a time: a hostile pod has tens of thousands, and the
 * caller keeps only the first few (a list of them all was most of the
 * memory such a pod cost).
 */
export function* findForbiddenMounts(
  list: string,
  containers: readonly PodContainer[],
): Generator<PodProblem, void, undefined> {
  for (const [i, c] of containers.entries()) {
    if (c.name === Injected.containerName) continue;
    for (const m of c.volumeMounts ?? []) {
      if (m.name === Injected.tokenVolume) {
        yield {
          field: `spec.${list}[${String(i)}].volumeMounts`,
          text: `container "${c.name}" mounts volume "${Injected.tokenVolume}", which only the injected sidecar may mount`,
        };
      } else if (m.name === Injected.secretsVolume && !m.readOnly) {
        yield {
          field: `spec.${list}[${String(i)}].volumeMounts`,
          text: `container "${c.name}" mounts volume "${Injected.secretsVolume}" read-write, and only the injected sidecar writes to it: set readOnly: true, or leave the mount to akv-injector.io/containers`,
        };
      }
    }
  }
}

/** Folders the secrets may not cover: the system's, the kernel's, and Kubernetes' own. */
const SYSTEM_TREES = [
  "/proc",
  "/sys",
  "/dev",
  "/var/run/secrets/kubernetes.io",
  "/run/secrets/kubernetes.io",
];
const SYSTEM_FOLDERS = [
  "/bin",
  "/boot",
  "/etc",
  "/lib",
  "/lib32",
  "/lib64",
  "/libx32",
  "/root",
  "/run",
  "/sbin",
  "/usr",
  "/var",
  "/var/lib",
  "/var/run",
  "/var/run/secrets",
  "/run/secrets",
];

/**
 * Why a normalized absolute `mount-path` would cover a folder of the system,
 * or undefined. Mounting over `/etc` or `/usr` hides what the app's image
 * needs to run; anything under `/proc`, `/sys`, `/dev` or the service-account
 * token folder is the kernel's or Kubernetes'. A folder of one's own below a
 * system folder (`/etc/app/secrets`) is fine.
 * @example findSystemMountPath("/etc") // "covers the system folder /etc"
 */
export function findSystemMountPath(path: string): string | undefined {
  const tree = SYSTEM_TREES.find((t) => path === t || path.startsWith(`${t}/`));
  if (tree !== undefined) return `is inside ${tree}, which belongs to the kernel or to Kubernetes`;
  if (SYSTEM_FOLDERS.includes(path))
    return `covers the system folder ${path}, which the app's image needs`;
  return undefined;
}

/** Namespaces of the cluster itself, never injected (the Vault injector's rule too). */
const SYSTEM_NAMESPACES = ["kube-system", "kube-public"];

/**
 * Why pods of this namespace are never injected, or undefined. The chart
 * keeps them from the webhook already (`namespaceSelector`); this holds
 * whatever the webhook configuration says.
 */
export function findReservedNamespace(
  namespace: string,
  ownNamespace: string | undefined,
): string | undefined {
  if (SYSTEM_NAMESPACES.includes(namespace))
    return `akv-injector does not inject pods in ${namespace}, the cluster's own namespace; run the app in a namespace of its own`;
  if (namespace === ownNamespace)
    return `akv-injector does not inject pods in its own namespace ${namespace}: its webhook pods start there while it is down`;
  return undefined;
}
