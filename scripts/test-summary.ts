/**
 * Prints one plain closing line, `N passed, N failed, N skipped`, over the
 * vitest JSON reports of the unit and e2e runs, so a reader of CI output
 * (human or tool) sees the whole count without adding up two summaries.
 */
import { readFile } from "node:fs/promises";

interface Report {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
}

const files = process.argv.slice(2);
let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of files) {
  const report = JSON.parse(await readFile(file, "utf8")) as Report;
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + report.numTodoTests;
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
