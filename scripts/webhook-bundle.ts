/**
 * The webhook's esbuild layout: `webhook.mjs` plus `webhook-chunks/`, loaded
 * on demand (node-forge, which only issuing certificates in `self` mode
 * needs; the kubeconfig parser, which only runs outside a cluster), minified,
 * and without fastify's schema compilers (ajv, fast-json-stringify), which
 * fastify loads only for routes with schemas: the webhook declares none and
 * hands fastify compilers that refuse ({@link NO_SCHEMA_COMPILERS} in
 * `webhook/server.ts`). Measured in bench/webhook/RESULTS.md ("Start and
 * idle memory"): code a process never runs still costs its source text and
 * V8's pre-parse.
 */
import type { BuildOptions, Plugin } from "esbuild";
import { splitBuildOptions } from "./bundles.ts";

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
  return splitBuildOptions("webhook", outdir, entry, [noSchemaCompilers]);
}
