import { describe, expect, it } from "vitest";
import {
  podFromTemplate,
  readPodTemplate,
  withPodTemplate,
  workloadKindOf,
  WORKLOAD_KINDS,
  type WorkloadKind,
} from "./workloads.ts";

const TEMPLATE = {
  metadata: { labels: { app: "web" }, annotations: { a: "1" } },
  spec: { containers: [{ name: "app", image: "busybox" }] },
};

const API_VERSIONS: Record<WorkloadKind, string> = {
  Deployment: "apps/v1",
  StatefulSet: "apps/v1",
  DaemonSet: "apps/v1",
  ReplicaSet: "apps/v1",
  Job: "batch/v1",
  CronJob: "batch/v1",
};

/** A workload of `kind` holding `template` where its controller reads it. */
function workload(kind: WorkloadKind, template: unknown): Record<string, unknown> {
  const meta = { name: "web", namespace: "team-a", labels: { tier: "front" } };
  const spec =
    kind === "CronJob"
      ? { schedule: "* * * * *", jobTemplate: { spec: { backoffLimit: 1, template } } }
      : { replicas: 2, template };
  return { apiVersion: API_VERSIONS[kind], kind, metadata: meta, spec };
}

describe("workloadKindOf", () => {
  it.each([
    ["Deployment", "apps/v1", "Deployment"],
    ["StatefulSet", "apps/v1", "StatefulSet"],
    ["DaemonSet", "apps/v1", "DaemonSet"],
    ["ReplicaSet", "apps/v1", "ReplicaSet"],
    ["Job", "batch/v1", "Job"],
    ["CronJob", "batch/v1", "CronJob"],
    ["CronJob", "batch/v1beta1", "CronJob"],
    ["Deployment", undefined, "Deployment"],
    ["Job", "example.com/v1", undefined],
    ["Deployment", "batch/v1", undefined],
    ["Deployment", 1, undefined],
    ["Pod", "v1", undefined],
    ["ConfigMap", "v1", undefined],
  ])("%s of %j → %s", (kind, apiVersion, expected) => {
    expect(workloadKindOf(kind, apiVersion)).toBe(expected);
  });
});

describe.each(WORKLOAD_KINDS)("%s", (kind) => {
  const object = workload(kind, TEMPLATE);
  const path = kind === "CronJob" ? "spec.jobTemplate.spec.template" : "spec.template";

  it("reads the pod template", () => {
    expect(readPodTemplate(object, kind)).toEqual({ ok: true, template: TEMPLATE });
  });

  it.each([
    [undefined, "nothing"],
    ["x", '"x"'],
    [[], "[]"],
  ])("names the path of a template that is %j", (template, got) => {
    const read = readPodTemplate(workload(kind, template), kind);
    expect(read).toEqual({
      ok: false,
      problem: `${path}: expected the pod template, an object (got ${got})`,
    });
  });

  it("puts the mutated pod's metadata and spec back as the template, changing nothing else", () => {
    const pod = podFromTemplate(TEMPLATE, { name: "web", namespace: "team-a" });
    const mutated = {
      ...pod,
      metadata: {
        ...(pod.metadata as object),
        annotations: { a: "1", "akv-injector.io/status": "injected" },
      },
      spec: { containers: [{ name: "app", image: "busybox" }], volumes: [{ name: "v" }] },
    };
    const before = structuredClone(object);
    const out = withPodTemplate(object, kind, mutated);
    expect(object).toEqual(before);
    const expectedTemplate = {
      metadata: {
        labels: { app: "web" },
        annotations: { a: "1", "akv-injector.io/status": "injected" },
      },
      spec: mutated.spec,
    };
    const expected = structuredClone(before) as { spec: Record<string, unknown> };
    if (kind === "CronJob") {
      (expected.spec.jobTemplate as { spec: { template: unknown } }).spec.template =
        expectedTemplate;
    } else {
      expected.spec.template = expectedTemplate;
    }
    expect(out).toEqual(expected);
  });
});

describe("podFromTemplate", () => {
  it("is the pod a controller creates: generateName from the workload, its namespace", () => {
    expect(podFromTemplate(TEMPLATE, { name: "web", namespace: "team-a" })).toEqual({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        labels: { app: "web" },
        annotations: { a: "1" },
        generateName: "web-",
        namespace: "team-a",
      },
      spec: TEMPLATE.spec,
    });
  });

  it("ignores the template's own name and namespace, as controllers do", () => {
    const template = { metadata: { name: "x", namespace: "y", generateName: "z-" }, spec: {} };
    expect(podFromTemplate(template, { name: undefined, namespace: undefined })).toEqual({
      apiVersion: "v1",
      kind: "Pod",
      metadata: {},
      spec: {},
    });
  });

  it("takes a nameless workload's generateName as is", () => {
    expect(
      podFromTemplate({ spec: {} }, { name: undefined, generateName: "migrate-", namespace: "n" })
        .metadata,
    ).toEqual({ generateName: "migrate-", namespace: "n" });
    expect(
      podFromTemplate({ spec: {} }, { name: "job", generateName: "migrate-", namespace: undefined })
        .metadata,
    ).toEqual({ generateName: "job-" });
  });

  it("reads a template without metadata", () => {
    expect(podFromTemplate({ spec: {} }, { name: "w", namespace: undefined }).metadata).toEqual({
      generateName: "w-",
    });
  });
});

describe("withPodTemplate", () => {
  it("keeps the template's own name and namespace, and drops the pod's", () => {
    const template = { metadata: { name: "keep", labels: {} }, spec: {} };
    const object = workload("Deployment", template);
    const pod = podFromTemplate(template, { name: "web", namespace: "team-a" });
    const out = withPodTemplate(object, "Deployment", pod) as { spec: { template: unknown } };
    expect(out.spec.template).toEqual({ metadata: { labels: {}, name: "keep" }, spec: {} });
  });

  it("adds no metadata the template did not have, unless the pod gained some", () => {
    const object = workload("Job", { spec: { containers: [] } });
    const pod = podFromTemplate({ spec: { containers: [] } }, { name: "j", namespace: "n" });
    const plain = withPodTemplate(object, "Job", pod) as { spec: { template: unknown } };
    expect(plain.spec.template).toEqual({ spec: { containers: [] } });
    const annotated = withPodTemplate(object, "Job", {
      ...pod,
      metadata: { annotations: { b: "2" } },
    }) as { spec: { template: unknown } };
    expect(annotated.spec.template).toEqual({
      metadata: { annotations: { b: "2" } },
      spec: { containers: [] },
    });
  });
});
