import { defineConfig } from "vitest/config";

// The unit tests that run the product's source in process, for mutation
// testing (stryker.config.mjs). Left out: tests of the built bundles in dist/
// (a mutant of the source never reaches them) and the chart, CLI and e2e
// folders, which mutation testing does not cover.
export default defineConfig({
  test: {
    include: ["{common,certs,webhook,sidecar}/**/*.test.ts"],
    exclude: [
      "**/node_modules/**",
      "**/*.e2e.test.ts",
      "webhook/main.test.ts",
      "sidecar/bundle.test.ts",
      "sidecar/sidecar.mocks.test.ts",
    ],
    testTimeout: 20_000,
  },
});
