/**
 * The long property run (`node bench/webhook/fuzz.ts [--runs N] [--seed S]`):
 * random and malformed AdmissionReviews against the real webhook server
 * (through fastify's `inject()`, no network), 100,000 by default. Every answer
 * must be JSON with an expected status, echo the uid, and carry a patch that
 * applies to the pod it was for. Writes its section of bench/webhook/RESULTS.md.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import fc from "fast-check";
import { pino } from "pino";
import { createLogger } from "../../common/logger.ts";
import { createWebhookServer } from "../../webhook/server.ts";
import { bodyArbitrary, checkAnswer } from "../../testing/webhook-arbitraries.ts";
import { testServiceAccount, testSettings } from "../../testing/webhook.ts";
import { describeRun, writeSection } from "./results.ts";
import { writeServingCertificate } from "./tls.ts";

const { values } = parseArgs({
  options: { runs: { type: "string", default: "100000" }, seed: { type: "string" } },
});
const runs = Number(values.runs);
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : Number(values.seed);

const dir = await mkdtemp(join(tmpdir(), "akv-fuzz-webhook-"));
try {
  await writeServingCertificate(dir, "fuzz-ca");
  const server = await createWebhookServer({
    settings: {
      ...testSettings(),
      tlsCertFile: join(dir, "tls.crt"),
      tlsKeyFile: join(dir, "tls.key"),
    },
    logger: createLogger({
      name: "webhook",
      destination: pino.destination({ dest: "/dev/null", sync: false }),
    }),
    serviceAccounts: {
      lookup: (namespace, name) =>
        Promise.resolve(name === "ghost" ? undefined : testServiceAccount(name, namespace)),
      isSynced: () => true,
    },
  });
  const statuses = new Map<number, number>();
  const answers = new Map<string, number>();
  const started = performance.now();
  const details = await fc.check(
    fc.asyncProperty(bodyArbitrary, async (body) => {
      const res = await server.app.inject({
        method: "POST",
        url: "/mutate",
        headers: { "content-type": body.contentType },
        payload: body.payload,
      });
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      if (res.statusCode === 200) {
        const answer = res.json<{ response: { allowed: boolean; patch?: string } }>().response;
        const kind = !answer.allowed
          ? "refused"
          : answer.patch === undefined
            ? "allowed unchanged"
            : "patched";
        answers.set(kind, (answers.get(kind) ?? 0) + 1);
      }
      checkAnswer(body, res.statusCode, res.headers["content-type"], res.body);
    }),
    { numRuns: runs, seed },
  );
  const seconds = (performance.now() - started) / 1000;
  await server.close();
  const byStatus = [...statuses]
    .sort((a, b) => a[0] - b[0])
    .map(([status, n]) => `${status}: ${n}`)
    .join(", ");
  const verdict = details.failed
    ? `**failed** after ${details.numRuns} cases: ${fc.defaultReportMessage(details) ?? ""}`
    : `passed: ${details.numRuns} cases, none crashed the server or got a non-JSON answer`;
  const byAnswer = [...answers].map(([kind, n]) => `${kind}: ${n}`).join(", ");
  console.log(`${verdict} (${seconds.toFixed(1)} s; ${byStatus}; ${byAnswer})`);
  await writeSection(
    "fuzz",
    `## Property run: random and malformed AdmissionReviews

${describeRun()}

Command: \`node bench/webhook/fuzz.ts --runs ${runs} --seed ${seed}\` (the real webhook server through
\`inject()\`; bodies from \`testing/webhook-arbitraries.ts\`: reviews with every field possibly missing or of
the wrong type, pods with random annotations under the prefix and odd container shapes, any JSON, text that is
not JSON, other content types).

- Result: ${verdict}.
- Time: ${seconds.toFixed(1)} s (${(details.numRuns / seconds).toFixed(0)} cases/s).
- HTTP statuses: ${byStatus}; the 200s: ${byAnswer}.
`,
  );
  if (details.failed) process.exitCode = 1;
} finally {
  await rm(dir, { recursive: true, force: true });
}
