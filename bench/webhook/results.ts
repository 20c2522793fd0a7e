/**
 * Keeps bench/webhook/RESULTS.md: each script rewrites its own section
 * (between `<!-- NAME:start -->` and `<!-- NAME:end -->`) and leaves the
 * others, so the load benchmark and the fuzz run can be repeated apart.
 */
import { execFileSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { cpus, totalmem } from "node:os";
import { fileURLToPath } from "node:url";
import { format, resolveConfig } from "prettier";

const FILE = new URL("RESULTS.md", import.meta.url);

const HEADER = `# Webhook benchmark results

Written by \`node bench/webhook/run.ts\` (throughput and latency) and
\`node bench/webhook/fuzz.ts\` (the 100,000-case property run); each rewrites
its own section. The closed loop needs \`wrk\` (Debian package \`wrk\`); without
it an undici client is used, which saturates its core before the server does.
`;

/** `date`, and the machine: CPU model and count, memory, kernel, Node. */
export function describeRun(): string {
  const date = execFileSync("date", { encoding: "utf8" }).trim();
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  const kernel = execFileSync("uname", ["-sr"], { encoding: "utf8" }).trim();
  const memory = `${(totalmem() / 2 ** 30).toFixed(1)} GiB`;
  return `Run: ${date}, on this VM: ${cpus().length} cores (${cpu}), ${memory}, ${kernel}, Node ${process.version}.`;
}

/** Replaces (or appends) one section of RESULTS.md. */
export async function writeSection(name: string, markdown: string): Promise<void> {
  let text: string;
  try {
    text = await readFile(FILE, "utf8");
  } catch {
    text = HEADER;
  }
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${start}\n\n${markdown.trim()}\n\n${end}`;
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  text =
    from >= 0 && to > from
      ? `${text.slice(0, from)}${block}${text.slice(to + end.length)}`
      : `${text.trimEnd()}\n\n${block}\n`;
  // Formatted as the repository's `format:check` wants it.
  const path = fileURLToPath(FILE);
  const options = (await resolveConfig(path)) ?? {};
  await writeFile(FILE, await format(text, { ...options, filepath: path }));
}
