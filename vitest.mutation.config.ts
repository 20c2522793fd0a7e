import { defineConfig } from "vitest/config";

// The unit tests that run the product's source in process, for mutation
// testing (stryker.config.mjs), sidecar.in-process.test.ts among them. Left
// out: tests of built bundles (a mutant of the source never reaches them:
// sidecar.mocks.test.ts runs the bundled process) and the chart, CLI and e2e
// folders, which mutation testing does not cover.
export default defineConfig({
  test: {
    include: ["{common,certs,webhook,sidecar}/**/*.test.ts"],
    exclude: [
      "**/node_modules/**",
      "**/*.e2e.test.ts",
      "webhook/main.test.ts",
      "sidecar/sidecar.mocks.test.ts",
    ],
    testTimeout: 20_000,
  },
});
