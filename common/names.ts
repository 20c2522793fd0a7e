/**
 * Every name of akv-injector's public surface, in one place: the label, the
 * annotations, what the webhook injects, and the environment of each process.
 * The README's tables are checked against this module by a test, so the docs
 * and the code cannot drift. Formats and defaults are in each entry's comment;
 * the rules that check them live in `refs.ts` and the webhook's parser.
 */

/** Prefix of every label and annotation we own. */
export const PREFIX = "akv-injector.io/";

/** The opt-in pod label; the webhook's `objectSelector` matches only `"true"`. */
export const INJECT_LABEL = "akv-injector.io/inject";

/** The pod annotation that marks a pod as done; a pod that has it is not injected again (target containers added since get the mount). */
export const STATUS_ANNOTATION = "akv-injector.io/status";

/** The only value the webhook writes into {@link STATUS_ANNOTATION}. */
export const STATUS_INJECTED = "injected";

/** Service-account annotations, the same keys as Azure Workload Identity's. */
export const ServiceAccountAnnotation = {
  /** The user-assigned managed identity's client id (a GUID). Required unless the pod sets `client-id`. */
  clientId: "azure.workload.identity/client-id",
  /** Optional tenant id (a GUID); else the webhook's `AZURE_TENANT_ID`. */
  tenantId: "azure.workload.identity/tenant-id",
} as const;

/**
 * Pod annotations with one fixed key each (prefix {@link PREFIX}). The three
 * per-file families are in {@link FileAnnotationPrefix}.
 */
export const Annotation = {
  /** Vault name (`myvault` → `https://myvault.vault.azure.net`, suffix from the first dotted entry of the allowed suffixes) or a full `https://` vault URL: where refs `NAME[/VERSION]` read. Required unless every ref is an object identifier. */
  vault: "akv-injector.io/vault",
  /** Comma-separated refs: `NAME[/VERSION]` or object identifiers `https://<vault>/<secrets|certificates|keys>/NAME[/VERSION]` (a certificate's leaf or a key's public part as PEM); each is written to `<mount-path>/NAME`. */
  secrets: "akv-injector.io/secrets",
  /** Absolute directory where files appear in every target container. Default `/mnt/secrets`. */
  mountPath: "akv-injector.io/mount-path",
  /** Comma-separated container names that get the mount. Default: all containers and init containers. */
  containers: "akv-injector.io/containers",
  /** `sidecar` (native sidecar that refreshes) or `init` (one-shot init container). Default `sidecar`. */
  mode: "akv-injector.io/mode",
  /** Go-style duration (`90s`, `5m`, `1h`) between refreshes in `sidecar` mode. Default: the chart's, 5m. */
  refreshInterval: "akv-injector.io/refresh-interval",
  /** Octal permission of written files, e.g. `0640`. Default `0644`. */
  fileMode: "akv-injector.io/file-mode",
  /** Overrides the service account's client id. */
  clientId: "akv-injector.io/client-id",
  /**
   * Port (1024-65535) on which the sidecar serves Prometheus metrics at
   * `/metrics`; not a port a container of the pod declares; `sidecar` mode
   * only. Default: unset, no metrics (nothing listens, nothing is loaded).
   */
  metricsPort: "akv-injector.io/metrics-port",
  /** Written by the webhook only: see {@link STATUS_ANNOTATION}. */
  status: STATUS_ANNOTATION,
} as const;

/** Per-file annotation families: the key is the prefix followed by a file name. */
export const FileAnnotationPrefix = {
  /** `secret-<file>`: one ref (`NAME[/VERSION]` or an object identifier) written to `<mount-path>/<file>`. */
  secret: "akv-injector.io/secret-",
  /** `template-<file>`: text rendered to `<mount-path>/<file>`; `{{ secret "REF" }}` substitutes a secret's value (REF as in `secret-<file>`, secrets only). */
  template: "akv-injector.io/template-",
  /** `format-<file>`: one of {@link FORMATS}; default `raw`; a certificate or key identifier's file takes `raw` only (it is PEM already). */
  format: "akv-injector.io/format-",
} as const;

