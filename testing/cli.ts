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

/** The client id of {@link PREVIEW_SERVICE_ACCOUNT}. */
export const PREVIEW_CLIENT_ID = "4d0e2f2a-7f44-4d9b-9bd8-0e0b8a1f3c11";

/** The `preview` tests' service account: `team-a/app`, annotated with {@link PREVIEW_CLIENT_ID}. */
export const PREVIEW_SERVICE_ACCOUNT = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: app
  namespace: team-a
  annotations:
    azure.workload.identity/client-id: ${PREVIEW_CLIENT_ID}
`;
