// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const TEST_SIDE = "(testing|mocks|e2e|bench|scripts|charts)";
/** What each product folder may not import, besides the test side (which its tests may). */
const FORBIDDEN = {
  common: ["certs", "webhook", "sidecar", "cli"],
  certs: ["webhook", "sidecar", "cli"],
  webhook: ["sidecar", "cli"],
  sidecar: ["webhook", "cli"],
  cli: [],
};

/** One `no-restricted-imports` block per product folder, for its source and for its tests. */
function layers() {
  return Object.entries(FORBIDDEN).flatMap(([folder, above]) => {
    const upward =
      above.length === 0
        ? []
        : [
            {
              regex: `^(\\.\\./)+(${above.join("|")})/`,
              message: `${folder}/ sits below ${above.join(", ")} (docs/DESIGN.md, "Layers")`,
            },
          ];
    const testSide = {
      regex: `^(\\.\\./)+${TEST_SIDE}/`,
      message: "product code never imports test, mock, e2e, bench or build code",
    };
    const heavyClient = {
      regex: "^@kubernetes/client-node",
      message:
        "the product talks to the apiserver through webhook/kube/: client-node was half the webhook's bundle and 40-55 MiB of its idle memory (bench/webhook/RESULTS.md); tests may use it",
    };
    return [
      {
        files: [`${folder}/**/*.ts`],
        ignores: ["**/*.test.ts"],
        rules: {
          "no-restricted-imports": ["error", { patterns: [...upward, testSide, heavyClient] }],
        },
      },
      {
        files: [`${folder}/**/*.test.ts`],
        rules: { "no-restricted-imports": ["error", { patterns: upward }] },
      },
    ];
  });
}

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", ".cache/", "coverage/", "bench/out/"] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/switch-exhaustiveness-check": "error",
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }],
    },
  },
  {
    // The e2e code builds Kubernetes objects as plain literals for
    // @kubernetes/client-node, whose models are classes; the rule would flag
    // every one of them, and the apiserver checks their shape anyway.
    files: ["e2e/**/*.ts"],
    rules: { "@typescript-eslint/no-unsafe-class-instance-assignment": "off" },
  },
  // The layering (docs/DESIGN.md, "Layers"): common ← certs ← webhook, sidecar ← cli, and
  // product code never imports test, mock, e2e, bench or build code.
  ...layers(),
  {
    files: ["**/*.js", "**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
  },
);
