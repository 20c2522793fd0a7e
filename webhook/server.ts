/**
 * The webhook's HTTP side, built by a factory that does not listen (tests use
 * `inject()`; `main.ts` listens):
 *
 * - HTTPS (TLS 1.2+) `POST /mutate`: decode, call {@link review}, encode. A
 *   body that is not an AdmissionReview gets HTTP 400 with a JSON error.
 * - plain HTTP `/healthz`, `/readyz` (a certificate is loaded and the service
 *   account cache has synced), `/metrics` (prom-client).
 * - the certificate and key files are reloaded when they change, with
 *   `setSecureContext`: open connections and in-flight requests keep the old
 *   context, new handshakes get the new one.
 */
import { X509Certificate, createHash } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { STATUS_CODES } from "node:http";
import type { Server as HttpsServer } from "node:https";
import { dirname } from "node:path";
import { performance } from "node:perf_hooks";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import { fastify, type FastifyError, type FastifyInstance } from "fastify";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { AkvError, ErrorCode, isAkvError } from "../common/errors.ts";
import { WebhookEnv } from "../common/names.ts";
import { REDACT_PATHS, type Logger } from "../common/logger.ts";
import { parseAdmissionReview } from "./admission-review.ts";
import { boundMembers, MAX_REVIEW_MEMBERS } from "./member-bound.ts";
import { OUTCOMES, review, type Outcome, type ServiceAccountLookup } from "./review.ts";
import type { InjectionSettings } from "./settings.ts";

/**
 * The apiserver refuses request bodies over 3 MiB, so no AdmissionReview it
 * sends is larger; anything bigger is not from it.
 */
export const BODY_LIMIT = 3 * 1024 * 1024;
/**
 * A body this large (a pod is typically 5–20 KiB) leaves megabytes of
 * garbage, much of it strings in V8's large-object space, which only a full
 * collection frees; V8 waits for more to pile up first, so a few such bodies
 * in a row would add up. After answering one, the webhook collects at once,
 * when Node runs with `--expose-gc` (as Dockerfile.webhook starts it).
 */
export const LARGE_BODY = 512 * 1024;
/** TLS floor for the apiserver's connections. */
const MIN_TLS_VERSION = "TLSv1.2";
/**
 * TLS 1.2 suites with forward secrecy and authenticated encryption only
 * (ECDHE with AES-GCM or ChaCha20-Poly1305), as Go's crypto/tls client in
 * the apiserver prefers; TLS 1.3's suites are all of that kind already.
 * Node's default list would also take `AES128-SHA` (static RSA, CBC).
 */
export const TLS12_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

/** Outcomes in logs and metrics: the review's, plus `invalid` for a body that is not an AdmissionReview. */
export type AdmissionOutcome = Outcome | "invalid";

/** Options of {@link createWebhookServer}. */
export interface WebhookServerOptions {
  readonly settings: InjectionSettings & {
    readonly tlsCertFile: string;
    readonly tlsKeyFile: string;
  };
  readonly logger: Logger;
  readonly serviceAccounts: {
    readonly lookup: ServiceAccountLookup;
    isSynced(): boolean;
  };
  /** Where the metrics go; default a fresh registry. */
  readonly registry?: Registry;
  /** Default {@link BODY_LIMIT}. */
  readonly bodyLimit?: number;
  /** Default {@link MAX_REVIEW_MEMBERS}. */
  readonly maxMembers?: number;
  /** A safety net for missed file events: the files are re-read this often. Default 10 s. */
  readonly certificatePollMs?: number;
  /** File events come in bursts (a Secret volume update is several renames); one reload follows the burst. Default 50 ms. */
  readonly certificateDebounceMs?: number;
}

/** What is known about the serving certificate. */
export interface CertificateState {
  /** SHA-256 of the certificate's DER, hex. */
  readonly fingerprint: string;
  readonly notAfter: Date;
  readonly loadedAt: Date;
}

/** The two fastify instances and their shared state. */
export interface WebhookServer {
  /** HTTPS: `POST /mutate`. */
  readonly app: FastifyInstance<HttpsServer>;
  /** Plain HTTP: `/healthz`, `/readyz`, `/metrics`. */
  readonly health: FastifyInstance;
  readonly registry: Registry;
  /** The certificate in use, or undefined before one loaded. */
  certificate(): CertificateState | undefined;
  /** Reads the files again now (also done on file events and by polling). Resolves true when a new certificate is in use. */
  reloadCertificate(): Promise<boolean>;
  /** Listens on both ports; returns the bound ports (useful with port 0). */
  listen(options: {
    readonly host: string;
    readonly port: number;
    readonly healthPort: number;
  }): Promise<{
    readonly port: number;
    readonly healthPort: number;
  }>;
  /** Stops accepting, lets in-flight requests finish, closes both servers and the file watchers. */
  close(): Promise<void>;
}

