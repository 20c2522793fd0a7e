/**
 * Hostile admission requests against the real webhook server, run as its own
 * process (`bench/webhook/server.ts full`): pods as large as the server
 * takes (just under `BODY_LIMIT`, which is more than the apiserver's own
 * request limit lets through), built to make the answer, the log or the work
 * grow with the input: some as many members as the server parses
 * (`MAX_REVIEW_MEMBERS`), some past it, which it refuses unparsed. For each: the answer's size and time, and the
 * server's peak RSS (VmHWM) before and after. Targets: every answer within
 * the webhook's timeout (5 s) and under 64 KiB; peak RSS up by under 32 MiB.
 *
 * `node bench/webhook/hostile.ts [--rounds N]` (default 3 of each); writes
 * its section of bench/webhook/RESULTS.md.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { JsonMemberCounter, MAX_REVIEW_MEMBERS } from "../../webhook/member-bound.ts";
import { BODY_LIMIT } from "../../webhook/server.ts";
import { TEST_ANNOTATIONS, testPod, testReview } from "../../testing/webhook.ts";
import { IMAGE_NODE_FLAGS } from "./image-server.ts";
import { makeMemoryGroup, procMemoryMiB, spawnInGroup } from "./process.ts";
import { describeRun, writeSection } from "./results.ts";
import { writeServingCertificate } from "./tls.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    "memory-limit": { type: "string", default: "256" },
  },
});
const rounds = Number(values.rounds);
/** The chart's memory limit (MiB), in force as a cgroup: Node sizes its heap from it, as in a pod. */
const memoryLimitMiB = Number(values["memory-limit"]);
const TIMEOUT_MS = 5000;
const MAX_ANSWER = 64 * 1024;
const MAX_RSS_RISE_MIB = 32;

/** Object members of a review's JSON, as the server counts them before parsing. */
const membersOf = (review: Record<string, unknown>): number =>
  new JsonMemberCounter().feed(JSON.stringify(review));

/**
 * A review of a pod of `n` hostile items, with `n` as large as keeps it under
 * the body limit and, when `withinMembers`, under the member bound too (a
 * review over it is refused unparsed, so the cases that reach the review
 * code stay under it).
 */
function fill(
  make: (n: number) => Record<string, unknown>,
  each: number,
  withinMembers = false,
): string {
  let n = Math.floor(BODY_LIMIT / each);
  for (;;) {
    const review = testReview(make(n));
    const size = Buffer.byteLength(JSON.stringify(review));
    const members = withinMembers ? membersOf(review) : 0;
    if (size < BODY_LIMIT && members <= MAX_REVIEW_MEMBERS) return JSON.stringify(review);
    n = Math.floor(
      n * Math.min((BODY_LIMIT - 1024) / size, (MAX_REVIEW_MEMBERS - 16) / Math.max(members, 1)),
    );
  }
}

const annotationsPod = (n: number, key: (i: number) => string, value: string) => {
  const a: Record<string, string> = { ...TEST_ANNOTATIONS };
  for (let i = 0; i < n; i++) a[key(i)] = value;
  return testPod(a);
};

const tokenMounters = (n: number) =>
  testPod(TEST_ANNOTATIONS, {
    containers: Array.from({ length: n }, (_, i) => ({
      name: `c${String(i)}`,
      image: "x",
      volumeMounts: [{ name: "akv-injector-token", mountPath: "/t" }],
    })),
  });

/** `status`: 200, an AdmissionReview answer (a refusal too); 400, refused before parsing. */
const cases: { name: string; status: 200 | 400; body: () => string }[] = [
  {
    name: "unknown akv-injector.io/* annotations, up to the member bound",
    status: 200,
    body: () =>
      fill(
        (n) => annotationsPod(n, (i) => `akv-injector.io/unknown-${String(i)}`, "x".repeat(20)),
        60,
        true,
      ),
  },
  {
    name: "tiny annotations, up to the member bound",
    status: 200,
    body: () => fill((n) => annotationsPod(n, (i) => `k${String(i)}`, ""), 12, true),
  },
  {
    name: "annotations that are not strings, past the member bound",
    status: 400,
    body: () =>
      fill((n) => {
        const a: Record<string, unknown> = {};
        for (let i = 0; i < n; i++) a[`k${String(i)}`] = i;
        return testPod(null, {}, { annotations: a });
      }, 16),
  },
  {
    name: "containers that mount the token, up to the member bound",
    status: 200,
    body: () => fill(tokenMounters, 100, true),
  },
  {
    name: "containers that mount the token, past the member bound",
    status: 400,
    body: () => fill(tokenMounters, 100),
  },
  {
    name: "bad secret refs in one annotation",
    status: 200,
    body: () =>
      fill(
        (n) =>
          testPod({
            ...TEST_ANNOTATIONS,
            "akv-injector.io/secrets": Array.from({ length: n }, (_, i) => `bad_${String(i)}`).join(
              ",",
            ),
          }),
        10,
      ),
  },
  {
    name: "one template as large as the body",
    status: 200,
    body: () =>
      fill(
        (n) =>
          testPod({
            ...TEST_ANNOTATIONS,
            "akv-injector.io/template-big": '{{ secret "db-password" }}'.repeat(n),
          }),
        28,
      ),
  },
];

