/**
 * The full webhook server under Node flags (`node bench/webhook/node-flags.ts
 * [--seconds N] -- "FLAGS" …`, "" for none): for each, the server in its own
 * process pinned to core 0, wrk's 32-connection closed loop from core 1 with
 * run.ts's mix, and the server's requests/s, CPU per request (user + system
 * of every thread, from /proc) and peak RSS (VmHWM). For choosing V8 flags,
 * such as the young generation's size, by what they cost and save.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { buildMix, closedLoopWrk } from "./load.ts";
import { writeServingCertificate } from "./tls.ts";

const { values, positionals } = parseArgs({
  options: { seconds: { type: "string", default: "10" } },
  allowPositionals: true,
});
const SECONDS = Number(values.seconds);
const SERVER = new URL("server.ts", import.meta.url).pathname;

/** CPU time of a process, all threads, in ms (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = (readFileSync(`/proc/${String(pid)}/stat`, "utf8").split(") ")[1] ?? "").split(
    " ",
  );
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

const dir = await mkdtemp(join(tmpdir(), "akv-flags-"));
try {
  await writeServingCertificate(dir, "localhost");
  const cases = buildMix(1000);
  for (const flags of positionals.length > 0 ? positionals : [""]) {
    const args = flags.split(" ").filter((a) => a !== "");
    const child = spawn(
      "taskset",
      ["-c", "0", process.execPath, "--expose-gc", ...args, SERVER, "full", dir],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const port = await new Promise<number>((resolve) => {
      createInterface({ input: child.stdout }).once("line", (line) => {
        resolve((JSON.parse(line) as { port: number }).port);
      });
    });
    const load = ["taskset", "-c", "1"];
    await closedLoopWrk(port, cases, 32, 3, dir, load);
    const before = cpuMs(child.pid ?? 0);
    const run = await closedLoopWrk(port, cases, 32, SECONDS, dir, load);
    const usPerRequest = ((cpuMs(child.pid ?? 0) - before) * 1000) / run.requests;
    const status = readFileSync(`/proc/${String(child.pid)}/status`, "utf8");
    const peakMiB = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]) / 1024;
    console.log(
      `| ${flags === "" ? "(none)" : `\`${flags}\``} | ${run.perSecond.toFixed(0)} | ${usPerRequest.toFixed(0)} | ${run.p99.toFixed(2)} | ${peakMiB.toFixed(1)} |`,
    );
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
