/**
 * The webhook's settings, parsed once at start-up from an environment record
 * (the names of `WebhookEnv`). Pure: `main.ts` passes `process.env` in, and
 * reads the one file a setting names (the sidecars' extra CA bundle) itself.
 * Every problem is reported at once, each naming its variable, so a broken
 * chart value is fixed in one round trip instead of one per restart.
 *
 * Over 400 lines on purpose: every setting's parser and message sit together, as the chart's values table does, so a new setting is one read of one file.
 */
import { X509Certificate } from "node:crypto";
import { AkvError, ErrorCode } from "../common/errors.ts";
import { ProblemList, UNBOUNDED_PROBLEM_LIMITS } from "../common/problems.ts";
import { isIP } from "node:net";
import {
  CERT_MODES,
  DEFAULT_AUTHORITY_HOST,
  Defaults,
  WebhookEnv,
  type CertMode,
} from "../common/names.ts";
import {
  parseAuthorityHost,
  parseDuration,
  parseFileMode,
  parseRefreshInterval,
  parseTenantId,
  parseVaultSuffixes,
  type VaultSuffix,
} from "../common/refs.ts";

/** A container's `resources`: quantities by resource name. */
export interface ResourceRequirements {
  readonly requests?: Readonly<Record<string, string>>;
  readonly limits?: Readonly<Record<string, string>>;
}

/** What the admission decision needs: everything that shapes the injected spec. */
export interface InjectionSettings {
  /** The sidecar image reference. */
  readonly sidecarImage: string;
  /** The sidecar's `imagePullPolicy`; unset leaves the Kubernetes default. */
  readonly sidecarImagePullPolicy?: PullPolicy;
  /** Allowed vault DNS suffixes / exact hosts, in the configured order. */
  readonly vaultSuffixes: readonly VaultSuffix[];
  /** Default tenant of service accounts without the tenant annotation. */
  readonly tenantId: string;
  /** Entra ID authority host, normalized to `https://host[:port]/`. */
  readonly authorityHost: string;
  /** Default refresh interval in milliseconds. */
  readonly refreshIntervalMs: number;
  /** `sizeLimit` of the `akv-secrets` tmpfs (a Kubernetes quantity). */
  readonly tmpfsSizeLimit: string;
  /** Default permission bits of written files. */
  readonly fileMode: number;
  /** The sidecar container's `resources`. */
  readonly sidecarResources: ResourceRequirements;
  /** PEM text of extra CAs the sidecars trust; set by {@link withSidecarExtraCa}. */
  readonly sidecarExtraCaPem?: string;
  /** The webhook's own namespace, whose pods it never injects (its own must start while it is down). */
  readonly ownNamespace?: string;
  /** Whether every kubelet runs native sidecars; without them `sidecar` mode cannot work. */
  readonly nativeSidecars: boolean;
}

/** Everything the webhook process needs. */
export interface Settings extends InjectionSettings {
  readonly tlsCertFile: string;
  readonly tlsKeyFile: string;
  /** HTTPS port of `POST /mutate`; 0 picks a free port (tests). */
  readonly port: number;
  /** Plain HTTP port of `/healthz`, `/readyz`, `/metrics`; 0 picks a free port. */
  readonly healthPort: number;
  readonly logLevel: LogLevel;
  /** After SIGTERM, how long to keep serving (draining) before closing. */
  readonly shutdownDelayMs: number;
  /** Kubeconfig path; undefined means the in-cluster service account. */
  readonly kubeconfig?: string;
  /** Path of the PEM bundle for the sidecars; `main.ts` reads it into {@link InjectionSettings.sidecarExtraCaPem}. */
  readonly sidecarExtraCaFile?: string;
  /** Where the TLS files come from; `self` needs {@link Settings.selfCerts}. */
  readonly certMode: CertMode;
  /** The `self` mode's settings; present exactly when `certMode` is `self`. */
  readonly selfCerts?: SelfCertSettings;
}

