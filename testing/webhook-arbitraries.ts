/**
 * fast-check arbitraries of request bodies, from plausible AdmissionReviews
 * with odd pods to plain garbage, and the property every answer must have.
 * Shared by the unit test (a short run) and `bench/webhook/fuzz.ts` (100,000
 * cases).
 */
import fc from "fast-check";
import {
  Annotation,
  FileAnnotationPrefix,
  INJECT_LABEL,
  STATUS_ANNOTATION,
} from "../common/names.ts";
import { ADMISSION_API_VERSION } from "../webhook/admission-review.ts";
import { applyTestPatch } from "./webhook.ts";

const keySuffix = fc.oneof(
  fc.constantFrom("a", "db-password", "app.env", "..", ".", "../x", "a/b", "", "x~y", "é"),
  fc.string({ maxLength: 12 }),
);
const annotationKey = fc.oneof(
  fc.constantFrom(
    ...Object.values(Annotation),
    STATUS_ANNOTATION,
    "akv-injector.io/inject",
    "example.com/x",
  ),
  fc
    .tuple(fc.constantFrom(...Object.values(FileAnnotationPrefix)), keySuffix)
    .map(([p, s]) => p + s),
  fc.string({ maxLength: 30 }),
);
const annotationValue = fc.oneof(
  fc.constantFrom(
    "myvault",
    "https://myvault.vault.azure.net",
    "http://x",
    "db-password",
    "a,b/0123456789abcdef0123456789abcdef",
    "sidecar",
    "init",
    "10s",
    "0644",
    "/mnt/secrets",
    "app",
    "injected",
    '{{ secret "a" }}',
    "{{ .x }}",
    "4d0e2f2a-7f44-4d9b-9bd8-0e0b8a1f3c11",
    "raw",
    "pem",
  ),
  fc.string({ maxLength: 40 }),
);
const anyJson = fc.jsonValue({ maxDepth: 3 });
const maybe = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 4, arbitrary: arb },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: anyJson },
  );

const oddContainer = fc.record(
  {
    name: maybe(fc.constantFrom("app", "proxy", "init", "akv-injector", "")),
    image: fc.constant("busybox"),
    volumeMounts: maybe(
      fc.array(
        fc.record({
          name: fc.constantFrom("data", "akv-secrets"),
          mountPath: fc.constantFrom("/data", "/mnt/secrets"),
        }),
        { maxLength: 2 },
      ),
    ),
  },
  { requiredKeys: [] },
);
const saneContainer = fc.record({
  name: fc.constantFrom("app", "proxy", "init"),
  image: fc.constant("busybox"),
  volumeMounts: fc.option(
    fc.array(fc.record({ name: fc.constant("data"), mountPath: fc.constant("/data") }), {
      maxLength: 1,
    }),
    { nil: undefined },
  ),
});
const container = fc.oneof(
  { weight: 4, arbitrary: saneContainer },
  { weight: 1, arbitrary: oddContainer },
);

/** Annotations that inject, plus a few random ones that may or may not break them. */
const mostlyValidAnnotations = fc
  .tuple(
    fc.constantFrom(
      { "akv-injector.io/vault": "myvault", "akv-injector.io/secrets": "db-password" },
      {
        "akv-injector.io/vault": "https://myvault.vault.azure.net",
        "akv-injector.io/template-app.env": 'P={{ secret "a" }}',
        "akv-injector.io/mode": "init",
      },
    ),
    fc.dictionary(annotationKey, annotationValue, { maxKeys: 2 }),
  )
  .map(([base, extra]) => ({ ...base, ...extra }));

/** Pods of every odd shape: any field may be missing or of the wrong type. */
const oddPodArbitrary = fc.record(
  {
    metadata: maybe(
      fc.record(
        {
          name: maybe(fc.constantFrom("app", "")),
          generateName: maybe(fc.constant("app-")),
          labels: maybe(fc.constant({ [INJECT_LABEL]: "true" })),
          annotations: fc.oneof(
            { weight: 3, arbitrary: mostlyValidAnnotations },
            {
              weight: 2,
              arbitrary: maybe(fc.dictionary(annotationKey, annotationValue, { maxKeys: 6 })),
            },
          ),
        },
        { requiredKeys: [] },
      ),
    ),
    spec: maybe(
      fc.record(
        {
          serviceAccountName: maybe(fc.constantFrom("app", "ghost", "")),
          containers: maybe(fc.array(container, { maxLength: 3 })),
          initContainers: maybe(fc.array(container, { maxLength: 2 })),
          volumes: maybe(
            fc.array(fc.record({ name: fc.constantFrom("data", "akv-secrets") }), { maxLength: 2 }),
          ),
        },
        { requiredKeys: [] },
      ),
    ),
  },
  { requiredKeys: [] },
);

