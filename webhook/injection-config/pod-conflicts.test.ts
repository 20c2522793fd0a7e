import { describe, expect, it } from "vitest";
import { collectProblems, testParsedPod } from "../../testing/webhook.ts";
import { checkPodConflicts } from "./pod-conflicts.ts";

const WINDOWS =
  "and akv-injector's sidecar runs on Linux nodes only; remove the label akv-injector.io/inject from this pod";
const mounting = (name: string, volume: string, readOnly = false) => ({
  name,
  image: "x",
  volumeMounts: [{ name: volume, mountPath: "/v", readOnly }],
});

describe("checkPodConflicts", () => {
  // [case, annotations, pod spec, the problems]
  it.each<[string, Record<string, string>, Record<string, unknown>, string[]]>([
    ["a plain pod", {}, {}, []],
    ["volumes of other names", {}, { volumes: [{ name: "data", emptyDir: {} }] }, []],
    [
      "a container mounting the secrets volume read-only (a copied target)",
      {},
      { containers: [mounting("app", "akv-secrets", true)] },
      [],
    ],
    [
      "the sidecar's own mounts",
      {},
      { initContainers: [mounting("akv-injector", "akv-injector-token")] },
      ['spec: the pod already has a container "akv-injector", a name akv-injector reserves'],
    ],
    [
      "both reserved volume names",
      {},
      {
        volumes: [
          { name: "akv-secrets", emptyDir: {} },
          { name: "akv-injector-token", emptyDir: {} },
        ],
      },
      [
        'spec.volumes: the pod already has a volume "akv-secrets", a name akv-injector reserves',
        'spec.volumes: the pod already has a volume "akv-injector-token", a name akv-injector reserves',
      ],
    ],
    [
      "init containers before containers",
      {},
      {
        containers: [mounting("app", "akv-injector-token")],
        initContainers: [mounting("warm", "akv-secrets")],
      },
      [
        'spec.initContainers[0].volumeMounts: container "warm" mounts volume "akv-secrets" read-write, and only the injected sidecar writes to it: set readOnly: true, or leave the mount to akv-injector.io/containers',
        'spec.containers[0].volumeMounts: container "app" mounts volume "akv-injector-token", which only the injected sidecar may mount',
      ],
    ],
    [
      "a Windows pod",
      {},
      { os: { name: "windows" } },
      [`spec.os.name: the pod runs on Windows (spec.os.name: windows), ${WINDOWS}`],
    ],
    [
      "a reserved container name among the containers",
      {},
      { containers: [{ name: "akv-injector", image: "x" }] },
      ['spec: the pod already has a container "akv-injector", a name akv-injector reserves'],
    ],
    [
      "a status annotation, whatever its value",
      { "akv-injector.io/status": "injected" },
      {},
      ['akv-injector.io/status: is written by the webhook only; remove it (got "injected")'],
    ],
    [
      "everything at once, in field order",
      { "akv-injector.io/status": "" },
      {
        volumes: [{ name: "akv-secrets", emptyDir: {} }],
        nodeSelector: { "kubernetes.io/os": "windows" },
        containers: [{ name: "akv-injector", image: "x" }],
      },
      [
        'spec.volumes: the pod already has a volume "akv-secrets", a name akv-injector reserves',
        `spec.nodeSelector: the pod runs on Windows (kubernetes.io/os: windows), ${WINDOWS}`,
        'spec: the pod already has a container "akv-injector", a name akv-injector reserves',
        'akv-injector.io/status: is written by the webhook only; remove it (got "")',
      ],
    ],
  ])("%s", (_case, annotations, spec, problems) => {
    const pod = testParsedPod(annotations, spec);
    const result = collectProblems((list) => {
      checkPodConflicts(pod, list);
    });
    expect(result.problems).toEqual(problems);
  });
});
