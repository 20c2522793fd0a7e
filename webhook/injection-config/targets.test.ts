import { describe, expect, it } from "vitest";
import { collectProblems, testParsedPod } from "../../testing/webhook.ts";
import { parseContainersAnnotation } from "./targets.ts";

const pod = testParsedPod(
  {},
  {
    initContainers: [{ name: "migrate", image: "x" }],
    containers: [
      { name: "app", image: "x" },
      { name: "proxy", image: "y" },
    ],
  },
);
const migrate = "initContainers[0] migrate";
const app = "containers[0] app";
const proxy = "containers[1] proxy";

describe("parseContainersAnnotation", () => {
  // [case, annotation, the targets as LIST[INDEX] NAME, the problems, the warnings]
  it.each<[string, string | undefined, string[], string[], string[]]>([
    ["unset: every init container and container", undefined, [migrate, app, proxy], [], []],
    ["one container", "app", [app], [], []],
    [
      "in the annotation's order, each once, trimmed",
      " proxy, migrate ,proxy",
      [proxy, migrate],
      [],
      [],
    ],
    [
      "init containers only: a warning",
      "migrate",
      [migrate],
      [],
      [
        "akv-injector.io/containers: names no app container, so only init containers see the secrets",
      ],
    ],
    [
      "empty",
      " , ",
      [],
      [
        'akv-injector.io/containers: expected a comma-separated list of container names (got " , ")',
      ],
      [],
    ],
    [
      "a name the pod lacks, the others kept",
      "app,sidecar",
      [app],
      [
        'akv-injector.io/containers: the pod has no container "sidecar" (it has: migrate, app, proxy) (got "app,sidecar")',
      ],
      [],
    ],
    [
      "the injected container",
      "akv-injector",
      [],
      [
        'akv-injector.io/containers: "akv-injector" is the injected container itself (got "akv-injector")',
      ],
      [],
    ],
  ])("%s", (_case, text, targets, problems, warnings) => {
    const result = collectProblems((list, warned) =>
      parseContainersAnnotation(pod, text, list, warned),
    );
    expect(result.value.map((t) => `${t.list}[${String(t.index)}] ${t.name}`)).toEqual(targets);
    expect(result.problems).toEqual(problems);
    expect(result.warnings).toEqual(warnings);
  });
});
