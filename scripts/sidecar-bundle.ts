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
import { builtinModules, createRequire } from "node:module";
import type { BuildOptions, Plugin } from "esbuild";
import { splitBuildOptions } from "./bundles.ts";

const requireHere = createRequire(import.meta.url);

/** Built-ins that a sync never calls but the bundled SDKs import at load: loaded on first use instead. */
export const LAZY_BUILTINS: ReadonlySet<string> = new Set([
  "assert",
  "child_process",
  "fs/promises",
  "zlib",
]);

/** Own data properties of a built-in that an ESM facade may export by name. */
function exportableKeys(mod: Record<string, unknown>, only: (value: unknown) => boolean): string[] {
  // Accessor properties are the lazy ones (http's undici getters): never touched.
  return Object.keys(mod).filter((k) => {
    const d = Object.getOwnPropertyDescriptor(mod, k);
    return (
      /^[A-Za-z_$][\w$]*$/.test(k) &&
      k !== "default" &&
      d !== undefined &&
      "value" in d &&
      only(d.value)
    );
  });
}

/**
 * A stand-in for a lazy built-in: a function proxy that loads the module on
 * first call, construction or property read. `__esModule` is answered
 * without loading it (TypeScript's `__importDefault` asks at load time; no
 * built-in has it).
 */
const LAZY_PROXY = (name: string): string => `let __akvLoaded;
const __akvLoad = () => (__akvLoaded ??= require("node:${name}"));
const __akvLazy = new Proxy(function lazyBuiltin() {}, {
  apply: (_t, self, args) => Reflect.apply(__akvLoad(), self, args),
  construct: (_t, args) => Reflect.construct(__akvLoad(), args),
  get: (_t, key) => (key === "__esModule" ? undefined : __akvLoad()[key]),
  has: (_t, key) => key in __akvLoad(),
});`;

/**
 * Rewrites `import … from "node:x"` in the bundle to `require("node:x")`,
 * exporting the plain data properties only, each as a pure read so that
 * esbuild keeps just the ones the bundle imports (reading some loads more
 * modules: `util.setTraceSigInt` loads `worker_threads`); for {@link LAZY_BUILTINS}, both
 * `import` and `require` get a stand-in that loads the module at first use
 * (its functions are exported as forwarders, which `new` makes real
 * instances of but which cannot be subclassed; a named import of anything
 * else fails the build).
 */
export const builtinsAsRequire: Plugin = {
  name: "builtins-as-require",
  setup(build) {
    const names = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    build.onResolve({ filter: /^[a-z_:/]+$/ }, (args) => {
      if (!names.has(args.path) || args.namespace.startsWith("akv-")) return undefined;
      const name = args.path.replace(/^node:/, "");
      if (LAZY_BUILTINS.has(name)) {
        if (args.kind === "import-statement") return { path: name, namespace: "akv-lazy-esm" };
        if (args.kind === "require-call") return { path: name, namespace: "akv-lazy-cjs" };
      }
      if (args.kind !== "import-statement") return undefined;
      return { path: name, namespace: "akv-builtin" };
    });
    build.onLoad({ filter: /.*/, namespace: "akv-builtin" }, (args) => {
      const mod = requireHere(`node:${args.path}`) as Record<string, unknown>;
      const keys = exportableKeys(mod, () => true);
      return {
        contents: `const __akvModule = require("node:${args.path}");\nconst __akvRead = (key) => __akvModule[key];\nexport default __akvModule;\n${keys.map((k) => `export const ${k} = /* @__PURE__ */ __akvRead("${k}");`).join("\n")}\n`,
        loader: "js",
      };
    });
    build.onLoad({ filter: /.*/, namespace: "akv-lazy-cjs" }, (args) => ({
      contents: `${LAZY_PROXY(args.path)}\nmodule.exports = __akvLazy;\n`,
      loader: "js",
    }));
    build.onLoad({ filter: /.*/, namespace: "akv-lazy-esm" }, (args) => {
      const mod = requireHere(`node:${args.path}`) as Record<string, unknown>;
      const functions = exportableKeys(mod, (v) => typeof v === "function");
      const forwarders = functions.map(
        (k) =>
          `export function ${k}(...args) { return new.target === undefined ? Reflect.apply(__akvLoad().${k}, this, args) : Reflect.construct(__akvLoad().${k}, args); }`,
      );
      return {
        contents: `${LAZY_PROXY(args.path)}\nexport default __akvLazy;\n${forwarders.join("\n")}\n`,
        loader: "js",
      };
    });
  },
};

/** CommonJS stand-ins, by module name (docs/sidecar.md says why each is safe). */
const STAND_INS: Readonly<Record<string, string>> = {
  jsonwebtoken:
    'const fail = () => { throw new Error("jsonwebtoken is not in the sidecar bundle: certificate credentials are not used"); };\nmodule.exports = { sign: fail, verify: fail, decode: fail };\n',
  debug: `function createDebug(namespace) {
  const debug = () => {};
  return Object.assign(debug, { namespace, enabled: false, log: () => {}, extend: (sub, sep = ":") => createDebug(namespace + sep + sub), destroy: () => false });
}
module.exports = Object.assign(createDebug, { default: createDebug, enable: () => {}, disable: () => "", enabled: () => false, names: [], skips: [], formatters: {} });
`,
  open: 'module.exports = () => { throw new Error("the sidecar never opens a browser"); };\n',
  "thread-stream":
    'module.exports = class ThreadStream { constructor() { throw new Error("pino transports are not in the sidecar bundle"); } };\n',
};

/**
 * Replaces the modules of {@link STAND_INS}, and `worker_threads` as pino
 * sees it (pino reads `isMainThread` at load to decide whether to flush its
 * stream at exit).
 */
export const standIns: Plugin = {
  name: "stand-ins",
  setup(build) {
    const names = Object.keys(STAND_INS).join("|");
    build.onResolve({ filter: new RegExp(`^(${names})$`) }, (args) => ({
      path: args.path,
      namespace: "akv-stand-in",
    }));
    build.onResolve({ filter: /^(node:)?worker_threads$/ }, (args) =>
      /[\\/]node_modules[\\/]pino[\\/]lib[\\/]tools\.js$/.test(args.importer)
        ? { path: "pino-worker-threads", namespace: "akv-stand-in" }
        : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: "akv-stand-in" }, (args) => ({
      contents: STAND_INS[args.path] ?? "module.exports = { isMainThread: true };\n",
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
  return splitBuildOptions("sidecar", outdir, entry, [standIns, builtinsAsRequire, noLazyFormData]);
}
