import { describe, expect, it } from "vitest";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import {
  allowResponse,
  describePod,
  isPodCreate,
  parseAdmissionReview,
  parsePod,
  patchResponse,
  refuseResponse,
} from "./admission-review.ts";
import { testPod, testReview } from "../testing/webhook.ts";

function parseError(body: unknown): string {
  try {
    parseAdmissionReview(body);
  } catch (error) {
    expect(isAkvError(error, ErrorCode.BAD_ADMISSION_REVIEW)).toBe(true);
    return (error as Error).message;
  }
  throw new Error("expected a BAD_ADMISSION_REVIEW error");
}

const valid = () =>
  testReview(testPod()) as { request: Record<string, unknown> } & Record<string, unknown>;

describe("parseAdmissionReview", () => {
  it("reads the request of a v1 AdmissionReview", () => {
    const { request } = parseAdmissionReview(testReview(testPod(), { uid: "u-1" }));
    expect(request).toMatchObject({
      uid: "u-1",
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: "pods",
      subResource: "",
      operation: "CREATE",
      namespace: "team-a",
      name: "app",
      dryRun: false,
    });
    expect(isPodCreate(request)).toBe(true);
  });

  it.each([
    ["null", null, "the body must be a JSON object"],
    ["an array", [], "the body must be a JSON object"],
    [
      "v1beta1",
      { ...valid(), apiVersion: "admission.k8s.io/v1beta1" },
      'apiVersion must be admission.k8s.io/v1, got "admission.k8s.io/v1beta1"',
    ],
    ["no apiVersion", { kind: "AdmissionReview" }, "got nothing"],
    ["another kind", { ...valid(), kind: "Pod" }, "kind must be AdmissionReview"],
    ["no request", { ...valid(), request: undefined }, "request must be an object"],
    [
      "no uid",
      { ...valid(), request: { ...valid().request, uid: "" } },
      "request.uid must be a non-empty string",
    ],
    ["a numeric uid", { ...valid(), request: { ...valid().request, uid: 5 } }, "request.uid"],
    [
      "no kind",
      { ...valid(), request: { ...valid().request, kind: "Pod" } },
      "request.kind must be an object",
    ],
    [
      "no resource",
      { ...valid(), request: { ...valid().request, resource: null } },
      "request.resource must be an object",
    ],
    [
      "no operation",
      { ...valid(), request: { ...valid().request, operation: 1 } },
      "request.operation",
    ],
    [
      "a bad dryRun",
      { ...valid(), request: { ...valid().request, dryRun: "yes" } },
      "request.dryRun must be a boolean",
    ],
    [
      "a bad namespace",
      { ...valid(), request: { ...valid().request, namespace: 3 } },
      "request.namespace must be a string",
    ],
  ])("refuses %s", (_name, body, expected) => {
    expect(parseError(body)).toContain(expected);
  });
});

