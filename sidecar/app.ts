/**
 * The sidecar's `run` command, wired: configuration → trusted CAs → logger →
 * credential → Key Vault source → sync loop. It takes the environment, a stop
 * signal and a log destination as arguments, so tests (and the bench) run it
 * in-process; only main.ts touches `process`.
 *
 * main.ts imports this module lazily: the startup probe must not pay for
 * loading the Azure SDKs.
 */
import type { TokenCredential } from "@azure/core-auth";
import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import { getCACertificates, setDefaultCACertificates } from "node:tls";
import type { DestinationStream } from "pino";
import { createLogger, type Logger } from "../common/logger.ts";
import { listVaults } from "../common/spec.ts";
import { publishFiles, readVolumeBytes, writeStatus } from "./atomic-writer.ts";
import { parseSidecarConfig, type SidecarConfig, type SidecarEnvRecord } from "./config.ts";
import { createCredential, withSharedTokenRequests, withTokenPrefetch } from "./credential.ts";
import { createKeyVaultSource } from "./key-vault-source.ts";
import type { SidecarMetrics } from "./metrics.ts";
import type { Notifier, NotifyTuning } from "./notifier.ts";
import type { SignalDeps } from "./notify-deliver.ts";
import type { CertsApi } from "./render.ts";
import type { SecretSource } from "./secret-source.ts";
import { createVaultSources } from "./vault-sources.ts";
import {
  runSyncLoop,
  systemClock,
  type Clock,
  type SyncObserver,
  type Tuning,
} from "./sync-loop.ts";

/** Options of {@link runSidecar}. */
export interface RunOptions {
  readonly env: SidecarEnvRecord;
  /** Aborts on SIGTERM: the loop stops promptly, in-flight reads are cancelled. */
  readonly signal: AbortSignal;
  /** Default stdout. */
  readonly logDestination?: DestinationStream;
  readonly clock?: Clock;
  readonly tuning?: Partial<Tuning>;
  /** How `signal:` notifications reach processes (main.ts: `/proc`, `process.kill`); unset, they fail. */
  readonly signals?: SignalDeps;
  readonly notifyTuning?: Partial<NotifyTuning>;
}

/**
 * Parses the configuration and runs the spec's mode to its end.
 * @throws {AkvError} `SIDECAR_CONFIG_INVALID` before anything is logged (the
 *   caller prints it), or the sync loop's fatal error (already logged).
 */
export async function runSidecar(options: RunOptions): Promise<void> {
  const config = parseSidecarConfig(options.env);
  trustExtraCas(config);
  const logger = createLogger({
    name: "akv-injector-sidecar",
    level: config.logLevel,
    destination: options.logDestination,
  });
  try {
    await runWithLogger(config, logger, options);
  } finally {
    logger.flush();
  }
}

async function runWithLogger(
  config: SidecarConfig,
  logger: Logger,
  options: RunOptions,
): Promise<void> {
  const clock = options.clock ?? systemClock;
  const { spec } = config;
  // Read once: the volume is mounted before the container starts and keeps its size.
  const volumeBytes = readVolumeBytes(spec.outputDir);
  logger.info(
    {
      event: "start",
      vault: spec.vaultUrl,
      vaults: listVaults(spec),
      mode: spec.mode,
      files: spec.files.map((f) => f.file),
      refreshIntervalMs: spec.refreshIntervalMs,
      volumeBytes,
      clientId: config.clientId,
      tenantId: config.tenantId,
      authorityHost: config.authorityHost,
      instanceDiscovery: !config.disableInstanceDiscovery,
      unverifiedVaults: [...config.unverifiedVaults],
    },
    "starting",
  );
  const metrics = await startMetrics(config, logger);
  const entra = createCredential({
    tenantId: config.tenantId,
    clientId: config.clientId,
    tokenFile: config.tokenFile,
    authorityHost: config.authorityHost,
    disableInstanceDiscovery: config.disableInstanceDiscovery,
    // Synchronous: a projected token is a small file on a tmpfs, and the
    // sidecar's only async file read would start the libuv threadpool.
    readFile: (path) => Promise.resolve(readFileSync(path, "utf8")),
    now: () => clock.now(),
  });
  const credential = withTokenPrefetch(
    withSharedTokenRequests(metrics === undefined ? entra : metrics.countTokenRequests(entra)),
    config.tenantId,
  );
  const sourceOptions = (vaultUrl: string) => ({
    vaultUrl,
    credential,
    prefetchToken: (scope: string) => {
      credential.prefetch(scope);
    },
    clientId: config.clientId,
    disableChallengeResourceVerification: config.unverifiedVaults.has(vaultUrl),
    now: () => clock.now(),
  });
  const keyVault = createVaultSources(spec.vaultUrl, async (vaultUrl, kind) => {
    if (kind === "secret") return createKeyVaultSource(sourceOptions(vaultUrl));
    // Its own chunk: a secrets-only sidecar never loads these clients.
    const objects = await import("./object-sources.ts");
    return kind === "certificate"
      ? objects.createCertificateSource(sourceOptions(vaultUrl))
      : objects.createKeySource(sourceOptions(vaultUrl));
  });
  const source = metrics === undefined ? keyVault : metrics.countSourceRequests(keyVault);
  const notifier = await startNotifier(config, logger, options, metrics?.observer);
  try {
    await runSyncLoop(
      {
        spec,
        source,
        publish: (files, status) =>
          publishFiles(spec.outputDir, files, {
            mode: spec.fileMode,
            now: new Date(clock.now()),
            status,
          }),
        writeStatus: (status) => writeStatus(spec.outputDir, status),
        loadCerts: async (): Promise<CertsApi> => import("../certs/index.ts"),
        clock,
        random: Math.random,
        logger,
        maxOutputBytes: volumeBytes,
        ...(metrics === undefined ? {} : { observer: metrics.observer }),
        ...(notifier === undefined
          ? {}
          : {
              onChanged: (change) => {
                notifier.changed(change);
              },
            }),
        ...(options.tuning === undefined ? {} : { tuning: options.tuning }),
      },
      options.signal,
    );
  } catch (error) {
    const e = error as Error & { code?: string; status?: number };
    logger.error({ event: "failed", code: e.code, status: e.status }, e.message);
    throw error;
  } finally {
    await notifier?.close();
    metrics?.close();
  }
  logger.info({ event: "stop" }, options.signal.aborted ? "stopping: signal" : "done");
}