/**
 * Per-container annotation families: the key is the prefix followed by the
 * name of a container of the pod.
 */
export const ContainerAnnotationPrefix = {
  /**
   * `notify-<container>`: how the sidecar tells that container the set of
   * files changed (not after the first sync): `http://localhost:<port>/<path>`
   * (also `127.0.0.1`, `[::1]`; loopback `http` only) gets a POST of
   * {@link NOTIFY_BODY_FIELDS}; `signal:<NAME>` (one of {@link NOTIFY_SIGNALS})
   * goes to the container's main process, which takes
   * `spec.shareProcessNamespace: true` and an explicit non-root `runAsUser`
   * and explicit `runAsGroup` (the sidecar runs as them).
   * The container must get the mount; `sidecar` mode only. Default: unset,
   * no notification.
   */
  notify: "akv-injector.io/notify-",
} as const;

/**
 * The signals `notify-<container>` may send: HUP (the reload convention of
 * nginx, HAProxy, Prometheus, sshd), USR1 and USR2 (the app's choice), TERM
 * (stop, for the kubelet to restart the container with the new files). Not
 * KILL or STOP (no handler can act on the new files), not INT or QUIT (a
 * terminal's, QUIT dumps core in the JVM and Go runtimes).
 */
export const NOTIFY_SIGNALS = ["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGTERM"] as const;
/** One of {@link NOTIFY_SIGNALS}. */
export type NotifySignal = (typeof NOTIFY_SIGNALS)[number];

/** The fields of the JSON body an HTTP notification POSTs: never a value. */
export const NOTIFY_BODY_FIELDS = ["files", "syncTime"] as const;

/** How a secret's value becomes a file's content. */
export const FORMATS = ["raw", "pem", "cert", "key", "base64-decode"] as const;
/** One of {@link FORMATS}. */
export type Format = (typeof FORMATS)[number];

/** The two injection modes. */
export const MODES = ["sidecar", "init"] as const;
/** One of {@link MODES}. */
export type Mode = (typeof MODES)[number];

/** Defaults of the pod annotations that have one. */
export const Defaults = {
  /** Default of `mount-path`. */
  mountPath: "/mnt/secrets",
  /** Default of `mode`. */
  mode: "sidecar",
  /** Default of `format-<file>`. */
  format: "raw",
  /** Default of `file-mode`. */
  fileMode: 0o644,
  /** Default refresh interval in milliseconds when the chart sets none (5m). */
  refreshIntervalMs: 5 * 60_000,
  /** Refresh intervals under this are refused, by the webhook and by the sidecar's spec parser alike. */
  minRefreshIntervalMs: 1000,
  /**
   * Refresh intervals over this (480h, 20 days) are refused likewise: Node's
   * timers hold at most 2^31-1 ms (24.8 days) and fire after 1 ms beyond it,
   * which would turn the sidecar into a tight loop against Key Vault; the
   * margin covers the sidecar's ±10% jitter.
   */
  maxRefreshIntervalMs: 480 * 3_600_000,
  /** Refresh intervals under this are allowed with an admission warning. */
  minQuietRefreshIntervalMs: 30_000,
  /** Default `sizeLimit` of the `akv-secrets` tmpfs. */
  tmpfsSizeLimit: "4Mi",
} as const;

const SIDECAR_SECRETS_PATH = "/var/run/akv-injector/secrets";
const FILES_SUB_PATH = "files";

