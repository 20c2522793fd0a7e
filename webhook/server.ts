/**
 * The webhook's HTTP side, built by a factory that does not listen (tests use
 * `inject()`; `main.ts` listens):
 *
 * - HTTPS (TLS 1.2+) `POST /mutate`: decode, call {@link review}, encode. A
 *   body that is not an AdmissionReview gets HTTP 400 with a JSON error.
 * - plain HTTP `/healthz`, `/readyz` (a certificate is loaded and the service
 *   account cache has synced), `/metrics` (`metrics.ts`).
 * - the serving certificate (`serving-certificate.ts`) is wired in: its pair
 *   goes to `setSecureContext` when the files change (open connections and
 *   in-flight requests keep the old context, new handshakes get the new one),
 *   and its hooks feed the metrics here.
 */
import { STATUS_CODES } from "node:http";
import type { Server as HttpsServer } from "node:https";
import { performance } from "node:perf_hooks";
import {
  fastify,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from "fastify";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import { REDACT_PATHS, type Logger } from "../common/logger.ts";
import { parseAdmissionReview } from "./admission-review.ts";
import { createWebhookMetrics, EXPOSITION_CONTENT_TYPE, type WebhookMetrics } from "./metrics.ts";
import {
  couldExceedMembers,
  JsonMemberCounter,
  MAX_REVIEW_MEMBERS,
  tooManyMembers,
} from "./member-bound.ts";
import { OUTCOMES, review, type Outcome, type ServiceAccountLookup } from "./review.ts";
import {
  loadServingCertificate,
  secureContextOptions,
  watchServingCertificate,
  type CertificateState,
  type CertificateFiles,
} from "./serving-certificate.ts";
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
/**
 * How long an idle keep-alive connection stays open. Longer than the
 * apiserver's own idle timeout (client-go's transport keeps Go's 90 s), so
 * the apiserver always closes an idle connection first: when the server
 * closes it, a request the apiserver is sending on it at that moment fails
 * as "connection reset by peer", and the pod is refused.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 120_000;

/**
 * fastify loads ajv and fast-json-stringify for routes that declare schemas;
 * the webhook's declare none (it parses reviews itself, into typed values),
 * so these compilers stand in, and the bundle leaves both libraries out
 * (scripts/webhook-bundle.ts): 1.5–2 MiB less at rest.
 */
const NO_SCHEMA_COMPILERS = {
  compilersFactory: {
    buildValidator: () => () => {
      throw new Error("the webhook's routes have no schemas to validate with");
    },
    buildSerializer: () => () => {
      throw new Error("the webhook's routes have no schemas to serialize with");
    },
  },
};

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
  /** Where the metrics go; default fresh ones. */
  readonly metrics?: WebhookMetrics;
  /** Default {@link BODY_LIMIT}. */
  readonly bodyLimit?: number;
  /** Default {@link MAX_REVIEW_MEMBERS}. */
  readonly maxMembers?: number;
  /** A safety net for missed file events: the files are re-read this often. Default 10 s. */
  readonly certificatePollMs?: number;
  /** File events come in bursts (a Secret volume update is several renames); one reload follows the burst. Default 50 ms. */
  readonly certificateDebounceMs?: number;
}

/** The two fastify instances and their shared state. */
export interface WebhookServer {
  /** HTTPS: `POST /mutate`. */
  readonly app: FastifyInstance<HttpsServer>;
  /** Plain HTTP: `/healthz`, `/readyz`, `/metrics`. */
  readonly health: FastifyInstance;
  readonly metrics: WebhookMetrics;
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
  /**
   * Keeps serving, but turns `/readyz` 503 and closes each connection after
   * its answer, so that clients reconnect, to other replicas once the
   * Service has dropped this one. {@link WebhookServer.close} follows.
   */
  drain(): void;
  /** Stops accepting, lets in-flight requests finish, closes both servers and the file watchers. */
  close(): Promise<void>;
}

