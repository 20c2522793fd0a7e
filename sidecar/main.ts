/**
 * The sidecar process: `run` (sync, then refresh or exit, as the spec's mode
 * says) and `probe` (the startup probe: exit 0 once the first sync has been
 * published). The only module that touches `process`.
 *
 * The probe runs every few seconds in every pod until the first sync, so it
 * must stay cheap: it reads one env var and checks one path, and the rest of
 * the sidecar (the Azure SDKs above all) is imported only by `run`.
 *
 * `run` uses Node's compile cache (V8 code caches of the chunks) when a
 * `sidecar-cache/` directory sits beside this file: Dockerfile.sidecar fills
 * it at build time (one `run` as user 65532, which loads the chunks, exits 2
 * for want of configuration, and writes the cache; Node keys the cache by
 * user id, V8 flags and Node version, so it must be the runtime's) and the
 * container reads it from its read-only root filesystem. Without the
 * directory nothing changes (nothing is created: the root filesystem may be
 * read-only). Measured in bench/sidecar/RESULTS.md.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { useCompileCacheIfPresent } from "../common/compile-cache.ts";
// names.ts is a table of constants: importing it keeps the probe cheap.
import { SidecarEnv } from "../common/names.ts";

const SPEC_ENV = SidecarEnv.spec;
const USAGE = "usage: akv-injector-sidecar run|probe";

/** `<outputDir>/..data` exists: the first sync was published. */
function probe(): number {
  let outputDir: unknown;
  try {
    outputDir = (JSON.parse(process.env[SPEC_ENV] ?? "") as { outputDir?: unknown }).outputDir;
  } catch {
    process.stderr.write(`akv-injector-sidecar probe: ${SPEC_ENV} is not JSON\n`);
    return 2;
  }
  if (typeof outputDir !== "string" || !outputDir.startsWith("/")) {
    process.stderr.write(`akv-injector-sidecar probe: ${SPEC_ENV} has no absolute outputDir\n`);
    return 2;
  }
  return existsSync(join(outputDir, "..data")) ? 0 : 1;
}

async function run(): Promise<number> {
  const stop = new AbortController();
  let stopping = false;
  const onSignal = (): void => {
    // A second signal while stopping: stop now.
    if (stopping) process.exit(143);
    stopping = true;
    stop.abort();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  useCompileCacheIfPresent(new URL("sidecar-cache/", import.meta.url));
  const { runSidecar } = await import("./app.ts");
  const { isAkvError, ErrorCode } = await import("../common/errors.ts");
  try {
    await runSidecar({
      env: process.env,
      signal: stop.signal,
      // `signal:` notifications: the app's main process, in the shared PID namespace.
      signals: {
        procDir: "/proc",
        selfPid: process.pid,
        kill: (pid, name) => {
          process.kill(pid, name);
        },
      },
    });
    return 0;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (isAkvError(error, ErrorCode.SIDECAR_CONFIG_INVALID)) {
      process.stderr.write(`akv-injector-sidecar: ${message}\n`);
    }
    writeTerminationMessage(message);
    return isAkvError(error, ErrorCode.SIDECAR_CONFIG_INVALID) ? 2 : 1;
  }
}

/** Kubernetes shows this file's text as the container's termination reason (kubectl describe pod). */
function writeTerminationMessage(message: string): void {
  const path = "/dev/termination-log";
  if (!existsSync(path)) return;
  try {
    writeFileSync(path, message.slice(0, 4000));
  } catch {
    // best effort: the log has the message too
  }
}

const command = process.argv[2];
if (command === "probe") {
  process.exitCode = probe();
} else if (command === "run") {
  // Exit explicitly: idle keep-alive sockets of the SDKs must not hold the process.
  run().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`akv-injector-sidecar: ${String(error)}\n`);
      process.exit(1);
    },
  );
} else {
  process.stderr.write(`${USAGE}\n`);
  process.exitCode = 2;
}
