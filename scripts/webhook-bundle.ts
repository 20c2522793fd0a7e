/**
 * The webhook's esbuild layout: `webhook.mjs` plus `webhook-chunks/`, loaded
 * on demand (node-forge, which only issuing certificates in `self` mode
 * needs; the kubeconfig parser, which only runs outside a cluster), minified,
 * and without fastify's schema compilers (ajv, fast-json-stringify), which
 * fastify loads only for routes with schemas: the webhook declares none and
 * hands fastify compilers that refuse ({@link NO_SCHEMA_COMPILERS} in
 * `webhook/server.ts`); Node built-ins through `require`, so that
 * `node:http` does not load Node's undici, those it never calls loaded at
 * first use, and pino's worker-thread modules replaced (bundle-plugins.ts). Measured
 * in bench/webhook/RESULTS.md ("Start and idle memory"): code a process
 * never runs still costs its source text and V8's pre-parse.
 */
import type { BuildOptions, Plugin } from "esbuild";
import { builtinsAsRequire, standIns } from "./bundle-plugins.ts";
import { splitBuildOptions } from "./bundles.ts";

/**
 * Built-ins the webhook's packages import at load but a webhook never calls,
 * loaded at first use instead: `http2` (fastify's server factory; the
 * webhook serves HTTPS/1.1). Others they import are loaded anyway, by their
 * first call at start (`assert`, from find-my-way's router) or by Node's own
 * `listen` (`dns`), so deferring them would save nothing.
 */
export const WEBHOOK_LAZY_BUILTINS: ReadonlySet<string> = new Set(["http2"]);

/** fastify's default schema compilers, which `compilersFactory` replaces. */
const SCHEMA_COMPILERS = ["@fastify/ajv-compiler", "@fastify/fast-json-stringify-compiler"];

/** Each schema compiler, replaced by one that says why it is not there. */
const noSchemaCompilers: Plugin = {
  name: "no-schema-compilers",
  setup(build) {
    const names = SCHEMA_COMPILERS.map((n) => n.replace("/", "\\/")).join("|");
    build.onResolve({ filter: new RegExp(`^(${names})$`) }, (args) => ({
      path: args.path,
      namespace: "akv-webhook-stand-in",
    }));
    build.onLoad({ filter: /.*/, namespace: "akv-webhook-stand-in" }, (args) => ({
      contents: `module.exports = () => { throw new Error(${JSON.stringify(
        `${args.path} is not in the webhook bundle: its routes have no schemas`,
      )}); };\n`,
      loader: "js",
    }));
  },
};

/** esbuild options for the webhook: `<outdir>/webhook.mjs` and `<outdir>/webhook-chunks/*.mjs`. */
export function webhookBuildOptions(outdir: string, entry = "webhook/entry.ts"): BuildOptions {
  return splitBuildOptions("webhook", outdir, entry, [
    noSchemaCompilers,
    standIns,
    builtinsAsRequire(WEBHOOK_LAZY_BUILTINS),
  ]);
}
