/**
 * Pod annotations + service account + settings → a typed, frozen
 * {@link InjectionConfig}, or every problem at once. Pure.
 *
 * Each problem names the annotation key, the bad value and what is expected
 * (`akv-injector.io/secret-../x: file name must be one path segment …`), since
 * `kubectl` shows it to the user verbatim. Values are parsed here once; the
 * patch builder and the sidecar spec use the typed result, never the strings.
 */
import {
  Annotation,
  Defaults,
  FORMATS,
  FileAnnotationPrefix,
  INJECT_LABEL,
  Injected,
  MODES,
  PREFIX,
  STATUS_ANNOTATION,
  ServiceAccountAnnotation,
  WebhookEnv,
  type Mode,
} from "../common/names.ts";
import {
  formatDuration,
  formatFileMode,
  parseFileMode,
  parseFileName,
  parseRefreshInterval,
  parseSecretRef,
  parseTemplate,
  resolveVaultUrl,
} from "../common/refs.ts";
import { ProblemList } from "../common/problems.ts";
import type { FileSpec, SyncSpec } from "../common/spec.ts";
import type { Pod } from "./admission-review.ts";
import { findForbiddenMounts, findSystemMountPath, findWindowsPod } from "./pod-rules.ts";
import { isClientId, isTenantId, type InjectionSettings } from "./settings.ts";

/** What the webhook reads of a service account. */
export interface ServiceAccount {
  readonly metadata?: {
    readonly name?: string | undefined;
    readonly namespace?: string | undefined;
    readonly annotations?: Readonly<Record<string, string>> | undefined;
  };
}

/** A container that gets the read-only mount, by position in the pod as it was received. */
export interface TargetContainer {
  readonly list: "containers" | "initContainers";
  readonly index: number;
  readonly name: string;
}

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

const MAX_SHOWN_VALUE = 100;

/** Every fixed annotation key, for "unknown annotation" messages. */
const FIXED_KEYS: ReadonlySet<string> = new Set(Object.values(Annotation));
const KNOWN_KEYS = `${[...FIXED_KEYS].join(", ")}, and ${Object.values(FileAnnotationPrefix)
  .map((p) => `${p}<file>`)
  .join(", ")}`;

const show = (value: string): string =>
  JSON.stringify(value.length > MAX_SHOWN_VALUE ? `${value.slice(0, MAX_SHOWN_VALUE)}…` : value);

/** Problems and warnings, each bounded (see {@link ProblemList}): a pod cannot make the answer large. */
class Findings {
  readonly problems = new ProblemList();
  readonly warnings = new ProblemList();
  /** `key: expected (got "value")`; `value` undefined when the key itself is what is wrong. */
  problem(key: string, expected: string, value?: string): void {
    this.problems.add(
      () => `${showKey(key)}: ${expected}${value === undefined ? "" : ` (got ${show(value)})`}`,
    );
  }
  warn(key: string, text: string): void {
    this.warnings.add(() => `${showKey(key)}: ${text}`);
  }
}

/** Annotation keys reach 317 characters; a service-account label is longer but ours. */
const showKey = (key: string): string =>
  key.length > MAX_SHOWN_VALUE ? `${key.slice(0, MAX_SHOWN_VALUE)}…` : key;

/** A file being written, and the annotation that asked for it (for duplicate messages). */
interface FileEntry {
  readonly key: string;
  readonly spec: FileSpec;
}

const splitList = (value: string): string[] =>
  value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");

/**
 * Checks a `mount-path`: absolute, normalized, not `/`.
 * @example checkMountPath("/mnt/secrets") // undefined (fine)
 */
