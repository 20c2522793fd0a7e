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
 * Renewal keeps the CA, so the caBundle stays valid while replicas pick the
 * new serving certificate up one by one. When the CA itself is renewed (at two
 * thirds of its ten years), the old CA stays in the bundle until it expires,
 * so a replica still serving a certificate of the old CA is trusted meanwhile.
 */
import { X509Certificate, createPrivateKey, randomBytes } from "node:crypto";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { dirname } from "node:path";
import {
  AdmissionregistrationV1Api,
  ApiException,
  CoreV1Api,
  V1ObjectMeta,
  V1Secret,
  type KubeConfig,
  type V1MutatingWebhookConfiguration,
} from "@kubernetes/client-node";
import {
  CLOCK_SKEW_MS,
  createCertificateAuthority,
  createServingCertificate,
  type CertificateAndKey,
} from "../certs/index.ts";
import { AkvError, ErrorCode } from "../common/errors.ts";
import type { Logger } from "../common/logger.ts";

/** Keys of the certificate Secret; `tls.crt`/`tls.key`/`ca.crt` as cert-manager writes them, plus the CA's key. */
export const CertSecretKey = {
  /** PEM bundle of trusted CAs, the signing CA first; the caBundle published to the apiserver. */
  caCert: "ca.crt",
  /** PKCS#8 PEM key of the first CA in `ca.crt`. */
  caKey: "ca.key",
  /** PEM serving certificate (leaf). */
  tlsCert: "tls.crt",
  /** PKCS#8 PEM serving key. */
  tlsKey: "tls.key",
} as const;

/** Default lifetime of the serving certificate (a year); renewed at two thirds. */
export const DEFAULT_SERVING_VALIDITY_MS = 365 * 86_400_000;
/** Default lifetime of the CA (ten years); renewed at two thirds. */
export const DEFAULT_CA_VALIDITY_MS = 3650 * 86_400_000;
/** Longest pause between two checks. */
export const DEFAULT_CHECK_INTERVAL_MS = 30_000;
/** Pause before retrying a failed pass, or one that found no webhook configuration to patch. */
export const DEFAULT_RETRY_INTERVAL_MS = 5_000;
/** Fraction of a certificate's lifetime after which it is renewed. */
export const RENEW_AT_FRACTION = 2 / 3;

const DAY_MS = 86_400_000;
const MAX_ATTEMPTS = 5;

/** Where the certificates live and what they are for. */
export interface SelfManagedCertsOptions {
  /** The webhook's kubeconfig (in-cluster or from `KUBECONFIG`). */
  readonly kubeConfig: KubeConfig;
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
  /** Default {@link DEFAULT_SERVING_VALIDITY_MS}. */
  readonly servingValidityMs?: number;
  /** Default {@link DEFAULT_CA_VALIDITY_MS}. */
  readonly caValidityMs?: number;
  /** Extra SANs: IP addresses become IP SANs, anything else a DNS SAN (`127.0.0.1` for a URL webhook in tests). */
  readonly extraSans?: readonly string[];
  /** Default {@link DEFAULT_CHECK_INTERVAL_MS}, and never more than a sixth of the serving lifetime. */
  readonly checkIntervalMs?: number;
  /** Default {@link DEFAULT_RETRY_INTERVAL_MS}. */
  readonly retryIntervalMs?: number;
}

/** The certificates as the Secret holds them. */
export interface StoredCerts {
  /** Trusted CAs, the signing one first (more than one only while a CA rotation settles). */
  readonly caCertPems: readonly string[];
  readonly caKeyPem: string;
  readonly tlsCertPem: string;
  readonly tlsKeyPem: string;
}

/** What a serving certificate must be. */
export interface CertRequirements {
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly servingValidityMs: number;
  readonly caValidityMs: number;
}

