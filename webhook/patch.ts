/**
 * Pod + config + settings → RFC 6902 operations that inject exactly the spec
 * of the contract. Pure: no I/O, no clock, the same input gives the same
 * patch.
 *
 * JSON Patch has two traps, both handled here: `add` cannot append to an array
 * (or add under an object) that does not exist, so a missing one is added
 * whole; and `~` and `/` in keys must be escaped (`~0`, `~1`), which matters
 * for every annotation key (`akv-injector.io/status`).
 */
import { Injected, STATUS_ANNOTATION, STATUS_INJECTED, SidecarEnv } from "../common/names.ts";
import { encodeNotifyTargets } from "../common/notify.ts";
import { encodeSpec } from "../common/spec.ts";
import type { Pod } from "./admission-review.ts";
import type { InjectionConfig, TargetContainer } from "./injection-config.ts";
import type { InjectionSettings } from "./settings.ts";

/** One RFC 6902 operation; the webhook only ever adds. */
export interface PatchOperation {
  readonly op: "add";
  readonly path: string;
  readonly value: unknown;
}

/** The sidecar's user, which owns the files it writes. */
export const SIDECAR_USER = Injected.sidecarUser;
/**
 * Startup-probe budget: one check a second, so the first sync may take up to
 * five minutes (slow token exchange, throttled vault, retries) before the
 * kubelet restarts the sidecar.
 */
export const STARTUP_PROBE = { periodSeconds: 1, failureThreshold: 300 } as const;

/** Escapes one JSON Pointer segment (RFC 6901): `~` → `~0`, `/` → `~1`. */
export function escapePointer(segment: string): string {
  return segment.replaceAll("~", "~0").replaceAll("/", "~1");
}

/** The `akv-injector` container. */
export function buildSidecarContainer(
  config: InjectionConfig,
  settings: InjectionSettings,
): Record<string, unknown> {
  const env: { readonly name: string; readonly value: string }[] = [
    { name: SidecarEnv.clientId, value: config.clientId },
    { name: SidecarEnv.tenantId, value: config.tenantId },
    { name: SidecarEnv.federatedTokenFile, value: Injected.tokenFile },
    { name: SidecarEnv.authorityHost, value: settings.authorityHost },
    { name: SidecarEnv.spec, value: encodeSpec(config.spec) },
    {
      name: SidecarEnv.vaultSuffixes,
      value: settings.vaultSuffixes.map((s) => s.value).join(","),
    },
  ];
  if (settings.sidecarExtraCaPem !== undefined) {
    env.push({ name: SidecarEnv.extraCaCerts, value: settings.sidecarExtraCaPem });
  }
  if (config.metricsPort !== undefined) {
    env.push({ name: SidecarEnv.metricsPort, value: String(config.metricsPort) });
  }
  if (config.notify !== undefined) {
    env.push({ name: SidecarEnv.notify, value: encodeNotifyTargets(config.notify.targets) });
  }
  const container: Record<string, unknown> = {
    name: Injected.containerName,
    image: settings.sidecarImage,
    ...(settings.sidecarImagePullPolicy === undefined
      ? {}
      : { imagePullPolicy: settings.sidecarImagePullPolicy }),
    args: [...Injected.sidecarRunArgs],
    env,
    // Declared, so a PodMonitor can name it and `kubectl port-forward` finds it.
    ...(config.metricsPort === undefined
      ? {}
      : {
          ports: [
            { name: Injected.metricsPortName, containerPort: config.metricsPort, protocol: "TCP" },
          ],
        }),
    resources: settings.sidecarResources,
    volumeMounts: [
      { name: Injected.secretsVolume, mountPath: Injected.sidecarSecretsPath },
      { name: Injected.tokenVolume, mountPath: Injected.tokenMountPath, readOnly: true },
    ],
    securityContext: {
      runAsNonRoot: true,
      // A signalled app's user and group: Linux lets a process signal, and
      // read the environment of, its own user's (and group's) processes
      // without a capability (notify.ts checked the user is not root).
      runAsUser: config.notify?.sidecarUser ?? SIDECAR_USER,
      runAsGroup: config.notify?.sidecarGroup ?? SIDECAR_USER,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    },
    // The sidecar's last log lines say why a sync failed (AADSTS code, vault status).
    terminationMessagePolicy: "FallbackToLogsOnError",
  };
  if (config.spec.mode === "sidecar") {
    container.restartPolicy = "Always";
    container.startupProbe = {
      exec: { command: [...Injected.sidecarEntrypoint, ...Injected.sidecarProbeArgs] },
      ...STARTUP_PROBE,
    };
  }
  return container;
}

