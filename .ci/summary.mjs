// Sums the per-package vitest JSON reports into the one line CI reads: "N passed, N failed[, N skipped]".
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const totals = { passed: 0, failed: 0, skipped: 0 };
const files = readdirSync(dir).filter((name) => name.endsWith('.json'));
for (const name of files) {
  const report = JSON.parse(readFileSync(join(dir, name), 'utf8'));
  totals.passed += report.numPassedTests ?? 0;
  totals.failed += report.numFailedTests ?? 0;
  totals.skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  // A suite that failed to load reports no tests at all; count it as a failure rather than nothing.
  if (report.numFailedTestSuites > 0 && report.numFailedTests === 0) totals.failed += report.numFailedTestSuites;
}
const line = `${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}`;
console.log(`\n${line}`);
process.exit(files.length === 0 || totals.failed > 0 || totals.passed === 0 ? 1 : 0);