/**
 * The logger of admission lines. They are flat objects of fixed keys (uid,
 * namespace, pod, outcome, duration, warnings, reason), so the top-level
 * redaction paths cover them; the wildcard paths cost four times the rest of
 * the line (measured: 6.9 µs against 2.3 µs a line, before the RFC 3339
 * time, which adds about 1 µs: bench/webhook/log-line.ts) on the hottest path.
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
  const metrics = options.metrics ?? createWebhookMetrics([...OUTCOMES, "invalid"]);
  const deps = { settings, lookupServiceAccount: serviceAccounts.lookup };
  const admissionLog = createAdmissionLogger(logger);
  const certificateOptions: CertificateFiles = {
    certFile: settings.tlsCertFile,
    keyFile: settings.tlsKeyFile,
    logger,
    hooks: {
      inUse: (state) => {
        metrics.certificateInUse(state.notAfter.getTime());
      },
      reloaded: (result) => {
        metrics.reloaded(result);
      },
    },
    pollMs: options.certificatePollMs,
    debounceMs: options.certificateDebounceMs,
  };
  const initial = await loadServingCertificate(certificateOptions);

  const bodyLimit = options.bodyLimit ?? BODY_LIMIT;
  const app = fastify({
    https: secureContextOptions(initial),
    bodyLimit,
    logger: false,
    // The apiserver gives up after the webhook's timeoutSeconds (at most 30 s).
    requestTimeout: 30_000,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    return503OnClosing: true,
    forceCloseConnections: "idle",
    schemaController: NO_SCHEMA_COMPILERS,
  });
  const health = fastify({ logger: false, schemaController: NO_SCHEMA_COMPILERS });
  // JSON only: fastify would read a text/plain body as a string, and the
  // refusal would then say "not a JSON object" instead of naming the media type.
  app.removeContentTypeParser("text/plain");
  const certificate = watchServingCertificate(initial, app.server, certificateOptions);
  const maxMembers = options.maxMembers ?? MAX_REVIEW_MEMBERS;
  const collect = (globalThis as { gc?: () => void }).gc;
  let draining = false;
  /**
   * What every answer of the HTTPS server does besides its body, called by
   * the handlers rather than run as fastify `onRequest`/`onResponse` hooks:
   * a hook puts every request on fastify's slower path (with the member
   * bound moved from a preParsing hook into the JSON parser below, 29% ->
   * 57% of a bare fastify's throughput: bench/webhook/RESULTS.md).
   * - While draining, `Connection: close`: Node ends the connection after
   *   the answer, and the client opens a new one instead of sending its next
   *   request to a closing server.
   * - After a body over LARGE_BODY, a full collection once the answer is out.
   */
  const finishAnswer = (request: FastifyRequest, reply: FastifyReply): void => {
    if (draining) reply.header("connection", "close");
    const large = Number(request.headers["content-length"]) > LARGE_BODY;
    // Once per answer, though the error handler may follow the route's.
    if (collect !== undefined && large && !reply.raw.listeners("finish").includes(collect))
      reply.raw.once("finish", collect);
  };
  // fastify's own JSON parser (with its prototype-poisoning checks), after a
  // count of the members of a body that could hold more than the bound: the
  // parser would build every member of a hostile body. A parser of the media
  // type, not a preParsing hook, which would put every request on fastify's
  // slower path; the body limit bounds what is read first.
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = body as string;
    if (
      couldExceedMembers(request.headers["content-length"], maxMembers) &&
      new JsonMemberCounter().feed(text) > maxMembers
    ) {
      done(tooManyMembers(maxMembers), undefined);
      return;
    }
    void parseJson(request, text, done);
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    finishAnswer(request, reply);
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
    metrics.admission("invalid");
    admissionLog.info({ status: 400, code: error.code, reason, outcome: "invalid" }, "admission");
    return reply.code(400).send(errorBody(400, error.code, reason));
  });
  app.setNotFoundHandler((request, reply) => {
    finishAnswer(request, reply);
    return reply
      .code(404)
      .send(
        errorBody(
          404,
          "NOT_FOUND",
          `no route ${request.method} ${request.url}; the webhook serves POST /mutate`,
        ),
      );
  });

  app.post("/mutate", async (request, reply) => {
    finishAnswer(request, reply);
    const started = performance.now();
    const done = (outcome: AdmissionOutcome): number => {
      const seconds = (performance.now() - started) / 1000;
      metrics.admission(outcome, seconds);
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

  health.get("/healthz", () => ({ status: "ok" }));
  health.get("/readyz", async (_request, reply) => {
    const reasons: string[] = [];
    if (draining) reasons.push("shutting down");
    if (certificate.state() === undefined) reasons.push("no TLS certificate loaded");
    if (!serviceAccounts.isSynced()) reasons.push("service account cache not synced");
    if (reasons.length > 0) return reply.code(503).send({ status: "not ready", reasons });
    return { status: "ready" };
  });
  health.get("/metrics", (_request, reply) =>
    reply.type(EXPOSITION_CONTENT_TYPE).send(metrics.render()),
  );

  return {
    app,
    health,
    metrics,
    certificate: () => certificate.state(),
    reloadCertificate: () => certificate.reload(),
    listen: async ({ host, port, healthPort }) => {
      await app.listen({ host, port });
      await health.listen({ host, port: healthPort });
      const portOf = (s: FastifyInstance["server"] | HttpsServer): number => {
        const address = s.address();
        return typeof address === "object" && address !== null ? address.port : 0;
      };
      return { port: portOf(app.server), healthPort: portOf(health.server) };
    },
    drain: () => {
      draining = true;
    },
    close: async () => {
      draining = true;
      const stopped = certificate.close();
      await app.close();
      await health.close();
      await stopped;
    },
  };
}
