/**
 * The webhook process (`akv-injector-webhook`): the only module that touches
 * `process`. Settings from the environment, the service-account cache over
 * the cluster, both servers on 0.0.0.0; SIGTERM drains for the shutdown
 * delay, lets in-flight admissions finish, then exits.
 */
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { isAkvError, AkvError, ErrorCode } from "../common/errors.ts";
import { createLogger } from "../common/logger.ts";
import { WebhookEnv } from "../common/names.ts";
import { startSelfManagedCerts, type SelfManagedCerts } from "./self-managed-certs.ts";
import { createKubeClient, type KubeClient } from "./kube/client.ts";
import { inClusterConnection, loadKubeconfig } from "./kube/connection.ts";
import { createKubernetesServiceAccountCache } from "./service-accounts.ts";
import { createWebhookServer } from "./server.ts";
import { parseSettings, withSidecarExtraCa, type Settings } from "./settings.ts";

async function loadSettings(): Promise<Settings> {
  const settings = parseSettings(process.env);
  if (settings.sidecarExtraCaFile === undefined) return settings;
  let pem: string;
  try {
    pem = await readFile(settings.sidecarExtraCaFile, "utf8");
  } catch (cause) {
    throw new AkvError(
      ErrorCode.SETTINGS_INVALID,
      `invalid webhook settings: ${WebhookEnv.sidecarExtraCaFile}: cannot read ${settings.sidecarExtraCaFile} (${(cause as Error).message})`,
      { cause },
    );
  }
  return withSidecarExtraCa(settings, pem);
}

async function connectToCluster(settings: Settings): Promise<KubeClient> {
  try {
    const connection =
      settings.kubeconfig === undefined
        ? await inClusterConnection(process.env)
        : await loadKubeconfig(settings.kubeconfig);
    return createKubeClient(connection);
  } catch (cause) {
    throw new AkvError(
      ErrorCode.SETTINGS_INVALID,
      `invalid webhook settings: ${WebhookEnv.kubeconfig}: cannot load a kubeconfig: ${(cause as Error).message}; set ${WebhookEnv.kubeconfig} or run in a cluster`,
      { cause },
    );
  }
}

async function main(): Promise<void> {
  const settings = await loadSettings();
  const logger = createLogger({ name: "webhook", level: settings.logLevel });
  const client = await connectToCluster(settings);

  // In `self` mode the first pass writes the TLS files before the server reads them.
  let selfCerts: SelfManagedCerts | undefined;
  if (settings.selfCerts !== undefined) {
    selfCerts = await startSelfManagedCerts({
      client,
      namespace: settings.selfCerts.namespace,
      secretName: settings.selfCerts.secretName,
      webhookConfigName: settings.selfCerts.webhookConfigName,
      serviceName: settings.selfCerts.serviceName,
      certFile: settings.tlsCertFile,
      keyFile: settings.tlsKeyFile,
      logger,
      servingValidityMs: settings.selfCerts.validityMs,
      extraSans: settings.selfCerts.extraSans,
    });
  }

  const serviceAccounts = createKubernetesServiceAccountCache(client, logger);
  const server = await createWebhookServer({ settings, logger, serviceAccounts });
  const ports = await server.listen({
    host: "0.0.0.0",
    port: settings.port,
    healthPort: settings.healthPort,
  });
  logger.info(ports, "listening");
  // Not awaited: admissions work before the cache syncs (live reads); /readyz waits for it.
  void serviceAccounts.start();

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, "second signal; exiting now");
      process.exit(1);
    }
    stopping = true;
    server.drain();
    logger.info(
      { signal, shutdownDelayMs: settings.shutdownDelayMs },
      "shutting down; draining, then letting in-flight admissions finish",
    );
    sleep(settings.shutdownDelayMs)
      .then(() => Promise.all([server.close(), serviceAccounts.stop(), selfCerts?.stop()]))
      .then(
        () => {
          logger.info("stopped");
          logger.flush(() => process.exit(0));
        },
        (error: unknown) => {
          logger.error({ reason: (error as Error).message }, "shutdown failed");
          logger.flush(() => process.exit(1));
        },
      );
  };
  process.on("SIGTERM", () => {
    stop("SIGTERM");
  });
  process.on("SIGINT", () => {
    stop("SIGINT");
  });
}

main().catch((error: unknown) => {
  const message = isAkvError(error) ? `${error.code}: ${error.message}` : String(error);
  process.stderr.write(`akv-injector-webhook: ${message}\n`);
  process.exit(1);
});
