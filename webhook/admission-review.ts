/**
 * The AdmissionReview envelope (`admission.k8s.io/v1`): checking what the
 * apiserver sends, reading the pod out of it, and shaping the answer. Pure.
 *
 * Two kinds of bad input are told apart on purpose: a body that is not an
 * AdmissionReview is the caller's bug (HTTP 400, {@link parseAdmissionReview}
 * throws), while a pod of an odd shape is the user's (an admission refusal
 * that `kubectl` shows, from {@link parsePod}).
 *
 * Over 400 lines on purpose: the envelope's checks and the pod reader share the shape helpers and the contract they check; split, the contract would be read in two places.
 */
import { AkvError, ErrorCode } from "../common/errors.ts";
import { ProblemList } from "../common/problems.ts";

/** The only AdmissionReview version the webhook speaks (`admissionReviewVersions: [v1]`). */
export const ADMISSION_API_VERSION = "admission.k8s.io/v1";

/** Any JSON object, read-only. */
export type JsonObject = { readonly [key: string]: unknown };

/** `request.kind` / `request.resource`: which object the review is about. */
export interface GroupVersionKind {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
}

/** The fields of `request` the webhook uses. */
export interface AdmissionRequest {
  readonly uid: string;
  readonly kind: GroupVersionKind;
  /** `request.resource.resource`, e.g. `pods`. */
  readonly resource: string;
  /** `request.subResource`; empty for the object itself. */
  readonly subResource: string;
  /** `CREATE`, `UPDATE`, `DELETE` or `CONNECT`. */
  readonly operation: string;
  /** `request.namespace`: set by the apiserver even when the pod's metadata has none. */
  readonly namespace: string;
  /** `request.name`: empty for a pod created with `generateName`. */
  readonly name: string;
  readonly dryRun: boolean;
  /** `request.object`, unchecked. */
  readonly object: unknown;
}

/** A checked AdmissionReview. */
export interface AdmissionReview {
  readonly request: AdmissionRequest;
}

/** `response.status` of a refusal. */
export interface AdmissionStatus {
  readonly code: number;
  readonly message: string;
  readonly reason?: string;
}

/** The AdmissionReview the webhook answers with. */
export interface AdmissionReviewResponse {
  readonly apiVersion: typeof ADMISSION_API_VERSION;
  readonly kind: "AdmissionReview";
  readonly response: {
    readonly uid: string;
    readonly allowed: boolean;
    readonly patchType?: "JSONPatch";
    /** Base64 of the JSON Patch. */
    readonly patch?: string;
    readonly status?: AdmissionStatus;
    readonly warnings?: readonly string[];
  };
}

const isObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const bad = (message: string): AkvError =>
  new AkvError(ErrorCode.BAD_ADMISSION_REVIEW, `not a valid AdmissionReview: ${message}`);

const optionalString = (obj: JsonObject, key: string, where: string): string => {
  const value = obj[key];
  if (value === undefined || value === null) return "";
  if (typeof value !== "string") throw bad(`${where}.${key} must be a string`);
  return value;
};

/**
 * Checks a decoded request body as an `admission.k8s.io/v1` AdmissionReview.
 * The object is left unchecked: see {@link parsePod}.
 * @throws {AkvError} `AKV_BAD_ADMISSION_REVIEW`, saying which field is wrong.
 */
