/**
 * The `self` certificate mode: the webhook makes its own CA and serving
 * certificate, keeps them in one Secret so every replica serves the same
 * certificate, writes the serving pair to the TLS files the HTTPS server
 * reloads, publishes the CA as `caBundle` in its own
 * MutatingWebhookConfiguration, and renews before expiry.
 *
 * Replicas coordinate through the apiserver alone, with no leader election:
 * the Secret is created with `create` (a second creator gets 409 and reads the
 * winner's), replaced with the `resourceVersion` it was read at (a second
 * renewer gets 409 and reads the winner's), and the webhook configuration is
 * patched with a `test` of its `resourceVersion` first. Whatever order two
 * replicas run in, they end with one Secret and one caBundle.
 *
 * This file is the I/O: the apiserver calls, the TLS files and the timer,
 * with the clock read here alone. What the certificates should be, and when
 * to look again, is decided in `cert-reconcile.ts`; the objects' shapes are in
 * `cert-objects.ts`.
 */
import { X509Certificate, randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { AkvError, ErrorCode } from "../common/errors.ts";
import type { Logger } from "../common/logger.ts";
import {
  caBundleOf,
  caBundlePatch,
  readStoredCerts,
  secretDataOf,
  type WebhookConfigurationCaBundles,
} from "./cert-objects.ts";
import { KubeApiError, type KubeClient } from "./kube/client.ts";
import {
  certRequirements,
  checkIntervals,
  needsIssuer,
  nextCheckDelay,
  planCerts,
  reconcileCerts,
  type CertIssuer,
  renewalTime,
  type CaBundleOutcome,
  type StoredCerts,
} from "./cert-reconcile.ts";

const MAX_ATTEMPTS = 5;

/** node-forge and the issuing code, loaded the first time a plan makes certificates. */
const loadIssuer = (): Promise<CertIssuer> => import("../certs/index.ts");
/** For plans that make nothing: reaching it is a bug in {@link needsIssuer}. */
const NO_ISSUER: CertIssuer = {
  createCertificateAuthority: () => {
    throw new Error("bug: a plan that keeps the certificates made one");
  },
  createServingCertificate: () => {
    throw new Error("bug: a plan that keeps the certificates made one");
  },
};

/** Where the certificates live and what they are for. */
export interface SelfManagedCertsOptions {
  /** The webhook's apiserver client (in-cluster or from `KUBECONFIG`). */
  readonly client: KubeClient;
  /** The webhook's own namespace; the Secret lives there. */
  readonly namespace: string;
  /** The Secret that holds the CA and serving certificate. */
  readonly secretName: string;
  /** The MutatingWebhookConfiguration whose every webhook gets the caBundle. */
  readonly webhookConfigName: string;
  /** The webhook's Service; gives the DNS names of the certificate. */
  readonly serviceName: string;
  /** Where the serving certificate is written (`AKV_INJECTOR_TLS_CERT_FILE`). */
  readonly certFile: string;
  /** Where the serving key is written (`AKV_INJECTOR_TLS_KEY_FILE`). */
  readonly keyFile: string;
  readonly logger: Logger;
  /** The clock; default the system's. */
  readonly clock?: () => Date;
  /** Default `DEFAULT_SERVING_VALIDITY_MS` (`cert-reconcile.ts`). */
  readonly servingValidityMs?: number;
  /** Default `DEFAULT_CA_VALIDITY_MS` (`cert-reconcile.ts`). */
  readonly caValidityMs?: number;
  /** Extra SANs: IP addresses become IP SANs, anything else a DNS SAN (`127.0.0.1` for a URL webhook in tests). */
  readonly extraSans?: readonly string[];
  /** Default `DEFAULT_CHECK_INTERVAL_MS` (`cert-reconcile.ts`), and never more than a sixth of the serving lifetime. */
  readonly checkIntervalMs?: number;
  /** Default `DEFAULT_RETRY_INTERVAL_MS` (`cert-reconcile.ts`). */
  readonly retryIntervalMs?: number;
}

/** What one pass did. */
export interface EnsureResult {
  /** What the Secret holds now (and the files and caBundle reflect). */
  readonly certs: StoredCerts;
  /** `created`: this replica created the Secret; `updated`: it renewed it; `unchanged`: the Secret was fine (or another replica's write won). */
  readonly secret: "created" | "updated" | "unchanged";
  /** Whether the TLS files were (re)written. */
  readonly filesWritten: boolean;
  /** `patched`, `unchanged`, or `missing` when the webhook configuration does not exist (yet). */
  readonly caBundle: CaBundleOutcome;
  /** When the serving certificate is due for renewal. */
  readonly renewAt: Date;
}

/** The running manager. */
export interface SelfManagedCerts {
  /** What the first pass did. */
  readonly initial: EnsureResult;
  /** Runs a pass now (also what the timer does); passes never overlap. */
  ensure(): Promise<EnsureResult>;
  /** Stops the timer; resolves once a pass in flight has finished. */
  stop(): Promise<void>;
}

/**
 * One pass: read the Secret (creating or renewing it as needed, yielding to a
 * replica that wrote first), write the TLS files if they differ, and patch
 * the caBundle into every webhook of the configuration if it differs.
 * @throws {AkvError} `KUBERNETES_UNAVAILABLE` when the apiserver fails or refuses
 *   (a 403 names the missing permission), `TLS_INVALID` when the files cannot be written.
 */
export async function ensureSelfManagedCerts(
  options: SelfManagedCertsOptions,
): Promise<EnsureResult> {
  const { namespace, secretName, logger } = options;
  const clock = options.clock ?? (() => new Date());
  const requirements = certRequirements(options);
  const { client } = options;
  const secretsPath = `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`;

  let certs: StoredCerts | undefined;
  let secret: EnsureResult["secret"] = "unchanged";
  for (let attempt = 1; certs === undefined; attempt++) {
    const current = await readSecret(client, secretsPath, namespace, secretName);
    const stored = current && readStoredCerts(current);
    const now = clock();
    const plan = planCerts(stored, requirements, now);
    const issuer = needsIssuer(plan) ? await loadIssuer() : NO_ISSUER;
    const { certs: next, reason } = reconcileCerts(plan, requirements, now, issuer);
    if (reason === undefined) {
      certs = next;
      break;
    }
    const metadata = {
      name: secretName,
      namespace,
      labels: {
        "app.kubernetes.io/name": "akv-injector",
        "app.kubernetes.io/component": "webhook-certificate",
      },
      // Present on update: the apiserver answers 409 if another replica wrote since we read.
      ...(current?.metadata?.resourceVersion === undefined
        ? {}
        : { resourceVersion: current.metadata.resourceVersion }),
    };
    const body = {
      apiVersion: "v1",
      kind: "Secret",
      type: "kubernetes.io/tls",
      metadata,
      data: secretDataOf(next),
    };
    const won =
      current === undefined
        ? await writeSecret(
            () => client.request("POST", secretsPath, { body }),
            `create Secret ${namespace}/${secretName}`,
          )
        : await writeSecret(
            () =>
              client.request("PUT", `${secretsPath}/${encodeURIComponent(secretName)}`, { body }),
            `update Secret ${namespace}/${secretName}`,
          );
    if (won) {
      certs = next;
      secret = current === undefined ? "created" : "updated";
      logger.info(
        { namespace, secret: secretName, reason, action: secret },
        "webhook certificate stored",
      );
    } else if (attempt >= MAX_ATTEMPTS) {
      throw new AkvError(
        ErrorCode.KUBERNETES_UNAVAILABLE,
        `Secret ${namespace}/${secretName} kept changing under us (${MAX_ATTEMPTS} conflicts in a row)`,
      );
    } else {
      // Another replica wrote first: read its certificates and use them.
      logger.debug(
        { namespace, secret: secretName },
        "another replica wrote the certificate first",
      );
    }
  }

  const filesWritten = await writeTlsFiles(options.certFile, options.keyFile, certs);
  if (filesWritten)
    logger.info({ certFile: options.certFile }, "serving certificate files written");
  const caBundle = await patchCaBundle(
    client,
    options.webhookConfigName,
    caBundleOf(certs),
    logger,
  );
  const renewAt = renewalTime(new X509Certificate(certs.tlsCertPem));
  return { certs, secret, filesWritten, caBundle, renewAt };
}

/**
 * Runs a first pass (throwing if it fails: without a certificate the webhook
 * cannot serve, and a restart retries), then checks again on a timer: at the
 * next renewal time or the check interval, whichever is sooner, and sooner
 * after a failure or while the webhook configuration is missing. The timer
 * does not keep the process alive; `stop()` ends it.
 */
export async function startSelfManagedCerts(
  options: SelfManagedCertsOptions,
): Promise<SelfManagedCerts> {
  const clock = options.clock ?? (() => new Date());
  const intervals = checkIntervals(options);

  let inFlight: Promise<EnsureResult> | undefined;
  const ensure = (): Promise<EnsureResult> => {
    inFlight ??= ensureSelfManagedCerts(options).finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };

  const initial = await ensure();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (result: EnsureResult | undefined): void => {
    if (stopped) return;
    const delay = nextCheckDelay(result, clock(), intervals);
    timer = setTimeout(() => {
      ensure().then(schedule, (error: unknown) => {
        options.logger.error({ err: error }, "webhook certificate check failed; retrying");
        schedule(undefined);
      });
    }, delay);
    timer.unref();
  };
  if (initial.caBundle === "missing") {
    options.logger.warn(
      { webhookConfiguration: options.webhookConfigName },
      "webhook configuration not found; will patch its caBundle once it exists",
    );
  }
  schedule(initial);

  return {
    initial,
    ensure,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await inFlight?.catch(() => undefined);
    },
  };
}

