/**
 * The sidecar's `run` command, wired: configuration → trusted CAs → logger →
 * credential → Key Vault source → sync loop. It takes the environment, a stop
 * signal and a log destination as arguments, so tests (and the bench) run it
 * in-process; only main.ts touches `process`.
 *
 * main.ts imports this module lazily: the startup probe must not pay for
 * loading the Azure SDKs.
 */
import { readFileSync } from "node:fs";
import { getCACertificates, setDefaultCACertificates } from "node:tls";
import type { DestinationStream } from "pino";
import { createLogger, type Logger } from "../common/logger.ts";
import { publishFiles, readVolumeBytes, writeStatus } from "./atomic-writer.ts";
import { parseSidecarConfig, type SidecarConfig, type SidecarEnvRecord } from "./config.ts";
import { createCredential, withTokenPrefetch } from "./credential.ts";
import { createKeyVaultSource } from "./key-vault-source.ts";
import type { CertsApi } from "./render.ts";
import { runSyncLoop, systemClock, type Clock, type Tuning } from "./sync-loop.ts";

/** Options of {@link runSidecar}. */
export interface RunOptions {
  readonly env: SidecarEnvRecord;
  /** Aborts on SIGTERM: the loop stops promptly, in-flight reads are cancelled. */
  readonly signal: AbortSignal;
  /** Default stdout. */
  readonly logDestination?: DestinationStream;
  readonly clock?: Clock;
  readonly tuning?: Partial<Tuning>;
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
      mode: spec.mode,
      files: spec.files.map((f) => f.file),
      refreshIntervalMs: spec.refreshIntervalMs,
      volumeBytes,
      clientId: config.clientId,
      tenantId: config.tenantId,
      authorityHost: config.authorityHost,
      instanceDiscovery: !config.disableInstanceDiscovery,
      challengeResourceVerification: !config.disableChallengeResourceVerification,
    },
    "starting",
  );
  const credential = withTokenPrefetch(
    createCredential({
      tenantId: config.tenantId,
      clientId: config.clientId,
      tokenFile: config.tokenFile,
      authorityHost: config.authorityHost,
      disableInstanceDiscovery: config.disableInstanceDiscovery,
      // Synchronous: a projected token is a small file on a tmpfs, and the
      // sidecar's only async file read would start the libuv threadpool.
      readFile: (path) => Promise.resolve(readFileSync(path, "utf8")),
      now: () => clock.now(),
    }),
    config.tenantId,
  );
  const source = createKeyVaultSource({
    vaultUrl: spec.vaultUrl,
    credential,
    prefetchToken: (scope) => {
      credential.prefetch(scope);
    },
    clientId: config.clientId,
    disableChallengeResourceVerification: config.disableChallengeResourceVerification,
    now: () => clock.now(),
  });
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
        ...(options.tuning === undefined ? {} : { tuning: options.tuning }),
      },
      options.signal,
    );
  } catch (error) {
    const e = error as Error & { code?: string; status?: number };
    logger.error({ event: "failed", code: e.code, status: e.status }, e.message);
    throw error;
  }
  logger.info({ event: "stop" }, options.signal.aborted ? "stopping: signal" : "done");
}

/** Adds `AKV_INJECTOR_EXTRA_CA_CERTS` to the CAs every TLS connection trusts; must run before the first connection. */
function trustExtraCas(config: SidecarConfig): void {
  if (config.extraCaCerts.length === 0) return;
  setDefaultCACertificates([...getCACertificates("default"), ...config.extraCaCerts]);
}