/** Pods as a user would write them, opted in, with annotations that mostly inject. */
const plausiblePodArbitrary = fc
  .record({
    name: fc.option(fc.constant("app"), { nil: undefined }),
    optedIn: fc.oneof(
      { weight: 4, arbitrary: fc.constant(true) },
      { weight: 1, arbitrary: fc.constant(false) },
    ),
    annotations: mostlyValidAnnotations,
    serviceAccountName: fc.constantFrom("app", "default", "ghost"),
    containers: fc.uniqueArray(saneContainer, {
      minLength: 1,
      maxLength: 2,
      selector: (c) => c.name,
    }),
    initContainers: fc.option(
      fc.array(fc.record({ name: fc.constant("migrate"), image: fc.constant("m") }), {
        maxLength: 1,
      }),
      { nil: undefined },
    ),
    volumes: fc.option(fc.constant([{ name: "data", emptyDir: {} }]), { nil: undefined }),
  })
  .map((p) => ({
    metadata: {
      ...(p.name === undefined ? { generateName: "app-" } : { name: p.name }),
      ...(p.optedIn ? { labels: { [INJECT_LABEL]: "true" } } : {}),
      annotations: p.annotations,
    },
    spec: {
      serviceAccountName: p.serviceAccountName,
      containers: p.containers,
      ...(p.initContainers === undefined ? {} : { initContainers: p.initContainers }),
      ...(p.volumes === undefined ? {} : { volumes: p.volumes }),
    },
  }));

/** Pods: plausible ones that mostly inject, and odd ones. */
export const podArbitrary = fc.oneof(
  { weight: 3, arbitrary: plausiblePodArbitrary },
  { weight: 2, arbitrary: oddPodArbitrary },
);

/** Reviews of every degree of brokenness. */
export const reviewArbitrary = fc.record(
  {
    apiVersion: maybe(fc.constant(ADMISSION_API_VERSION)),
    kind: maybe(fc.constant("AdmissionReview")),
    request: maybe(
      fc.record(
        {
          uid: maybe(fc.uuid()),
          kind: maybe(fc.constant({ group: "", version: "v1", kind: "Pod" })),
          resource: maybe(fc.constant({ group: "", version: "v1", resource: "pods" })),
          operation: maybe(fc.constantFrom("CREATE", "UPDATE")),
          namespace: maybe(fc.constantFrom("team-a", "")),
          name: maybe(fc.constantFrom("app", "")),
          dryRun: maybe(fc.boolean()),
          object: maybe(podArbitrary),
        },
        { requiredKeys: [] },
      ),
    ),
  },
  { requiredKeys: [] },
);

/** Well-formed reviews of random pods: what reaches the decision itself. */
export const wellFormedReviewArbitrary = fc
  .record({
    uid: fc.uuid(),
    operation: fc.constantFrom("CREATE", "CREATE", "CREATE", "UPDATE"),
    namespace: fc.constantFrom("team-a", "team-b"),
    object: podArbitrary,
  })
  .map(({ uid, operation, namespace, object }) => ({
    apiVersion: ADMISSION_API_VERSION,
    kind: "AdmissionReview",
    request: {
      uid,
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      operation,
      namespace,
      name: "",
      object,
    },
  }));

/** A request body: mostly well-formed reviews of odd pods, then broken reviews, any JSON, non-JSON. */
export const bodyArbitrary: fc.Arbitrary<{
  readonly payload: string;
  readonly contentType: string;
}> = fc.oneof(
  {
    weight: 8,
    arbitrary: wellFormedReviewArbitrary.map((r) => ({
      payload: JSON.stringify(r),
      contentType: "application/json",
    })),
  },
  {
    weight: 3,
    arbitrary: reviewArbitrary.map((r) => ({
      payload: JSON.stringify(r),
      contentType: "application/json",
    })),
  },
  {
    weight: 1,
    arbitrary: anyJson.map((j) => ({
      payload: JSON.stringify(j),
      contentType: "application/json",
    })),
  },
  {
    weight: 1,
    arbitrary: fc
      .string({ maxLength: 60 })
      .map((s) => ({ payload: s, contentType: "application/json" })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.string({ maxLength: 20 }), fc.constantFrom("text/plain", "application/yaml"))
      .map(([s, t]) => ({
        payload: s,
        contentType: t,
      })),
  },
);

/** The largest answer the webhook may give to any request. */
export const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * What every answer to a body must satisfy; throws with the reason otherwise.
 * A 200 echoes the uid and stays under {@link MAX_ANSWER_BYTES}, and its
 * patch, if any, applies to the pod it was for.
 */
export function checkAnswer(
  body: { readonly payload: string },
  status: number,
  contentType: string | undefined,
  text: string,
): void {
  if (![200, 400, 413, 415].includes(status)) throw new Error(`status ${status}: ${text}`);
  // Whatever the pod, the answer stays small (issue 10: bench/webhook/hostile.ts).
  if (Buffer.byteLength(text) > MAX_ANSWER_BYTES)
    throw new Error(`an answer of ${String(Buffer.byteLength(text))} bytes`);
  if (contentType === undefined || !contentType.startsWith("application/json")) {
    throw new Error(`content-type ${String(contentType)}`);
  }
  const answer = JSON.parse(text) as Record<string, unknown>;
  if (status !== 200) {
    if (typeof answer.message !== "string" || typeof answer.code !== "string") {
      throw new Error(`error without code and message: ${text}`);
    }
    return;
  }
  const sent = JSON.parse(body.payload) as { request: { uid: string; object: unknown } };
  const response = answer.response as { uid: string; allowed: boolean; patch?: string } | undefined;
  if (
    answer.apiVersion !== ADMISSION_API_VERSION ||
    answer.kind !== "AdmissionReview" ||
    response === undefined
  ) {
    throw new Error(`not an AdmissionReview: ${text}`);
  }
  if (response.uid !== sent.request.uid) throw new Error("uid not echoed");
  if (response.patch !== undefined) {
    applyTestPatch(
      sent.request.object,
      JSON.parse(Buffer.from(response.patch, "base64").toString()) as unknown[],
    );
  }
}
