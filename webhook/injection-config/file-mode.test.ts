import { describe, expect, it } from "vitest";
import { collectProblems } from "../../testing/webhook.ts";
import { parseFileModeAnnotation } from "./file-mode.ts";

const closed = (mode: string): string =>
  `akv-injector.io/file-mode: ${mode} closes the files to other users and the pod sets no securityContext.fsGroup: only containers running as user 65532 can read them`;

describe("parseFileModeAnnotation", () => {
  // [case, annotation, the webhook's mode, fsGroup, the mode, the problems, the warnings]
  it.each<[string, string | undefined, number, number | undefined, number, string[], string[]]>([
    ["unset: the webhook's", undefined, 0o644, undefined, 0o644, [], []],
    ["0440 with an fsGroup", "0440", 0o644, 2000, 0o440, [], []],
    ["440, without the leading 0", "440", 0o644, 2000, 0o440, [], []],
    ["0444: open to other users", "0444", 0o644, undefined, 0o444, [], []],
    ["0440 without an fsGroup: a warning", "0440", 0o644, undefined, 0o440, [], [closed("0440")]],
    [
      "unset, the webhook's closed, without an fsGroup: a warning",
      undefined,
      0o600,
      undefined,
      0o600,
      [],
      [closed("0600")],
    ],
    [
      "not octal: the webhook's, and the problem",
      "rw-r--r--",
      0o644,
      undefined,
      0o644,
      [
        'akv-injector.io/file-mode: expected an octal file mode like 0644 or 0440 (got "rw-r--r--")',
      ],
      [],
    ],
    [
      "not octal, the webhook's closed: the problem and the warning",
      "9",
      0o600,
      undefined,
      0o600,
      ['akv-injector.io/file-mode: expected an octal file mode like 0644 or 0440 (got "9")'],
      [closed("0600")],
    ],
  ])("%s", (_case, text, defaultMode, fsGroup, fileMode, problems, warnings) => {
    const result = collectProblems((list, warned) =>
      parseFileModeAnnotation(text, defaultMode, fsGroup, list, warned),
    );
    expect(result.value).toBe(fileMode);
    expect(result.problems).toEqual(problems);
    expect(result.warnings).toEqual(warnings);
  });
});
