/**
 * The webhook process as its image runs it (`node FLAGS webhook.mjs`, the
 * flags and environment of Dockerfile.webhook, from a copy of dist/ whose
 * compile cache is filled as the image's build fills it; run `npm run build`
 * first), in a cgroup with the chart's memory
 * limit, against a fake apiserver with one service account. Rounds with and
 * without the cache alternate:
 *
 * - start: from spawn to the first admission answered (a review sent every
 *   5 ms until one is answered 200), and to the "listening" line;
 * - idle: RSS (`VmRSS`) and V8's used heap (`/metrics`) after 5 s at rest,
 *   the informer synced;
 * - where the weight comes from: the bundle's bytes by package (esbuild's
 *   metafile), and what importing each heavy package costs a bare Node;
 * - the floors, in the same rounds: the least server fastify makes and the
 *   least `node:https` makes (floors/), bundled as the webhook is and run
 *   under its flags, what any webhook on each would start and idle at.
 *
 * Targets (issue 13): start ≤ 200 ms, idle ≤ 60 MiB.
 *
 * `node bench/webhook/start.ts [--rounds N] [--memory-limit MiB]`; writes its
 * section of bench/webhook/RESULTS.md.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { cp, mkdir, mkdtemp, rm } from "node:fs/promises";
import { request } from "node:https";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { build } from "esbuild";
import { BUNDLE_ENTRIES } from "../../scripts/bundles.ts";
import { webhookBuildOptions } from "../../scripts/webhook-bundle.ts";
import { TEST_ANNOTATIONS, testPod, testReview } from "../../testing/webhook.ts";
import {
  IMAGE_NODE_FLAGS,
  WEBHOOK_BUNDLE,
  imageWebhookEnv,
  requireBundle,
  startFakeApiServer,
} from "./image-server.ts";
import { makeMemoryGroup, procMemoryMiB, spawnInGroup, type MemoryGroup } from "./process.ts";
import { median } from "../stats.ts";
import { describeRun, writeSection } from "./results.ts";
import { writeServingCertificate } from "./tls.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    "memory-limit": { type: "string", default: "256" },
  },
});
const rounds = Number(values.rounds);
const memoryLimitMiB = Number(values["memory-limit"]);
const BUNDLE = WEBHOOK_BUNDLE;
const IDLE_MS = 5000;
/** The floor servers (floors/), each bundled and run as the webhook is. */
const FLOORS = [
  { name: "fastify", label: "the least fastify HTTPS server (`floors/fastify.ts`)" },
  { name: "https", label: "the least `node:https` server (`floors/https.ts`)" },
] as const;
/** Packages whose import cost is measured alone in a bare Node. */
const HEAVY = ["@kubernetes/client-node", "fastify", "pino", "node-forge", "yaml"];

interface Round {
  readonly listeningMs: number;
  readonly firstAnswerMs: number;
  readonly idleRssMiB: number;
  readonly heapUsedMiB: number;
}

function postOnce(port: number, caPem: string, body: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: "/mutate",
        ca: caPem,
        agent: false,
        headers: { "content-type": "application/json" },
      },
      (res) => {
        res.resume();
        res.on("end", () => {
          resolve(res.statusCode ?? 0);
        });
      },
    );
    // Refused until it listens: that is the wait being measured.
    req.on("error", () => {
      resolve(0);
    });
    req.end(body);
  });
}

