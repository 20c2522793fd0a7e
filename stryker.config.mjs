// Mutation testing (`npm run mutation`): StrykerJS changes the product's
// source one mutant at a time and runs the unit tests that cover it; a
// mutant no test notices is a behaviour no test pins. Scores per folder go
// to bench/RESULTS.md (`node bench/mutation/report.ts`). A folder can be run
// alone: `npm run mutation -- --mutate 'common/**/*.ts' --mutate '!**/*.test.ts'`.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: "vitest",
  // Processes, not threads: some tests set the umask, which a worker thread may not.
  vitest: { configFile: "vitest.mutation.config.ts", pool: "forks" },
  coverageAnalysis: "perTest",
  mutate: [
    "{common,certs,webhook,sidecar}/**/*.ts",
    "!**/*.test.ts",
    // The process entry points, which only wire the rest (test support lives in testing/).
    "!**/main.ts",
  ],
  checkers: [],
  concurrency: 2,
  timeoutMS: 20_000,
  reporters: ["clear-text", "progress", "json"],
  jsonReporter: { fileName: ".cache/mutation/mutation.json" },
  tempDirName: ".cache/stryker-tmp",
  incremental: true,
  incrementalFile: ".cache/mutation/stryker-incremental.json",
  thresholds: { high: 90, low: 85, break: null },
};