/** What the webhook injects into a pod. */
export const Injected = {
  /** The sidecar container's name; always the first init container. */
  containerName: "akv-injector",
  /** The in-memory `emptyDir` that holds the written files. */
  secretsVolume: "akv-secrets",
  /** Where the sidecar mounts {@link Injected.secretsVolume} read-write (its own path, whatever `mount-path` is). */
  sidecarSecretsPath: SIDECAR_SECRETS_PATH,
  /**
   * The folder inside {@link Injected.secretsVolume} that holds the published
   * set (`..data`, the timestamped folders, the visible links); app containers
   * mount this folder (`subPath`), never the volume's root. The kubelet mounts
   * a Memory `emptyDir` with a sticky, world-writable root (1777), and nodes
   * with `fs.protected_symlinks=1` (systemd's default) let nobody but a link's
   * owner follow a link there; in a folder the sidecar owns (0755) every uid
   * may follow them.
   */
  filesSubPath: FILES_SUB_PATH,
  /** Where the sidecar publishes: {@link Injected.filesSubPath} under its own mount of the volume. */
  sidecarOutputDir: `${SIDECAR_SECRETS_PATH}/${FILES_SUB_PATH}`,
  /**
   * The sidecar's status file (JSON: last successful sync, each file's Key
   * Vault versions, the last error, consecutive failures; never a value),
   * published with the files: `<mount-path>/..status.json`, a link into
   * `..data` like every file. A user's file name may not start with `..`
   * (`parseFileName`), so no file can take this name, and the writer's own
   * clean-up leaves `..` names alone.
   */
  statusFile: "..status.json",
  /** The projected service-account token volume; mounted in the sidecar alone. */
  tokenVolume: "akv-injector-token",
  /** Where the sidecar mounts {@link Injected.tokenVolume}, read-only. */
  tokenMountPath: "/var/run/secrets/akv-injector/token",
  /** The token's file name inside {@link Injected.tokenVolume}. */
  tokenPath: "azure-identity-token",
  /** The token's full path, the sidecar's `AZURE_FEDERATED_TOKEN_FILE`. */
  tokenFile: "/var/run/secrets/akv-injector/token/azure-identity-token",
  /** The audience of the projected token (what Entra ID expects for workload identity federation). */
  tokenAudience: "api://AzureADTokenExchange",
  /** The projected token's requested lifetime. */
  tokenExpirationSeconds: 3600,
  /**
   * The sidecar image's entrypoint (distroless Node: node, then our bundle).
   * The webhook sets only `args`; the exec startup probe needs the full command.
   * Node flags go in the image's `NODE_OPTIONS` (Dockerfile.sidecar), which the
   * probe's exec inherits, rather than here.
   */
  sidecarEntrypoint: ["/nodejs/bin/node", "/app/sidecar.mjs"],
  /** The sidecar's args: one sync loop (`sidecar` mode) or one sync (`init` mode), as the spec says. */
  sidecarRunArgs: ["run"],
  /** The sidecar's numeric user and group: distroless's `nonroot`, numeric so the kubelet can verify `runAsNonRoot`. */
  sidecarUser: 65532,
  /** Appended to the entrypoint for the startup probe: exits 0 once the first sync was published. */
  sidecarProbeArgs: ["probe"],
  /** The name of the sidecar's container port for its metrics, when `metrics-port` is set. */
  metricsPortName: "akv-metrics",
  /**
   * Set to the container's name in each container that `notify-<container>`
   * signals: the sidecar finds the container's main process in the shared
   * PID namespace by it (in `/proc/<pid>/environ`).
   */
  containerEnv: "AKV_INJECTOR_CONTAINER",
} as const;

