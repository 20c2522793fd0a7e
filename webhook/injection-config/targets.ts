/**
 * The `containers` annotation: which containers get the read-only mount of
 * the files. Precedence: the names it lists (each once, in its order), else
 * every init container and container of the pod. The injected container is
 * never a target; a name the pod lacks is refused rather than ignored, since
 * that container would start without its secrets.
 */
import { Annotation, Injected } from "../../common/names.ts";
import type { ProblemList } from "../../common/problems.ts";
import type { Pod } from "../admission-review.ts";
import { splitList } from "./annotations.ts";

/** A container that gets the read-only mount, by position in the pod as it was received. */
export interface TargetContainer {
  readonly list: "containers" | "initContainers";
  readonly index: number;
  readonly name: string;
}

/**
 * The target containers; warns when they are init containers only (the app
 * would not see the files).
 * @example parseContainersAnnotation(pod, "app", problems, warnings) // [{ list: "containers", index: 0, name: "app" }]
 */
export function parseContainersAnnotation(
  pod: Pod,
  text: string | undefined,
  problems: ProblemList,
  warnings: ProblemList,
): TargetContainer[] {
  const all: TargetContainer[] = [
    ...pod.initContainers.map((c, index) => ({
      list: "initContainers" as const,
      index,
      name: c.name,
    })),
    ...pod.containers.map((c, index) => ({ list: "containers" as const, index, name: c.name })),
  ];
  if (text === undefined) return all;
  const names = [...new Set(splitList(text))];
  if (names.length === 0) {
    problems.addExpected(Annotation.containers, "a comma-separated list of container names", text);
    return [];
  }
  const targets: TargetContainer[] = [];
  for (const name of names) {
    const target = all.find((t) => t.name === name);
    if (target !== undefined) targets.push(target);
    else if (name === Injected.containerName) {
      problems.addFor(Annotation.containers, `"${name}" is the injected container itself`, text);
    } else {
      const have = all.map((t) => t.name).join(", ");
      problems.addFor(
        Annotation.containers,
        `the pod has no container "${name}" (it has: ${have})`,
        text,
      );
    }
  }
  if (targets.length > 0 && targets.every((t) => t.list === "initContainers")) {
    warnings.addFor(
      Annotation.containers,
      "names no app container, so only init containers see the secrets",
    );
  }
  return targets;
}
