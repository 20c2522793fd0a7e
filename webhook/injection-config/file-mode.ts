/**
 * The `file-mode` annotation: the permission bits of the written files.
 * Precedence: the annotation, else the webhook's `AKV_INJECTOR_FILE_MODE`.
 * The sidecar's user owns the files; an app running as another user reads
 * them through "other", or through the group when the pod sets `fsGroup`:
 * a mode closed to other users in a pod without `fsGroup` is allowed (the app
 * may run as the sidecar's user) but warned about.
 */
import { Annotation, Injected } from "../../common/names.ts";
import type { ProblemList } from "../../common/problems.ts";
import { formatFileMode, parseFileMode } from "../../common/refs.ts";

/**
 * The file mode; the default after adding the problem.
 * @param defaultMode the webhook's setting.
 * @param fsGroup the pod's `securityContext.fsGroup`.
 * @example parseFileModeAnnotation("0440", 0o644, 2000, problems, warnings) // 0o440
 */
export function parseFileModeAnnotation(
  text: string | undefined,
  defaultMode: number,
  fsGroup: number | undefined,
  problems: ProblemList,
  warnings: ProblemList,
): number {
  let fileMode = defaultMode;
  if (text !== undefined) {
    const parsed = parseFileMode(text);
    if (parsed.ok) fileMode = parsed.value;
    else problems.addExpected(Annotation.fileMode, parsed.expected, text);
  }
  if ((fileMode & 0o004) === 0 && fsGroup === undefined) {
    warnings.addFor(
      Annotation.fileMode,
      `${formatFileMode(fileMode)} closes the files to other users and the pod sets no securityContext.fsGroup: only containers running as user ${Injected.sidecarUser} can read them`,
    );
  }
  return fileMode;
}