/** Environment of the sidecar process, as the webhook sets it. */
export const SidecarEnv = {
  /** The managed identity's client id. */
  clientId: "AZURE_CLIENT_ID",
  /** The Entra tenant id. */
  tenantId: "AZURE_TENANT_ID",
  /** The projected service-account token's path, read afresh for every exchange. */
  federatedTokenFile: "AZURE_FEDERATED_TOKEN_FILE",
  /** Entra ID authority host, e.g. `https://login.microsoftonline.com/`. */
  authorityHost: "AZURE_AUTHORITY_HOST",
  /** The sync spec as JSON (see `spec.ts`): vault, files (an identifier's ref with its vault), mode, interval, file mode, output directory. */
  spec: "AKV_INJECTOR_SPEC",
  /** The webhook's allowed vault suffixes; an exact-host entry turns challenge resource verification off for that host. */
  vaultSuffixes: "AKV_INJECTOR_VAULT_SUFFIXES",
  /** Optional PEM bundle of extra CA certificates to trust (a private CA in front of AAD or Key Vault). */
  extraCaCerts: "AKV_INJECTOR_EXTRA_CA_CERTS",
  /** pino log level; default `info`. */
  logLevel: "AKV_INJECTOR_LOG_LEVEL",
  /** The `metrics-port` annotation's port: serve Prometheus metrics there. Unset: no metrics. */
  metricsPort: "AKV_INJECTOR_METRICS_PORT",
  /**
   * The `notify-<container>` annotations as JSON, `[{"container":"app","target":"http://localhost:8080/reload"}]`,
   * each target as the annotation has it (checked again by the sidecar). Unset: no notification.
   */
  notify: "AKV_INJECTOR_NOTIFY",
} as const;

/** Environment of the webhook process (the chart sets it). */
export const WebhookEnv = {
  /** PEM serving certificate (chain) file; reloaded when it changes. */
  tlsCertFile: "AKV_INJECTOR_TLS_CERT_FILE",
  /** PEM private key file; reloaded when it changes. */
  tlsKeyFile: "AKV_INJECTOR_TLS_KEY_FILE",
  /** HTTPS port of `POST /mutate`. Default 8443. */
  port: "AKV_INJECTOR_PORT",
  /** Plain HTTP port of `/healthz`, `/readyz`, `/metrics`. Default 8080. */
  healthPort: "AKV_INJECTOR_HEALTH_PORT",
  /** The sidecar image reference. Required. */
  sidecarImage: "AKV_INJECTOR_SIDECAR_IMAGE",
  /** Optional `imagePullPolicy` of the injected sidecar (`Always`, `IfNotPresent`, `Never`); unset leaves the Kubernetes default. */
  sidecarImagePullPolicy: "AKV_INJECTOR_SIDECAR_IMAGE_PULL_POLICY",
  /** Comma list of allowed vault DNS suffixes; a leading dot matches subdomains, none matches that host exactly. Default: Azure public, China and US Government. */
  vaultSuffixes: "AKV_INJECTOR_VAULT_SUFFIXES",
  /** Default tenant id for service accounts without the tenant annotation. Required. */
  tenantId: "AZURE_TENANT_ID",
  /** Entra ID authority host. Default `https://login.microsoftonline.com/`. */
  authorityHost: "AZURE_AUTHORITY_HOST",
  /** Default refresh interval (Go-style duration). Default `5m`. */
  refreshInterval: "AKV_INJECTOR_REFRESH_INTERVAL",
  /** `sizeLimit` of the `akv-secrets` tmpfs (a Kubernetes quantity). Default `4Mi`. */
  tmpfsSizeLimit: "AKV_INJECTOR_TMPFS_SIZE_LIMIT",
  /** Default file mode (octal). Default `0644`. */
  fileMode: "AKV_INJECTOR_FILE_MODE",
  /** The sidecar's `resources` as JSON (`{"requests":{…},"limits":{…}}`). */
  sidecarResources: "AKV_INJECTOR_SIDECAR_RESOURCES",
  /** Optional path to a PEM bundle the sidecars should trust too; passed to them as `AKV_INJECTOR_EXTRA_CA_CERTS`. */
  sidecarExtraCaFile: "AKV_INJECTOR_SIDECAR_EXTRA_CA_FILE",
  /** pino log level; default `info`. */
  logLevel: "AKV_INJECTOR_LOG_LEVEL",
  /**
   * After SIGTERM, how long the webhook keeps serving before it stops
   * listening (a Go-style duration from `0s` to `60s`): unready, and every
   * answer closing its connection, so that the Service's endpoints and the
   * apiserver's keep-alive connections move to other replicas first.
   * Default `5s`.
   */
  shutdownDelay: "AKV_INJECTOR_SHUTDOWN_DELAY",
  /**
   * `true` when every node's kubelet runs native sidecars (on by default
   * from Kubernetes 1.29; the chart sets it from the apiserver's version,
   * 1.32 or later, since kubelets may be three minor versions older).
   * `false`: pods without `akv-injector.io/mode` get `init` mode with a
   * warning, and `mode: sidecar` is refused. Default `true`.
   */
  nativeSidecars: "AKV_INJECTOR_NATIVE_SIDECARS",
  /**
   * One of {@link CERT_MODES}. `self`: the webhook makes, stores (in
   * {@link WebhookEnv.certSecret}) and renews its CA and serving certificate,
   * writes them to the two TLS files and the CA into its webhook configuration;
   * needs the `self`-mode settings below. `cert-manager` and `provided`: it
   * serves the TLS files as mounted. Default `provided`.
   */
  certMode: "AKV_INJECTOR_CERT_MODE",
  /** `self` mode: name of the Secret in {@link WebhookEnv.namespace} that holds the CA and serving certificate all replicas share. Required in `self` mode. */
  certSecret: "AKV_INJECTOR_CERT_SECRET",
  /** `self` mode: name of the MutatingWebhookConfiguration whose every webhook gets the CA as `caBundle`. Required in `self` mode. */
  webhookConfigName: "AKV_INJECTOR_WEBHOOK_CONFIG_NAME",
  /** `self` mode: the webhook's Service name; the certificate's DNS names are `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`. Required in `self` mode. */
  serviceName: "AKV_INJECTOR_SERVICE_NAME",
  /** The webhook's own namespace (the chart sets it from the downward API): pods there, as in kube-system and kube-public, are refused. Required in `self` mode. */
  namespace: "AKV_INJECTOR_NAMESPACE",
  /** `self` mode: the serving certificate's lifetime, a Go-style duration; it is renewed at two thirds of it. Default `8760h` (a year). */
  certValidity: "AKV_INJECTOR_CERT_VALIDITY",
  /** `self` mode: optional comma list of extra subject alternative names; IP addresses become IP SANs, others DNS SANs (e.g. `127.0.0.1` for a URL webhook in tests). */
  certExtraSans: "AKV_INJECTOR_CERT_EXTRA_SANS",
  /** Kubeconfig path; else the in-cluster service account. */
  kubeconfig: "KUBECONFIG",
} as const;

