import { describe, expect, it } from "vitest";
import type { PodOs } from "./admission-review.ts";
import {
  findForbiddenMounts,
  findSystemMountPath,
  findWindowsPod,
  isInjectedPod,
} from "./pod-rules.ts";

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

describe("pod rules, by their whole words", () => {
  it.each([
    "/bin",
    "/boot",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/root",
    "/run",
    "/sbin",
    "/usr",
    "/var",
    "/var/lib",
    "/var/run",
    "/var/run/secrets",
    "/run/secrets",
  ])("covers the system folder %s", (path) => {
    expect(findSystemMountPath(path)).toBe(
      `covers the system folder ${path}, which the app's image needs`,
    );
  });

  it.each([
    ["/proc/1", "/proc"],
    ["/sys", "/sys"],
    ["/dev/shm", "/dev"],
    ["/var/run/secrets/kubernetes.io/serviceaccount", "/var/run/secrets/kubernetes.io"],
    ["/run/secrets/kubernetes.io", "/run/secrets/kubernetes.io"],
  ])("%s is inside %s", (path, tree) => {
    expect(findSystemMountPath(path)).toBe(
      `is inside ${tree}, which belongs to the kernel or to Kubernetes`,
    );
  });

  const windows = (value: string) =>
    `the pod runs on Windows (${value}), and akv-injector's sidecar runs on Linux nodes only; remove the label akv-injector.io/inject from this pod`;

  it("names how the pod says it runs on Windows", () => {
    expect(findWindowsPod(os({ name: "windows" }))).toEqual({
      field: "spec.os.name",
      text: windows("spec.os.name: windows"),
    });
    expect(findWindowsPod(os({ nodeSelector: "windows" }))).toEqual({
      field: "spec.nodeSelector",
      text: windows("kubernetes.io/os: windows"),
    });
    expect(findWindowsPod(os({ affinityTerms: [["windows"], ["windows", "other"]] }))).toEqual({
      field: "spec.affinity.nodeAffinity",
      text: windows("required node affinity kubernetes.io/os in [windows, other]"),
    });
  });

  it("an injected pod has both the sidecar and the secrets volume", () => {
    const sidecar = { name: "akv-injector", volumeMounts: undefined };
    expect(isInjectedPod({ initContainers: [sidecar], volumeNames: ["akv-secrets"] })).toBe(true);
    expect(isInjectedPod({ initContainers: [sidecar], volumeNames: [] })).toBe(false);
    expect(
      isInjectedPod({
        initContainers: [{ name: "other", volumeMounts: undefined }],
        volumeNames: ["akv-secrets"],
      }),
    ).toBe(false);
  });
});
