/**
 * The least webhook fastify makes: one HTTPS route that parses a review with
 * fastify's JSON parser and allows it, no logger, no health server, fastify's
 * schema compilers stood in for as the webhook's are. `start.ts` bundles it
 * as the webhook is bundled and runs it under the image's flags: its idle
 * memory and start are the floor of any webhook on fastify.
 *
 * Environment: the webhook's (AKV_INJECTOR_TLS_CERT_FILE,
 * AKV_INJECTOR_TLS_KEY_FILE, AKV_INJECTOR_PORT). Prints the webhook's
 * `"listening"` line.
 */
import { readFileSync } from "node:fs";
import { fastify } from "fastify";
import { allowedReview, announceListening, floorEnv } from "./review.ts";

const env = floorEnv();
const refuse = (): never => {
  throw new Error("the floor's route has no schema");
};
const app = fastify({
  https: { cert: readFileSync(env.certFile), key: readFileSync(env.keyFile) },
  logger: false,
  schemaController: {
    compilersFactory: { buildValidator: () => refuse, buildSerializer: () => refuse },
  },
});
app.post("/mutate", (request) => allowedReview(request.body));
await app.listen({ host: "127.0.0.1", port: env.port });
announceListening();
