import type { BuildOptions, Plugin } from "esbuild";

/**
 * What `npm run build` bundles: bin name (package.json `bin`) → source entry,
 * and the extra output folders an image must copy beside a bin's file.
 */
export const BUNDLE_ENTRIES = {
  "akv-injector-webhook": "webhook/entry.ts",
  "akv-injector-sidecar": "sidecar/main.ts",
  "akv-injector": "cli/main.ts",
} as const;

/** A bin name of {@link BUNDLE_ENTRIES}. */
export type BundleBin = keyof typeof BUNDLE_ENTRIES;

/** Chunk folders (under dist/) that a bin's entry file loads at run time. */
export const BUNDLE_CHUNK_DIRS: Readonly<Record<BundleBin, readonly string[]>> = {
  "akv-injector-webhook": ["webhook-chunks"],
  "akv-injector-sidecar": ["sidecar-chunks"],
  "akv-injector": [],
};

/**
 * esbuild options for a process split into an entry and chunks loaded on
 * demand: `<outdir>/<name>.mjs` plus `<outdir>/<name>-chunks/*.mjs`,
 * minified, as the sidecar's and the webhook's images hold them.
 */
export function splitBuildOptions(
  name: string,
  outdir: string,
  entry: string,
  plugins: Plugin[],
): BuildOptions {
  return {
    entryPoints: { [name]: entry },
    outdir,
    bundle: true,
    splitting: true,
    platform: "node",
    target: "node24",
    format: "esm",
    // .mjs: Node must not sniff the syntax of a .js file (a re-parse).
    outExtension: { ".js": ".mjs" },
    chunkNames: `${name}-chunks/[name]-[hash]`,
    minify: true,
    // Stack traces keep their function names.
    keepNames: false,
    sourcemap: "linked",
    legalComments: "linked",
    metafile: true,
    plugins,
    // CommonJS dependencies inside an ESM bundle still call require(). Every
    // chunk gets the banner; they share one require (it only loads
    // built-ins, so whose URL it resolves from does not matter).
    banner: {
      js: "import { createRequire as __akvCreateRequire } from 'node:module';\nconst require = (globalThis.__akvRequire ??= __akvCreateRequire(import.meta.url));",
    },
    logLevel: "warning",
  };
}
