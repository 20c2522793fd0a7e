/**
 * Bundles each process into ESM under dist/ with esbuild: the images copy
 * these files alone (no node_modules, no npm), and a process starts faster
 * from one bundle than from thousands of module loads. The sidecar, started
 * once per pod across a fleet, gets the tuned layout of scripts/sidecar-bundle.ts
 * (a tiny entry for the probe, chunks loaded on demand); the webhook, run
 * twice in every cluster, that of scripts/webhook-bundle.ts.
 */
import { build, type BuildOptions } from "esbuild";
import { chmod, readFile, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { sidecarBuildOptions } from "./sidecar-bundle.ts";
import { webhookBuildOptions } from "./webhook-bundle.ts";
import { BUNDLE_CHUNK_DIRS, BUNDLE_ENTRIES } from "./bundles.ts";

const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as {
  bin: Record<string, string>;
};

const SHEBANG = "#!/usr/bin/env node";
const REQUIRE_BANNER = [
  "import { createRequire as __akvCreateRequire } from 'node:module';",
  "const require = __akvCreateRequire(import.meta.url);",
].join("\n");

function binPath(bin: string): string {
  const path = pkg.bin[bin];
  if (path === undefined) throw new Error(`package.json has no bin '${bin}'`);
  return path;
}

function singleFile(entry: string, outfile: string): BuildOptions {
  return {
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: "node",
    target: "node24",
    format: "esm",
    minifySyntax: true,
    sourcemap: "linked",
    legalComments: "linked",
    metafile: true,
    // CommonJS dependencies inside an ESM bundle still call require().
    banner: { js: `${SHEBANG}\n${REQUIRE_BANNER}` },
    logLevel: "warning",
  };
}

function sidecar(outfile: string): BuildOptions {
  const options = sidecarBuildOptions(dirname(outfile), BUNDLE_ENTRIES["akv-injector-sidecar"]);
  return { ...options, banner: { js: `${SHEBANG}\n${options.banner?.js ?? ""}` } };
}

function webhook(outfile: string): BuildOptions {
  const options = webhookBuildOptions(dirname(outfile), BUNDLE_ENTRIES["akv-injector-webhook"]);
  return { ...options, banner: { js: `${SHEBANG}\n${options.banner?.js ?? ""}` } };
}

const builds: Record<string, BuildOptions> = {
  "akv-injector-webhook": webhook(binPath("akv-injector-webhook")),
  "akv-injector-sidecar": sidecar(binPath("akv-injector-sidecar")),
  "akv-injector": singleFile(BUNDLE_ENTRIES["akv-injector"], binPath("akv-injector")),
};

// Chunk names carry content hashes: without this, every build would leave
// the previous build's chunks beside the new ones.
for (const [bin, dirs] of Object.entries(BUNDLE_CHUNK_DIRS)) {
  for (const dir of dirs) {
    await rm(join(dirname(binPath(bin)), dir), { recursive: true, force: true });
  }
}

await Promise.all(
  Object.entries(builds).map(async ([bin, options]) => {
    const result = await build(options);
    await chmod(binPath(bin), 0o755);
    const bytes = Object.entries(result.metafile?.outputs ?? {})
      .filter(([file]) => !file.endsWith(".map") && !file.endsWith(".txt"))
      .reduce((n, [, o]) => n + o.bytes, 0);
    console.log(`built ${binPath(bin)} (${(bytes / 1024).toFixed(0)} KiB of code)`);
  }),
);
