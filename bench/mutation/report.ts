/**
 * Mutation scores per product folder from Stryker's JSON report
 * (`npm run mutation` writes .cache/mutation/mutation.json), as Stryker
 * counts them: killed and timed-out mutants over all valid ones (survived
 * and not covered included; compile and runtime errors left out). Prints a
 * table and rewrites its section of bench/RESULTS.md.
 *
 * Usage: node bench/mutation/report.ts [REPORT...]   (several: folders run apart)
 */
import { execFileSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { format, resolveConfig } from "prettier";

interface Report {
  readonly files: Readonly<Record<string, { readonly mutants: readonly { status: string }[] }>>;
}

/** A folder's counts. */
export interface FolderScore {
  readonly folder: string;
  readonly killed: number;
  readonly survived: number;
  readonly noCoverage: number;
  readonly timeout: number;
  /** Percent, or undefined when the folder had no valid mutant. */
  readonly score: number | undefined;
}

const TARGET = 85;

/** Scores by top-level folder of each mutated file. */
export function scoreByFolder(report: Report): FolderScore[] {
  const by = new Map<
    string,
    { killed: number; survived: number; noCoverage: number; timeout: number }
  >();
  for (const [path, file] of Object.entries(report.files)) {
    const folder = path.split("/")[0] ?? path;
    const counts = by.get(folder) ?? { killed: 0, survived: 0, noCoverage: 0, timeout: 0 };
    for (const m of file.mutants) {
      if (m.status === "Killed") counts.killed++;
      else if (m.status === "Survived") counts.survived++;
      else if (m.status === "NoCoverage") counts.noCoverage++;
      else if (m.status === "Timeout") counts.timeout++;
    }
    by.set(folder, counts);
  }
  return [...by.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([folder, c]) => {
      const valid = c.killed + c.survived + c.noCoverage + c.timeout;
      return {
        folder,
        ...c,
        score: valid === 0 ? undefined : ((c.killed + c.timeout) / valid) * 100,
      };
    });
}

async function writeSection(markdown: string): Promise<void> {
  const file = fileURLToPath(new URL("../RESULTS.md", import.meta.url));
  const text = await readFile(file, "utf8");
  const start = "<!-- mutation:start -->";
  const end = "<!-- mutation:end -->";
  const block = `${start}\n\n${markdown.trim()}\n\n${end}`;
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  const next =
    from >= 0 && to > from
      ? `${text.slice(0, from)}${block}${text.slice(to + end.length)}`
      : `${text.trimEnd()}\n\n${block}\n`;
  await writeFile(
    file,
    await format(next, { ...((await resolveConfig(file)) ?? {}), filepath: file }),
  );
}

async function main(): Promise<void> {
  const paths = process.argv.length > 2 ? process.argv.slice(2) : [".cache/mutation/mutation.json"];
  const files: Record<string, Report["files"][string]> = {};
  for (const path of paths)
    Object.assign(files, (JSON.parse(await readFile(path, "utf8")) as Report).files);
  const scores = scoreByFolder({ files });
  const date = execFileSync("date", ["-u", "+%Y-%m-%d %H:%M UTC"], { encoding: "utf8" }).trim();
  const rows = scores.map(
    (s) =>
      `| ${s.folder}/ | ${String(s.killed + s.timeout)} | ${String(s.survived)} | ${String(s.noCoverage)} | ${s.score === undefined ? "—" : `${s.score.toFixed(1)}%`} | ${s.score !== undefined && s.score >= TARGET ? "met" : "not met"} |`,
  );
  const markdown = `## Mutation testing (issue 10)

\`npm run mutation && node bench/mutation/report.ts\`, ${date}, StrykerJS with its
vitest runner over the unit tests that run the source in process
(\`vitest.mutation.config.ts\`). Target: at least ${String(TARGET)}% of mutants killed in each folder.

| folder | killed (incl. timeouts) | survived | no coverage | score | target |
| --- | --- | --- | --- | --- | --- |
${rows.join("\n")}`;
  process.stdout.write(`${markdown}\n`);
  await writeSection(markdown);
}

if (import.meta.main) await main();