function post(
  port: number,
  ca: string,
  payload: string,
): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: "/mutate",
        ca,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(payload),
        },
        timeout: TIMEOUT_MS * 4,
      },
      (res) => {
        let bytes = 0;
        res.on("data", (c: Buffer) => (bytes += c.length));
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, bytes });
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

const peakRssMiB = (pid: number) => procMemoryMiB(pid, "VmHWM");

const dir = await mkdtemp(join(tmpdir(), "akv-hostile-"));
const group = await makeMemoryGroup("hostile", memoryLimitMiB);
// With the flags Dockerfile.webhook's ENTRYPOINT gives node.
const server = [
  process.execPath,
  ...IMAGE_NODE_FLAGS,
  new URL("server.ts", import.meta.url).pathname,
  "full",
  dir,
];
const child = spawnInGroup(group, server);
try {
  const caPem = await writeServingCertificate(dir, "hostile-ca");
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.setEncoding("utf8").once("data", (line: string) => {
      resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once("exit", (code) => {
      reject(new Error(`the server exited (${String(code)})`));
    });
  });
  // A few ordinary reviews first, so the baseline is a warm server.
  const ordinary = JSON.stringify(testReview(testPod()));
  for (let i = 0; i < 50; i++) await post(port, caPem, ordinary);
  const before = await peakRssMiB(child.pid ?? 0);
  const rows: string[] = [];
  let failed = 0;
  for (const c of cases) {
    const payload = c.body();
    let worstMs = 0;
    let largest = 0;
    let status = 0;
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      const answer = await post(port, caPem, payload);
      worstMs = Math.max(worstMs, performance.now() - t0);
      largest = Math.max(largest, answer.bytes);
      status = answer.status;
    }
    process.stderr.write(
      `${c.name}: peak RSS ${(await peakRssMiB(child.pid ?? 0)).toFixed(1)} MiB\n`,
    );
    const ok = worstMs < TIMEOUT_MS && largest < MAX_ANSWER && status === c.status;
    if (!ok) failed++;
    rows.push(
      `| ${c.name} | ${(Buffer.byteLength(payload) / 2 ** 20).toFixed(2)} MiB | ${String(status)} | ${worstMs.toFixed(0)} ms | ${(largest / 1024).toFixed(1)} KiB | ${ok ? "yes" : "**no**"} |`,
    );
  }
  const after = await peakRssMiB(child.pid ?? 0);
  const rise = after - before;
  if (rise >= MAX_RSS_RISE_MIB) failed++;
  const section = `## Hostile requests

Command: \`node bench/webhook/hostile.ts --rounds ${String(rounds)} --memory-limit ${String(memoryLimitMiB)}\`.
${describeRun()} The real server as its own process, ${group.description};
each request ${String(rounds)} times, over HTTPS.

| request | body | HTTP | slowest answer | largest answer | as expected, within 5 s and 64 KiB |
| --- | --- | --- | --- | --- | --- |
${rows.join("\n")}

Peak RSS (VmHWM) of the server: ${before.toFixed(1)} MiB warm, ${after.toFixed(1)} MiB after
all of them: up ${rise.toFixed(1)} MiB (target under ${String(MAX_RSS_RISE_MIB)} MiB).`;
  process.stdout.write(`${section}\n`);
  await writeSection("hostile", section);
  process.exitCode = failed === 0 ? 0 : 1;
} finally {
  child.kill("SIGTERM");
  await new Promise((resolve) => child.once("exit", resolve));
  await rm(dir, { recursive: true, force: true });
  await group.remove();
}
