import { describe, expect, it } from "vitest";
import { AkvError, ErrorCode } from "../common/errors.ts";
import { STATUS_ANNOTATION } from "../common/names.ts";
import { parseAdmissionReview } from "./admission-review.ts";
import type { ServiceAccount } from "./injection-config.ts";
import { review, type ReviewDeps } from "./review.ts";
import {
  TEST_ANNOTATIONS as annotations,
  applyTestPatch,
  decodePatch,
  testPod,
  testReview,
  testServiceAccount,
  testSettings,
} from "../testing/webhook.ts";

function deps(
  accounts: ServiceAccount[] = [testServiceAccount()],
): ReviewDeps & { lookups: string[] } {
  const lookups: string[] = [];
  return {
    settings: testSettings(),
    lookups,
    lookupServiceAccount: (namespace, name) => {
      lookups.push(`${namespace}/${name}`);
      return Promise.resolve(
        accounts.find((a) => a.metadata?.name === name && a.metadata.namespace === namespace),
      );
    },
  };
}

const run = (body: unknown, d: ReviewDeps = deps()) => review(parseAdmissionReview(body), d);

describe("review", () => {
  it("patches an opted-in pod and echoes the uid", async () => {
    const pod = testPod(annotations);
    const body = testReview(pod, { uid: "abc-123" });
    const result = await run(body);
    expect(result.outcome).toBe("injected");
    expect(result.response).toMatchObject({
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: { uid: "abc-123", allowed: true, patchType: "JSONPatch" },
    });
    expect(result.response.response.warnings).toBeUndefined();
    const patched = applyTestPatch(pod, decodePatch(result.response));
    expect(patched).toMatchObject({
      metadata: { annotations: { [STATUS_ANNOTATION]: "injected" } },
    });
    expect(result.pod).toBe("app");
    expect(result.namespace).toBe("team-a");
  });

  it.each([
    ["no label", { ...testPod(annotations), metadata: { name: "x", annotations } }],
    ["label false", testPod(annotations, {}, { labels: { "akv-injector.io/inject": "false" } })],
    [
      "label True (not exactly true)",
      testPod(annotations, {}, { labels: { "akv-injector.io/inject": "True" } }),
    ],
    ["no metadata at all", { spec: {} }],
    ["an object that is not a pod", "just a string"],
  ])("allows a pod that did not opt in, without a patch or a lookup: %s", async (_name, pod) => {
    const d = deps();
    const result = await run(testReview(pod), d);
    expect(result.outcome).toBe("skipped");
    expect(result.response.response).toEqual({ uid: expect.any(String) as string, allowed: true });
    expect(d.lookups).toEqual([]);
  });

  it.each([
    ["UPDATE", { operation: "UPDATE" }],
    ["DELETE", { operation: "DELETE" }],
  ])("allows %s without looking", async (_name, overrides) => {
    const result = await run(testReview(testPod(annotations), overrides));
    expect(result.outcome).toBe("skipped");
  });

  it("allows other kinds and subresources without looking", async () => {
    const body = testReview(testPod(annotations)) as { request: Record<string, unknown> };
    body.request.kind = { group: "apps", version: "v1", kind: "Deployment" };
    expect((await run(body)).outcome).toBe("skipped");
    const sub = testReview(testPod(annotations)) as { request: Record<string, unknown> };
    sub.request.subResource = "ephemeralcontainers";
    expect((await run(sub)).outcome).toBe("skipped");
  });

  describe("ephemeral containers", () => {
    const debug = (pod: Record<string, unknown>, mounts: unknown[]) => {
      const spec = pod.spec as Record<string, unknown>;
      const body = testReview(
        {
          ...pod,
          spec: {
            ...spec,
            ephemeralContainers: [{ name: "debugger", image: "d", volumeMounts: mounts }],
          },
        },
        { operation: "UPDATE" },
      ) as { request: Record<string, unknown> };
      body.request.subResource = "ephemeralcontainers";
      return body;
    };
    const injectedPod = async () => {
      const pod = testPod(annotations);
      const first = await run(testReview(pod));
      return applyTestPatch(pod, decodePatch(first.response));
    };

    it("refuses one that mounts the token of an injected pod, even after the label was removed", async () => {
      const pod = await injectedPod();
      (pod.metadata as { labels: Record<string, string> }).labels = {};
      const result = await run(debug(pod, [{ name: "akv-injector-token", mountPath: "/t" }]));
      expect(result.outcome).toBe("refused");
      expect(result.message).toBe(
        'spec.ephemeralContainers[0].volumeMounts: container "debugger" mounts volume "akv-injector-token", which only the injected sidecar may mount',
      );
    });

    it("refuses one that mounts the secrets read-write, allows one that reads them", async () => {
      const pod = await injectedPod();
      const rw = await run(debug(pod, [{ name: "akv-secrets", mountPath: "/s" }]));
      expect(rw.outcome).toBe("refused");
      const ro = await run(debug(pod, [{ name: "akv-secrets", mountPath: "/s", readOnly: true }]));
      expect(ro.outcome).toBe("skipped");
      expect(ro.response.response.allowed).toBe(true);
    });

    it("joins every problem of one request with '; ', and answers with the refusal", async () => {
      const pod = await injectedPod();
      const result = await run(
        debug(pod, [
          { name: "akv-injector-token", mountPath: "/t" },
          { name: "akv-secrets", mountPath: "/s" },
        ]),
      );
      expect(result.message).toBe(
        'spec.ephemeralContainers[0].volumeMounts: container "debugger" mounts volume "akv-injector-token", which only the injected sidecar may mount; spec.ephemeralContainers[0].volumeMounts: container "debugger" mounts volume "akv-secrets" read-write, and only the injected sidecar writes to it: set readOnly: true, or leave the mount to akv-injector.io/containers',
      );
      expect(result.response.response).toMatchObject({
        allowed: false,
        status: { code: 400, message: result.message },
      });
      expect(result.warnings).toEqual([]);
    });

    it("leaves pods it did not inject alone, whatever their volumes are called", async () => {
      const pod = testPod(null, { volumes: [{ name: "akv-injector-token", emptyDir: {} }] });
      const result = await run(debug(pod, [{ name: "akv-injector-token", mountPath: "/t" }]));
      expect(result.outcome).toBe("skipped");
    });
  });

  it.each([
    ["kube-system", "the cluster's own namespace"],
    ["kube-public", "the cluster's own namespace"],
    ["akv-system", "its own namespace akv-system"],
  ])("refuses labelled pods in %s, whatever the webhook configuration sends", async (ns, words) => {
    const d = { ...deps(), settings: testSettings({ AKV_INJECTOR_NAMESPACE: "akv-system" }) };
    const result = await run(testReview(testPod(annotations), { namespace: ns }), d);
    expect(result.outcome).toBe("refused");
    expect(result.message).toContain(`namespace ${ns}: akv-injector does not inject pods in`);
    expect(result.message).toContain(words);
  });

  it("returns a pod with the status annotation but no sidecar (copied by hand) unchanged", async () => {
    const pod = testPod({ ...annotations, "akv-injector.io/status": "injected" });
    const result = await run(testReview(pod));
    expect(result.outcome).toBe("unchanged");
    expect(result.response.response.patch).toBeUndefined();
  });

  it("returns an injected pod that lacks nothing unchanged", async () => {
    const pod = testPod(annotations);
    const first = await run(testReview(pod));
    const injected = applyTestPatch(pod, decodePatch(first.response));
    const d = deps();
    const second = await run(testReview(injected), d);
    expect(second.outcome).toBe("unchanged");
    expect(second.response.response.patch).toBeUndefined();
    expect(second.response.response.allowed).toBe(true);
    expect(d.lookups).toEqual([]);
  });

  it("on reinvocation, mounts the secrets into a container a later webhook added, once", async () => {
    const pod = testPod(annotations);
    const first = await run(testReview(pod));
    const injected = applyTestPatch(pod, decodePatch(first.response)) as {
      spec: { containers: Record<string, unknown>[]; initContainers: Record<string, unknown>[] };
    };
    // Another webhook appends a container (a mesh proxy) and an init container.
    injected.spec.containers.push({ name: "proxy", image: "p" });
    injected.spec.initContainers.push({ name: "mesh-init", image: "m", volumeMounts: [] });
    const second = await run(testReview(injected));
    expect(second.outcome).toBe("remounted");
    const again = applyTestPatch(injected, decodePatch(second.response));
    const mountsOf = (c: Record<string, unknown> | undefined) =>
      (c?.volumeMounts as { name: string; subPath?: string }[] | undefined) ?? [];
    for (const c of [...again.spec.containers, ...again.spec.initContainers.slice(1)]) {
      expect(
        mountsOf(c).filter((m) => m.name === "akv-secrets"),
        String(c.name),
      ).toEqual([
        { name: "akv-secrets", mountPath: "/mnt/secrets", subPath: "files", readOnly: true },
      ]);
    }
    // The sidecar is left as it was, and a third pass changes nothing.
    expect(again.spec.initContainers[0]).toEqual(injected.spec.initContainers[0]);
    const third = await run(testReview(again));
    expect(third.outcome).toBe("unchanged");
  });

  it("on reinvocation, mounts only into the containers the annotation names", async () => {
    const pod = testPod({ ...annotations, "akv-injector.io/containers": "app" });
    const first = await run(testReview(pod));
    const injected = applyTestPatch(pod, decodePatch(first.response)) as {
      spec: { containers: Record<string, unknown>[] };
    };
    injected.spec.containers.push({ name: "proxy", image: "p" });
    const second = await run(testReview(injected));
    expect(second.outcome).toBe("unchanged");
  });

  it("on reinvocation, refuses a container another webhook added that mounts the token", async () => {
    const pod = testPod(annotations);
    const first = await run(testReview(pod));
    const injected = applyTestPatch(pod, decodePatch(first.response)) as {
      spec: { containers: Record<string, unknown>[] };
    };
    injected.spec.containers.push({
      name: "thief",
      image: "t",
      volumeMounts: [{ name: "akv-injector-token", mountPath: "/t" }],
    });
    const second = await run(testReview(injected));
    expect(second.outcome).toBe("refused");
    expect(second.message).toContain('container "thief" mounts volume "akv-injector-token"');
  });

  it("refuses with 400 and a message naming annotation and value", async () => {
    const pod = testPod({ ...annotations, "akv-injector.io/secret-../x": "db-password" });
    const result = await run(testReview(pod, { uid: "u1" }));
    expect(result.outcome).toBe("refused");
    expect(result.response.response).toEqual({
      uid: "u1",
      allowed: false,
      status: {
        code: 400,
        reason: "BadRequest",
        message: expect.stringContaining(
          "akv-injector.io/secret-../x: file name must be one path segment",
        ) as string,
      },
    });
    expect(result.response.response.status?.message).toContain('(got "../x")');
  });

  it("joins every problem into one message", async () => {
    const pod = testPod({ "akv-injector.io/vault": "http://x", "akv-injector.io/mode": "x" });
    const message = (await run(testReview(pod))).response.response.status?.message ?? "";
    expect(message.split("; ").map((p) => p.split(":")[0])).toEqual([
      "akv-injector.io/vault",
      "akv-injector.io/secrets",
      "akv-injector.io/mode",
    ]);
  });

  it("allows with warnings what is probably a mistake", async () => {
    const pod = testPod(
      {
        ...annotations,
        "akv-injector.io/refresh-interval": "5s",
        "akv-injector.io/containers": "init",
      },
      { initContainers: [{ name: "init", image: "i" }] },
    );
    const result = await run(testReview(pod));
    expect(result.outcome).toBe("injected");
    expect(result.response.response.allowed).toBe(true);
    expect(result.response.response.warnings).toEqual([
      expect.stringMatching(/^akv-injector\.io\/containers: names no app container/) as string,
      expect.stringMatching(/^akv-injector\.io\/refresh-interval: 5s is under 30s/) as string,
    ]);
  });

  it("keeps warnings next to a refusal", async () => {
    const pod = testPod({
      ...annotations,
      "akv-injector.io/refresh-interval": "5s",
      "akv-injector.io/mode": "x",
    });
    const response = (await run(testReview(pod))).response.response;
    expect(response.allowed).toBe(false);
    expect(response.warnings).toHaveLength(1);
  });

  it("refuses when the service account does not exist", async () => {
    const pod = testPod(annotations, { serviceAccountName: "ghost" });
    const d = deps();
    const result = await run(testReview(pod), d);
    expect(d.lookups).toEqual(["team-a/ghost"]);
    expect(result.outcome).toBe("refused");
    expect(result.response.response.status).toMatchObject({
      code: 400,
      message: expect.stringMatching(/^service account team-a\/ghost does not exist/) as string,
    });
  });

  it("uses the default service account and the request's namespace", async () => {
    const pod = testPod(annotations);
    const spec = pod.spec as Record<string, unknown>;
    delete spec.serviceAccountName;
    delete (pod.metadata as Record<string, unknown>).namespace;
    const d = deps([testServiceAccount("default", "other-ns")]);
    const result = await run(testReview(pod, { namespace: "other-ns" }), d);
    expect(d.lookups).toEqual(["other-ns/default"]);
    expect(result.outcome).toBe("injected");
    expect(result.namespace).toBe("other-ns");
  });

  it("refuses with 500 when the service account cannot be read", async () => {
    const d: ReviewDeps = {
      settings: testSettings(),
      lookupServiceAccount: () =>
        Promise.reject(new AkvError(ErrorCode.KUBERNETES_UNAVAILABLE, "connect ECONNREFUSED")),
    };
    const result = await run(testReview(testPod(annotations)), d);
    expect(result.outcome).toBe("error");
    expect(result.response.response).toMatchObject({
      allowed: false,
      status: {
        code: 500,
        message: "cannot read service account team-a/app: connect ECONNREFUSED",
      },
    });
  });

  it("does not repeat a lower error's text that is not ours", async () => {
    const d: ReviewDeps = {
      settings: testSettings(),
      lookupServiceAccount: () => Promise.reject(new Error("token=abc")),
    };
    const result = await run(testReview(testPod(annotations)), d);
    expect(result.response.response.status?.message).not.toContain("token=abc");
  });

  it("refuses a pod whose shape the patch cannot handle", async () => {
    const pod = testPod(annotations, { containers: [{ image: "no-name" }], volumes: "x" });
    const result = await run(testReview(pod));
    expect(result.outcome).toBe("refused");
    expect(result.response.response.status?.message).toBe(
      "the pod cannot be read: spec.containers[0].name: expected a container name; spec.volumes: expected a list",
    );
  });

  it("names a pod by generateName when it has no name yet", async () => {
    const pod = testPod(annotations, {}, { generateName: "web-5f7-" });
    delete (pod.metadata as Record<string, unknown>).name;
    const result = await run(testReview(pod));
    expect(result.outcome).toBe("injected");
    expect(result.pod).toBe("web-5f7-*");
  });
});

