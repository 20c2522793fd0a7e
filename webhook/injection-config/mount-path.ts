/**
 * The `mount-path` annotation: where target containers see the files.
 * Precedence: the annotation, else `/mnt/secrets`. It must be an absolute,
 * normalized directory outside the system folders (mounting over `/etc` or
 * the service-account token would break the container), and no target
 * container may already mount something there: the apiserver would refuse
 * the second mount later, less clearly.
 */
import { Annotation, Defaults } from "../../common/names.ts";
import type { ProblemList } from "../../common/problems.ts";
import type { Pod } from "../admission-review.ts";
import { findSystemMountPath } from "../pod-rules.ts";
import type { TargetContainer } from "./targets.ts";

/**
 * Checks a `mount-path`: absolute, normalized, not `/`, not a system folder.
 * Returns what is expected when it is wrong.
 * @example checkMountPath("/mnt/secrets") // undefined (fine)
 */
export function checkMountPath(path: string): string | undefined {
  const expected = "an absolute directory like /mnt/secrets, without '.' or '..' segments";
  if (!path.startsWith("/") || path === "/") return expected;
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  const control = /[\u0000-\u001f\u007f]/.test(path);
  if (control || path.length > 1024) return expected;
  const normalized = path.replace(/\/$/, "");
  const segments = normalized.split("/").slice(1);
  if (segments.some((s) => s === "" || s === "." || s === "..")) return expected;
  const system = findSystemMountPath(normalized);
  return system === undefined ? undefined : `${expected}; this one ${system}`;
}

/**
 * The mount path, without a trailing `/`; the default after adding the
 * problem, so later checks still run.
 * @example parseMountPathAnnotation(" /etc/app/secrets/ ", problems) // "/etc/app/secrets"
 */
export function parseMountPathAnnotation(text: string | undefined, problems: ProblemList): string {
  if (text === undefined) return Defaults.mountPath;
  const expected = checkMountPath(text.trim());
  if (expected === undefined) return text.trim().replace(/(.)\/$/, "$1");
  problems.addExpected(Annotation.mountPath, expected, text);
  return Defaults.mountPath;
}

/**
 * Refuses a mount path that a target container already mounts a volume at.
 * @param text the annotation as written, shown in the message (undefined: the default was used).
 */
export function checkMountClashes(
  pod: Pod,
  targets: readonly TargetContainer[],
  mountPath: string,
  text: string | undefined,
  problems: ProblemList,
): void {
  for (const target of targets) {
    const container = pod[target.list][target.index];
    const clash = container?.volumeMounts?.find(
      (m) => m.mountPath.replace(/(.)\/$/, "$1") === mountPath,
    );
    if (clash !== undefined) {
      problems.addFor(
        Annotation.mountPath,
        `container "${target.name}" already mounts volume "${clash.name}" at ${mountPath}; choose another directory`,
        text ?? mountPath,
      );
    }
  }
}