export function checkMountPath(path: string): string | undefined {
  const expected = "an absolute directory like /mnt/secrets, without '.' or '..' segments";
  if (!path.startsWith("/") || path === "/") return expected;
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  const control = /[\u0000-\u001f\u007f]/.test(path);
  if (control || path.length > 1024) return expected;
  const normalized = path.replace(/\/$/, "");
  const segments = normalized.split("/").slice(1);
  if (segments.some((s) => s === "" || s === "." || s === "..")) return expected;
  const system = findSystemMountPath(normalized);
  return system === undefined ? undefined : `${expected}; this one ${system}`;
}

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
  const f = new Findings();
  const a = pod.annotations;
  const saName = `${pod.namespace}/${serviceAccount.metadata?.name ?? pod.serviceAccountName}`;

  // Sort the per-file keys so the spec (and the patch) do not depend on map order.
  const secretKeys: string[] = [];
  const templateKeys: string[] = [];
  const formatKeys: string[] = [];
  let unknown = 0;
  for (const key of Object.keys(a).sort()) {
    if (!key.startsWith(PREFIX)) continue;
    if (key.startsWith(FileAnnotationPrefix.secret)) secretKeys.push(key);
    else if (key.startsWith(FileAnnotationPrefix.template)) templateKeys.push(key);
    else if (key.startsWith(FileAnnotationPrefix.format)) formatKeys.push(key);
    else if (!FIXED_KEYS.has(key)) {
      // The list of known keys once, however many keys are unknown.
      const hint =
        key === INJECT_LABEL
          ? ` (${INJECT_LABEL} is a pod label, not an annotation)`
          : unknown === 0
            ? ` (known: ${KNOWN_KEYS})`
            : "";
      unknown++;
      f.problem(key, `unknown annotation${hint}`);
    }
  }

  // A copied spec of an injected pod, minus the status annotation, would get a second sidecar.
  for (const volume of [Injected.secretsVolume, Injected.tokenVolume]) {
    if (pod.volumeNames.includes(volume)) {
      f.problem(
        "spec.volumes",
        `the pod already has a volume "${volume}", a name akv-injector reserves`,
      );
    }
  }
  // The volumes exist only after the patch, so the apiserver's validation would accept
  // a mount of them: an app container would get the federated token the contract keeps
  // in the sidecar alone, or write where only the sidecar writes.
  for (const list of ["initContainers", "containers"] as const) {
    for (const p of findForbiddenMounts(list, pod[list])) f.problem(p.field, p.text);
  }
  const windows = findWindowsPod(pod);
  if (windows !== undefined) f.problem(windows.field, windows.text);
  if ([...pod.containers, ...pod.initContainers].some((c) => c.name === Injected.containerName)) {
    f.problem(
      "spec",
      `the pod already has a container "${Injected.containerName}", a name akv-injector reserves`,
    );
  }

  const status = a[STATUS_ANNOTATION];
  if (status !== undefined) {
    f.problem(STATUS_ANNOTATION, "is written by the webhook only; remove it", status);
  }

  // vault
  const vaultText = a[Annotation.vault];
  let vaultUrl: string | undefined;
  if (vaultText === undefined) {
    f.problem(Annotation.vault, "is required: a vault name like myvault or an https:// vault URL");
  } else {
    const vault = resolveVaultUrl(vaultText, settings.vaultSuffixes);
    if (vault.ok) vaultUrl = vault.value;
    else f.problem(Annotation.vault, `expected ${vault.expected}`, vaultText);
  }

  // files
  const files = new Map<string, FileEntry>();
  const addFile = (key: string, spec: FileSpec): void => {
    const other = files.get(spec.file);
    if (other === undefined) files.set(spec.file, { key, spec });
    else if (other.key === key) {
      f.problem(key, `file "${spec.file}" is named twice`, a[key]);
    } else {
      f.problem(key, `file "${spec.file}" is also written by ${other.key}`, a[key]);
    }
  };
  const secretsText = a[Annotation.secrets];
  if (secretsText !== undefined) {
    const items = splitList(secretsText);
    if (items.length === 0) {
      f.problem(
        Annotation.secrets,
        "expected a comma-separated list of NAME[/VERSION]",
        secretsText,
      );
    }
    for (const item of items) {
      const ref = parseSecretRef(item);
      if (!ref.ok) f.problem(Annotation.secrets, `expected ${ref.expected}`, item);
      else
        addFile(Annotation.secrets, {
          file: ref.value.name,
          format: "raw",
          source: { kind: "secret", ref: ref.value },
        });
    }
  }
  const fileOf = (key: string, prefix: string): string | undefined => {
    const name = key.slice(prefix.length);
    const parsed = parseFileName(name);
    if (parsed.ok) return parsed.value;
    f.problem(key, parsed.expected, name);
    return undefined;
  };
  for (const key of secretKeys) {
    const file = fileOf(key, FileAnnotationPrefix.secret);
    const value = a[key] ?? "";
    const ref = parseSecretRef(value);
    if (!ref.ok) f.problem(key, `expected ${ref.expected}`, value);
    if (file !== undefined && ref.ok) {
      addFile(key, { file, format: "raw", source: { kind: "secret", ref: ref.value } });
    }
  }
  for (const key of templateKeys) {
    const file = fileOf(key, FileAnnotationPrefix.template);
    const template = parseTemplate(a[key] ?? "");
    // The parser's message already quotes the offending action; the whole template may be long.
    if (!template.ok) f.problem(key, `expected ${template.expected}`);
    if (file !== undefined && template.ok) {
      addFile(key, { file, format: "raw", source: { kind: "template", parts: template.value } });
    }
  }
  if (secretsText === undefined && secretKeys.length === 0 && templateKeys.length === 0) {
    f.problem(
      Annotation.secrets,
      `at least one of ${Annotation.secrets}, ${FileAnnotationPrefix.secret}<file> or ${FileAnnotationPrefix.template}<file> is required`,
    );
  }
  for (const key of formatKeys) {
    const file = fileOf(key, FileAnnotationPrefix.format);
    const value = a[key] ?? "";
    const format = FORMATS.find((x) => x === value);
    if (format === undefined) {
      f.problem(key, `expected one of ${FORMATS.join(", ")}`, value);
      continue;
    }
    if (file === undefined) continue;
    const entry = files.get(file);
    if (entry === undefined) {
      f.problem(
        key,
        `no file "${file}" is written by ${Annotation.secrets}, ${FileAnnotationPrefix.secret}${file} or ${FileAnnotationPrefix.template}${file}`,
      );
    } else if (entry.spec.source.kind === "template" && format !== "raw") {
      f.problem(key, "a template is always written raw", value);
    } else {
      files.set(file, { key: entry.key, spec: { ...entry.spec, format } });
    }
  }

  // mount path: a second mount at the same path is refused by the apiserver later, less clearly.
  const mountPathText = a[Annotation.mountPath];
  let mountPath: string = Defaults.mountPath;
  if (mountPathText !== undefined) {
    const expected = checkMountPath(mountPathText.trim());
    if (expected === undefined) mountPath = mountPathText.trim().replace(/(.)\/$/, "$1");
    else f.problem(Annotation.mountPath, `expected ${expected}`, mountPathText);
  }

  // targets
  const targets = parseTargets(pod, a[Annotation.containers], f);
  for (const target of targets) {
    const container = pod[target.list][target.index];
    const clash = container?.volumeMounts?.find(
      (m) => m.mountPath.replace(/(.)\/$/, "$1") === mountPath,
    );
    if (clash !== undefined) {
      f.problem(
        Annotation.mountPath,
        `container "${target.name}" already mounts volume "${clash.name}" at ${mountPath}; choose another directory`,
        mountPathText ?? mountPath,
      );
    }
  }

  // mode and refresh interval
  const mode = parseMode(a[Annotation.mode], settings.nativeSidecars, f);
  const intervalText = a[Annotation.refreshInterval];
  let refreshIntervalMs = settings.refreshIntervalMs;
  if (intervalText !== undefined) {
    const interval = parseRefreshInterval(intervalText);
    if (!interval.ok) {
      f.problem(Annotation.refreshInterval, `expected ${interval.expected}`, intervalText);
    } else {
      refreshIntervalMs = interval.value;
      if (mode === "init") {
        f.warn(Annotation.refreshInterval, "is ignored in init mode, which syncs once");
      } else if (interval.value < Defaults.minQuietRefreshIntervalMs) {
        f.warn(
          Annotation.refreshInterval,
          `${formatDuration(interval.value)} is under ${formatDuration(Defaults.minQuietRefreshIntervalMs)}: every refresh reads each secret from Key Vault, which throttles busy vaults`,
        );
      }
    }
  }

  // file mode
  const fileModeText = a[Annotation.fileMode];
  let fileMode = settings.fileMode;
  if (fileModeText !== undefined) {
    const parsed = parseFileMode(fileModeText);
    if (parsed.ok) fileMode = parsed.value;
    else f.problem(Annotation.fileMode, `expected ${parsed.expected}`, fileModeText);
  }
  // The sidecar's user owns the files; an app running as another user reads
  // them through "other", or through the group when the pod sets fsGroup.
  if ((fileMode & 0o004) === 0 && pod.fsGroup === undefined) {
    f.warn(
      Annotation.fileMode,
      `${formatFileMode(fileMode)} closes the files to other users and the pod sets no securityContext.fsGroup: only containers running as user ${Injected.sidecarUser} can read them`,
    );
  }

  // identity: the pod's client id overrides the service account's; the tenant comes from the
  // service account or the webhook's settings, never from the pod.
  const saAnnotations = serviceAccount.metadata?.annotations ?? {};
  let clientId: string | undefined;
  const podClientId = a[Annotation.clientId];
  const saClientId = saAnnotations[ServiceAccountAnnotation.clientId];
  if (podClientId !== undefined) {
    if (isClientId(podClientId.trim())) clientId = podClientId.trim();
    else f.problem(Annotation.clientId, "expected a client id (a GUID)", podClientId);
  } else if (saClientId !== undefined && saClientId.trim() !== "") {
    if (isClientId(saClientId.trim())) clientId = saClientId.trim();
    else {
      f.problem(
        `service account ${saName} annotation ${ServiceAccountAnnotation.clientId}`,
        "expected a client id (a GUID)",
        saClientId,
      );
    }
  } else {
    f.problem(
      Annotation.clientId,
      `no client id: annotate service account ${saName} with ${ServiceAccountAnnotation.clientId}, or the pod with ${Annotation.clientId}`,
    );
  }
  let tenantId = settings.tenantId;
  const saTenantId = saAnnotations[ServiceAccountAnnotation.tenantId];
  if (saTenantId !== undefined && saTenantId.trim() !== "") {
    if (isTenantId(saTenantId.trim())) tenantId = saTenantId.trim();
    else {
      f.problem(
        `service account ${saName} annotation ${ServiceAccountAnnotation.tenantId}`,
        "expected a tenant id (a GUID or a domain name)",
        saTenantId,
      );
    }
  }

  if (f.problems.count > 0 || vaultUrl === undefined || clientId === undefined) {
    return { ok: false, problems: f.problems.list(), warnings: f.warnings.list() };
  }
  const spec: SyncSpec = {
    vaultUrl,
    files: [...files.values()].map((e) => e.spec),
    mode,
    refreshIntervalMs,
    fileMode,
    outputDir: Injected.sidecarOutputDir,
  };
  return {
    ok: true,
    config: freezeConfig({ spec, mountPath, targets, clientId, tenantId }),
    warnings: f.warnings.list(),
  };
}