describe("parsePod", () => {
  it("reads what the patch depends on", () => {
    const parsed = parsePod(
      testPod(
        { a: "1" },
        {
          initContainers: [
            { name: "i", volumeMounts: [{ name: "v", mountPath: "/v", readOnly: true }] },
          ],
          volumes: [{ name: "v" }],
          serviceAccountName: "",
          serviceAccount: "legacy",
        },
      ),
      "",
    );
    expect(parsed).toEqual({
      ok: true,
      pod: {
        name: "app",
        generateName: undefined,
        namespace: "team-a",
        labels: { "akv-injector.io/inject": "true" },
        annotations: { a: "1" },
        serviceAccountName: "legacy",
        containers: [{ name: "app", volumeMounts: undefined }],
        initContainers: [
          { name: "i", volumeMounts: [{ name: "v", mountPath: "/v", readOnly: true }] },
        ],
        ephemeralContainers: [],
        volumeNames: ["v"],
        shareProcessNamespace: false,
        os: { name: undefined, nodeSelector: undefined, affinityTerms: [] },
        has: { metadata: true, annotations: true, volumes: true, initContainers: true },
      },
    });
  });

  it("reads what a signal notification needs: shared PID namespace, users, env lists", () => {
    const parsed = parsePod(
      testPod(
        {},
        {
          shareProcessNamespace: true,
          securityContext: { runAsUser: 2000, runAsGroup: 2001 },
          containers: [
            { name: "a", securityContext: { runAsUser: 1000, runAsGroup: 0 }, env: [] },
            { name: "b", securityContext: { runAsUser: "1000" } },
          ],
        },
      ),
      "team-a",
    );
    if (!parsed.ok) throw new Error(parsed.problems.join("; "));
    expect(parsed.pod.shareProcessNamespace).toBe(true);
    expect(parsed.pod.runAsUser).toBe(2000);
    expect(parsed.pod.runAsGroup).toBe(2001);
    expect(parsed.pod.containers).toEqual([
      { name: "a", volumeMounts: undefined, runAsUser: 1000, runAsGroup: 0, hasEnv: true },
      // A user that is not a number is the apiserver's to refuse: not read.
      { name: "b", volumeMounts: undefined },
    ]);
  });

  it("reads where the pod says it runs: os, node selector, required affinity terms", () => {
    const parsed = parsePod(
      testPod(
        {},
        {
          os: { name: "windows" },
          nodeSelector: { "kubernetes.io/os": "linux" },
          affinity: {
            nodeAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [
                  {
                    matchExpressions: [
                      { key: "kubernetes.io/os", operator: "In", values: ["windows"] },
                    ],
                  },
                  { matchExpressions: [{ key: "zone", operator: "In", values: ["a"] }] },
                  {
                    matchExpressions: [
                      { key: "kubernetes.io/os", operator: "NotIn", values: ["linux"] },
                    ],
                  },
                ],
              },
            },
          },
        },
      ),
      "",
    );
    expect(parsed.ok && parsed.pod.os).toEqual({
      name: "windows",
      nodeSelector: "linux",
      affinityTerms: [["windows"], undefined, undefined],
    });
  });

  it("prefers the request's namespace, then the pod's, then default", () => {
    const ns = (pod: unknown, requestNs: string) => {
      const p = parsePod(pod, requestNs);
      return p.ok ? p.pod.namespace : undefined;
    };
    expect(ns(testPod(), "req")).toBe("req");
    expect(ns(testPod(), "")).toBe("team-a");
    expect(ns({ spec: { containers: [{ name: "a" }] } }, "")).toBe("default");
  });

  it.each([
    ["not an object", 5, "the object is not a pod"],
    ["no spec", { metadata: {} }, "spec: expected an object"],
    ["no containers", { spec: {} }, "spec.containers: expected a list"],
    [
      "annotations not strings",
      { metadata: { annotations: { a: 1 } }, spec: { containers: [] } },
      'metadata.annotations["a"]: expected a string value',
    ],
    [
      "labels a list",
      { metadata: { labels: [] }, spec: { containers: [] } },
      "metadata.labels: expected a map of strings",
    ],
    [
      "initContainers an object",
      { spec: { containers: [], initContainers: {} } },
      "spec.initContainers: expected a list",
    ],
    [
      "volumeMounts a string",
      { spec: { containers: [{ name: "a", volumeMounts: "x" }] } },
      "spec.containers[0].volumeMounts: expected a list",
    ],
  ])("reports a pod with %s", (_name, object, expected) => {
    const parsed = parsePod(object, "ns");
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problems).toContain(expected);
  });
});

describe("responses", () => {
  it("allow, patch and refuse", () => {
    expect(allowResponse("u", ["w"])).toEqual({
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: { uid: "u", allowed: true, warnings: ["w"] },
    });
    const patched = patchResponse("u", [{ op: "add", path: "/x", value: 1 }]);
    expect(patched.response.patchType).toBe("JSONPatch");
    expect(JSON.parse(Buffer.from(patched.response.patch ?? "", "base64").toString())).toEqual([
      { op: "add", path: "/x", value: 1 },
    ]);
    expect(refuseResponse("u", 400, "m").response).toEqual({
      uid: "u",
      allowed: false,
      status: { code: 400, message: "m", reason: "BadRequest" },
    });
    expect(refuseResponse("u", 500, "m").response.status?.reason).toBe("InternalError");
  });

  it("describes pods with and without a name", () => {
    expect(describePod({ name: "a", generateName: "b-" })).toBe("a");
    expect(describePod({ name: undefined, generateName: "b-" })).toBe("b-*");
    expect(describePod({ name: undefined, generateName: undefined })).toBe("(unnamed)");
  });
});

