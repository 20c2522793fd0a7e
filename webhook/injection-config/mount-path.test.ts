import { describe, expect, it } from "vitest";
import { collectProblems, testParsedPod } from "../../testing/webhook.ts";
import { checkMountClashes, checkMountPath, parseMountPathAnnotation } from "./mount-path.ts";
import type { TargetContainer } from "./targets.ts";

const EXPECTED = "an absolute directory like /mnt/secrets, without '.' or '..' segments";

describe("checkMountPath", () => {
  // [path, what is expected, undefined when fine]
  it.each<[string, string | undefined]>([
    ["/mnt/secrets", undefined],
    ["/a", undefined],
    ["/var/run/app/", undefined],
    ["/with space", undefined],
    ["/etc/app/secrets", undefined],
    ["", EXPECTED],
    ["/", EXPECTED],
    ["relative", EXPECTED],
    ["/a//b", EXPECTED],
    ["/a/./b", EXPECTED],
    ["/a/..", EXPECTED],
    ["/a\nb", EXPECTED],
    [`/${"x".repeat(1100)}`, EXPECTED],
    ["/etc", `${EXPECTED}; this one covers the system folder /etc, which the app's image needs`],
    ["/usr/", `${EXPECTED}; this one covers the system folder /usr, which the app's image needs`],
    [
      "/proc/self",
      `${EXPECTED}; this one is inside /proc, which belongs to the kernel or to Kubernetes`,
    ],
  ])("%j", (path, expected) => {
    expect(checkMountPath(path)).toBe(expected);
  });
});

describe("parseMountPathAnnotation", () => {
  // [case, annotation, the mount path, the problems]
  it.each<[string, string | undefined, string, string[]]>([
    ["unset: the default", undefined, "/mnt/secrets", []],
    ["as written", "/etc/app/secrets", "/etc/app/secrets", []],
    ["trimmed, without the trailing /", " /etc/app/secrets/ ", "/etc/app/secrets", []],
    [
      "relative: the default, and the problem",
      "secrets",
      "/mnt/secrets",
      [`akv-injector.io/mount-path: expected ${EXPECTED} (got "secrets")`],
    ],
    [
      "a system folder",
      "/dev/shm",
      "/mnt/secrets",
      [
        `akv-injector.io/mount-path: expected ${EXPECTED}; this one is inside /dev, which belongs to the kernel or to Kubernetes (got "/dev/shm")`,
      ],
    ],
  ])("%s", (_case, text, mountPath, problems) => {
    const result = collectProblems((list) => parseMountPathAnnotation(text, list));
    expect(result.value).toBe(mountPath);
    expect(result.problems).toEqual(problems);
  });
});

describe("checkMountClashes", () => {
  const pod = testParsedPod(
    {},
    {
      initContainers: [
        { name: "warm", image: "x", volumeMounts: [{ name: "cache", mountPath: "/cache" }] },
      ],
      containers: [
        { name: "app", image: "x", volumeMounts: [{ name: "data", mountPath: "/mnt/secrets/" }] },
        { name: "plain", image: "x" },
      ],
    },
  );
  const warm: TargetContainer = { list: "initContainers", index: 0, name: "warm" };
  const app: TargetContainer = { list: "containers", index: 0, name: "app" };
  const plain: TargetContainer = { list: "containers", index: 1, name: "plain" };

  // [case, targets, mount path, annotation, the problems]
  it.each<[string, TargetContainer[], string, string | undefined, string[]]>([
    ["no target mounts there", [warm, plain], "/mnt/secrets", undefined, []],
    ["a target mounts elsewhere", [app], "/etc/app", "/etc/app", []],
    [
      "a target mounts there (the default: shown as the value)",
      [warm, app, plain],
      "/mnt/secrets",
      undefined,
      [
        'akv-injector.io/mount-path: container "app" already mounts volume "data" at /mnt/secrets; choose another directory (got "/mnt/secrets")',
      ],
    ],
    [
      "an init container mounts there (the annotation as written shown)",
      [warm],
      "/cache",
      "/cache/",
      [
        'akv-injector.io/mount-path: container "warm" already mounts volume "cache" at /cache; choose another directory (got "/cache/")',
      ],
    ],
  ])("%s", (_case, targets, mountPath, text, problems) => {
    const result = collectProblems((list) => {
      checkMountClashes(pod, targets, mountPath, text, list);
    });
    expect(result.problems).toEqual(problems);
  });
});