/** The parts of a Secret this file reads. */
interface StoredSecret {
  readonly metadata?: { readonly resourceVersion?: string };
  readonly data?: Readonly<Record<string, string>>;
}

async function readSecret(
  client: KubeClient,
  secretsPath: string,
  namespace: string,
  name: string,
): Promise<StoredSecret | undefined> {
  try {
    return (await client.request(
      "GET",
      `${secretsPath}/${encodeURIComponent(name)}`,
    )) as StoredSecret;
  } catch (error) {
    if (statusOf(error) === 404) return undefined;
    throw kubernetesError(`read Secret ${namespace}/${name}`, error);
  }
}

/** Runs a create or update; `false` when another writer won (409: exists, or changed since read). */
async function writeSecret(write: () => Promise<unknown>, what: string): Promise<boolean> {
  try {
    await write();
    return true;
  } catch (error) {
    if (statusOf(error) === 409) return false;
    throw kubernetesError(what, error);
  }
}

/**
 * Patches `caBundle` into every webhook whose bundle differs ({@link caBundlePatch}),
 * reading again when a concurrent change failed the patch's `test`.
 */
async function patchCaBundle(
  client: KubeClient,
  name: string,
  caBundle: string,
  logger: Logger,
): Promise<CaBundleOutcome> {
  const path = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${encodeURIComponent(name)}`;
  for (let attempt = 1; ; attempt++) {
    let config: WebhookConfigurationCaBundles;
    try {
      config = (await client.request("GET", path)) as WebhookConfigurationCaBundles;
    } catch (error) {
      if (statusOf(error) === 404) return "missing";
      throw kubernetesError(`read MutatingWebhookConfiguration ${name}`, error);
    }
    const patch = caBundlePatch(config, caBundle);
    if (patch === undefined) return "unchanged";
    try {
      await client.request("PATCH", path, {
        body: patch.body,
        contentType: "application/json-patch+json",
      });
      logger.info({ webhookConfiguration: name, webhooks: patch.webhooks }, "caBundle patched");
      return "patched";
    } catch (error) {
      const status = statusOf(error);
      // 422 (409 on some versions): the resourceVersion test failed, or a webhook went away
      // since the read (kube-apiserver 1.36 answers 422 for a failed test). Read again.
      if ((status === 409 || status === 422) && attempt < MAX_ATTEMPTS) continue;
      if (status === 404) return "missing";
      throw kubernetesError(`patch MutatingWebhookConfiguration ${name}`, error);
    }
  }
}

/** Writes the key, then the certificate, each by rename, and only when they differ, so an unchanged pair triggers no reload. */
async function writeTlsFiles(
  certFile: string,
  keyFile: string,
  certs: StoredCerts,
): Promise<boolean> {
  const [oldCert, oldKey] = await Promise.all([readIfExists(certFile), readIfExists(keyFile)]);
  if (oldCert === certs.tlsCertPem && oldKey === certs.tlsKeyPem) return false;
  try {
    await writeAtomically(keyFile, certs.tlsKeyPem, 0o600);
    await writeAtomically(certFile, certs.tlsCertPem, 0o644);
  } catch (cause) {
    throw new AkvError(
      ErrorCode.TLS_INVALID,
      `cannot write the TLS files ${certFile} and ${keyFile}`,
      { cause },
    );
  }
  return true;
}

async function writeAtomically(path: string, text: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await writeFile(temp, text, { mode });
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch {
    return undefined;
  }
}

function statusOf(error: unknown): number | undefined {
  return error instanceof KubeApiError ? error.code : undefined;
}

function kubernetesError(what: string, error: unknown): AkvError {
  const status = statusOf(error);
  const hint =
    status === 403
      ? " (forbidden: the chart's Role and ClusterRole grant exactly what this needs; check they are installed)"
      : "";
  return new AkvError(
    ErrorCode.KUBERNETES_UNAVAILABLE,
    `cannot ${what}: ${status === undefined ? "no answer" : `HTTP ${status}`}${hint}`,
    { cause: error },
  );
}