export function parseAdmissionReview(body: unknown): AdmissionReview {
  if (!isObject(body)) throw bad("the body must be a JSON object");
  if (body.apiVersion !== ADMISSION_API_VERSION) {
    throw bad(
      `apiVersion must be ${ADMISSION_API_VERSION}, got ${body.apiVersion === undefined ? "nothing" : JSON.stringify(body.apiVersion)}`,
    );
  }
  if (body.kind !== "AdmissionReview") throw bad("kind must be AdmissionReview");
  const request = body.request;
  if (!isObject(request)) throw bad("request must be an object");
  const uid = request.uid;
  if (typeof uid !== "string" || uid === "" || uid.length > 256) {
    throw bad("request.uid must be a non-empty string");
  }
  const kind = request.kind;
  if (!isObject(kind)) throw bad("request.kind must be an object");
  const resource = request.resource;
  if (!isObject(resource)) throw bad("request.resource must be an object");
  const operation = request.operation;
  if (typeof operation !== "string" || operation === "") {
    throw bad("request.operation must be a non-empty string");
  }
  const dryRun = request.dryRun;
  if (dryRun !== undefined && dryRun !== null && typeof dryRun !== "boolean") {
    throw bad("request.dryRun must be a boolean");
  }
  return {
    request: {
      uid,
      kind: {
        group: optionalString(kind, "group", "request.kind"),
        version: optionalString(kind, "version", "request.kind"),
        kind: optionalString(kind, "kind", "request.kind"),
      },
      resource: optionalString(resource, "resource", "request.resource"),
      subResource: optionalString(request, "subResource", "request"),
      operation,
      namespace: optionalString(request, "namespace", "request"),
      name: optionalString(request, "name", "request"),
      dryRun: dryRun === true,
      object: request.object,
    },
  };
}

/** True when the review is about core/v1 pods, with this operation on this subresource. */
function isPodRequest(request: AdmissionRequest, operation: string, subResource: string): boolean {
  return (
    request.operation === operation &&
    request.kind.group === "" &&
    request.kind.kind === "Pod" &&
    request.resource === "pods" &&
    request.subResource === subResource
  );
}

/** True when the review is about creating a pod (the one thing the webhook mutates). */
export function isPodCreate(request: AdmissionRequest): boolean {
  return isPodRequest(request, "CREATE", "");
}

/** True when the review adds ephemeral containers to a pod (`kubectl debug`). */
export function isEphemeralContainersUpdate(request: AdmissionRequest): boolean {
  return isPodRequest(request, "UPDATE", "ephemeralcontainers");
}

/** A volume mount, as far as the webhook looks at one. */
export interface PodVolumeMount {
  readonly name: string;
  readonly mountPath: string;
  readonly readOnly: boolean;
}

/** A container, as far as the webhook looks at one. */
export interface PodContainer {
  readonly name: string;
  /** Undefined when the container has no `volumeMounts` (the patch adds the array whole). */
  readonly volumeMounts: readonly PodVolumeMount[] | undefined;
  /** Its `ports[].containerPort` numbers, when it declares any (the `metrics-port` may not be one). */
  readonly ports?: readonly number[];
  /** `securityContext.runAsUser`, when set (a signal from `notify-<container>` needs the user). */
  readonly runAsUser?: number;
  /** `securityContext.runAsGroup`, when set (a signal needs it too: reading `/proc/<pid>/environ` takes the same group). */
  readonly runAsGroup?: number;
  /** True when it has an `env` list (the patch appends to it, else adds it whole). */
  readonly hasEnv?: boolean;
}

/** The label nodes carry their operating system in. */
export const OS_LABEL = "kubernetes.io/os";

/** Where a pod names its operating system, as written (unset: undefined). */
export interface PodOs {
  /** `spec.os.name`. */
  readonly name: string | undefined;
  /** `spec.nodeSelector["kubernetes.io/os"]`. */
  readonly nodeSelector: string | undefined;
  /**
   * Per term of the required node affinity, the operating systems it allows
   * (`kubernetes.io/os In [...]`), or undefined when the term does not say.
   * Terms are alternatives: the pod runs where any one of them matches.
   */
  readonly affinityTerms: readonly (readonly string[] | undefined)[];
}