interface LoadedCertificate {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly state: CertificateState;
}

/**
 * Reads and checks a certificate and key pair: both PEM, the key matching the
 * certificate (OpenSSL checks when building the context).
 * @throws {AkvError} `AKV_TLS_INVALID`.
 */
export async function loadCertificate(
  certFile: string,
  keyFile: string,
  now: Date,
): Promise<LoadedCertificate> {
  let cert: Buffer;
  let key: Buffer;
  try {
    [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
  } catch (cause) {
    throw new AkvError(
      ErrorCode.TLS_INVALID,
      `cannot read TLS files: ${(cause as Error).message}`,
      { cause },
    );
  }
  return checkCertificate(cert, key, now);
}

function checkCertificate(cert: Buffer, key: Buffer, now: Date): LoadedCertificate {
  try {
    createSecureContext({ cert, key });
    const x509 = new X509Certificate(cert);
    return {
      cert,
      key,
      state: {
        fingerprint: createHash("sha256").update(x509.raw).digest("hex"),
        notAfter: new Date(x509.validTo),
        loadedAt: now,
      },
    };
  } catch (cause) {
    throw new AkvError(
      ErrorCode.TLS_INVALID,
      `the TLS certificate and key do not form a usable pair: ${(cause as Error).message}`,
      { cause },
    );
  }
}

function createMetrics(registry: Registry) {
  const admissions = new Counter({
    name: "akv_injector_admissions_total",
    help: "AdmissionReviews answered, by outcome (skipped, unchanged, remounted, injected, refused, error, invalid).",
    labelNames: ["outcome"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "akv_injector_admission_duration_seconds",
    help: "Time from request body parsed to response ready, by outcome.",
    labelNames: ["outcome"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const certificateExpiry = new Gauge({
    name: "akv_injector_tls_certificate_expiry_timestamp_seconds",
    help: "notAfter of the serving certificate in use, as a Unix timestamp.",
    registers: [registry],
  });
  const reloads = new Counter({
    name: "akv_injector_tls_reloads_total",
    help: "Certificate reloads after a file change, by result (success, failure).",
    labelNames: ["result"] as const,
    registers: [registry],
  });
  // Zero series exist from the start, so rate() works before the first of each kind.
  for (const outcome of [...OUTCOMES, "invalid"]) admissions.inc({ outcome }, 0);
  return { admissions, duration, certificateExpiry, reloads };
}

/**
 * The logger of admission lines. They are flat objects of fixed keys (uid,
 * namespace, pod, outcome, duration, warnings, reason), so the top-level
 * redaction paths cover them; the wildcard paths cost four times the rest of
 * the line (measured: 6.9 µs against 2.3 µs a line) on the hottest path.
 */
export function createAdmissionLogger(logger: Logger): Logger {
  const topLevel = REDACT_PATHS.filter((p) => !p.includes(".") && !p.includes("*"));
  return logger.child({}, { redact: { paths: topLevel, censor: "[redacted]" } });
}

/** A JSON error body: what went wrong and the stable code. */
function errorBody(status: number, code: string, message: string) {
  return { error: STATUS_CODES[status] ?? "Error", code, message };
}

/** Fastify's body-parsing errors, said as what was wrong with the request. */
function describeRequestError(
  error: FastifyError,
  contentType: string | undefined,
  bodyLimit: number,
): string {
  switch (error.code) {
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return `content type '${contentType ?? "(none)"}' is not an AdmissionReview's: send application/json`;
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return `the body is over the webhook's limit of ${bodyLimit} bytes`;
    default:
      return error.message;
  }
}

/** Builds the webhook's servers; nothing listens until {@link WebhookServer.listen}. */
export async function createWebhookServer(options: WebhookServerOptions): Promise<WebhookServer> {
  const { settings, logger, serviceAccounts } = options;
  const registry = options.registry ?? new Registry();
  const metrics = createMetrics(registry);
  const deps = { settings, lookupServiceAccount: serviceAccounts.lookup };
  const admissionLog = createAdmissionLogger(logger);
  // Label lookups resolved once: prom-client hashes the label set on every call otherwise.
  const byOutcome = new Map(
    [...OUTCOMES, "invalid" as const].map((outcome) => [
      outcome,
      { count: metrics.admissions.labels(outcome), duration: metrics.duration.labels(outcome) },
    ]),
  );

  let current: LoadedCertificate | undefined;
  try {
    current = await loadCertificate(settings.tlsCertFile, settings.tlsKeyFile, new Date());
    metrics.certificateExpiry.set(current.state.notAfter.getTime() / 1000);
    logger.info(
      { fingerprint: current.state.fingerprint, notAfter: current.state.notAfter.toISOString() },
      "TLS certificate loaded",
    );
  } catch (error) {
    // Self-managed certificates may be written after start-up: stay unready and watch.
    logger.error(
      { code: ErrorCode.TLS_INVALID, reason: (error as Error).message },
      "no usable TLS certificate yet; not ready",
    );
  }

  const secureOptions = (c: LoadedCertificate | undefined): SecureContextOptions => ({
    minVersion: MIN_TLS_VERSION,
    ciphers: TLS12_CIPHERS,
    ...(c === undefined ? {} : { cert: c.cert, key: c.key }),
  });
  const bodyLimit = options.bodyLimit ?? BODY_LIMIT;
  const app = fastify({
    https: secureOptions(current),
    bodyLimit,
    logger: false,
    // The apiserver gives up after the webhook's timeoutSeconds (at most 30 s).
    requestTimeout: 30_000,
    return503OnClosing: true,
    forceCloseConnections: "idle",
  });
  const health = fastify({ logger: false });
  const maxMembers = options.maxMembers ?? MAX_REVIEW_MEMBERS;
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect !== undefined) {
    app.addHook("onResponse", (request, _reply, done) => {
      if (Number(request.headers["content-length"]) > LARGE_BODY) collect();
      done();
    });
  }
  // Before the JSON parser, which would build every member of a hostile body.
  app.addHook("preParsing", (_request, _reply, payload, done) => {
    done(null, boundMembers(payload, maxMembers));
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status =
      error.statusCode !== undefined && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500) {
      logger.error(
        { err: { message: error.message, code: error.code }, url: request.url },
        "request failed",
      );
      // A plain Error thrown by a bug has no code; the body still has one.
      const code = (error as { code?: unknown }).code;
      return reply
        .code(status)
        .send(errorBody(status, typeof code === "string" ? code : "INTERNAL", "internal error"));
    }
    // The contract: a request that is not a valid AdmissionReview gets 400,
    // whatever fastify's body parsing called it (415 for another media type,
    // 413 for a body over the limit); the code and message say which.
    const reason = describeRequestError(error, request.headers["content-type"], bodyLimit);
    metrics.admissions.inc({ outcome: "invalid" });
    admissionLog.info({ status: 400, code: error.code, reason, outcome: "invalid" }, "admission");
    return reply.code(400).send(errorBody(400, error.code, reason));
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send(
        errorBody(
          404,
          "NOT_FOUND",
          `no route ${request.method} ${request.url}; the webhook serves POST /mutate`,
        ),
      ),
  );

  app.post("/mutate", async (request, reply) => {
    const started = performance.now();
    const done = (outcome: AdmissionOutcome): number => {
      const seconds = (performance.now() - started) / 1000;
      const series = byOutcome.get(outcome);
      series?.count.inc();
      series?.duration.observe(seconds);
      return Math.round(seconds * 1e6) / 1e3;
    };
    let parsed;
    try {
      parsed = parseAdmissionReview(request.body);
    } catch (error) {
      if (!isAkvError(error, ErrorCode.BAD_ADMISSION_REVIEW)) throw error;
      const durationMs = done("invalid");
      admissionLog.info({ outcome: "invalid", durationMs, reason: error.message }, "admission");
      return reply.code(400).send(errorBody(400, error.code, error.message));
    }
    const result = await review(parsed, deps);
    const durationMs = done(result.outcome);
    admissionLog.info(
      {
        uid: parsed.request.uid,
        namespace: result.namespace,
        pod: result.pod,
        outcome: result.outcome,
        durationMs,
        ...(parsed.request.dryRun ? { dryRun: true } : {}),
        ...(result.warnings.length > 0 ? { warnings: result.warnings } : {}),
        ...(result.message === undefined ? {} : { reason: result.message }),
      },
      "admission",
    );
    return result.response;
  });

  let closing = false;
  health.get("/healthz", () => ({ status: "ok" }));
  health.get("/readyz", async (_request, reply) => {
    const reasons: string[] = [];
    if (closing) reasons.push("shutting down");
    if (current === undefined) reasons.push("no TLS certificate loaded");
    if (!serviceAccounts.isSynced()) reasons.push("service account cache not synced");
    if (reasons.length > 0) return reply.code(503).send({ status: "not ready", reasons });
    return { status: "ready" };
  });
  health.get("/metrics", async (_request, reply) =>
    reply.type(registry.contentType).send(await registry.metrics()),
  );

  // Reloads run one at a time; a file event during a reload queues one more.
  let reloading: Promise<boolean> = Promise.resolve(false);
  let lastFailure: string | undefined;
  const reloadOnce = async (): Promise<boolean> => {
    let cert: Buffer;
    let key: Buffer;
    try {
      [cert, key] = await Promise.all([
        readFile(settings.tlsCertFile),
        readFile(settings.tlsKeyFile),
      ]);
    } catch (error) {
      return failed(`cannot read TLS files: ${(error as Error).message}`);
    }
    if (current !== undefined && cert.equals(current.cert) && key.equals(current.key)) return false;
    let next: LoadedCertificate;
    try {
      next = checkCertificate(cert, key, new Date());
    } catch (error) {
      // Often a writer caught between the two files; the next event or poll completes it.
      return failed((error as Error).message);
    }
    app.server.setSecureContext(secureOptions(next));
    current = next;
    lastFailure = undefined;
    metrics.reloads.inc({ result: "success" });
    metrics.certificateExpiry.set(next.state.notAfter.getTime() / 1000);
    logger.info(
      { fingerprint: next.state.fingerprint, notAfter: next.state.notAfter.toISOString() },
      "TLS certificate reloaded",
    );
    return true;
  };
  const failed = (reason: string): false => {
    if (reason !== lastFailure) {
      metrics.reloads.inc({ result: "failure" });
      logger.warn(
        { code: ErrorCode.TLS_INVALID, reason },
        "TLS files not usable; keeping the certificate in use",
      );
      lastFailure = reason;
    }
    return false;
  };
  const reloadCertificate = (): Promise<boolean> => {
    reloading = reloading.then(reloadOnce, reloadOnce);
    return reloading;
  };

  // Kubernetes Secret volumes swap a `..data` symlink in the directory, so the
  // directory is watched, not the file (whose inode never changes).
  const debounceMs = options.certificateDebounceMs ?? 50;
  let debounce: NodeJS.Timeout | undefined;
  const onChange = (): void => {
    clearTimeout(debounce);
    debounce = setTimeout(() => void reloadCertificate(), debounceMs);
  };
  const watchers: FSWatcher[] = [];
  for (const dir of new Set([dirname(settings.tlsCertFile), dirname(settings.tlsKeyFile)])) {
    try {
      const watcher = watch(dir, { persistent: false }, onChange);
      watcher.on("error", (error) => {
        logger.warn({ dir, reason: error.message }, "TLS directory watch failed; polling only");
      });
      watchers.push(watcher);
    } catch (cause) {
      throw new AkvError(
        ErrorCode.TLS_INVALID,
        `${WebhookEnv.tlsCertFile}, ${WebhookEnv.tlsKeyFile}: cannot watch ${dir}, the directory of the TLS files (${(cause as Error).message})`,
        { cause },
      );
    }
  }
  const poll = setInterval(() => void reloadCertificate(), options.certificatePollMs ?? 10_000);
  poll.unref();

  const stopWatching = (): void => {
    clearInterval(poll);
    clearTimeout(debounce);
    for (const watcher of watchers) watcher.close();
  };

  return {
    app,
    health,
    registry,
    certificate: () => current?.state,
    reloadCertificate,
    listen: async ({ host, port, healthPort }) => {
      await app.listen({ host, port });
      await health.listen({ host, port: healthPort });
      const portOf = (s: FastifyInstance["server"] | HttpsServer): number => {
        const address = s.address();
        return typeof address === "object" && address !== null ? address.port : 0;
      };
      return { port: portOf(app.server), healthPort: portOf(health.server) };
    },
    close: async () => {
      closing = true;
      stopWatching();
      await app.close();
      await health.close();
      await reloading.catch(() => false);
    },
  };
}
