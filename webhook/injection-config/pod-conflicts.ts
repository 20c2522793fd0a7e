/**
 * What in the pod itself stops an injection, whatever the annotations say:
 * names akv-injector reserves, mounts of its volumes, Windows, and a status
 * annotation it did not write.
 *
 * Why each: a copied spec of an injected pod, minus the status annotation,
 * would get a second sidecar beside volumes and a container of the same
 * names. The volumes exist only after the patch, so the apiserver's
 * validation would accept a mount of them: an app container would get the
 * federated token the contract keeps in the sidecar alone, or write where
 * only the sidecar writes. The sidecar is a Linux image. The status
 * annotation is how the webhook knows a pod it already injected.
 */
import { Injected, STATUS_ANNOTATION } from "../../common/names.ts";
import type { ProblemList } from "../../common/problems.ts";
import type { Pod } from "../admission-review.ts";
import { findForbiddenMounts, findWindowsPod } from "../pod-rules.ts";

/** Adds a problem for each of the pod's conflicts, in the order of the fields above. */
export function checkPodConflicts(pod: Pod, problems: ProblemList): void {
  for (const volume of [Injected.secretsVolume, Injected.tokenVolume]) {
    if (pod.volumeNames.includes(volume)) {
      problems.addFor(
        "spec.volumes",
        `the pod already has a volume "${volume}", a name akv-injector reserves`,
      );
    }
  }
  for (const list of ["initContainers", "containers"] as const) {
    for (const mount of findForbiddenMounts(list, pod[list])) {
      problems.addFor(mount.field, mount.text);
    }
  }
  const windows = findWindowsPod(pod);
  if (windows !== undefined) problems.addFor(windows.field, windows.text);
  if ([...pod.containers, ...pod.initContainers].some((c) => c.name === Injected.containerName)) {
    problems.addFor(
      "spec",
      `the pod already has a container "${Injected.containerName}", a name akv-injector reserves`,
    );
  }
  const status = pod.annotations[STATUS_ANNOTATION];
  if (status !== undefined) {
    problems.addFor(STATUS_ANNOTATION, "is written by the webhook only; remove it", status);
  }
}