/** What the webhook reads of a pod; the patch is computed against exactly this. */
export interface Pod {
  readonly name: string | undefined;
  readonly generateName: string | undefined;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly serviceAccountName: string;
  readonly containers: readonly PodContainer[];
  readonly initContainers: readonly PodContainer[];
  /** Containers added to a running pod (`kubectl debug`), through the `ephemeralcontainers` subresource. */
  readonly ephemeralContainers: readonly PodContainer[];
  readonly volumeNames: readonly string[];
  /** `spec.securityContext.fsGroup`: with it, app containers of any user can read files closed to "other". */
  readonly fsGroup: number | undefined;
  /** `spec.securityContext.runAsUser`: the user of containers that set none. */
  readonly runAsUser: number | undefined;
  /** `spec.securityContext.runAsGroup`: the group of containers that set none. */
  readonly runAsGroup: number | undefined;
  /** `spec.shareProcessNamespace`: the sidecar sees (and may signal) the app's processes. */
  readonly shareProcessNamespace: boolean;
  /** Where the pod says which operating system it runs on. */
  readonly os: PodOs;
  /** Which containers of the JSON exist: JSON Patch cannot append to a missing array or add under a missing object. */
  readonly has: {
    readonly metadata: boolean;
    readonly annotations: boolean;
    readonly volumes: boolean;
    readonly initContainers: boolean;
  };
}

/** The pod's name for messages and logs: its name, else `generateName` + `*`. */
export function describePod(pod: Pick<Pod, "name" | "generateName">): string {
  if (pod.name !== undefined && pod.name !== "") return pod.name;
  if (pod.generateName !== undefined && pod.generateName !== "") return `${pod.generateName}*`;
  return "(unnamed)";
}

/**
 * Kubernetes' limit on a pod's annotations, keys and values together
 * (`TotalAnnotationSizeLimitB`). The apiserver checks it after the mutating
 * webhooks, so a review can carry far more; reading stops there, which
 * bounds the work every annotation costs.
 */
export const MAX_ANNOTATION_BYTES = 256 * 1024;

/** A pod that cannot be read, with the JSON path of each problem. */
export type ParsedPod =
  | { readonly ok: true; readonly pod: Pod }
  | { readonly ok: false; readonly problems: readonly string[] };

/** Reads the labels of an unchecked object, tolerating any shape: deciding "not ours" must never fail. */
export function readLabels(object: unknown): Readonly<Record<string, string>> {
  return readMetadataStrings(object, "labels");
}

/** Reads the annotations of an unchecked object, tolerating any shape. */
export function readAnnotations(object: unknown): Readonly<Record<string, string>> {
  return readMetadataStrings(object, "annotations");
}

/** The string entries of `metadata.labels` or `metadata.annotations`; nothing for any other shape. */
function readMetadataStrings(
  object: unknown,
  field: "labels" | "annotations",
): Readonly<Record<string, string>> {
  if (!isObject(object) || !isObject(object.metadata)) return {};
  const map = object.metadata[field];
  if (!isObject(map)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(map)) {
    if (typeof v === "string") out[k] = v;
  }
  return out;
}

/**
 * Reads a pod out of `request.object`. The apiserver validates pods after
 * mutating webhooks run, so the shape is checked here as far as the patch
 * depends on it.
 * @param namespace `request.namespace`; the pod's own is often empty on create.
 */
