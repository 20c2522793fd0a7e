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
        os: { name: undefined, nodeSelector: undefined, affinityTerms: [] },
        has: { metadata: true, annotations: true, volumes: true, initContainers: true },
      },
    });
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
