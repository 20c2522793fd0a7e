/**
 * How the sidecar should be bundled for a fast start and a small footprint
 * (measured in bench/sidecar/RESULTS.md). Used by the integration tests and
 * the bench; meant for scripts/build.ts too. Three things a plain esbuild
 * bundle does not do:
 *
 * - Code splitting. `probe` runs every few seconds in every starting pod and
 *   must not compile the Azure SDKs: with splitting, `sidecar.mjs` is a 2 KB
 *   entry and `run` imports its chunk; node-forge (half a megabyte) is its own
 *   chunk, loaded only when a `pem`/`cert`/`key` file exists. The chunks sit
 *   in `sidecar-chunks/` beside the entry, and an image must copy both.
 * - Node built-ins through `require`. An ESM `import … from "node:http"`
 *   builds an ESM facade that reads every export of `node:http`, including
 *   the lazy getters that load Node's whole bundled undici (fetch,
 *   WebSocket): ~4 MiB and milliseconds the sidecar never uses. The SDKs'
 *   built-in imports are rewritten to `require()` of the same module.
 * - No jsonwebtoken. msal-node imports it (with semver, jws, lodash bits) for
 *   one thing, signing certificate credentials' assertions; the sidecar's
 *   assertion is the service-account token, so a stub that throws stands in.
 * - No lazy `FormData` global. The HTTP runtime of the SDKs checks
 *   `typeof FormData` on every request; in Node that global is a lazy getter
 *   that loads the whole bundled undici (~12 ms and ~3 MiB at the first
 *   request, measured). The check is rewritten to
 *   `Object.prototype.toString.call(body) === "[object FormData]"`, true for
 *   exactly the same bodies (a FormData's `Symbol.toStringTag`) without
 *   touching the global.
 */
import { readFile } from "node:fs/promises";
import { builtinModules, createRequire } from "node:module";
import type { BuildOptions, Plugin } from "esbuild";

const requireHere = createRequire(import.meta.url);

/** Rewrites `import … from "node:x"` in the bundle to `require("node:x")`, exporting the plain data properties only. */
export const builtinsAsRequire: Plugin = {
  name: "builtins-as-require",
  setup(build) {
    const names = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    build.onResolve({ filter: /^[a-z_:/]+$/ }, (args) => {
      if (!names.has(args.path) || args.kind !== "import-statement") return undefined;
      return { path: args.path.replace(/^node:/, ""), namespace: "akv-builtin" };
    });
    build.onLoad({ filter: /.*/, namespace: "akv-builtin" }, (args) => {
      const mod = requireHere(`node:${args.path}`) as Record<string, unknown>;
      // Accessor properties are the lazy ones (http's undici getters): never touched.
      const keys = Object.keys(mod).filter((k) => {
        const d = Object.getOwnPropertyDescriptor(mod, k);
        return /^[A-Za-z_$][\w$]*$/.test(k) && k !== "default" && d !== undefined && "value" in d;
      });
      return {
        contents: `const m = require("node:${args.path}");\nexport default m;\nexport const { ${keys.join(", ")} } = m;\n`,
        loader: "js",
      };
    });
  },
};

/** Replaces jsonwebtoken (msal-node's certificate-credential signer) with a stub that throws if ever called. */
export const stubJsonWebToken: Plugin = {
  name: "stub-jsonwebtoken",
  setup(build) {
    build.onResolve({ filter: /^jsonwebtoken$/ }, () => ({
      path: "jsonwebtoken",
      namespace: "akv-stub",
    }));
    build.onLoad({ filter: /.*/, namespace: "akv-stub" }, () => ({
      contents:
        'const fail = () => { throw new Error("jsonwebtoken is not in the sidecar bundle: certificate credentials are not used"); };\nexport default { sign: fail, verify: fail, decode: fail };\n',
      loader: "js",
    }));
  },
};

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
        throw new Error(`${args.path} no longer has the FormData check that bundle.ts rewrites`);
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
  return {
    entryPoints: { sidecar: entry },
    outdir,
    bundle: true,
    splitting: true,
    platform: "node",
    target: "node24",
    format: "esm",
    // .mjs: Node must not sniff the syntax of a .js file (a re-parse).
    outExtension: { ".js": ".mjs" },
    chunkNames: "sidecar-chunks/[name]-[hash]",
    minify: true,
    // Stack traces keep their function names.
    keepNames: false,
    sourcemap: "linked",
    legalComments: "linked",
    metafile: true,
    plugins: [builtinsAsRequire, stubJsonWebToken, noLazyFormData],
    // CommonJS dependencies inside an ESM bundle still call require(). Every
    // chunk gets the banner; they share one require (it only loads
    // built-ins, so whose URL it resolves from does not matter).
    banner: {
      js: "import { createRequire as __akvCreateRequire } from 'node:module';\nconst require = (globalThis.__akvRequire ??= __akvCreateRequire(import.meta.url));",
    },
    logLevel: "warning",
  };
}