export function parsePod(object: unknown, namespace: string): ParsedPod {
  const problems = new ProblemList();
  if (!isObject(object)) return { ok: false, problems: ["the object is not a pod"] };
  const metadata = object.metadata;
  if (metadata !== undefined && !isObject(metadata)) problems.add("metadata: expected an object");
  const meta: JsonObject = isObject(metadata) ? metadata : {};
  const stringMap = (key: string, maxBytes = Number.POSITIVE_INFINITY): Record<string, string> => {
    const value = meta[key];
    if (value === undefined || value === null) return {};
    if (!isObject(value)) {
      problems.add(`metadata.${key}: expected a map of strings`);
      return {};
    }
    const out: Record<string, string> = {};
    let bytes = 0;
    for (const k of Object.keys(value)) {
      const v = value[k];
      bytes += Buffer.byteLength(k) + (typeof v === "string" ? Buffer.byteLength(v) : 0);
      if (bytes > maxBytes) {
        problems.add(
          `metadata.${key}: over ${String(maxBytes)} bytes, Kubernetes' limit for a pod's ${key} (the apiserver refuses such a pod too)`,
        );
        break;
      }
      if (typeof v === "string") out[k] = v;
      else problems.add(() => `metadata.${key}[${JSON.stringify(k)}]: expected a string value`);
    }
    return out;
  };
  const labels = stringMap("labels");
  const annotations = stringMap("annotations", MAX_ANNOTATION_BYTES);
  const name = typeof meta.name === "string" && meta.name !== "" ? meta.name : undefined;
  const generateName =
    typeof meta.generateName === "string" && meta.generateName !== ""
      ? meta.generateName
      : undefined;

  const spec = object.spec;
  if (!isObject(spec)) {
    problems.add("spec: expected an object");
    return { ok: false, problems: problems.list() };
  }
  const readContainers = (
    key: "containers" | "initContainers" | "ephemeralContainers",
  ): PodContainer[] => {
    const list = spec[key];
    if (list === undefined || list === null) {
      if (key === "containers") problems.add("spec.containers: expected a list");
      return [];
    }
    if (!Array.isArray(list)) {
      problems.add(`spec.${key}: expected a list`);
      return [];
    }
    return list.map((c: unknown, i): PodContainer => {
      const where = `spec.${key}[${i}]`;
      if (!isObject(c) || typeof c.name !== "string" || c.name === "") {
        problems.add(`${where}.name: expected a container name`);
        return { name: "", volumeMounts: undefined };
      }
      const ports = Array.isArray(c.ports)
        ? c.ports.flatMap((p: unknown) =>
            isObject(p) && typeof p.containerPort === "number" ? [p.containerPort] : [],
          )
        : [];
      const security = isObject(c.securityContext) ? c.securityContext : {};
      const declared = {
        ...(ports.length > 0 ? { ports } : {}),
        ...(typeof security.runAsUser === "number" ? { runAsUser: security.runAsUser } : {}),
        ...(typeof security.runAsGroup === "number" ? { runAsGroup: security.runAsGroup } : {}),
        ...(Array.isArray(c.env) ? { hasEnv: true } : {}),
      };
      const mounts = c.volumeMounts;
      if (mounts === undefined || mounts === null)
        return { name: c.name, volumeMounts: undefined, ...declared };
      if (!Array.isArray(mounts)) {
        problems.add(`${where}.volumeMounts: expected a list`);
        return { name: c.name, volumeMounts: undefined, ...declared };
      }
      return {
        name: c.name,
        ...declared,
        volumeMounts: mounts.map((m: unknown) => ({
          name: isObject(m) && typeof m.name === "string" ? m.name : "",
          mountPath: isObject(m) && typeof m.mountPath === "string" ? m.mountPath : "",
          readOnly: isObject(m) && m.readOnly === true,
        })),
      };
    });
  };
  const containers = readContainers("containers");
  const initContainers = readContainers("initContainers");
  const ephemeralContainers = readContainers("ephemeralContainers");
  const volumes = spec.volumes;
  let volumeNames: string[] = [];
  if (volumes !== undefined && volumes !== null) {
    if (Array.isArray(volumes)) {
      volumeNames = volumes.map((v: unknown) =>
        isObject(v) && typeof v.name === "string" ? v.name : "",
      );
    } else problems.add("spec.volumes: expected a list");
  }
  const os = readPodOs(spec);
  const securityContext = isObject(spec.securityContext) ? spec.securityContext : {};
  const fsGroup = typeof securityContext.fsGroup === "number" ? securityContext.fsGroup : undefined;
  const runAsUser =
    typeof securityContext.runAsUser === "number" ? securityContext.runAsUser : undefined;
  const runAsGroup =
    typeof securityContext.runAsGroup === "number" ? securityContext.runAsGroup : undefined;
  const saName = [spec.serviceAccountName, spec.serviceAccount].find(
    (v): v is string => typeof v === "string" && v !== "",
  );
  if (problems.count > 0) return { ok: false, problems: problems.list() };
  const podNamespace =
    namespace !== ""
      ? namespace
      : typeof meta.namespace === "string" && meta.namespace !== ""
        ? meta.namespace
        : "default";
  return {
    ok: true,
    pod: {
      name,
      generateName,
      namespace: podNamespace,
      labels,
      annotations,
      serviceAccountName: saName ?? "default",
      containers,
      initContainers,
      ephemeralContainers,
      volumeNames,
      fsGroup,
      runAsUser,
      runAsGroup,
      shareProcessNamespace: spec.shareProcessNamespace === true,
      os,
      has: {
        metadata: isObject(metadata),
        annotations: isObject(meta.annotations),
        volumes: Array.isArray(volumes),
        initContainers: Array.isArray(spec.initContainers),
      },
    },
  };
}