/** The outcome of {@link reconcileCerts}: what the Secret should hold, and why it changes (if it does). */
export interface Reconciled {
  readonly certs: StoredCerts;
  /** Why the stored certificates had to change; `undefined` when they are fine as they are. */
  readonly reason: string | undefined;
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
  readonly caBundle: "patched" | "unchanged" | "missing";
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

/** The Service's DNS names, short to fully qualified: `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`. */
export function serviceDnsNames(serviceName: string, namespace: string): string[] {
  return [
    serviceName,
    `${serviceName}.${namespace}`,
    `${serviceName}.${namespace}.svc`,
    `${serviceName}.${namespace}.svc.cluster.local`,
  ];
}

/** When a certificate is due for renewal: two thirds into its life (counted from issue, not the skew-adjusted notBefore). */
export function renewalTime(cert: X509Certificate): Date {
  const notAfter = cert.validToDate.getTime();
  const issued = Math.min(cert.validFromDate.getTime() + CLOCK_SKEW_MS, notAfter);
  return new Date(issued + (notAfter - issued) * RENEW_AT_FRACTION);
}

/**
 * Decides what the Secret should hold at `now`, given what it holds
 * (`undefined`: missing or unreadable). Pure but for the randomness of new
 * keys: it keeps what is fine, renews the serving certificate with the same
 * CA when it is due, unreadable, mismatched or lacks a required name, renews
 * the CA (keeping the old one in the bundle while it is valid) when that is
 * due or too short-lived for a full serving certificate, and drops expired
 * CAs from the bundle.
 */
export function reconcileCerts(
  stored: StoredCerts | undefined,
  requirements: CertRequirements,
  now: Date,
): Reconciled {
  const nowMs = now.getTime();
  const ca = stored && readCa(stored);
  const caReason =
    stored === undefined
      ? "no certificates yet"
      : ca === undefined
        ? "the stored CA is unreadable or does not match its key"
        : checkCa(ca.cert, requirements, nowMs);

  // Every CA still valid stays trusted, the signing one first.
  const keep = (pems: readonly string[]): string[] =>
    pems.filter((pem) => {
      const cert = tryX509(pem);
      return cert !== undefined && cert.validToDate.getTime() > nowMs;
    });

  if (stored === undefined || ca === undefined || caReason !== undefined) {
    const newCa = createCertificateAuthority({
      commonName: "akv-injector-ca",
      now,
      validityDays: requirements.caValidityMs / DAY_MS,
    });
    return {
      certs: {
        caCertPems: [newCa.certPem, ...keep(stored?.caCertPems ?? [])],
        caKeyPem: newCa.keyPem,
        ...newServing(newCa, requirements, now),
      },
      reason: caReason ?? "the CA must be renewed",
    };
  }

  const caCertPems = keep(ca.pems);
  const servingReason = checkServing(ca.cert, stored, requirements, nowMs);
  if (servingReason !== undefined) {
    return {
      certs: {
        caCertPems,
        caKeyPem: stored.caKeyPem,
        ...newServing({ certPem: ca.pems[0], keyPem: stored.caKeyPem }, requirements, now),
      },
      reason: servingReason,
    };
  }
  if (caCertPems.length !== stored.caCertPems.length) {
    return { certs: { ...stored, caCertPems }, reason: "an expired CA left the bundle" };
  }
  return { certs: stored, reason: undefined };
}

/** Why the CA must be replaced, or `undefined` when it can stay. */
function checkCa(
  ca: X509Certificate,
  requirements: CertRequirements,
  nowMs: number,
): string | undefined {
  const notAfter = ca.validToDate.getTime();
  if (nowMs >= notAfter) return "the CA has expired";
  if (nowMs >= renewalTime(ca).getTime()) return "the CA is due for renewal";
  if (notAfter - nowMs < requirements.servingValidityMs) {
    return "the CA expires before a new serving certificate would";
  }
  return undefined;
}

/** Why the stored serving certificate cannot stay, or `undefined` when it can. */
function checkServing(
  ca: X509Certificate,
  stored: StoredCerts,
  requirements: CertRequirements,
  nowMs: number,
): string | undefined {
  const cert = tryX509(stored.tlsCertPem);
  if (cert === undefined) return "the serving certificate is unreadable";
  try {
    if (!cert.checkPrivateKey(createPrivateKey(stored.tlsKeyPem))) {
      return "the serving key does not match its certificate";
    }
  } catch {
    return "the serving key is unreadable";
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    return "the serving certificate was not issued by the CA";
  }
  for (const name of requirements.dnsNames) {
    if (cert.checkHost(name, { subject: "never", wildcards: false }) === undefined) {
      return `the serving certificate lacks the DNS name ${name}`;
    }
  }
  for (const ip of requirements.ipAddresses) {
    if (cert.checkIP(ip) === undefined) return `the serving certificate lacks the IP address ${ip}`;
  }
  if (nowMs < cert.validFromDate.getTime()) return "the serving certificate is not valid yet";
  if (nowMs >= cert.validToDate.getTime()) return "the serving certificate has expired";
  if (nowMs >= renewalTime(cert).getTime()) return "the serving certificate is due for renewal";
  return undefined;
}

function newServing(
  ca: CertificateAndKey,
  requirements: CertRequirements,
  now: Date,
): { tlsCertPem: string; tlsKeyPem: string } {
  const serving = createServingCertificate(ca, {
    dnsNames: requirements.dnsNames,
    ipAddresses: requirements.ipAddresses,
    now,
    validityDays: requirements.servingValidityMs / DAY_MS,
  });
  return { tlsCertPem: serving.certPem, tlsKeyPem: serving.keyPem };
}

/** The signing CA (first of the bundle) when it is a CA and matches the stored key. */
function readCa(
  stored: StoredCerts,
): { cert: X509Certificate; pems: readonly [string, ...string[]] } | undefined {
  const [first, ...rest] = stored.caCertPems;
  const cert = first === undefined ? undefined : tryX509(first);
  if (first === undefined || cert === undefined || !cert.ca) return undefined;
  try {
    if (!cert.checkPrivateKey(createPrivateKey(stored.caKeyPem))) return undefined;
  } catch {
    return undefined;
  }
  return { cert, pems: [first, ...rest] };
}

function tryX509(pem: string): X509Certificate | undefined {
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

/** Reads the Secret's data; `undefined` when a key is missing (the whole set is then made anew). */
export function readStoredCerts(secret: {
  readonly data?: Readonly<Record<string, string>> | undefined;
}): StoredCerts | undefined {
  const data = secret.data ?? {};
  const get = (key: string): string | undefined => {
    const value = data[key];
    return value === undefined ? undefined : Buffer.from(value, "base64").toString("utf8");
  };
  const caBundle = get(CertSecretKey.caCert);
  const caKeyPem = get(CertSecretKey.caKey);
  const tlsCertPem = get(CertSecretKey.tlsCert);
  const tlsKeyPem = get(CertSecretKey.tlsKey);
  if (
    caBundle === undefined ||
    caKeyPem === undefined ||
    tlsCertPem === undefined ||
    tlsKeyPem === undefined
  ) {
    return undefined;
  }
  const caCertPems =
    caBundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
  return { caCertPems, caKeyPem, tlsCertPem, tlsKeyPem };
}

/** The caBundle text: every trusted CA, signing one first. */
export function caBundleOf(certs: StoredCerts): string {
  return certs.caCertPems.map((pem) => (pem.endsWith("\n") ? pem : `${pem}\n`)).join("");
}

function secretData(certs: StoredCerts): Record<string, string> {
  const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");
  return {
    [CertSecretKey.caCert]: b64(caBundleOf(certs)),
    [CertSecretKey.caKey]: b64(certs.caKeyPem),
    [CertSecretKey.tlsCert]: b64(certs.tlsCertPem),
    [CertSecretKey.tlsKey]: b64(certs.tlsKeyPem),
  };
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
  const requirements = requirementsOf(options);
  const core = options.kubeConfig.makeApiClient(CoreV1Api);
  const admission = options.kubeConfig.makeApiClient(AdmissionregistrationV1Api);

  let certs: StoredCerts | undefined;
  let secret: EnsureResult["secret"] = "unchanged";
  for (let attempt = 1; certs === undefined; attempt++) {
    const current = await readSecret(core, namespace, secretName);
    const stored = current && readStoredCerts(current);
    const { certs: next, reason } = reconcileCerts(stored, requirements, clock());
    if (reason === undefined) {
      certs = next;
      break;
    }
    // client-node's models are classes; fill instances rather than cast literals.
    const metadata = Object.assign(new V1ObjectMeta(), {
      name: secretName,
      namespace,
      labels: {
        "app.kubernetes.io/name": "akv-injector",
        "app.kubernetes.io/component": "webhook-certificate",
      },
      // Present on update: the apiserver answers 409 if another replica wrote since we read.
      resourceVersion: current?.metadata?.resourceVersion,
    });
    const body = Object.assign(new V1Secret(), {
      apiVersion: "v1",
      kind: "Secret",
      type: "kubernetes.io/tls",
      metadata,
      data: secretData(next),
    });
    const won =
      current === undefined
        ? await writeSecret(
            () => core.createNamespacedSecret({ namespace, body }),
            `create Secret ${namespace}/${secretName}`,
          )
        : await writeSecret(
            () => core.replaceNamespacedSecret({ name: secretName, namespace, body }),
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
    admission,
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
  const servingValidityMs = options.servingValidityMs ?? DEFAULT_SERVING_VALIDITY_MS;
  const checkIntervalMs = Math.max(
    1,
    Math.min(options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS, servingValidityMs / 6),
  );
  const retryIntervalMs = Math.min(
    options.retryIntervalMs ?? DEFAULT_RETRY_INTERVAL_MS,
    checkIntervalMs,
  );

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
    let delay = retryIntervalMs;
    if (result !== undefined && result.caBundle !== "missing") {
      delay = Math.min(checkIntervalMs, Math.max(0, result.renewAt.getTime() - clock().getTime()));
    }
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

function requirementsOf(options: SelfManagedCertsOptions): CertRequirements {
  const extra = options.extraSans ?? [];
  return {
    dnsNames: [
      ...serviceDnsNames(options.serviceName, options.namespace),
      ...extra.filter((san) => isIP(san) === 0),
    ],
    ipAddresses: extra.filter((san) => isIP(san) !== 0),
    servingValidityMs: options.servingValidityMs ?? DEFAULT_SERVING_VALIDITY_MS,
    caValidityMs: options.caValidityMs ?? DEFAULT_CA_VALIDITY_MS,
  };
}

async function readSecret(
  core: CoreV1Api,
  namespace: string,
  name: string,
): Promise<V1Secret | undefined> {
  try {
    return await core.readNamespacedSecret({ name, namespace });
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
 * Patches `caBundle` into every webhook whose bundle differs, guarded by a
 * `test` of the resourceVersion it read, so a concurrent change (a `helm
 * upgrade`, another replica) makes it read again rather than write blind.
 */
async function patchCaBundle(
  admission: AdmissionregistrationV1Api,
  name: string,
  caBundle: string,
  logger: Logger,
): Promise<EnsureResult["caBundle"]> {
  const wanted = Buffer.from(caBundle, "utf8").toString("base64");
  for (let attempt = 1; ; attempt++) {
    let config: V1MutatingWebhookConfiguration;
    try {
      config = await admission.readMutatingWebhookConfiguration({ name });
    } catch (error) {
      if (statusOf(error) === 404) return "missing";
      throw kubernetesError(`read MutatingWebhookConfiguration ${name}`, error);
    }
    const webhooks = config.webhooks ?? [];
    const operations: object[] = webhooks.flatMap((webhook, index) =>
      webhook.clientConfig.caBundle === wanted
        ? []
        : [{ op: "add", path: `/webhooks/${index}/clientConfig/caBundle`, value: wanted }],
    );
    if (operations.length === 0) return "unchanged";
    const body = [
      { op: "test", path: "/metadata/resourceVersion", value: config.metadata?.resourceVersion },
      ...operations,
    ];
    try {
      await admission.patchMutatingWebhookConfiguration({ name, body });
      logger.info({ webhookConfiguration: name, webhooks: operations.length }, "caBundle patched");
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
  return error instanceof ApiException ? error.code : undefined;
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