/**
 * The `mode` annotation. Without native sidecars on every kubelet, a
 * `sidecar` (an init container with `restartPolicy: Always`) would run as a
 * plain init container that never exits, and the pod would never start: the
 * default becomes `init`, and an explicit `sidecar` is refused.
 */
function parseMode(text: string | undefined, nativeSidecars: boolean, f: Findings): Mode {
  const why = `this cluster's kubelets may predate native sidecars (the webhook's ${WebhookEnv.nativeSidecars} is false)`;
  if (text === undefined) {
    if (nativeSidecars) return Defaults.mode;
    f.warn(
      Annotation.mode,
      `init: ${why}, so the files are written once, before the app starts, and not refreshed`,
    );
    return "init";
  }
  const mode = MODES.find((x) => x === text.trim());
  if (mode === undefined) f.problem(Annotation.mode, `expected ${MODES.join(" or ")}`, text);
  else if (mode === "sidecar" && !nativeSidecars)
    f.problem(Annotation.mode, `expected init: ${why}`, text);
  return mode ?? Defaults.mode;
}

/** The `containers` annotation, or all containers and init containers. */
function parseTargets(pod: Pod, text: string | undefined, f: Findings): TargetContainer[] {
  const all: TargetContainer[] = [
    ...pod.initContainers.map((c, index) => ({
      list: "initContainers" as const,
      index,
      name: c.name,
    })),
    ...pod.containers.map((c, index) => ({ list: "containers" as const, index, name: c.name })),
  ];
  if (text === undefined) return all;
  const names = [...new Set(splitList(text))];
  if (names.length === 0) {
    f.problem(Annotation.containers, "expected a comma-separated list of container names", text);
    return [];
  }
  const targets: TargetContainer[] = [];
  for (const name of names) {
    const target = all.find((t) => t.name === name);
    if (target !== undefined) targets.push(target);
    else if (name === Injected.containerName) {
      f.problem(Annotation.containers, `"${name}" is the injected container itself`, text);
    } else {
      const have = all.map((t) => t.name).join(", ");
      f.problem(
        Annotation.containers,
        `the pod has no container "${name}" (it has: ${have})`,
        text,
      );
    }
  }
  if (targets.length > 0 && targets.every((t) => t.list === "initContainers")) {
    f.warn(
      Annotation.containers,
      "names no app container, so only init containers see the secrets",
    );
  }
  return targets;
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
  Object.freeze(config.targets);
  return Object.freeze(config);
}