describe("parseAdmissionReview: each field's rule", () => {
  const withRequest = (over: Record<string, unknown>) => {
    const review = valid();
    return { ...review, request: { ...review.request, ...over } };
  };

  it("takes a uid of 256 characters and refuses one of 257", () => {
    expect(parseAdmissionReview(withRequest({ uid: "u".repeat(256) })).request.uid).toHaveLength(
      256,
    );
    expect(parseError(withRequest({ uid: "u".repeat(257) }))).toBe(
      "not a valid AdmissionReview: request.uid must be a non-empty string",
    );
  });

  it.each<[string, Record<string, unknown>, string]>([
    ["an empty operation", { operation: "" }, "request.operation must be a non-empty string"],
    ["no operation", { operation: undefined }, "request.operation must be a non-empty string"],
    ["a dryRun that is not a boolean", { dryRun: "yes" }, "request.dryRun must be a boolean"],
    [
      "a kind group that is not a string",
      { kind: { group: 1 } },
      "request.kind.group must be a string",
    ],
    [
      "a kind version that is not a string",
      { kind: { version: 1 } },
      "request.kind.version must be a string",
    ],
    [
      "a kind kind that is not a string",
      { kind: { kind: 1 } },
      "request.kind.kind must be a string",
    ],
    [
      "a resource that is not a string",
      { resource: { resource: 1 } },
      "request.resource.resource must be a string",
    ],
    [
      "a subResource that is not a string",
      { subResource: 1 },
      "request.subResource must be a string",
    ],
    ["a name that is not a string", { name: 1 }, "request.name must be a string"],
    ["a namespace that is not a string", { namespace: 1 }, "request.namespace must be a string"],
  ])("refuses %s, naming the field", (_, over, message) => {
    expect(parseError(withRequest(over))).toBe(`not a valid AdmissionReview: ${message}`);
  });

  it("reads a null dryRun as false and true as true; absent strings as empty", () => {
    expect(parseAdmissionReview(withRequest({ dryRun: null })).request.dryRun).toBe(false);
    expect(parseAdmissionReview(withRequest({ dryRun: true })).request.dryRun).toBe(true);
    const { request } = parseAdmissionReview(
      withRequest({ name: null, subResource: undefined, kind: {}, resource: {} }),
    );
    expect(request).toMatchObject({
      name: "",
      subResource: "",
      kind: { group: "", version: "", kind: "" },
      resource: "",
    });
  });

  it.each<[string, Record<string, unknown>]>([
    ["another group", { kind: { group: "apps", version: "v1", kind: "Pod" } }],
    ["another kind", { kind: { group: "", version: "v1", kind: "Service" } }],
    ["another resource", { resource: { group: "", version: "v1", resource: "services" } }],
    ["a subresource", { subResource: "status" }],
    ["another operation", { operation: "UPDATE" }],
  ])("is no pod create with %s", (_, over) => {
    expect(isPodCreate(parseAdmissionReview(withRequest(over)).request)).toBe(false);
  });
});

