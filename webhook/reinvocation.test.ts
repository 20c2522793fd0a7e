/**
 * planReinvocation on pods the webhook injected, read as parsePod reads
 * them: which containers still lack the secrets mount, at which path, and
 * what is refused on a second pass.
 */
import { describe, expect, it } from "vitest";
import { parsePod, type Pod } from "./admission-review.ts";
import { planReinvocation } from "./reinvocation.ts";

const SIDECAR = {
  name: "akv-injector",
  image: "s",
  volumeMounts: [{ name: "akv-secrets", mountPath: "/var/run/akv-injector/secrets" }],
};
const VOLUMES = [{ name: "akv-secrets" }, { name: "akv-injector-token" }];
const MOUNTED = { name: "akv-secrets", mountPath: "/mnt/secrets", readOnly: true };

/** An injected pod (sidecar and volume), with these annotations and containers. */
function injected(
  annotations: Record<string, string>,
  containers: Record<string, unknown>[],
  initContainers: Record<string, unknown>[] = [],
): Pod {
  const parsed = parsePod(
    {
      metadata: {
        name: "p",
        annotations: { "akv-injector.io/status": "injected", ...annotations },
      },
      spec: { containers, initContainers: [SIDECAR, ...initContainers], volumes: VOLUMES },
    },
    "team-a",
  );
  if (!parsed.ok) throw new Error(parsed.problems.join("; "));
  return parsed.pod;
}

const mountedInto = (pod: Pod): string[] => {
  const plan = planReinvocation(pod);
  if (!plan.ok) throw new Error(plan.problems.join("; "));
  return plan.patch.map((op) => `${op.op} ${op.path} ${JSON.stringify(op.value)}`);
};

describe("planReinvocation", () => {
  it("leaves a pod the webhook did not inject alone (a status copied by hand)", () => {
    const parsed = parsePod(
      {
        metadata: { annotations: { "akv-injector.io/status": "injected" } },
        spec: { containers: [{ name: "app" }], volumes: VOLUMES },
      },
      "t",
    );
    if (!parsed.ok) throw new Error("unreadable");
    expect(planReinvocation(parsed.pod)).toEqual({ ok: true, patch: [] });
  });

  it("mounts into each container that lacks the volume, at the trimmed mount path without its trailing slash", () => {
    const pod = injected({ "akv-injector.io/mount-path": " /etc/app/ " }, [
      { name: "app", volumeMounts: [{ ...MOUNTED, mountPath: "/etc/app" }] },
      { name: "proxy" },
      { name: "logger", volumeMounts: [] },
    ]);
    expect(mountedInto(pod)).toEqual([
      'add /spec/containers/1/volumeMounts [{"name":"akv-secrets","mountPath":"/etc/app","subPath":"files","readOnly":true}]',
      'add /spec/containers/2/volumeMounts/- {"name":"akv-secrets","mountPath":"/etc/app","subPath":"files","readOnly":true}',
    ]);
  });

  it("uses the default mount path without the annotation", () => {
    const pod = injected({}, [{ name: "proxy" }]);
    expect(mountedInto(pod)).toEqual([
      'add /spec/containers/0/volumeMounts [{"name":"akv-secrets","mountPath":"/mnt/secrets","subPath":"files","readOnly":true}]',
    ]);
  });

  it("mounts into init containers too, never into the sidecar", () => {
    const pod = injected({}, [{ name: "app", volumeMounts: [MOUNTED] }], [{ name: "migrate" }]);
    expect(mountedInto(pod)).toEqual([
      'add /spec/initContainers/1/volumeMounts [{"name":"akv-secrets","mountPath":"/mnt/secrets","subPath":"files","readOnly":true}]',
    ]);
  });

  it("takes the containers annotation's names trimmed, ignoring empty entries", () => {
    const pod = injected({ "akv-injector.io/containers": " proxy , ,app" }, [
      { name: "app", volumeMounts: [MOUNTED] },
      { name: "proxy" },
      { name: "other" },
    ]);
    expect(mountedInto(pod)).toEqual([
      'add /spec/containers/1/volumeMounts [{"name":"akv-secrets","mountPath":"/mnt/secrets","subPath":"files","readOnly":true}]',
    ]);
  });

  it("refuses a mount path that is no longer valid, saying what is expected", () => {
    const plan = planReinvocation(
      injected({ "akv-injector.io/mount-path": "relative" }, [{ name: "app" }]),
    );
    expect(plan).toEqual({
      ok: false,
      problems: [
        "akv-injector.io/mount-path: expected an absolute directory like /mnt/secrets, without '.' or '..' segments",
      ],
    });
  });

  it("refuses containers added since that mount the token or write to the secrets", () => {
    const plan = planReinvocation(
      injected({}, [
        { name: "app", volumeMounts: [MOUNTED] },
        { name: "writer", volumeMounts: [{ name: "akv-secrets", mountPath: "/w" }] },
      ]),
    );
    expect(plan.ok).toBe(false);
    if (plan.ok) return;
    expect(plan.problems).toHaveLength(1);
    expect(plan.problems[0]).toMatch(
      /^spec\.containers\[1\]\.volumeMounts: container "writer" mounts volume "akv-secrets" read-write/,
    );
  });
});
