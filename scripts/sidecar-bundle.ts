/**
 * The esbuild options and plugins that make the sidecar start fast and
 * small: code splitting, Node built-ins through `require`, built-ins loaded
 * at first use, stand-ins for modules a sync never runs, and no lazy
 * `FormData` global. Why each, and what it saves, is in docs/sidecar.md
 * ("What the bundle leaves out") and bench/sidecar/RESULTS.md. Used by
 * scripts/build.ts, the integration tests and the bench;
 * `sidecar/sidecar.mocks.test.ts` checks which Node modules a real sync
 * loads, `sidecar-bundle.test.ts` that the stand-ins behave as the modules
 * they replace.
 */
import { readFile } from "node:fs/promises";
import type { BuildOptions, Plugin } from "esbuild";
import { builtinsAsRequire, standIns } from "./bundle-plugins.ts";
import { splitBuildOptions } from "./bundles.ts";

/** Built-ins that a sync never calls but the bundled SDKs import at load: loaded on first use instead. */
export const LAZY_BUILTINS: ReadonlySet<string> = new Set([
  "assert",
  "child_process",
  "fs/promises",
  "zlib",
]);

/** `typeof FormData !== "undefined" && body instanceof FormData`, as @typespec/ts-http-runtime writes it. */
const FORM_DATA_CHECK = 'typeof FormData !== "undefined" && body instanceof FormData';
const FORM_DATA_FILES =
  /[\\/]@typespec[\\/]ts-http-runtime[\\/]dist[\\/]esm[\\/](formData|client[\\/]sendRequest)\.js$/;

/**
 * Rewrites the SDK runtime's FormData checks so that they do not read the
 * lazy `FormData` global (which loads undici). Fails the build if a file it
 * expects to rewrite no longer has the check (an SDK update): the bench
 * would otherwise lose ~12 ms silently.
 */
export const noLazyFormData: Plugin = {
  name: "no-lazy-form-data",
  setup(build) {
    build.onLoad({ filter: FORM_DATA_FILES }, async (args) => {
      const text = await readFile(args.path, "utf8");
      if (!text.includes(FORM_DATA_CHECK)) {
        throw new Error(
          `${args.path} no longer has the FormData check that sidecar-bundle.ts rewrites`,
        );
      }
      return {
        contents: text.replaceAll(
          FORM_DATA_CHECK,
          'Object.prototype.toString.call(body) === "[object FormData]"',
        ),
        loader: "js",
      };
    });
  },
};

/**
 * esbuild options for the sidecar: `<outdir>/sidecar.mjs` plus
 * `<outdir>/sidecar-chunks/*.mjs`.
 */
export function sidecarBuildOptions(outdir: string, entry = "sidecar/main.ts"): BuildOptions {
  return splitBuildOptions("sidecar", outdir, entry, [
    standIns,
    builtinsAsRequire(LAZY_BUILTINS),
    noLazyFormData,
  ]);
}