describe("review: bounded answers to hostile pods", () => {
  const MAX_ANSWER = 64 * 1024;
  const size = (value: unknown): number => Buffer.byteLength(JSON.stringify(value));

  it("refuses 5,000 unknown annotations with a short message that says how many more", async () => {
    const many: Record<string, string> = { ...annotations };
    for (let i = 0; i < 5000; i++) many[`akv-injector.io/unknown-${String(i)}`] = "x".repeat(20);
    const result = await run(testReview(testPod(many)));
    expect(result.outcome).toBe("refused");
    expect(size(result.response)).toBeLessThan(MAX_ANSWER);
    expect(result.message?.length).toBeLessThan(16 * 1024);
    expect(result.message).toContain("akv-injector.io/unknown-0: unknown annotation (known: ");
    expect(result.message).toMatch(/and 4980 more$/);
  });

  it("stops reading annotations past Kubernetes' 256 KiB limit, and says so", async () => {
    const many: Record<string, string> = { ...annotations };
    for (let i = 0; i < 50_000; i++) many[`akv-injector.io/unknown-${String(i)}`] = "x".repeat(50);
    const result = await run(testReview(testPod(many)));
    expect(result.outcome).toBe("refused");
    expect(result.message).toBe(
      "the pod cannot be read: metadata.annotations: over 262144 bytes, Kubernetes' limit for a pod's annotations (the apiserver refuses such a pod too)",
    );
  });

  it("bounds every key and value it quotes", async () => {
    const long = `akv-injector.io/secret-${"a".repeat(300)}`;
    const result = await run(testReview(testPod({ ...annotations, [long]: "b".repeat(100_000) })));
    expect(result.outcome).toBe("refused");
    expect(result.message?.length).toBeLessThan(2 * 1024);
  });

  it("bounds a pod that cannot be read at all", async () => {
    const values: Record<string, unknown> = {};
    for (let i = 0; i < 5000; i++) values[`k${String(i)}`] = i;
    const body = testReview(testPod(null, {}, { annotations: values }));
    const result = await run(body);
    expect(result.outcome).toBe("refused");
    expect(size(result.response)).toBeLessThan(MAX_ANSWER);
    expect(result.message).toMatch(/and 4980 more$/);
  });
});

