/**
 * A pod that is already injected comes back when a later webhook changed it
 * (`reinvocationPolicy: IfNeeded`), often with a container of its own. Such
 * a container is a target like any other (all containers, or the ones the
 * `containers` annotation names) and gets the secrets mount; the rest of the
 * pod stays as it is, so a second pass over the result changes nothing.
 * Pure, like the first pass.
 */
import { Annotation, Defaults, Injected } from "../common/names.ts";
import { ProblemList } from "../common/problems.ts";
import type { Pod } from "./admission-review.ts";
import { checkMountPath, type TargetContainer } from "./injection-config.ts";
import { buildMountOperations, type PatchOperation } from "./patch.ts";
import { findForbiddenMounts, isInjectedPod } from "./pod-rules.ts";

/** The mounts to add, or why the pod as it now is breaks the contract. */
export type Reinvocation =
  | { readonly ok: true; readonly patch: readonly PatchOperation[] }
  | { readonly ok: false; readonly problems: readonly string[] };

/**
 * What an injected pod still lacks. A pod that carries the status annotation
 * without the sidecar and its volume (copied by hand) is not one the webhook
 * made: it is left as it is, as it always was.
 */
export function planReinvocation(pod: Pod): Reinvocation {
  if (!isInjectedPod(pod)) return { ok: true, patch: [] };
  const problems = new ProblemList();
  for (const list of ["initContainers", "containers"] as const) {
    for (const p of findForbiddenMounts(list, pod[list])) problems.add(`${p.field}: ${p.text}`);
  }
  const mountPathText = pod.annotations[Annotation.mountPath]?.trim();
  const expected = mountPathText === undefined ? undefined : checkMountPath(mountPathText);
  if (expected !== undefined) problems.add(`${Annotation.mountPath}: expected ${expected}`);
  if (problems.count > 0) return { ok: false, problems: problems.list() };

  const mountPath = mountPathText?.replace(/(.)\/$/, "$1") ?? Defaults.mountPath;
  const missing = selectTargets(pod).filter(
    (t) =>
      !(pod[t.list][t.index]?.volumeMounts ?? []).some((m) => m.name === Injected.secretsVolume),
  );
  return { ok: true, patch: buildMountOperations(pod, missing, mountPath) };
}

/** The target containers, the injected sidecar aside; names the pod lacks are not this pass's to refuse. */
function selectTargets(pod: Pod): TargetContainer[] {
  const names = pod.annotations[Annotation.containers]
    ?.split(",")
    .map((n) => n.trim())
    .filter((n) => n !== "");
  return (["initContainers", "containers"] as const).flatMap((list) =>
    pod[list]
      .map((c, index) => ({ list, index, name: c.name }))
      .filter((t) => t.name !== Injected.containerName)
      .filter((t) => names === undefined || names.includes(t.name)),
  );
}
