import { describe, expect, it } from "vitest";
import type { PodOs } from "./admission-review.ts";
import { findForbiddenMounts, findSystemMountPath, findWindowsPod } from "./pod-rules.ts";

const os = (o: Partial<PodOs>): { os: PodOs } => ({
  os: { name: undefined, nodeSelector: undefined, affinityTerms: [], ...o },
});

describe("findWindowsPod", () => {
  it.each([
    ["nothing said", os({})],
    ["linux by os", os({ name: "linux" })],
    ["linux by selector", os({ nodeSelector: "linux" })],
    ["a term allowing linux among others", os({ affinityTerms: [["windows"], ["linux"]] })],
    ["a term that does not say", os({ affinityTerms: [["windows"], undefined] })],
    ["both in one term", os({ affinityTerms: [["windows", "linux"]] })],
  ])("lets a pod through: %s", (_name, pod) => {
    expect(findWindowsPod(pod)).toBeUndefined();
  });

  it.each([
    ["os", os({ name: "windows" }), "spec.os.name"],
    ["selector", os({ nodeSelector: "windows" }), "spec.nodeSelector"],
    ["every term", os({ affinityTerms: [["windows"], ["windows"]] }), "spec.affinity.nodeAffinity"],
  ])("finds a Windows pod by its %s", (_name, pod, field) => {
    expect(findWindowsPod(pod)?.field).toBe(field);
  });
});

describe("findForbiddenMounts", () => {
  const mount = (name: string, readOnly: boolean) => ({ name, mountPath: "/x", readOnly });
  it("allows read-only mounts of the secrets volume and other volumes read-write", () => {
    expect([
      ...findForbiddenMounts("containers", [
        { name: "a", volumeMounts: [mount("akv-secrets", true), mount("data", false)] },
        { name: "b", volumeMounts: undefined },
      ]),
    ]).toEqual([]);
  });

  it("refuses the token volume anywhere and the secrets volume read-write, naming each", () => {
    const found = [
      ...findForbiddenMounts("initContainers", [
        { name: "a", volumeMounts: [mount("akv-injector-token", true)] },
        { name: "b", volumeMounts: [mount("akv-secrets", false)] },
      ]),
    ];
    expect(found.map((p) => p.field)).toEqual([
      "spec.initContainers[0].volumeMounts",
      "spec.initContainers[1].volumeMounts",
    ]);
    expect(found[0]?.text).toContain('"a" mounts volume "akv-injector-token"');
    expect(found[1]?.text).toContain('"b" mounts volume "akv-secrets" read-write');
  });

  it("leaves the injected sidecar's own mounts alone", () => {
    expect([
      ...findForbiddenMounts("initContainers", [
        {
          name: "akv-injector",
          volumeMounts: [mount("akv-secrets", false), mount("akv-injector-token", true)],
        },
      ]),
    ]).toEqual([]);
  });
});

describe("findSystemMountPath", () => {
  it.each([
    "/etc",
    "/usr",
    "/bin",
    "/var/run",
    "/proc",
    "/proc/1",
    "/sys/fs",
    "/dev",
    "/dev/shm",
    "/var/run/secrets/kubernetes.io/serviceaccount",
    "/run/secrets/kubernetes.io",
  ])("refuses %s", (path) => {
    expect(findSystemMountPath(path)).toBeDefined();
  });

  it.each([
    "/mnt/secrets",
    "/etc/app/secrets",
    "/usr/share/app",
    "/var/run/app",
    "/devices",
    "/procfs",
    "/run/secrets/app",
  ])("allows %s", (path) => {
    expect(findSystemMountPath(path)).toBeUndefined();
  });
});
