/**
 * A pod spec read once into what running it takes: per container its image,
 * user and groups, mounts, environment and command, decided here as the
 * kubelet decides them (security context precedence, `runAsNonRoot`, the
 * downward API), so that the sandboxes and the pod runner only carry it out.
 */
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { KubeletError, type ImageSpec, type KubeletOptions } from "./api.ts";

export interface MountPlan {
  readonly volume: string;
  readonly mountPath: string;
  readonly subPath: string | undefined;
  readonly readOnly: boolean;
}

export interface ContainerPlan {
  readonly name: string;
  readonly spec: V1Container;
  readonly init: boolean;
  /** `restartPolicy: Always` init container: a native sidecar. */
  readonly sidecar: boolean;
  readonly image: ImageSpec | undefined;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  /** fsGroup and supplementalGroups: the container's extra groups. */
  readonly groups: readonly number[];
  readonly readOnlyRoot: boolean;
  readonly mounts: readonly MountPlan[];
  readonly env: Readonly<Record<string, string>>;
  readonly workingDir: string;
}

/** The node name the downward API reports. */
export const NODE_NAME = "akv-e2e-node";

/** `PATH` of a container whose image sets none, and of the sandbox's own commands. */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Every container of the pod, init containers first, in the order they start. */
export function planContainers(pod: V1Pod, options: KubeletOptions): ContainerPlan[] {
  const spec = pod.spec;
  if (spec === undefined) throw new KubeletError("pod has no spec");
  const podSecurity = spec.securityContext ?? {};
  const plan = (container: V1Container, init: boolean): ContainerPlan => {
    const image = options.images[container.image ?? ""];
    const security = container.securityContext ?? {};
    const uid = security.runAsUser ?? podSecurity.runAsUser ?? image?.user;
    const gid = security.runAsGroup ?? podSecurity.runAsGroup ?? uid;
    const runAsNonRoot = security.runAsNonRoot ?? podSecurity.runAsNonRoot ?? false;
    if (image !== undefined && runAsNonRoot && (uid === undefined || uid === 0)) {
      // The kubelet's own check: CreateContainerConfigError.
      throw new KubeletError(
        `container ${container.name} has runAsNonRoot and its image will run as root`,
      );
    }
    return {
      name: container.name,
      spec: container,
      init,
      sidecar: init && container.restartPolicy === "Always",
      image,
      uid,
      gid,
      groups: [
        ...(podSecurity.fsGroup === undefined ? [] : [podSecurity.fsGroup]),
        ...(podSecurity.supplementalGroups ?? []),
      ],
      readOnlyRoot: security.readOnlyRootFilesystem ?? false,
      mounts: (container.volumeMounts ?? []).map((m) => ({
        volume: m.name,
        mountPath: m.mountPath,
        subPath: m.subPath,
        readOnly: m.readOnly ?? false,
      })),
      env: containerEnv(pod, container, image, options.apiserver),
      workingDir: container.workingDir ?? image?.workingDir ?? "/",
    };
  };
  return [
    ...(spec.initContainers ?? []).map((c) => plan(c, true)),
    ...spec.containers.map((c) => plan(c, false)),
  ];
}

/** The words of a command with image paths replaced by files of this machine ({@link KubeletOptions.files}). */
export function mapImageFiles(words: readonly string[], files: KubeletOptions["files"]): string[] {
  return words.map((word) => files[word] ?? word);
}

/** The command a container of a known image runs, mapped to this machine. */
export function containerCommand(plan: ContainerPlan, files: KubeletOptions["files"]): string[] {
  const image = plan.image;
  if (image === undefined) throw new Error("no image");
  // Kubernetes: `command` replaces ENTRYPOINT; `args` replace CMD.
  const command = plan.spec.command ?? image.entrypoint;
  const args = plan.spec.args ?? [];
  return mapImageFiles([...command, ...args], files);
}

/** The pod fields the downward API (env and volumes) can expose here. */
export function podFields(pod: V1Pod): Record<string, string | undefined> {
  return {
    "metadata.name": pod.metadata?.name,
    "metadata.namespace": pod.metadata?.namespace,
    "metadata.uid": pod.metadata?.uid,
    "spec.serviceAccountName": pod.spec?.serviceAccountName,
    "spec.nodeName": NODE_NAME,
    "status.podIP": "127.0.0.1",
    "status.hostIP": "127.0.0.1",
  };
}

function containerEnv(
  pod: V1Pod,
  container: V1Container,
  image: ImageSpec | undefined,
  apiserver: string | undefined,
): Record<string, string> {
  const env: Record<string, string> = {
    PATH: DEFAULT_PATH,
    ...image?.env,
    HOSTNAME: pod.metadata?.name ?? "",
  };
  if (apiserver !== undefined) {
    // What the kubelet sets for the `kubernetes` Service in every container.
    const url = new URL(apiserver);
    env.KUBERNETES_SERVICE_HOST = url.hostname;
    env.KUBERNETES_SERVICE_PORT = url.port || "443";
    env.KUBERNETES_SERVICE_PORT_HTTPS = env.KUBERNETES_SERVICE_PORT;
  }
  const fields = podFields(pod);
  for (const variable of container.env ?? []) {
    if (variable.valueFrom === undefined) {
      env[variable.name] = variable.value ?? "";
      continue;
    }
    const path = variable.valueFrom.fieldRef?.fieldPath;
    const value = path === undefined ? undefined : fields[path];
    if (value === undefined) {
      throw new KubeletError(
        `container ${container.name}: env ${variable.name}: the test kubelet supports values and fieldRef (${Object.keys(fields).join(", ")})`,
      );
    }
    env[variable.name] = value;
  }
  return env;
}
