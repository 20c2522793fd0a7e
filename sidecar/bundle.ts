/**
 * How the sidecar should be bundled for a fast start and a small footprint
 * (measured in bench/sidecar/RESULTS.md). Used by scripts/build.ts, the
 * integration tests and the bench. What a plain esbuild bundle does not do:
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
 *   built-in imports are rewritten to `require()` of the same module, and
 *   only the exports the bundle imports are read.
 * - Built-ins a sync never calls, loaded at first use: `assert`,
 *   `child_process`, `fs/promises` and `zlib` are imported at load by the
 *   SDKs' developer and file-based credentials, the HTTP client's gzip path
 *   and pino's file stream, and cost ~3 MiB and ~3 ms to load (with what they
 *   load in turn). Their modules are stand-ins that `require()` the real one
 *   on first use.
 * - Modules the sidecar never runs, replaced by small stand-ins:
 *   jsonwebtoken (msal-node signs certificate credentials' assertions with it;
 *   ours is the service-account token), `debug` (the proxy agents' debug
 *   output: the sidecar logs through pino), `open` (the interactive browser
 *   credential's; with it go a chunk of browser launchers whose shared
 *   chunk loaded `fs/promises` at start), `thread-stream` (pino transports)
 *   and, for pino alone, `worker_threads` (pino asks `isMainThread`: the
 *   sidecar's entry is always a process's main thread). Each loaded `tty`,
 *   `worker_threads`, `fs/promises` or more.
 * - No lazy `FormData` global. The HTTP runtime of the SDKs checks
 *   `typeof FormData` on every request; in Node that global is a lazy getter
 *   that loads the whole bundled undici (~12 ms and ~3 MiB at the first
 *   request, measured). The check is rewritten to
 *   `Object.prototype.toString.call(body) === "[object FormData]"`, true for
 *   exactly the same bodies (a FormData's `Symbol.toStringTag`) without
 *   touching the global.
 *
 * `sidecar.mocks.test.ts` checks which Node modules a real sync loads;
 * `bundle.test.ts` that the stand-ins behave as the modules they replace
 * where the bundled code uses them, and load at first use.
 */
import { readFile } from "node:fs/promises";
import { builtinModules, createRequire } from "node:module";
import type { BuildOptions, Plugin } from "esbuild";

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

/** CommonJS stand-ins, by module name (see the file's comment for why each is safe). */
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
    plugins: [standIns, builtinsAsRequire, noLazyFormData],
    // CommonJS dependencies inside an ESM bundle still call require(). Every
    // chunk gets the banner; they share one require (it only loads
    // built-ins, so whose URL it resolves from does not matter).
    banner: {
      js: "import { createRequire as __akvCreateRequire } from 'node:module';\nconst require = (globalThis.__akvRequire ??= __akvCreateRequire(import.meta.url));",
    },
    logLevel: "warning",
  };
}