/** The two volumes: the tmpfs for the files, the projected token for the sidecar. */
export function buildVolumes(settings: InjectionSettings): Record<string, unknown>[] {
  return [
    {
      name: Injected.secretsVolume,
      emptyDir: { medium: "Memory", sizeLimit: settings.tmpfsSizeLimit },
    },
    {
      name: Injected.tokenVolume,
      projected: {
        sources: [
          {
            serviceAccountToken: {
              audience: Injected.tokenAudience,
              expirationSeconds: Injected.tokenExpirationSeconds,
              path: Injected.tokenPath,
            },
          },
        ],
      },
    },
  ];
}

/** The read-only mount of the volume's `files` folder that every target container gets. */
export function buildTargetMount(mountPath: string): Record<string, unknown> {
  return {
    name: Injected.secretsVolume,
    mountPath,
    subPath: Injected.filesSubPath,
    readOnly: true,
  };
}

/** Adds the target mount to each target container, by its index in `pod` as received. */
export function buildMountOperations(
  pod: Pod,
  targets: readonly TargetContainer[],
  mountPath: string,
): PatchOperation[] {
  const mount = buildTargetMount(mountPath);
  return targets.map((target) => {
    const base = `/spec/${target.list}/${String(target.index)}/volumeMounts`;
    return pod[target.list][target.index]?.volumeMounts === undefined
      ? { op: "add", path: base, value: [mount] }
      : { op: "add", path: `${base}/-`, value: mount };
  });
}

/**
 * Adds {@link Injected.containerEnv} to each signalled container, by its
 * index in `pod` as received: the sidecar finds the container's main
 * process by it in the shared PID namespace.
 */
export function buildMarkerOperations(
  pod: Pod,
  signalled: readonly TargetContainer[],
): PatchOperation[] {
  return signalled.map((target) => {
    const marker = { name: Injected.containerEnv, value: target.name };
    const base = `/spec/${target.list}/${String(target.index)}/env`;
    return pod[target.list][target.index]?.hasEnv === true
      ? { op: "add", path: `${base}/-`, value: marker }
      : { op: "add", path: base, value: [marker] };
  });
}

/**
 * The operations that inject `config` into `pod`. Target mounts are added
 * before the sidecar is inserted at `/spec/initContainers/0`, so the indices
 * of existing init containers are still those the pod was received with.
 */
export function buildPatch(
  pod: Pod,
  config: InjectionConfig,
  settings: InjectionSettings,
): PatchOperation[] {
  const ops: PatchOperation[] = [];
  const add = (path: string, value: unknown): void => {
    ops.push({ op: "add", path, value });
  };

  if (!pod.has.metadata)
    add("/metadata", { annotations: { [STATUS_ANNOTATION]: STATUS_INJECTED } });
  else if (!pod.has.annotations)
    add("/metadata/annotations", { [STATUS_ANNOTATION]: STATUS_INJECTED });
  else add(`/metadata/annotations/${escapePointer(STATUS_ANNOTATION)}`, STATUS_INJECTED);

  const volumes = buildVolumes(settings);
  if (!pod.has.volumes) add("/spec/volumes", volumes);
  else for (const volume of volumes) add("/spec/volumes/-", volume);

  ops.push(...buildMountOperations(pod, config.targets, config.mountPath));
  ops.push(...buildMarkerOperations(pod, config.notify?.signalled ?? []));

  const sidecar = buildSidecarContainer(config, settings);
  if (!pod.has.initContainers) add("/spec/initContainers", [sidecar]);
  else add("/spec/initContainers/0", sidecar);
  return ops;
}
