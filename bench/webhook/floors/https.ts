/**
 * The least webhook Node makes: `node:https` alone, one handler that parses
 * a review and allows it. `start.ts` bundles and runs it as it does the
 * webhook: the floor under fastify's.
 *
 * Environment and output as `fastify.ts`.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import { allowedReview, announceListening, floorEnv } from "./review.ts";

const env = floorEnv();
const server = createServer(
  { cert: readFileSync(env.certFile), key: readFileSync(env.keyFile) },
  (request, response) => {
    let body = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => (body += chunk));
    request.on("end", () => {
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify(allowedReview(JSON.parse(body))));
    });
  },
);
server.listen(env.port, "127.0.0.1", () => {
  announceListening();
});
