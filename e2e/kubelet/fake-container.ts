/**
 * A stand-in container for the test kubelet's own tests: it reports what a
 * container sees (its user, its token, whether the root filesystem is
 * writable) into its output folder, then waits for SIGTERM like a sidecar.
 * `probe` exits 0 once the report is there, like the sidecar's probe.
 *
 * Env: FAKE_OUT (output folder), AZURE_FEDERATED_TOKEN_FILE.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const out = process.env.FAKE_OUT ?? "/out";
const marker = join(out, "..data");

if (process.argv[2] === "probe") {
  process.exit(existsSync(marker) ? 0 : 1);
}

let rootWritable = true;
try {
  writeFileSync("/tmp/akv-fake-container-probe", "x");
  rmSync("/tmp/akv-fake-container-probe");
} catch {
  rootWritable = false;
}
const tokenFile = process.env.AZURE_FEDERATED_TOKEN_FILE ?? "";
const report = {
  uid: process.getuid?.(),
  gid: process.getgid?.(),
  rootWritable,
  token: readFileSync(tokenFile, "utf8"),
  cwd: process.cwd(),
  env: Object.keys(process.env).sort(),
};
writeFileSync(join(out, "report.json"), JSON.stringify(report), { mode: 0o644 });
writeFileSync(marker, "");
process.on("SIGTERM", () => {
  process.exit(0);
});
setInterval(() => undefined, 60_000);
