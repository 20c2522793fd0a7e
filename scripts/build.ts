/**
 * Bundles each process into one ESM file under dist/ with esbuild: the images
 * copy these files alone (no node_modules, no npm), and the sidecar starts
 * faster from one file than from thousands of module loads.
 */
import { build } from "esbuild";
import { chmod, readFile } from "node:fs/promises";

const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as {
  bin: Record<string, string>;
};

/** bin name → source entry; the bin paths in package.json say where each lands. */
const entries: Record<string, string> = {
  "akv-injector-webhook": "webhook/main.ts",
  "akv-injector-sidecar": "sidecar/main.ts",
  "akv-injector": "cli/main.ts",
};

await Promise.all(
  Object.entries(entries).map(async ([bin, entry]) => {
    const outfile = pkg.bin[bin];
    if (outfile === undefined) throw new Error(`package.json has no bin '${bin}'`);
    const result = await build({
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
      banner: {
        js: [
          "#!/usr/bin/env node",
          "import { createRequire as __akvCreateRequire } from 'node:module';",
          "const require = __akvCreateRequire(import.meta.url);",
        ].join("\n"),
      },
      logLevel: "warning",
    });
    await chmod(outfile, 0o755);
    const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
    console.log(`built ${outfile} (${(bytes / 1024).toFixed(0)} KiB with map)`);
  }),
);
