/**
 * The webhook under other Node flags (`npm run build && node
 * bench/webhook/node-flags.ts [--seconds N] [--memory-limit MiB] -- "FLAGS"
 * …`, "" for none): for each, the bundle as its image runs it
 * (image-server.ts) but with these flags in place of the image's, in a
 * memory group with the chart's limit, pinned to core 0; wrk's 32-connection
 * closed loop from core 1 with run.ts's mix; the server's requests/s, CPU
 * per request (user + system of every thread, from /proc) and peak RSS
 * (VmHWM). For choosing V8 flags, such as the young generation's size, by
 * what they cost and save.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  imageWebhookEnv,
  requireBundle,
  startFakeApiServer,
  startImageWebhook,
} from "./image-server.ts";
import { buildMix, closedLoopWrk } from "./load.ts";
import { makeMemoryGroup, procMemoryMiB } from "./process.ts";
import { writeServingCertificate } from "./tls.ts";

const { values, positionals } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    "memory-limit": { type: "string", default: "256" },
  },
  allowPositionals: true,
});
const SECONDS = Number(values.seconds);
const PORT = 18444;

/** CPU time of a process, all threads, in ms (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = (readFileSync(`/proc/${String(pid)}/stat`, "utf8").split(") ")[1] ?? "").split(
    " ",
  );
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

await requireBundle();
const dir = await mkdtemp(join(tmpdir(), "akv-flags-"));
const api = await startFakeApiServer(["team-a/app", "team-a/web", "team-a/default"]);
const group = await makeMemoryGroup("flags", Number(values["memory-limit"]));
try {
  await writeServingCertificate(dir, "localhost");
  const env = await imageWebhookEnv(dir, api, PORT);
  const cases = buildMix(1000);
  console.log(
    `the webhook ${group.description}; | Node flags | req/s | CPU µs per admission | p99 ms | peak RSS MiB |`,
  );
  for (const flags of positionals.length > 0 ? positionals : [""]) {
    const child = await startImageWebhook({
      group,
      env,
      prefix: ["taskset", "-c", "0"],
      flags: flags.split(" ").filter((a) => a !== ""),
    });
    const load = ["taskset", "-c", "1"];
    await closedLoopWrk(PORT, cases, 32, 3, dir, load);
    const before = cpuMs(child.pid ?? 0);
    const run = await closedLoopWrk(PORT, cases, 32, SECONDS, dir, load);
    const usPerRequest = ((cpuMs(child.pid ?? 0) - before) * 1000) / run.requests;
    const peakMiB = await procMemoryMiB(child.pid ?? 0, "VmHWM");
    console.log(
      `| ${flags === "" ? "(none)" : `\`${flags}\``} | ${run.perSecond.toFixed(0)} | ${usPerRequest.toFixed(0)} | ${run.p99.toFixed(2)} | ${peakMiB.toFixed(1)} |`,
    );
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
  }
} finally {
  await api.api.close();
  await group.remove();
  await rm(dir, { recursive: true, force: true });
}
