/**
 * Runs every benchmark in turn (`npm run bench`). Each writes its own results
 * file; bench/RESULTS.md collects the numbers with date and machine.
 */
import { spawnSync } from "node:child_process";

const benches = ["bench/webhook/run.ts", "bench/sidecar/run.ts"];
const only = process.argv[2];
for (const bench of benches.filter((b) => only === undefined || b.includes(only))) {
  console.log(`\n== ${bench}`);
  const result = spawnSync(process.execPath, [bench], { stdio: "inherit" });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
