import { describe, expect, it } from "vitest";
import type { Mode } from "../../common/names.ts";
import { collectProblems } from "../../testing/webhook.ts";
import { parseModeAnnotation, parseRefreshIntervalAnnotation } from "./mode.ts";

const WHY =
  "this cluster's kubelets may predate native sidecars (the webhook's AKV_INJECTOR_NATIVE_SIDECARS is false)";

describe("parseModeAnnotation", () => {
  // [case, annotation, native sidecars, the mode, the problems, the warnings]
  it.each<[string, string | undefined, boolean, Mode, string[], string[]]>([
    ["unset: sidecar", undefined, true, "sidecar", [], []],
    ["sidecar", "sidecar", true, "sidecar", [], []],
    ["init, trimmed", " init ", true, "init", [], []],
    [
      "unset without native sidecars: init, saying why",
      undefined,
      false,
      "init",
      [],
      [
        `akv-injector.io/mode: init: ${WHY}, so the files are written once, before the app starts, and not refreshed`,
      ],
    ],
    ["init without native sidecars: silently", "init", false, "init", [], []],
    [
      "sidecar without native sidecars",
      "sidecar",
      false,
      "sidecar",
      [`akv-injector.io/mode: expected init: ${WHY} (got "sidecar")`],
      [],
    ],
    [
      "an unknown mode",
      "daemon",
      true,
      "sidecar",
      ['akv-injector.io/mode: expected sidecar or init (got "daemon")'],
      [],
    ],
    [
      "a long unknown mode, cut after 100 characters",
      "x".repeat(500),
      true,
      "sidecar",
      [`akv-injector.io/mode: expected sidecar or init (got "${"x".repeat(100)}…")`],
      [],
    ],
  ])("%s", (_case, text, nativeSidecars, mode, problems, warnings) => {
    const result = collectProblems((list, warned) =>
      parseModeAnnotation(text, nativeSidecars, list, warned),
    );
    expect(result.value).toBe(mode);
    expect(result.problems).toEqual(problems);
    expect(result.warnings).toEqual(warnings);
  });
});

describe("parseRefreshIntervalAnnotation", () => {
  const DEFAULT = 300_000;
  const RANGE = "expected a duration from 1s to 480h";
  // [case, annotation, mode, milliseconds, the problems, the warnings]
  it.each<[string, string | undefined, Mode, number, string[], string[]]>([
    ["unset: the webhook's", undefined, "sidecar", DEFAULT, [], []],
    ["unset in init mode: no warning", undefined, "init", DEFAULT, [], []],
    ["1h30m", "1h30m", "sidecar", 5_400_000, [], []],
    ["30s, the quiet minimum", "30s", "sidecar", 30_000, [], []],
    ["480h, the most a timer holds", "480h", "sidecar", 480 * 3_600_000, [], []],
    [
      "under 30s: a warning",
      "10s",
      "sidecar",
      10_000,
      [],
      [
        "akv-injector.io/refresh-interval: 10s is under 30s: every refresh reads each secret from Key Vault, which throttles busy vaults",
      ],
    ],
    [
      "in init mode: ignored, with a warning",
      "10s",
      "init",
      10_000,
      [],
      ["akv-injector.io/refresh-interval: is ignored in init mode, which syncs once"],
    ],
    [
      "not a duration",
      "5 minutes",
      "sidecar",
      DEFAULT,
      [
        'akv-injector.io/refresh-interval: expected a positive Go-style duration like 90s, 5m or 1h (got "5 minutes")',
      ],
      [],
    ],
    [
      "under 1s",
      "999ms",
      "sidecar",
      DEFAULT,
      [`akv-injector.io/refresh-interval: ${RANGE} (got "999ms")`],
      [],
    ],
    [
      "over 480h",
      "480h1ms",
      "init",
      DEFAULT,
      [`akv-injector.io/refresh-interval: ${RANGE} (got "480h1ms")`],
      [],
    ],
  ])("%s", (_case, text, mode, ms, problems, warnings) => {
    const result = collectProblems((list, warned) =>
      parseRefreshIntervalAnnotation(text, mode, DEFAULT, list, warned),
    );
    expect(result.value).toBe(ms);
    expect(result.problems).toEqual(problems);
    expect(result.warnings).toEqual(warnings);
  });
});
