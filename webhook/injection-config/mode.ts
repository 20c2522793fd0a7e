/**
 * The `mode` and `refresh-interval` annotations: how the sidecar runs and
 * how often it reads the vault again.
 *
 * Mode precedence: the annotation, else `sidecar`; but without native
 * sidecars on every kubelet (the webhook's `AKV_INJECTOR_NATIVE_SIDECARS`
 * false), a `sidecar` (an init container with `restartPolicy: Always`)
 * would run as a plain init container that never exits, and the pod would
 * never start: the default becomes `init`, and an explicit `sidecar` is
 * refused.
 *
 * Refresh interval precedence: the annotation, else the webhook's
 * `AKV_INJECTOR_REFRESH_INTERVAL`. Init mode syncs once, so there it is
 * ignored (with a warning); a short one is allowed with a warning, since
 * every refresh reads each secret and Key Vault throttles busy vaults.
 */
import { Annotation, Defaults, MODES, WebhookEnv, type Mode } from "../../common/names.ts";
import type { ProblemList } from "../../common/problems.ts";
import { formatDuration, parseRefreshInterval } from "../../common/refs.ts";

/**
 * The sync mode; the default after adding the problem.
 * @example parseModeAnnotation(undefined, false, problems, warnings) // "init", with a warning saying why
 */
export function parseModeAnnotation(
  text: string | undefined,
  nativeSidecars: boolean,
  problems: ProblemList,
  warnings: ProblemList,
): Mode {
  const why = `this cluster's kubelets may predate native sidecars (the webhook's ${WebhookEnv.nativeSidecars} is false)`;
  if (text === undefined) {
    if (nativeSidecars) return Defaults.mode;
    warnings.addFor(
      Annotation.mode,
      `init: ${why}, so the files are written once, before the app starts, and not refreshed`,
    );
    return "init";
  }
  const mode = MODES.find((x) => x === text.trim());
  if (mode === undefined) problems.addExpected(Annotation.mode, MODES.join(" or "), text);
  else if (mode === "sidecar" && !nativeSidecars) {
    problems.addExpected(Annotation.mode, `init: ${why}`, text);
  }
  return mode ?? Defaults.mode;
}

/**
 * The refresh interval in milliseconds; the default after adding the problem.
 * @param defaultMs the webhook's setting.
 * @example parseRefreshIntervalAnnotation("1h30m", "sidecar", 300_000, problems, warnings) // 5_400_000
 */
export function parseRefreshIntervalAnnotation(
  text: string | undefined,
  mode: Mode,
  defaultMs: number,
  problems: ProblemList,
  warnings: ProblemList,
): number {
  if (text === undefined) return defaultMs;
  const interval = parseRefreshInterval(text);
  if (!interval.ok) {
    problems.addExpected(Annotation.refreshInterval, interval.expected, text);
    return defaultMs;
  }
  if (mode === "init") {
    warnings.addFor(Annotation.refreshInterval, "is ignored in init mode, which syncs once");
  } else if (interval.value < Defaults.minQuietRefreshIntervalMs) {
    warnings.addFor(
      Annotation.refreshInterval,
      `${formatDuration(interval.value)} is under ${formatDuration(Defaults.minQuietRefreshIntervalMs)}: every refresh reads each secret from Key Vault, which throttles busy vaults`,
    );
  }
  return interval.value;
}
