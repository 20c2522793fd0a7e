/**
 * The cost of one log line (`node bench/webhook/log-line.ts`): a webhook
 * admission line through `createAdmissionLogger`, and a sidecar "published
 * files" line through the root logger (wildcard redaction paths on), each
 * written by the real `createLogger` into a sink that drops the text, so only
 * pino's work is timed (serialization, redaction, level and time).
 *
 * Beside each, a reference logger: bare pino with the same redaction and
 * pino's default numeric `level` and epoch-ms `time`, i.e. what
 * `createLogger` wrote before the level names and RFC 3339 times. Rounds
 * alternate between the two, so a neighbour's load on this shared machine
 * falls on both alike. Prints the median µs a line of each.
 *
 * Options: `--lines N` per round (default 100000), `--rounds N` (default 9).
 */
import { parseArgs } from "node:util";
import { pino, type DestinationStream, type Logger } from "pino";
import { createLogger, REDACT_PATHS } from "../../common/logger.ts";
import { createAdmissionLogger } from "../../webhook/server.ts";
import { median } from "../stats.ts";

const { values } = parseArgs({
  options: {
    lines: { type: "string", default: "100000" },
    rounds: { type: "string", default: "9" },
  },
});
const LINES = Number(values.lines);
const ROUNDS = Number(values.rounds);

let bytes = 0;
let capture = false;
let lastLine = "";
/** Drops the text; counting its length keeps the string from being optimised away. */
const sink: DestinationStream = {
  write(text: string) {
    bytes += text.length;
    if (capture) lastLine = text;
  },
};

/** The line format before issue 11: pino's defaults, same name and redaction. */
function createReferenceLogger(name: string): Logger {
  return pino({ name, redact: { paths: [...REDACT_PATHS], censor: "[redacted]" } }, sink);
}

const admission = {
  uid: "3f1c2a9e-8d1b-4b7e-9a55-0c2f4e6d8a10",
  namespace: "team-a",
  pod: "api-7d9f8b6c5d-x2x9q",
  outcome: "patched",
  durationMs: 0.412,
  warnings: ["akv-injector: file db-password.txt: refresh under 60s is raised to 60s"],
};
const published = {
  event: "refreshed",
  changed: true,
  files: 3,
  versions: {
    "db-password": "0123456789abcdef0123456789abcdef",
    "api-key": "fedcba9876543210fedcba9876543210",
    tls: "00112233445566778899aabbccddeeff",
  },
  ms: 41,
};

interface Case {
  readonly name: string;
  readonly now: Logger;
  readonly before: Logger;
  readonly log: (logger: Logger) => void;
}

const cases: Case[] = [
  {
    name: "webhook admission line (createAdmissionLogger)",
    now: createAdmissionLogger(createLogger({ name: "webhook", destination: sink })),
    before: createAdmissionLogger(createReferenceLogger("webhook")),
    log: (logger) => {
      logger.info(admission, "admission");
    },
  },
  {
    name: "sidecar published-files line (root logger)",
    now: createLogger({ name: "akv-injector-sidecar", destination: sink }),
    before: createReferenceLogger("akv-injector-sidecar"),
    log: (logger) => {
      logger.info(published, "published files");
    },
  },
];

/** µs a line over one round of {@link LINES} lines. */
function round(logger: Logger, log: (logger: Logger) => void): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < LINES; i++) log(logger);
  return Number(process.hrtime.bigint() - start) / 1000 / LINES;
}

/** One line as the logger writes it, for the record. */
function sample(logger: Logger, log: (logger: Logger) => void): string {
  lastLine = "";
  capture = true;
  log(logger);
  capture = false;
  return lastLine.trimEnd();
}

console.log(`${String(LINES)} lines a round, ${String(ROUNDS)} rounds, Node ${process.version}`);
for (const c of cases) {
  // Warm-up: both loggers, so neither round is timed cold.
  round(c.now, c.log);
  round(c.before, c.log);
  const now: number[] = [];
  const before: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    before.push(round(c.before, c.log));
    now.push(round(c.now, c.log));
  }
  console.log(`\n${c.name}`);
  console.log(`  before (numeric level, epoch ms): ${median(before).toFixed(2)} µs/line`);
  console.log(`  createLogger now:                 ${median(now).toFixed(2)} µs/line`);
  console.log(`  a line now: ${sample(c.now, c.log)}`);
}
if (bytes === 0) throw new Error("nothing was written");
