/** What the CLI's tests share. */
import { expect } from "vitest";
import { ErrorCode, isAkvError } from "../common/errors.ts";

/** The message of the usage error (`AKV_CLI_USAGE`) that `run` throws; fails the test if it throws none. */
export function usageError(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(isAkvError(error, ErrorCode.CLI_USAGE)).toBe(true);
    return (error as Error).message;
  }
  throw new Error("expected a usage error");
}
