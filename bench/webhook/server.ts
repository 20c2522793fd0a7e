/**
 * One server under test, run as its own process so it can be pinned to one
 * core and its memory read alone:
 * `node bench/webhook/server.ts full|baseline|baseline-answer DIR`.
 *
 * - `full`: the real webhook server (`createWebhookServer`) with the real
 *   service-account cache (filled as the informer would fill it), pino logging
 *   to a file, its metrics.
 * - `baseline`: a bare fastify HTTPS handler that parses the same review and
 *   answers a fixed one-operation patch (0.1 KiB of answer).
 * - `baseline-answer`: the same handler answering every review with the
 *   patch the webhook gives the load mix's first injected pod, computed once
 *   at start: what the webhook's answer costs to send, without its decision.
 *
 * Prints `{"port":N}` once listening; exits on SIGTERM.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fastify } from "fastify";
import { pino } from "pino";
import { createLogger } from "../../common/logger.ts";
import { createServiceAccountCache } from "../../webhook/service-accounts.ts";
import type { ServiceAccount } from "../../webhook/injection-config.ts";
import { BODY_LIMIT, createWebhookServer } from "../../webhook/server.ts";
import { testServiceAccount, testSettings } from "../../testing/webhook.ts";
import { parseAdmissionReview } from "../../webhook/admission-review.ts";
import { review } from "../../webhook/review.ts";
import { buildMix } from "./load.ts";

const MODES = ["full", "baseline", "baseline-answer"] as const;
const [mode, dir] = process.argv.slice(2);
if (!MODES.some((m) => m === mode) || dir === undefined) {
  process.stderr.write(`usage: node bench/webhook/server.ts ${MODES.join("|")} DIR\n`);
  process.exit(2);
}
const certFile = join(dir, "tls.crt");
const keyFile = join(dir, "tls.key");

/** The baseline's fixed answer: one operation, the status annotation. */
const ONE_OP_PATCH = Buffer.from(
  JSON.stringify([
    { op: "add", path: "/metadata/annotations/akv-injector.io~1status", value: "injected" },
  ]),
).toString("base64");

/** The patch (base64) the webhook gives the load mix's first injected pod. */
async function typicalInjectionPatch(): Promise<string> {
  const injected = buildMix(1000).find((c) => c.expected === "injected");
  if (injected === undefined) throw new Error("the load mix has no injected pod");
  const result = await review(parseAdmissionReview(JSON.parse(injected.body)), {
    settings: testSettings(),
    lookupServiceAccount: (namespace, name) => Promise.resolve(testServiceAccount(name, namespace)),
  });
  const { patch } = result.response.response;
  if (patch === undefined) throw new Error(`the mix's injected pod was ${result.outcome}`);
  return patch;
}

async function startFull(): Promise<{ port: number; close: () => Promise<void> }> {
  const logger = createLogger({
    name: "webhook",
    destination: pino.destination({ dest: join(dir ?? ".", "webhook.log"), sync: false }),
  });
  // The informer's cache, filled as a list would fill it: every lookup of the mix is a hit.
  const accounts = new Map<string, ServiceAccount>();
  for (const ns of ["team-a", "team-b"]) {
    for (const name of ["app", "web", "default"])
      accounts.set(`${ns}/${name}`, testServiceAccount(name, ns));
  }
  const serviceAccounts = createServiceAccountCache({
    informer: {
      on: () => undefined,
      start: () => Promise.resolve(),
      stop: () => Promise.resolve(),
      get: (name, namespace) => accounts.get(`${namespace ?? ""}/${name}`),
    },
    read: () => Promise.resolve(undefined),
    logger,
  });
  await serviceAccounts.start();
  const server = await createWebhookServer({
    settings: { ...testSettings(), tlsCertFile: certFile, tlsKeyFile: keyFile },
    logger,
    serviceAccounts,
  });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0, healthPort: 0 });
  return {
    port,
    close: async () => {
      await server.close();
      logger.flush();
    },
  };
}

async function startBaseline(patch: string): Promise<{ port: number; close: () => Promise<void> }> {
  const [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
  const app = fastify({
    https: { cert, key, minVersion: "TLSv1.2" },
    bodyLimit: BODY_LIMIT,
    logger: false,
  });
  app.post("/mutate", (request) => {
    const body = request.body as { request?: { uid?: unknown } } | null;
    const uid = typeof body?.request?.uid === "string" ? body.request.uid : "";
    return {
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: { uid, allowed: true, patchType: "JSONPatch", patch },
    };
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  return {
    port: typeof address === "object" && address !== null ? address.port : 0,
    close: () => app.close(),
  };
}

const server =
  mode === "full"
    ? await startFull()
    : await startBaseline(mode === "baseline" ? ONE_OP_PATCH : await typicalInjectionPatch());
process.stdout.write(`${JSON.stringify({ port: server.port })}\n`);
process.on("SIGTERM", () => {
  void server.close().then(() => process.exit(0));
});
