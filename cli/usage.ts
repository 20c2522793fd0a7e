/** The CLI's one error for bad input: `AKV_CLI_USAGE`, exit status 2. */
import { AkvError, ErrorCode } from "../common/errors.ts";

/** A usage error, pointing at `--help`. */
export const usage = (message: string): AkvError =>
  new AkvError(ErrorCode.CLI_USAGE, `${message}\nRun 'akv-injector --help' for usage.`);