describe("parsePod: odd shapes read as the apiserver would leave them", () => {
  const read = (pod: unknown, namespace = "team-a") => {
    const parsed = parsePod(pod, namespace);
    if (!parsed.ok) throw new Error(parsed.problems.join("; "));
    return parsed.pod;
  };

  it("names: an empty name or generateName is none; a pod without either is unnamed", () => {
    const pod = read(testPod(null, {}, { name: "", generateName: "" }));
    expect(pod.name).toBeUndefined();
    expect(pod.generateName).toBeUndefined();
    expect(describePod(pod)).toBe("(unnamed)");
    expect(describePod(read(testPod(null, {}, { name: "", generateName: "web-" })))).toBe("web-*");
    expect(read(testPod(null, {}, { name: 5, generateName: 6 }))).toMatchObject({
      name: undefined,
      generateName: undefined,
    });
  });

  it("the namespace: the request's, else the pod's own, else default", () => {
    expect(read(testPod(null, {}, { namespace: "own" }), "").namespace).toBe("own");
    expect(read(testPod(null, {}, { namespace: "" }), "").namespace).toBe("default");
    expect(read(testPod(null, {}, { namespace: 7 }), "").namespace).toBe("default");
    expect(read(testPod(null, {}, { namespace: "own" }), "req").namespace).toBe("req");
  });

  it("labels and annotations: null is none; the limit counts keys and values, up to exactly 256 KiB", () => {
    expect(read(testPod(null, {}, { labels: null, annotations: null })).annotations).toEqual({});
    // Keys and values together, up to exactly Kubernetes' 256 KiB.
    const refused = parsePod(
      testPod(null, {}, { annotations: { a: "x".repeat(256 * 1024) } }),
      "t",
    );
    expect(refused.ok).toBe(false);
    const atLimit = parsePod(
      testPod(null, {}, { annotations: { a: "x".repeat(256 * 1024 - 1) } }),
      "t",
    );
    expect(atLimit.ok).toBe(true);
  });

  it("containers: odd mounts read as empty names and paths, a missing list as none", () => {
    const pod = read(
      testPod(null, {
        containers: [
          {
            name: "app",
            volumeMounts: [
              5,
              { name: 1, mountPath: 2 },
              { name: "d", mountPath: "/d", readOnly: "yes" },
            ],
          },
          { name: "bare", volumeMounts: null },
        ],
        initContainers: null,
      }),
    );
    expect(pod.containers).toEqual([
      {
        name: "app",
        volumeMounts: [
          { name: "", mountPath: "", readOnly: false },
          { name: "", mountPath: "", readOnly: false },
          { name: "d", mountPath: "/d", readOnly: false },
        ],
      },
      { name: "bare", volumeMounts: undefined },
    ]);
    expect(pod.initContainers).toEqual([]);
  });

  it("refuses containers without a name and lists that are not lists, each by its path", () => {
    const parsed = parsePod(
      testPod(null, { containers: [{ image: "x" }, { name: "" }], initContainers: {}, volumes: 3 }),
      "t",
    );
    expect(parsed).toEqual({
      ok: false,
      problems: [
        "spec.containers[0].name: expected a container name",
        "spec.containers[1].name: expected a container name",
        "spec.initContainers: expected a list",
        "spec.volumes: expected a list",
      ],
    });
    expect(parsePod(testPod(null, {}, {}), "t").ok).toBe(true);
    expect(parsePod({ metadata: 5, spec: { containers: [] } }, "t")).toEqual({
      ok: false,
      problems: ["metadata: expected an object"],
    });
  });

  it("volumes, fsGroup, service account and OS: odd values read as not said", () => {
    const pod = read(
      testPod(null, {
        volumes: [{ name: "data" }, { name: 3 }, 4],
        securityContext: { fsGroup: "2000" },
        serviceAccountName: "",
        serviceAccount: "legacy",
        os: { name: 5 },
        nodeSelector: { "kubernetes.io/os": 5 },
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [
                { matchExpressions: "x" },
                {
                  matchExpressions: [
                    { key: "kubernetes.io/os", operator: "In", values: ["linux", 7] },
                  ],
                },
                {
                  matchExpressions: [{ key: "kubernetes.io/os", operator: "In", values: "linux" }],
                },
              ],
            },
          },
        },
      }),
    );
    expect(pod.volumeNames).toEqual(["data", "", ""]);
    expect(pod.fsGroup).toBeUndefined();
    expect(pod.serviceAccountName).toBe("legacy");
    expect(pod.os).toEqual({
      name: undefined,
      nodeSelector: undefined,
      affinityTerms: [undefined, ["linux"], undefined],
    });
    expect(read(testPod(null, { serviceAccountName: "" })).serviceAccountName).toBe("default");
    expect(read(testPod(null, { securityContext: { fsGroup: 2000 } })).fsGroup).toBe(2000);
  });
});
