/**
 * The CLI process (`akv-injector`): reads the files the command line names,
 * runs the pure preview, prints, and sets the exit status (0 admitted,
 * 1 refused, 2 bad usage). The only CLI module that touches `process`.
 */
import { createReadStream } from "node:fs";
import { AkvError, ErrorCode, isAkvError } from "../common/errors.ts";
import { WebhookEnv } from "../common/names.ts";
import { HELP, parseCliArgs } from "./args.ts";
import { MAX_INPUT_BYTES } from "./documents.ts";
import { preview } from "./preview.ts";
import { usage } from "./usage.ts";
import { VERSION } from "./version.ts";

/** Reads a file (or standard input for `-`), stopping past {@link MAX_INPUT_BYTES}. */
async function read(path: string, what: string): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  try {
    for await (const chunk of path === "-" ? process.stdin : createReadStream(path)) {
      const buffer = chunk as Buffer;
      bytes += buffer.length;
      if (bytes > MAX_INPUT_BYTES) {
        throw usage(`${what} ${path}: over the limit of ${String(MAX_INPUT_BYTES)} bytes`);
      }
      chunks.push(buffer);
    }
  } catch (cause) {
    if (isAkvError(cause, ErrorCode.CLI_USAGE)) throw cause;
    throw new AkvError(
      ErrorCode.CLI_USAGE,
      `cannot read ${what} ${path}: ${(cause as Error).message}`,
      { cause },
    );
  }
  return Buffer.concat(chunks).toString("utf8");
}

async function main(): Promise<number> {
  const cli = parseCliArgs(process.argv.slice(2));
  if (cli.command === "help") {
    process.stdout.write(HELP);
    return 0;
  }
  if (cli.command === "version") {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const extraCaFile = cli.extraCaFile ?? process.env[WebhookEnv.sidecarExtraCaFile];
  const result = await preview({
    manifests: {
      text: await read(cli.file, "file"),
      source: cli.file === "-" ? "stdin" : cli.file,
    },
    ...(cli.serviceAccountFile === undefined
      ? {}
      : {
          serviceAccount: {
            text: await read(cli.serviceAccountFile, "service account"),
            source: cli.serviceAccountFile,
          },
        }),
    ...(cli.namespace === undefined ? {} : { namespace: cli.namespace }),
    output: cli.output,
    env: { ...process.env, ...cli.settingsEnv },
    ...(extraCaFile === undefined || extraCaFile === ""
      ? {}
      : { extraCaPem: await read(extraCaFile, "extra CA file") }),
  });
  if (result.stdout !== undefined) process.stdout.write(result.stdout);
  for (const line of result.stderr) process.stderr.write(`${line}\n`);
  return result.exitCode;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (isAkvError(error, ErrorCode.CLI_USAGE) || isAkvError(error, ErrorCode.SETTINGS_INVALID)) {
      process.stderr.write(`akv-injector: ${error.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(
      `akv-injector: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exitCode = 1;
  },
);