/**
 * The notifier, when the pod asked for notifications (`notify-<container>`):
 * only then are its modules loaded, so the sidecar's start is the same without.
 */
async function startNotifier(
  config: SidecarConfig,
  logger: Logger,
  options: RunOptions,
  metrics: RunningMetrics["observer"] | undefined,
): Promise<Notifier | undefined> {
  if (config.notify.length === 0) return undefined;
  const [{ createNotifier }, { createDeliver }] = await Promise.all([
    import("./notifier.ts"),
    import("./notify-deliver.ts"),
  ]);
  const unwired: SignalDeps = {
    procDir: "/proc",
    selfPid: 0,
    kill: () => {
      throw new Error("signals are not wired in this run");
    },
  };
  logger.info(
    {
      event: "notify",
      targets: config.notify.map((t) => ({
        container: t.container,
        kind: t.action.kind,
      })),
    },
    `notifying ${config.notify.map((t) => t.container).join(", ")} after each change`,
  );
  return createNotifier({
    targets: config.notify,
    deliver: createDeliver(options.signals ?? unwired),
    logger,
    random: Math.random,
    ...(metrics === undefined ? {} : { observer: metrics }),
    ...(options.notifyTuning === undefined ? {} : { tuning: options.notifyTuning }),
  });
}

/** The metrics as the rest of the wiring uses them. */
interface RunningMetrics {
  readonly observer: SyncObserver & Pick<SidecarMetrics, "notified">;
  countTokenRequests(credential: TokenCredential): TokenCredential;
  countSourceRequests(source: SecretSource): SecretSource;
  close(): void;
}

/**
 * Serves metrics when the pod asked for them (`metrics-port`): only then is
 * the metrics module (and its HTTP server) loaded, so the sidecar's start is
 * the same without. A port that cannot be listened on is logged and the
 * sidecar goes on without metrics: the files matter more.
 */
async function startMetrics(
  config: SidecarConfig,
  logger: Logger,
): Promise<RunningMetrics | undefined> {
  const port = config.metricsPort;
  if (port === undefined) return undefined;
  const m = await import("./metrics.ts");
  const metrics = m.createMetrics();
  let server: Server | undefined;
  try {
    server = await m.startMetricsServer(metrics, port);
    logger.info({ event: "metrics", port }, `serving metrics on port ${port} at /metrics`);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    logger.error(
      { event: "metrics", port, code },
      `cannot serve metrics on port ${port} (${code}); going on without`,
    );
  }
  return {
    observer: metrics,
    countTokenRequests: (credential) => m.countTokenRequests(credential, metrics),
    countSourceRequests: (source) => m.countSourceRequests(source, metrics),
    close: () => server?.close(),
  };
}

/** Adds `AKV_INJECTOR_EXTRA_CA_CERTS` to the CAs every TLS connection trusts; must run before the first connection. */
function trustExtraCas(config: SidecarConfig): void {
  if (config.extraCaCerts.length === 0) return;
  setDefaultCACertificates([...getCACertificates("default"), ...config.extraCaCerts]);
}
