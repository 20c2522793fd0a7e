/**
 * Fixtures shared by the webhook's tests, the CLI's tests and the benchmark:
 * settings, pods, AdmissionReviews, and applying a patch as the apiserver
 * would. Not part of any bundle.
 */
import fastJsonPatch, { type Operation } from "fast-json-patch";
import { INJECT_LABEL, ServiceAccountAnnotation } from "../common/names.ts";
import { ProblemList } from "../common/problems.ts";
import {
  ADMISSION_API_VERSION,
  parsePod,
  type AdmissionReviewResponse,
  type Pod,
} from "../webhook/admission-review.ts";
import type { ServiceAccount } from "../webhook/injection-config.ts";
import type { PatchOperation } from "../webhook/patch.ts";
import { parseInjectionSettings, type InjectionSettings } from "../webhook/settings.ts";

export const CLIENT_ID = "4d0e2f2a-7f44-4d9b-9bd8-0e0b8a1f3c11";
export const TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47";
export const SIDECAR_IMAGE = "ghcr.io/example/akv-injector-sidecar:0.1.0";

/** Settings as a chart would set them, plus overrides. */
export function testSettings(env: Record<string, string> = {}): InjectionSettings {
  return parseInjectionSettings({
    AZURE_TENANT_ID: TENANT_ID,
    AKV_INJECTOR_SIDECAR_IMAGE: SIDECAR_IMAGE,
    ...env,
  });
}

/** A service account annotated with a client id. */
export function testServiceAccount(
  name = "app",
  namespace = "team-a",
  annotations: Record<string, string> = { [ServiceAccountAnnotation.clientId]: CLIENT_ID },
): ServiceAccount {
  return { metadata: { name, namespace, annotations } };
}

/** The annotations of an opted-in pod: one vault, one secret. */
export const TEST_ANNOTATIONS: Readonly<Record<string, string>> = {
  "akv-injector.io/vault": "myvault",
  "akv-injector.io/secrets": "db-password",
};

/** A JSON pod: opted in, one container, the given annotations (`null`: no annotations object). */
export function testPod(
  annotations: Record<string, string> | null = { ...TEST_ANNOTATIONS },
  spec: Record<string, unknown> = {},
  metadata: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "app",
      namespace: "team-a",
      labels: { [INJECT_LABEL]: "true" },
      ...(annotations === null ? {} : { annotations }),
      ...metadata,
    },
    spec: {
      serviceAccountName: "app",
      containers: [{ name: "app", image: "busybox" }],
      ...spec,
    },
  };
}

/** {@link testPod} as the webhook reads it (in namespace `team-a`). */
export function testParsedPod(
  annotations: Record<string, string> = { ...TEST_ANNOTATIONS },
  spec: Record<string, unknown> = {},
): Pod {
  const parsed = parsePod(testPod(annotations, spec), "team-a");
  if (!parsed.ok) throw new Error(parsed.problems.join("; "));
  return parsed.pod;
}

/** Runs one parser with fresh problem and warning lists: its value, and what it found. */
export function collectProblems<T>(parse: (problems: ProblemList, warnings: ProblemList) => T): {
  readonly value: T;
  readonly problems: string[];
  readonly warnings: string[];
} {
  const problems = new ProblemList();
  const warnings = new ProblemList();
  const value = parse(problems, warnings);
  return { value, problems: problems.list(), warnings: warnings.list() };
}

let uidCounter = 0;

/** An AdmissionReview for creating `pod`, as the apiserver sends it. */
export function testReview(
  pod: unknown,
  overrides: { namespace?: string; operation?: string; uid?: string; name?: string } = {},
): Record<string, unknown> {
  uidCounter += 1;
  const meta =
    typeof pod === "object" && pod !== null
      ? (pod as { metadata?: { name?: unknown } }).metadata
      : undefined;
  const name = overrides.name ?? (typeof meta?.name === "string" ? meta.name : "");
  return {
    apiVersion: ADMISSION_API_VERSION,
    kind: "AdmissionReview",
    request: {
      uid: overrides.uid ?? `00000000-0000-4000-8000-${String(uidCounter).padStart(12, "0")}`,
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      requestKind: { group: "", version: "v1", kind: "Pod" },
      requestResource: { group: "", version: "v1", resource: "pods" },
      name,
      namespace: overrides.namespace ?? "team-a",
      operation: overrides.operation ?? "CREATE",
      userInfo: { username: "system:admin", groups: ["system:masters"] },
      object: pod,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: "meta.k8s.io/v1", kind: "CreateOptions" },
    },
  };
}

/** Applies RFC 6902 operations to a copy of `doc`, validating each as the apiserver does. */
export function applyTestPatch<T>(doc: T, ops: readonly PatchOperation[] | readonly unknown[]): T {
  const copy = structuredClone(doc);
  return fastJsonPatch.applyPatch(copy, ops as Operation[], true, true).newDocument;
}

/** Decodes the patch of an AdmissionReview answer. */
export function decodePatch(response: AdmissionReviewResponse): PatchOperation[] {
  const patch = response.response.patch;
  if (patch === undefined) throw new Error("the response has no patch");
  return JSON.parse(Buffer.from(patch, "base64").toString("utf8")) as PatchOperation[];
}
