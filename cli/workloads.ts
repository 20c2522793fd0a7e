/**
 * Workloads, the objects people deploy, and the pod each one's controller
 * creates from its template. Pure: objects in, objects out.
 */
import type { JsonObject } from "../webhook/admission-review.ts";

/** The kinds whose pod template `preview` reviews. */
export const WORKLOAD_KINDS = [
  "Deployment",
  "StatefulSet",
  "DaemonSet",
  "ReplicaSet",
  "Job",
  "CronJob",
] as const;
/** One of {@link WORKLOAD_KINDS}. */
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

/** Where a kind keeps what `preview` reads, as paths from the object's root. */
export interface WorkloadShape {
  /** The API group of `apiVersion` (`apps/v1` → `apps`). */
  readonly group: "apps" | "batch";
  /** The pod template. */
  readonly template: readonly string[];
  /** The label selector of the pods (immutable once created). */
  readonly selector: readonly string[];
  /** Labels of the workload itself (and of a CronJob's Jobs): not the pods'. */
  readonly ownLabels: readonly (readonly string[])[];
}

const POD_CONTROLLER = (group: "apps" | "batch"): WorkloadShape => ({
  group,
  template: ["spec", "template"],
  selector: ["spec", "selector"],
  ownLabels: [["metadata", "labels"]],
});

/** Each workload kind's shape. */
export const WORKLOAD_SHAPES: Readonly<Record<WorkloadKind, WorkloadShape>> = {
  Deployment: POD_CONTROLLER("apps"),
  StatefulSet: POD_CONTROLLER("apps"),
  DaemonSet: POD_CONTROLLER("apps"),
  ReplicaSet: POD_CONTROLLER("apps"),
  Job: POD_CONTROLLER("batch"),
  CronJob: {
    group: "batch",
    template: ["spec", "jobTemplate", "spec", "template"],
    selector: ["spec", "jobTemplate", "spec", "selector"],
    ownLabels: [
      ["metadata", "labels"],
      ["spec", "jobTemplate", "metadata", "labels"],
    ],
  },
};

/** True for a JSON object (not an array, not null). */
export const isObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The value at `path`, or undefined where the path runs out. */
export function valueAt(object: unknown, path: readonly string[]): unknown {
  let value = object;
  for (const key of path) {
    if (!isObject(value)) return undefined;
    value = value[key];
  }
  return value;
}

/**
 * The workload kind of an object, or undefined for any other. A kind of
 * that name in another API group (a custom resource called `Job`, say) is
 * not one; a missing `apiVersion` is taken as the usual one.
 */
export function workloadKindOf(kind: string, apiVersion: unknown): WorkloadKind | undefined {
  const known = (WORKLOAD_KINDS as readonly string[]).includes(kind)
    ? (kind as WorkloadKind)
    : undefined;
  if (known === undefined) return undefined;
  if (apiVersion === undefined) return known;
  if (typeof apiVersion !== "string") return undefined;
  return apiVersion.startsWith(`${WORKLOAD_SHAPES[known].group}/`) ? known : undefined;
}

/** The pod template of a workload, or a problem naming the path. */
export function readPodTemplate(
  object: JsonObject,
  kind: WorkloadKind,
):
  | { readonly ok: true; readonly template: JsonObject }
  | { readonly ok: false; readonly problem: string } {
  const path = WORKLOAD_SHAPES[kind].template;
  const template = valueAt(object, path);
  if (isObject(template)) return { ok: true, template };
  return {
    ok: false,
    problem: `${path.join(".")}: expected the pod template, an object (got ${template === undefined ? "nothing" : JSON.stringify(template)})`,
  };
}

/** What of the workload the pod it creates inherits. */
export interface WorkloadIdentity {
  /** `metadata.name` of the workload; the pod's `generateName` is `NAME-`. */
  readonly name: string | undefined;
  /** `metadata.generateName` of the workload: the pod's, when the workload has no name. */
  readonly generateName?: string | undefined;
  /** `metadata.namespace` of the workload, if it has one. */
  readonly namespace: string | undefined;
}

/** Keys {@link podFromTemplate} sets in the pod's metadata, which {@link withPodTemplate} takes out again. */
const POD_ONLY_METADATA: readonly string[] = ["name", "generateName", "namespace"];

/** The metadata without {@link POD_ONLY_METADATA}, in its order. */
const withoutPodOnly = (metadata: unknown): Record<string, unknown> =>
  isObject(metadata)
    ? Object.fromEntries(Object.entries(metadata).filter(([k]) => !POD_ONLY_METADATA.includes(k)))
    : {};

/**
 * The pod a workload's controller would create from `template`: the
 * template's metadata (labels, annotations) and spec, in the workload's
 * namespace, named `generateName: NAME-` as the controllers name their pods
 * (a template's own name and namespace are ignored by them, so here too).
 */
export function podFromTemplate(template: JsonObject, workload: WorkloadIdentity): JsonObject {
  const metadata = withoutPodOnly(template.metadata);
  if (workload.name !== undefined && workload.name !== "") {
    metadata.generateName = `${workload.name}-`;
  } else if (workload.generateName !== undefined && workload.generateName !== "") {
    metadata.generateName = workload.generateName;
  }
  if (workload.namespace !== undefined && workload.namespace !== "") {
    metadata.namespace = workload.namespace;
  }
  return { apiVersion: "v1", kind: "Pod", metadata, spec: template.spec };
}

/**
 * The workload with its pod template made from `pod` (a pod of
 * {@link podFromTemplate}, mutated): the pod's metadata, but for what a
 * pod alone has (name, `generateName`, namespace: the template's own are
 * kept), and its spec. The workload is not changed.
 */
export function withPodTemplate(
  object: JsonObject,
  kind: WorkloadKind,
  pod: JsonObject,
): JsonObject {
  const path = WORKLOAD_SHAPES[kind].template;
  const template = valueAt(object, path);
  const original = isObject(template) ? template : {};
  const originalMetadata = isObject(original.metadata) ? original.metadata : undefined;
  const metadata = withoutPodOnly(pod.metadata);
  for (const key of POD_ONLY_METADATA) {
    if (originalMetadata?.[key] !== undefined) metadata[key] = originalMetadata[key];
  }
  const replaced = {
    ...original,
    ...(originalMetadata === undefined && Object.keys(metadata).length === 0 ? {} : { metadata }),
    spec: pod.spec,
  };
  return setAt(object, path, replaced);
}

/** A copy of `object` with `value` at `path`, the objects along the path copied (the rest shared). */
function setAt(object: JsonObject, path: readonly string[], value: unknown): JsonObject {
  const [key, ...rest] = path;
  if (key === undefined) return object;
  const child = object[key];
  return {
    ...object,
    [key]: rest.length === 0 ? value : setAt(isObject(child) ? child : {}, rest, value),
  };
}
