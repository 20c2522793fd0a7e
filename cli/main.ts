/**
 * The CLI process (`akv-injector`): reads the files the command line names,
 * runs the pure preview, prints, and sets the exit status (0 admitted,
 * 1 refused, 2 bad usage). The only CLI module that touches `process`.
 */
import { readFile } from "node:fs/promises";
import { AkvError, ErrorCode, isAkvError } from "../common/errors.ts";
import { WebhookEnv } from "../common/names.ts";
import { HELP, parseCliArgs, preview } from "./preview.ts";

async function read(path: string, what: string): Promise<string> {
  try {
    return path === "-" ? await readStdin() : await readFile(path, "utf8");
  } catch (cause) {
    throw new AkvError(
      ErrorCode.CLI_USAGE,
      `cannot read ${what} ${path}: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function main(): Promise<number> {
  const cli = parseCliArgs(process.argv.slice(2));
  if (cli.command === "help") {
    process.stdout.write(HELP);
    return 0;
  }
  const extraCaFile = cli.extraCaFile ?? process.env[WebhookEnv.sidecarExtraCaFile];
  const result = await preview({
    pod: {
      text: await read(cli.podFile, "pod"),
      source: cli.podFile === "-" ? "stdin" : cli.podFile,
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
