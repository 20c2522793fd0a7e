/**
 * Pod annotations + service account + settings → a typed, frozen
 * {@link InjectionConfig}, or every problem at once. Pure.
 *
 * Each problem names the annotation key, the bad value and what is expected
 * (`akv-injector.io/secret-../x: file name must be one path segment …`), since
 * `kubectl` shows it to the user verbatim. Values are parsed here once; the
 * patch builder and the sidecar spec use the typed result, never the strings.
 *
 * One small parser per concern, in `injection-config/`, each stating its
 * precedence; this module runs them in the order their problems are listed
 * and puts the results together. Problems and warnings are each bounded
 * (see `ProblemList`): a pod cannot make the answer large.
 */
import { Annotation, Injected } from "../common/names.ts";
import { ProblemList } from "../common/problems.ts";
import type { SyncSpec } from "../common/spec.ts";
import type { Pod } from "./admission-review.ts";
import { sortAnnotationKeys } from "./injection-config/annotations.ts";
import { parseFileModeAnnotation } from "./injection-config/file-mode.ts";
import { parseFileAnnotations } from "./injection-config/files.ts";
import { parseMetricsPortAnnotation } from "./injection-config/metrics-port.ts";
import { parseNotifyAnnotations, type NotifyConfig } from "./injection-config/notify.ts";
import {
  resolveClientId,
  resolveTenantId,
  type ServiceAccount,
} from "./injection-config/identity.ts";
import { parseModeAnnotation, parseRefreshIntervalAnnotation } from "./injection-config/mode.ts";
import { checkMountClashes, parseMountPathAnnotation } from "./injection-config/mount-path.ts";
import { checkPodConflicts } from "./injection-config/pod-conflicts.ts";
import { parseContainersAnnotation, type TargetContainer } from "./injection-config/targets.ts";
import { parseVaultAnnotation } from "./injection-config/vault.ts";
import type { InjectionSettings } from "./settings.ts";

export type { ServiceAccount } from "./injection-config/identity.ts";
export { checkMountPath } from "./injection-config/mount-path.ts";
export type { TargetContainer } from "./injection-config/targets.ts";

/** Everything the patch needs, checked. */
export interface InjectionConfig {
  /** What the sidecar does; goes into `AKV_INJECTOR_SPEC` as is. */
  readonly spec: SyncSpec;
  /** Where target containers see the files. */
  readonly mountPath: string;
  readonly targets: readonly TargetContainer[];
  /** Precedence: the pod's `akv-injector.io/client-id`, then the service account's annotation. */
  readonly clientId: string;
  /** Precedence: the service account's `azure.workload.identity/tenant-id`, then the webhook's `AZURE_TENANT_ID`. */
  readonly tenantId: string;
  /** The sidecar's Prometheus metrics port (`metrics-port`); absent: no metrics. */
  readonly metricsPort?: number;
  /** The `notify-<container>` annotations; absent: none. */
  readonly notify?: NotifyConfig;
}

/** The result: a config, or every problem; warnings in both cases. */
export type ParsedInjectionConfig =
  | {
      readonly ok: true;
      readonly config: InjectionConfig;
      readonly warnings: readonly string[];
    }
  | {
      readonly ok: false;
      readonly problems: readonly string[];
      readonly warnings: readonly string[];
    };

/**
 * Reads the pod's `akv-injector.io/*` annotations against the service account
 * and settings.
 * @param serviceAccount the pod's service account, which must exist (the caller refuses otherwise).
 */
export function parseInjectionConfig(
  pod: Pod,
  serviceAccount: ServiceAccount,
  settings: InjectionSettings,
): ParsedInjectionConfig {
  const problems = new ProblemList();
  const warnings = new ProblemList();
  const annotations = pod.annotations;

  const fileKeys = sortAnnotationKeys(annotations, problems);
  checkPodConflicts(pod, problems);
  const vaultUrl = parseVaultAnnotation(
    annotations[Annotation.vault],
    settings.vaultSuffixes,
    problems,
  );
  const files = parseFileAnnotations(annotations, fileKeys, problems, {
    suffixes: settings.vaultSuffixes,
    vaultUrl,
    vaultGiven: annotations[Annotation.vault] !== undefined,
  });
  const mountPathText = annotations[Annotation.mountPath];
  const mountPath = parseMountPathAnnotation(mountPathText, problems);
  const targets = parseContainersAnnotation(
    pod,
    annotations[Annotation.containers],
    problems,
    warnings,
  );
  checkMountClashes(pod, targets, mountPath, mountPathText, problems);
  const mode = parseModeAnnotation(
    annotations[Annotation.mode],
    settings.nativeSidecars,
    problems,
    warnings,
  );
  const refreshIntervalMs = parseRefreshIntervalAnnotation(
    annotations[Annotation.refreshInterval],
    mode,
    settings.refreshIntervalMs,
    problems,
    warnings,
  );
  const fileMode = parseFileModeAnnotation(
    annotations[Annotation.fileMode],
    settings.fileMode,
    pod.fsGroup,
    problems,
    warnings,
  );
  const metricsPort = parseMetricsPortAnnotation(
    annotations[Annotation.metricsPort],
    pod,
    mode,
    problems,
  );
  const notify = parseNotifyAnnotations(pod, annotations, targets, mode, problems);
  const clientId = resolveClientId(pod, serviceAccount, problems);
  const tenantId = resolveTenantId(pod, serviceAccount, settings.tenantId, problems);

  if (problems.count > 0 || clientId === undefined) {
    return { ok: false, problems: problems.list(), warnings: warnings.list() };
  }
  const spec: SyncSpec = {
    ...(vaultUrl === undefined ? {} : { vaultUrl }),
    files,
    mode,
    refreshIntervalMs,
    fileMode,
    outputDir: Injected.sidecarOutputDir,
  };
  return {
    ok: true,
    config: freezeConfig({
      spec,
      mountPath,
      targets,
      clientId,
      tenantId,
      ...(metricsPort === undefined ? {} : { metricsPort }),
      ...(notify.targets.length === 0 ? {} : { notify }),
    }),
    warnings: warnings.list(),
  };
}

/** Freezes the config all the way down, along its known shape (cheaper than a generic walk). */
function freezeConfig(config: InjectionConfig): InjectionConfig {
  for (const file of config.spec.files) {
    if (file.source.kind === "secret") Object.freeze(file.source.ref);
    else {
      for (const part of file.source.parts) {
        if ("secret" in part) Object.freeze(part.secret);
        Object.freeze(part);
      }
      Object.freeze(file.source.parts);
    }
    Object.freeze(file.source);
    Object.freeze(file);
  }
  Object.freeze(config.spec.files);
  Object.freeze(config.spec);
  for (const target of config.targets) Object.freeze(target);
  if (config.notify !== undefined) {
    for (const t of config.notify.targets) Object.freeze(Object.freeze(t).action);
    Object.freeze(config.notify.targets);
    Object.freeze(config.notify.signalled);
    Object.freeze(config.notify);
  }
  Object.freeze(config.targets);
  return Object.freeze(config);
}