/** What the `self` certificate mode needs (see `self-managed-certs.ts`). */
export interface SelfCertSettings {
  /** The Secret in {@link SelfCertSettings.namespace} that holds the CA and serving certificate. */
  readonly secretName: string;
  readonly webhookConfigName: string;
  readonly serviceName: string;
  /** The webhook's own namespace. */
  readonly namespace: string;
  /** The serving certificate's lifetime. */
  readonly validityMs: number;
  /** Extra subject alternative names: IP addresses or DNS names. */
  readonly extraSans: readonly string[];
}

/** Kubernetes' image pull policies. */
export const PULL_POLICIES = ["Always", "IfNotPresent", "Never"] as const;
/** One of {@link PULL_POLICIES}. */
export type PullPolicy = (typeof PULL_POLICIES)[number];

/** pino's levels. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Defaults of the settings that have one (besides those in `Defaults`). */
export const SettingDefaults = {
  port: 8443,
  healthPort: 8080,
  refreshInterval: "5m",
  certMode: "provided",
  certValidity: "8760h",
  /** Longer than kube-proxy and the endpoint controllers take to drop a terminating pod (about a second). */
  shutdownDelay: "5s",
  /** Measured: the bundled sidecar peaks near 71 MiB fetching 10 secrets; the limit leaves room for large certificates. */
  sidecarResources: {
    requests: { cpu: "10m", memory: "64Mi" },
    limits: { memory: "128Mi" },
  },
} as const;

/** The environment as `process.env` has it. */
export type EnvRecord = Readonly<Record<string, string | undefined>>;

