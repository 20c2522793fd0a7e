import { defineConfig } from "vitest/config";

// Two projects: `unit` is fast and self-contained (npm test); `e2e` needs the
// control plane built by e2e/cluster/build.sh and the bundles in dist/.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: [
            "{common,webhook,sidecar,certs,cli,charts,e2e,mocks,scripts}/**/*.test.ts",
            "*.test.ts",
          ],
          exclude: ["**/*.e2e.test.ts", "**/node_modules/**"],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["e2e/**/*.e2e.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 900_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