describe("review: the pod a result names", () => {
  it.each<[string, unknown, { name?: string }, string]>([
    ["the request's name first", testPod(annotations, {}, { name: "own" }), { name: "req" }, "req"],
    ["else the pod's own", testPod(annotations, {}, { name: "own" }), { name: "" }, "own"],
    [
      "else its generateName",
      testPod(annotations, {}, { name: 5, generateName: "web-" }),
      { name: "" },
      "web-*",
    ],
    ["a pod without metadata", { spec: {} }, { name: "" }, "(unnamed)"],
    ["not even an object", "junk", { name: "" }, "(unnamed)"],
  ])("%s", async (_, pod, overrides, expected) => {
    const result = await run(testReview(pod, overrides));
    expect(result.pod).toBe(expected);
    if (result.outcome === "skipped") expect(result.warnings).toEqual([]);
  });

  it("an unchanged reinvocation has no warnings and no message", async () => {
    const pod = testPod(annotations);
    const first = await run(testReview(pod));
    const result = await run(testReview(applyTestPatch(pod, decodePatch(first.response))));
    expect(result.outcome).toBe("unchanged");
    expect(result.warnings).toEqual([]);
    expect(result.message).toBeUndefined();
  });

  it("a reinvocation refused names its problems joined with '; '", async () => {
    const pod = testPod(annotations);
    const first = await run(testReview(pod));
    const injected = applyTestPatch(pod, decodePatch(first.response)) as {
      metadata: { annotations: Record<string, string> };
      spec: { containers: Record<string, unknown>[] };
    };
    injected.metadata.annotations["akv-injector.io/mount-path"] = "relative";
    injected.spec.containers.push({
      name: "t",
      volumeMounts: [{ name: "akv-injector-token", mountPath: "/t" }],
    });
    const result = await run(testReview(injected));
    expect(result.outcome).toBe("refused");
    expect(result.message).toBe(
      "spec.containers[1].volumeMounts: container \"t\" mounts volume \"akv-injector-token\", which only the injected sidecar may mount; akv-injector.io/mount-path: expected an absolute directory like /mnt/secrets, without '.' or '..' segments",
    );
    expect(result.warnings).toEqual([]);
  });
});