async function heapUsedMiB(healthPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${String(healthPort)}/metrics`)).text();
  const bytes = /^nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1];
  return Number(bytes ?? Number.NaN) / 2 ** 20;
}

async function oneRound(
  bundle: string,
  group: MemoryGroup,
  env: NodeJS.ProcessEnv,
  caPem: string,
  port: number,
): Promise<Round> {
  const review = JSON.stringify(testReview(testPod(TEST_ANNOTATIONS)));
  const t0 = performance.now();
  const child = spawnInGroup(group, [process.execPath, ...IMAGE_NODE_FLAGS, bundle], { env });
  let listeningMs = Number.NaN;
  let healthPort = 0;
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    for (const line of chunk.split("\n")) {
      if (!line.includes('"listening"')) continue;
      listeningMs = performance.now() - t0;
      healthPort = (JSON.parse(line) as { healthPort: number }).healthPort;
    }
  });
  try {
    let firstAnswerMs = Number.NaN;
    for (const deadline = t0 + 30_000; performance.now() < deadline;) {
      if ((await postOnce(port, caPem, review)) === 200) {
        firstAnswerMs = performance.now() - t0;
        break;
      }
      await sleep(5);
    }
    await sleep(IDLE_MS);
    return {
      listeningMs,
      firstAnswerMs,
      idleRssMiB: await procMemoryMiB(child.pid ?? 0, "VmRSS"),
      // The floors serve no metrics.
      heapUsedMiB: healthPort > 0 ? await heapUsedMiB(healthPort) : Number.NaN,
    };
  } finally {
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
  }
}

/**
 * Output bytes of the webhook bundle as the image holds it, by npm package
 * (or "our code"), largest first: what a start loads (the entry, the
 * process's chunk and what they import statically) and what loads on demand.
 */
async function bundleBytesByPackage(): Promise<{
  start: [string, number][];
  later: [string, number][];
}> {
  const result = await build({
    ...webhookBuildOptions("/tmp/akv-start-bundle", BUNDLE_ENTRIES["akv-injector-webhook"]),
    write: false,
    logLevel: "silent",
  });
  const outputs = result.metafile?.outputs ?? {};
  const entry = Object.keys(outputs).find((o) => o.endsWith("/webhook.mjs")) ?? "";
  const main = Object.keys(outputs).find((o) => /\/main-[^/]+\.mjs$/.test(o)) ?? "";
  const atStart = new Set<string>();
  const visit = (file: string): void => {
    if (atStart.has(file)) return;
    atStart.add(file);
    for (const i of outputs[file]?.imports ?? []) if (i.kind === "import-statement") visit(i.path);
  };
  visit(entry);
  visit(main);
  const totals = (files: string[]): [string, number][] => {
    const map = new Map<string, number>();
    for (const file of files) {
      for (const [path, input] of Object.entries(outputs[file]?.inputs ?? {})) {
        const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1] ?? "our code";
        map.set(pkg, (map.get(pkg) ?? 0) + input.bytesInOutput);
      }
    }
    return [...map].sort((x, y) => y[1] - x[1]);
  };
  const js = Object.keys(outputs).filter((o) => o.endsWith(".mjs"));
  return {
    start: totals(js.filter((o) => atStart.has(o))),
    later: totals(js.filter((o) => !atStart.has(o))),
  };
}

/** RSS and time of `import(pkg)` in a fresh Node, after a full collection. */
function importCost(pkg: string | undefined): { ms: number; rssMiB: number } {
  const script = `const t = performance.now();
${pkg === undefined ? "" : `await import(${JSON.stringify(pkg)});`}
const ms = performance.now() - t; globalThis.gc();
console.log(JSON.stringify({ ms, rssMiB: process.memoryUsage().rss / 2 ** 20 }));`;
  const out = execFileSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], {
    encoding: "utf8",
  });
  return JSON.parse(out) as { ms: number; rssMiB: number };
}

/** A floor server bundled with the webhook's esbuild options; returns its entry. */
async function buildFloor(name: string, dir: string): Promise<string> {
  const outdir = join(dir, `floor-${name}`);
  const entry = new URL(`floors/${name}.ts`, import.meta.url).pathname;
  await build({ ...webhookBuildOptions(outdir, entry), logLevel: "silent" });
  return join(outdir, "webhook.mjs");
}

/**
 * A copy of dist/'s webhook with its compile cache filled as
 * Dockerfile.webhook fills it: one start without settings (exit 1).
 * @returns the copy's entry.
 */
async function withCompileCache(dir: string): Promise<string> {
  const app = join(dir, "app");
  const dist = dirname(BUNDLE);
  await cp(BUNDLE, join(app, "webhook.mjs"));
  await cp(join(dist, "webhook-chunks"), join(app, "webhook-chunks"), { recursive: true });
  await mkdir(join(app, "webhook-cache"));
  const entry = join(app, "webhook.mjs");
  const filled = spawnSync(process.execPath, [...IMAGE_NODE_FLAGS, entry], {
    env: {},
    encoding: "utf8",
  });
  if (filled.status !== 1 || !filled.stderr.includes("AKV_SETTINGS_INVALID"))
    throw new Error(`filling the compile cache: exit ${String(filled.status)}: ${filled.stderr}`);
  return entry;
}

const range = (xs: readonly number[], digits: number): string =>
  `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

await requireBundle();
const dir = await mkdtemp(join(tmpdir(), "akv-start-"));
const api = await startFakeApiServer(["team-a/app"]);
const group = await makeMemoryGroup("start", memoryLimitMiB);
try {
  const caPem = await writeServingCertificate(dir, "start-ca");
  const port = 18443;
  const env = await imageWebhookEnv(dir, api, port);
  const cached = await withCompileCache(dir);
  const measured: Round[] = [];
  const uncached: Round[] = [];
  const floors = await Promise.all(
    FLOORS.map(async (f) => ({
      ...f,
      entry: await buildFloor(f.name, dir),
      rounds: [] as Round[],
    })),
  );
  for (let r = 0; r < rounds; r++) {
    const round = await oneRound(cached, group, env, caPem, port);
    const plain = await oneRound(BUNDLE, group, env, caPem, port);
    for (const floor of floors)
      floor.rounds.push(await oneRound(floor.entry, group, env, caPem, port));
    process.stderr.write(`round ${String(r + 1)}: ${JSON.stringify({ round, plain })}\n`);
    measured.push(round);
    uncached.push(plain);
  }
  const packages = await bundleBytesByPackage();
  const sum = (rows: [string, number][]): number => rows.reduce((n, [, bytes]) => n + bytes, 0);
  const total = sum(packages.start);
  const table = (rows: [string, number][], whole: number): string =>
    rows
      .slice(0, 8)
      .map(
        ([pkg, bytes]) =>
          `| ${pkg} | ${(bytes / 1024).toFixed(0)} | ${((100 * bytes) / whole).toFixed(1)}% |`,
      )
      .join("\n");
  const bare = importCost(undefined);
  const imports = HEAVY.map((pkg) => ({ pkg, ...importCost(pkg) }));

  const section = `## Start and idle memory

Command: \`npm run build && node bench/webhook/start.ts --rounds ${String(rounds)} --memory-limit ${String(memoryLimitMiB)}\`.
${describeRun()} The bundle as the image runs it (\`node ${IMAGE_NODE_FLAGS.join(" ")} webhook.mjs\`, its compile cache filled as Dockerfile.webhook fills it), ${group.description},
against a fake apiserver; ${String(rounds)} starts, median (min–max). Load average at the end:
${loadavg()
  .map((l) => l.toFixed(2))
  .join(", ")} (start times grow with other work on the machine; memory does not).

| measure | value | target |
| --- | --- | --- |
| spawn to first admission answered | ${range(
    measured.map((m) => m.firstAnswerMs),
    0,
  )} ms | ≤ 200 ms |
| the same, without the compile cache | ${range(
    uncached.map((m) => m.firstAnswerMs),
    0,
  )} ms | |
| spawn to "listening" | ${range(
    measured.map((m) => m.listeningMs),
    0,
  )} ms | |
| RSS after ${String(IDLE_MS / 1000)} s idle | ${range(
    measured.map((m) => m.idleRssMiB),
    1,
  )} MiB | ≤ 60 MiB |
| V8 heap used after ${String(IDLE_MS / 1000)} s idle | ${range(
    measured.map((m) => m.heapUsedMiB),
    1,
  )} MiB | |

The floors, in the same rounds (each bundled as the webhook is, run under the same flags, without
compile cache; their first answer allows the review unchanged):

| server | spawn to first answer, ms | RSS after ${String(IDLE_MS / 1000)} s idle, MiB |
| --- | --- | --- |
| the webhook, as the image runs it | ${range(
    measured.map((m) => m.firstAnswerMs),
    0,
  )} | ${range(
    measured.map((m) => m.idleRssMiB),
    1,
  )} |
${floors
  .map(
    (f) =>
      `| ${f.label} | ${range(
        f.rounds.map((m) => m.firstAnswerMs),
        0,
      )} | ${range(
        f.rounds.map((m) => m.idleRssMiB),
        1,
      )} |`,
  )
  .join("\n")}

What a start loads of the bundle (scripts/webhook-bundle.ts: the entry, the process's chunk and
their static imports), ${(total / 2 ** 20).toFixed(2)} MiB of JavaScript, by package (largest first):

| package | KiB | share |
| --- | --- | --- |
${table(packages.start, total)}

Loaded on demand (webhook-chunks/: node-forge when \`self\` mode issues certificates, the YAML parser
for a kubeconfig), ${(sum(packages.later) / 2 ** 20).toFixed(2)} MiB:

| package | KiB | share |
| --- | --- | --- |
${table(packages.later, sum(packages.later))}

What importing each package alone costs a bare Node (unbundled, from node_modules; RSS after a full
collection; bare Node: ${bare.rssMiB.toFixed(1)} MiB):

| package | import ms | RSS MiB | over bare Node |
| --- | --- | --- | --- |
${imports.map((i) => `| ${i.pkg} | ${i.ms.toFixed(0)} | ${i.rssMiB.toFixed(1)} | +${(i.rssMiB - bare.rssMiB).toFixed(1)} |`).join("\n")}`;
  process.stdout.write(`${section}\n`);
  await writeSection("start", section);
} finally {
  await api.api.close();
  await group.remove();
  await rm(dir, { recursive: true, force: true });
}