/** The pod's operating system as its spec names it; odd shapes read as "not said" (the apiserver validates them). */
function readPodOs(spec: JsonObject): PodOs {
  const name = isObject(spec.os) && typeof spec.os.name === "string" ? spec.os.name : undefined;
  const selector = isObject(spec.nodeSelector) ? spec.nodeSelector[OS_LABEL] : undefined;
  const affinity = isObject(spec.affinity) ? spec.affinity.nodeAffinity : undefined;
  const required = isObject(affinity)
    ? affinity.requiredDuringSchedulingIgnoredDuringExecution
    : undefined;
  const terms = isObject(required) ? required.nodeSelectorTerms : undefined;
  return {
    name,
    nodeSelector: typeof selector === "string" ? selector : undefined,
    affinityTerms: Array.isArray(terms) ? terms.map(readTermOs) : [],
  };
}

/** The operating systems one node selector term allows, if it says. */
function readTermOs(term: unknown): readonly string[] | undefined {
  const expressions = isObject(term) ? term.matchExpressions : undefined;
  if (!Array.isArray(expressions)) return undefined;
  for (const e of expressions) {
    if (!isObject(e) || e.key !== OS_LABEL || e.operator !== "In") continue;
    if (Array.isArray(e.values)) return e.values.filter((v) => typeof v === "string");
  }
  return undefined;
}

const answer = (
  uid: string,
  response: Omit<AdmissionReviewResponse["response"], "uid">,
): AdmissionReviewResponse => ({
  apiVersion: ADMISSION_API_VERSION,
  kind: "AdmissionReview",
  response: { uid, ...response },
});

const withWarnings = (warnings: readonly string[]) => (warnings.length > 0 ? { warnings } : {});

/** Allows the request unchanged. */
export function allowResponse(
  uid: string,
  warnings: readonly string[] = [],
): AdmissionReviewResponse {
  return answer(uid, { allowed: true, ...withWarnings(warnings) });
}

/** Allows the request with a JSON Patch (RFC 6902 operations, base64-encoded here). */
export function patchResponse(
  uid: string,
  operations: readonly unknown[],
  warnings: readonly string[] = [],
): AdmissionReviewResponse {
  return answer(uid, {
    allowed: true,
    patchType: "JSONPatch",
    patch: Buffer.from(JSON.stringify(operations)).toString("base64"),
    ...withWarnings(warnings),
  });
}

/** Refuses the request; `kubectl` shows `message` to the user. */
export function refuseResponse(
  uid: string,
  code: number,
  message: string,
  warnings: readonly string[] = [],
): AdmissionReviewResponse {
  const reason = code === 400 ? "BadRequest" : code === 404 ? "NotFound" : "InternalError";
  return answer(uid, {
    allowed: false,
    status: { code, message, reason },
    ...withWarnings(warnings),
  });
}
