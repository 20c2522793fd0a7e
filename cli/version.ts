/**
 * The package's version, for `akv-injector --version`. A JSON import: Node
 * reads package.json when the CLI runs from source, and esbuild copies it
 * into `dist/cli.mjs` when it bundles, so both report the same version
 * without a second copy to keep in step.
 */
import pkg from "../package.json" with { type: "json" };

/** `version` of package.json. */
export const VERSION: string = pkg.version;
