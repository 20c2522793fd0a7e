/**
 * The esbuild plugins the sidecar's and the webhook's bundles share, each
 * keeping code a process never runs out of its start:
 *
 * - {@link builtinsAsRequire}: Node built-ins through `require`. An ESM
 *   `import` of a built-in makes Node build its ESM facade, which reads every
 *   export: for `node:http` that reads the lazy `WebSocket`, `MessageEvent`
 *   and `CloseEvent` getters, which load Node's own undici (Node 24.21:
 *   +20–30 ms and +8.6 MiB of RSS for a process that never uses it).
 *   `require` reads nothing. Built-ins a process imports but never calls can
 *   be loaded at first use instead.
 * - {@link standIns}: modules replaced by stand-ins.
 */
import { builtinModules, createRequire } from "node:module";
import type { Plugin } from "esbuild";

const requireHere = createRequire(import.meta.url);

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
 * modules: `util.setTraceSigInt` loads `worker_threads`); for the `lazy` ones, both
 * `import` and `require` get a stand-in that loads the module at first use
 * (its functions are exported as forwarders, which `new` makes real
 * instances of but which cannot be subclassed; a named import of anything
 * else fails the build).
 */
export function builtinsAsRequire(lazy: ReadonlySet<string> = new Set()): Plugin {
  return {
    name: "builtins-as-require",
    setup(build) {
      const names = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
      build.onResolve({ filter: /^[a-z0-9_:/]+$/ }, (args) => {
        if (!names.has(args.path) || args.namespace.startsWith("akv-")) return undefined;
        const name = args.path.replace(/^node:/, "");
        if (lazy.has(name)) {
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
}

/** CommonJS stand-ins, by module name (docs/sidecar.md says why each is safe; the webhook uses pino's two). */
const STAND_INS: Readonly<Record<string, string>> = {
  jsonwebtoken:
    'const fail = () => { throw new Error("jsonwebtoken is not in the akv-injector bundles: certificate credentials are not used"); };\nmodule.exports = { sign: fail, verify: fail, decode: fail };\n',
  debug: `function createDebug(namespace) {
  const debug = () => {};
  return Object.assign(debug, { namespace, enabled: false, log: () => {}, extend: (sub, sep = ":") => createDebug(namespace + sep + sub), destroy: () => false });
}
module.exports = Object.assign(createDebug, { default: createDebug, enable: () => {}, disable: () => "", enabled: () => false, names: [], skips: [], formatters: {} });
`,
  open: 'module.exports = () => { throw new Error("akv-injector never opens a browser"); };\n',
  "thread-stream":
    'module.exports = class ThreadStream { constructor() { throw new Error("pino transports are not in the akv-injector bundles"); } };\n',
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