/** How the webhook gets its serving certificate: the chart's `certificates.mode`, passed as `AKV_INJECTOR_CERT_MODE`. */
export const CERT_MODES = ["self", "cert-manager", "provided"] as const;
/** One of {@link CERT_MODES}. */
export type CertMode = (typeof CERT_MODES)[number];

/**
 * Key Vault of each Azure cloud: its DNS suffix and the resource its bearer
 * challenge names (the token's audience).
 */
export const AZURE_KEY_VAULTS = [
  { suffix: ".vault.azure.net", resource: "https://vault.azure.net" },
  { suffix: ".vault.azure.cn", resource: "https://vault.azure.cn" },
  { suffix: ".vault.usgovcloudapi.net", resource: "https://vault.usgovcloudapi.net" },
] as const;

/** Key Vault DNS suffixes of the Azure clouds; the default of `AKV_INJECTOR_VAULT_SUFFIXES`. */
export const AZURE_VAULT_SUFFIXES: readonly string[] = AZURE_KEY_VAULTS.map((v) => v.suffix);

/** Microsoft Entra authority hosts; any other host turns MSAL instance discovery off. */
export const ENTRA_AUTHORITY_HOSTS = [
  "login.microsoftonline.com",
  "login.microsoftonline.us",
  "login.chinacloudapi.cn",
  "login.partner.microsoftonline.cn",
] as const;

/** Default `AZURE_AUTHORITY_HOST`. */
export const DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com/";