const GUID = /^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$/;
/** A Kubernetes resource quantity: `100m`, `64Mi`, `1.5`, `1e3`. */
const QUANTITY = /^(?:\d+(?:\.\d*)?|\.\d+)(?:Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;
const RESOURCE_NAME = /^[A-Za-z0-9]([A-Za-z0-9./-]*[A-Za-z0-9])?$/;
/** A DNS-1123 label: namespaces and Services. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A DNS-1123 subdomain: Secrets and webhook configurations. */
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
/** A DNS name for a certificate, possibly a wildcard. */
const SAN_DNS =
  /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/**
 * True for a Microsoft Entra client id: a GUID.
 * @example isClientId("4d0e2f2a-7f44-4d9b-9bd8-0e0b8a1f3c11") // true
 */
export function isClientId(text: string): boolean {
  return GUID.test(text);
}

/** True for a Kubernetes resource quantity such as `64Mi` or `100m`. */
export function isQuantity(text: string): boolean {
  return QUANTITY.test(text);
}

/**
 * Collects problems, each as `VARIABLE: expected … (got "value")` or
 * `VARIABLE: is required`; every one, whole (the operator wrote them all).
 */
const newProblems = (): ProblemList => new ProblemList(UNBOUNDED_PROBLEM_LIMITS);

const text = (env: EnvRecord, name: string): string | undefined => {
  const value = env[name]?.trim();
  return value === "" ? undefined : value;
};

function parseInjection(env: EnvRecord, problems: ProblemList): InjectionSettings | undefined {
  const image = text(env, WebhookEnv.sidecarImage);
  if (image === undefined) problems.addFor(WebhookEnv.sidecarImage, "is required");
  else if (/\s/.test(image))
    problems.addExpected(WebhookEnv.sidecarImage, "an image reference without spaces", image);

  const pullText = text(env, WebhookEnv.sidecarImagePullPolicy);
  const pullPolicy = pullText === undefined ? undefined : PULL_POLICIES.find((p) => p === pullText);
  if (pullText !== undefined && pullPolicy === undefined) {
    problems.addExpected(
      WebhookEnv.sidecarImagePullPolicy,
      `one of ${PULL_POLICIES.join(", ")}`,
      pullText,
    );
  }

  const suffixesText = text(env, WebhookEnv.vaultSuffixes);
  const suffixes = parseVaultSuffixes(suffixesText);
  if (!suffixes.ok) problems.addExpected(WebhookEnv.vaultSuffixes, suffixes.expected, suffixesText);

  const tenantText = text(env, WebhookEnv.tenantId);
  const tenant = tenantText === undefined ? undefined : parseTenantId(tenantText);
  if (tenantText === undefined) problems.addFor(WebhookEnv.tenantId, "is required");
  else if (tenant?.ok === false)
    problems.addExpected(WebhookEnv.tenantId, tenant.expected, tenantText);
  const tenantId = tenant?.ok === true ? tenant.value : undefined;

  const authorityText = text(env, WebhookEnv.authorityHost) ?? DEFAULT_AUTHORITY_HOST;
  const authorityHost = parseAuthorityHost(authorityText);
  if (authorityHost === undefined) {
    problems.addExpected(
      WebhookEnv.authorityHost,
      "an https:// URL with no path, query or credentials, like https://login.microsoftonline.com/",
      authorityText,
    );
  }

  const intervalText = text(env, WebhookEnv.refreshInterval) ?? SettingDefaults.refreshInterval;
  const interval = parseRefreshInterval(intervalText);
  if (!interval.ok)
    problems.addExpected(WebhookEnv.refreshInterval, interval.expected, intervalText);

  const sizeLimit = text(env, WebhookEnv.tmpfsSizeLimit) ?? Defaults.tmpfsSizeLimit;
  if (!isQuantity(sizeLimit) || /^[0.]+$/.test(sizeLimit)) {
    problems.addExpected(
      WebhookEnv.tmpfsSizeLimit,
      "a positive Kubernetes quantity like 4Mi",
      sizeLimit,
    );
  }

  const fileModeText = text(env, WebhookEnv.fileMode);
  const fileMode = fileModeText === undefined ? undefined : parseFileMode(fileModeText);
  if (fileMode !== undefined && !fileMode.ok)
    problems.addExpected(WebhookEnv.fileMode, fileMode.expected, fileModeText);

  const ownNamespace = text(env, WebhookEnv.namespace);
  if (ownNamespace !== undefined && !DNS_LABEL.test(ownNamespace))
    problems.addExpected(
      WebhookEnv.namespace,
      "a lower-case DNS label of at most 63 characters",
      ownNamespace,
    );

  const nativeText = text(env, WebhookEnv.nativeSidecars) ?? "true";
  if (nativeText !== "true" && nativeText !== "false")
    problems.addExpected(WebhookEnv.nativeSidecars, "true or false", nativeText);

  const resourcesText = text(env, WebhookEnv.sidecarResources);
  const resources =
    resourcesText === undefined ? SettingDefaults.sidecarResources : parseResources(resourcesText);
  if (typeof resources === "string")
    problems.addExpected(WebhookEnv.sidecarResources, resources, resourcesText);

  if (
    image === undefined ||
    !suffixes.ok ||
    tenantId === undefined ||
    authorityHost === undefined ||
    !interval.ok ||
    typeof resources === "string" ||
    (fileMode !== undefined && !fileMode.ok) ||
    problems.count > 0
  ) {
    return undefined;
  }
  return {
    sidecarImage: image,
    ...(pullPolicy === undefined ? {} : { sidecarImagePullPolicy: pullPolicy }),
    vaultSuffixes: suffixes.value,
    tenantId,
    authorityHost,
    refreshIntervalMs: interval.value,
    tmpfsSizeLimit: sizeLimit,
    fileMode: fileMode?.value ?? Defaults.fileMode,
    sidecarResources: resources,
    ...(ownNamespace === undefined ? {} : { ownNamespace }),
    nativeSidecars: nativeText === "true",
  };
}

/** Parses the resources JSON; returns what is expected when it is wrong. */
function parseResources(json: string): ResourceRequirements | string {
  const expected =
    'JSON like {"requests":{"cpu":"10m","memory":"64Mi"},"limits":{"memory":"128Mi"}}';
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return expected;
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return expected;
  const out: { requests?: Record<string, string>; limits?: Record<string, string> } = {};
  for (const [key, value] of Object.entries(raw)) {
    if (key !== "requests" && key !== "limits")
      return `${expected}; only "requests" and "limits", not "${key}"`;
    if (typeof value !== "object" || value === null || Array.isArray(value)) return expected;
    const quantities: Record<string, string> = {};
    for (const [name, quantity] of Object.entries(value as Record<string, unknown>)) {
      const q = typeof quantity === "number" ? String(quantity) : quantity;
      if (!RESOURCE_NAME.test(name) || typeof q !== "string" || !isQuantity(q)) {
        return `${expected}; "${key}.${name}" is not a resource name with a quantity`;
      }
      quantities[name] = q;
    }
    out[key] = quantities;
  }
  return out;
}

function parsePort(env: EnvRecord, name: string, fallback: number, problems: ProblemList): number {
  const value = text(env, name);
  if (value === undefined) return fallback;
  const port = /^\d{1,5}$/.test(value) ? Number(value) : Number.NaN;
  if (!(port >= 0 && port <= 65535)) {
    problems.addExpected(name, "a port number 0-65535", value);
    return fallback;
  }
  return port;
}

/** The longest drain: the chart's grace period adds the longest admission (30 s) to it. */
const MAX_SHUTDOWN_DELAY_MS = 60_000;

function parseShutdownDelay(env: EnvRecord, problems: ProblemList): number {
  const value = text(env, WebhookEnv.shutdownDelay) ?? SettingDefaults.shutdownDelay;
  // parseDuration takes positive durations only; no drain at all is a choice too.
  if (/^0(?:ms|s|m|h)?$/.test(value)) return 0;
  const delay = parseDuration(value);
  if (!delay.ok || delay.value > MAX_SHUTDOWN_DELAY_MS) {
    problems.addExpected(WebhookEnv.shutdownDelay, "a duration from 0s to 60s", value);
    return 0;
  }
  return delay.value;
}

function fail(problems: ProblemList): never {
  throw new AkvError(
    ErrorCode.SETTINGS_INVALID,
    `invalid webhook settings: ${problems.list().join("; ")}`,
  );
}

/**
 * Parses the settings that shape an injection (no TLS, ports or kubeconfig):
 * what the preview CLI needs.
 * @throws {AkvError} `AKV_SETTINGS_INVALID`, naming every bad variable.
 */
export function parseInjectionSettings(env: EnvRecord): InjectionSettings {
  const problems = newProblems();
  const settings = parseInjection(env, problems);
  if (settings === undefined) fail(problems);
  return Object.freeze(settings);
}

/**
 * Parses every webhook setting from an environment record.
 * @throws {AkvError} `AKV_SETTINGS_INVALID`, naming every bad variable.
 * @example parseSettings({ AZURE_TENANT_ID: "…", AKV_INJECTOR_SIDECAR_IMAGE: "…", AKV_INJECTOR_TLS_CERT_FILE: "…", AKV_INJECTOR_TLS_KEY_FILE: "…" })
 */
export function parseSettings(env: EnvRecord): Settings {
  const problems = newProblems();
  const tlsCertFile = text(env, WebhookEnv.tlsCertFile);
  if (tlsCertFile === undefined) problems.addFor(WebhookEnv.tlsCertFile, "is required");
  const tlsKeyFile = text(env, WebhookEnv.tlsKeyFile);
  if (tlsKeyFile === undefined) problems.addFor(WebhookEnv.tlsKeyFile, "is required");
  const port = parsePort(env, WebhookEnv.port, SettingDefaults.port, problems);
  const healthPort = parsePort(env, WebhookEnv.healthPort, SettingDefaults.healthPort, problems);
  if (port === healthPort && port !== 0) {
    problems.addExpected(
      WebhookEnv.healthPort,
      `a port other than ${WebhookEnv.port}'s`,
      String(healthPort),
    );
  }
  const levelText = text(env, WebhookEnv.logLevel) ?? "info";
  const logLevel = LOG_LEVELS.find((l) => l === levelText);
  if (logLevel === undefined)
    problems.addExpected(WebhookEnv.logLevel, `one of ${LOG_LEVELS.join(", ")}`, levelText);
  const shutdownDelayMs = parseShutdownDelay(env, problems);
  const kubeconfig = text(env, WebhookEnv.kubeconfig);
  const extraCaFile = text(env, WebhookEnv.sidecarExtraCaFile);

  const modeText = text(env, WebhookEnv.certMode) ?? SettingDefaults.certMode;
  const certMode = CERT_MODES.find((m) => m === modeText);
  if (certMode === undefined)
    problems.addExpected(WebhookEnv.certMode, `one of ${CERT_MODES.join(", ")}`, modeText);
  const selfCerts = certMode === "self" ? parseSelfCerts(env, problems) : undefined;

  const injection = parseInjection(env, problems);
  if (
    injection === undefined ||
    tlsCertFile === undefined ||
    tlsKeyFile === undefined ||
    logLevel === undefined ||
    certMode === undefined ||
    problems.count > 0
  ) {
    fail(problems);
  }
  return Object.freeze({
    ...injection,
    tlsCertFile,
    tlsKeyFile,
    port,
    healthPort,
    logLevel,
    shutdownDelayMs,
    ...(kubeconfig === undefined ? {} : { kubeconfig }),
    ...(extraCaFile === undefined ? {} : { sidecarExtraCaFile: extraCaFile }),
    certMode,
    ...(selfCerts === undefined ? {} : { selfCerts: Object.freeze(selfCerts) }),
  });
}

/** The `self` certificate mode's variables; all but validity and extra SANs are required then. */
function parseSelfCerts(env: EnvRecord, problems: ProblemList): SelfCertSettings | undefined {
  const required = (name: string, pattern: RegExp, expected: string): string | undefined => {
    const value = text(env, name);
    if (value === undefined)
      problems.addFor(name, `is required when ${WebhookEnv.certMode} is self`);
    else if (!pattern.test(value)) problems.addExpected(name, expected, value);
    else return value;
    return undefined;
  };
  const subdomain = "a Kubernetes object name (lower-case DNS subdomain)";
  const label = "a lower-case DNS label of at most 63 characters";
  const secretName = required(WebhookEnv.certSecret, DNS_SUBDOMAIN, subdomain);
  const webhookConfigName = required(WebhookEnv.webhookConfigName, DNS_SUBDOMAIN, subdomain);
  const serviceName = required(WebhookEnv.serviceName, DNS_LABEL, label);
  const namespace = required(WebhookEnv.namespace, DNS_LABEL, label);
  const validityText = text(env, WebhookEnv.certValidity) ?? SettingDefaults.certValidity;
  const validity = parseDuration(validityText);
  if (!validity.ok) problems.addExpected(WebhookEnv.certValidity, validity.expected, validityText);
  else if (validity.value < 10_000) {
    problems.addExpected(WebhookEnv.certValidity, "a duration of at least 10s", validityText);
  }
  const sansText = text(env, WebhookEnv.certExtraSans);
  const extraSans = (sansText ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  for (const san of extraSans) {
    if (isIP(san) === 0 && !SAN_DNS.test(san)) {
      problems.addExpected(
        WebhookEnv.certExtraSans,
        `IP addresses or DNS names, not '${san}'`,
        sansText,
      );
    }
  }
  if (
    secretName === undefined ||
    webhookConfigName === undefined ||
    serviceName === undefined ||
    namespace === undefined ||
    !validity.ok
  ) {
    return undefined;
  }
  return {
    secretName,
    webhookConfigName,
    serviceName,
    namespace,
    validityMs: validity.value,
    extraSans,
  };
}

/**
 * Returns the settings with the sidecars' extra CA bundle, after checking that
 * it is PEM certificates: a typo here would break every injected sidecar, so
 * it stops start-up instead.
 * @throws {AkvError} `AKV_SETTINGS_INVALID`, naming `AKV_INJECTOR_SIDECAR_EXTRA_CA_FILE`.
 */
export function withSidecarExtraCa<T extends InjectionSettings>(settings: T, pem: string): T {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const problems = newProblems();
  if (blocks.length === 0) {
    problems.addExpected(WebhookEnv.sidecarExtraCaFile, "a file of PEM certificates, found none");
  }
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch (cause) {
      problems.addExpected(
        WebhookEnv.sidecarExtraCaFile,
        `PEM certificates; certificate ${i + 1} does not parse (${(cause as Error).message})`,
      );
    }
  });
  if (problems.count > 0) fail(problems);
  return Object.freeze({ ...settings, sidecarExtraCaPem: `${blocks.join("\n")}\n` });
}
