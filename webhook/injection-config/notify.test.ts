import { describe, expect, it } from "vitest";
import type { Mode } from "../../common/names.ts";
import { collectProblems, testParsedPod } from "../../testing/webhook.ts";
import type { Pod } from "../admission-review.ts";
import { parseNotifyAnnotations } from "./notify.ts";
import { parseContainersAnnotation } from "./targets.ts";
import { ProblemList } from "../../common/problems.ts";

const APP = "akv-injector.io/notify-app";
const WEB = "akv-injector.io/notify-web";

/** A pod with `migrate` (init), `app` and `web`; `spec` over it. */
function pod(spec: Record<string, unknown> = {}): Pod {
  return testParsedPod(
    {},
    {
      initContainers: [{ name: "migrate", image: "x" }],
      containers: [
        { name: "app", image: "x", securityContext: { runAsUser: 1000, runAsGroup: 1000 } },
        { name: "web", image: "y" },
      ],
      ...spec,
    },
  );
}

function parse(
  annotations: Record<string, string>,
  options: { pod?: Pod; containers?: string; mode?: Mode } = {},
) {
  const p = options.pod ?? pod();
  const targets = parseContainersAnnotation(
    p,
    options.containers,
    new ProblemList(),
    new ProblemList(),
  );
  return collectProblems((list) =>
    parseNotifyAnnotations(p, annotations, targets, options.mode ?? "sidecar", list),
  );
}

describe("parseNotifyAnnotations", () => {
  it("reads an HTTP target and a signal, in key order; the sidecar takes the signalled user and group", () => {
    const shared = pod({ shareProcessNamespace: true });
    const { value, problems } = parse(
      { [WEB]: "http://localhost:8080/-/reload", [APP]: "signal:SIGHUP" },
      { pod: shared },
    );
    expect(problems).toEqual([]);
    expect(value).toEqual({
      targets: [
        { container: "app", action: { kind: "signal", signal: "SIGHUP" } },
        { container: "web", action: { kind: "http", url: "http://localhost:8080/-/reload" } },
      ],
      signalled: [{ list: "containers", index: 0, name: "app" }],
      sidecarUser: 1000,
      sidecarGroup: 1000,
    });
  });

  it("no annotation: nothing to notify, the sidecar's own user", () => {
    expect(parse({}).value).toEqual({ targets: [], signalled: [] });
  });

  it("HTTP needs neither a shared PID namespace nor a user", () => {
    const { value, problems } = parse({ [WEB]: "http://127.0.0.1:9000/" });
    expect(problems).toEqual([]);
    expect(value.sidecarUser).toBeUndefined();
    expect(value.signalled).toEqual([]);
  });

  it("takes the pod's runAsUser and runAsGroup for a container that sets none (group 0 too)", () => {
    const { value, problems } = parse(
      { [WEB]: "signal:SIGUSR1" },
      {
        pod: pod({
          shareProcessNamespace: true,
          securityContext: { runAsUser: 2000, runAsGroup: 0 },
        }),
      },
    );
    expect(problems).toEqual([]);
    expect(value.sidecarUser).toBe(2000);
    expect(value.sidecarGroup).toBe(0);
  });

  // [case, annotations, options, the problems]
  it.each<[string, Record<string, string>, Parameters<typeof parse>[1], string[]]>([
    [
      "a container the pod lacks",
      { "akv-injector.io/notify-nope": "signal:SIGHUP" },
      {},
      [
        'akv-injector.io/notify-nope: the pod has no container "nope" that gets the mount (containers that do: app, web) (got "signal:SIGHUP")',
      ],
    ],
    [
      "a container left out of containers",
      { [WEB]: "http://localhost:1/" },
      { containers: "app" },
      [
        'akv-injector.io/notify-web: the pod has no container "web" that gets the mount (containers that do: app) (got "http://localhost:1/")',
      ],
    ],
    [
      "an init container",
      { "akv-injector.io/notify-migrate": "http://localhost:1/" },
      {},
      [
        'akv-injector.io/notify-migrate: the pod has no container "migrate" that gets the mount (containers that do: app, web) (got "http://localhost:1/")',
      ],
    ],
    [
      "init mode",
      { [APP]: "http://localhost:1/" },
      { mode: "init" },
      [
        'akv-injector.io/notify-app: expected no notification in init mode: the init container exits after one sync, before the app starts (got "http://localhost:1/")',
      ],
    ],
    [
      "another host",
      { [APP]: "http://metadata.internal/" },
      {},
      [
        'akv-injector.io/notify-app: expected a loopback host (localhost, 127.0.0.1, [::1]), not metadata.internal: the sidecar notifies containers of its own pod and must not become a way to reach other hosts (got "http://metadata.internal/")',
      ],
    ],
    [
      "a signal without a shared PID namespace",
      { [APP]: "signal:SIGHUP" },
      {},
      [
        'akv-injector.io/notify-app: a signal needs spec.shareProcessNamespace: true (the sidecar sees the app\'s processes only in a shared PID namespace) (got "signal:SIGHUP")',
      ],
    ],
    [
      "a signal to a container of no explicit user",
      { [WEB]: "signal:SIGHUP" },
      { pod: pod({ shareProcessNamespace: true }) },
      [
        'akv-injector.io/notify-web: a signal needs an explicit non-root runAsUser and an explicit runAsGroup for container "web" (its securityContext or the pod\'s), but no runAsUser is set: the sidecar runs as that user and group, since Linux lets a process signal another of its user, and read its environment (how the sidecar finds it) with its group too, without a capability (got "signal:SIGHUP")',
      ],
    ],
    [
      "a signal to a container of no explicit group",
      { [WEB]: "signal:SIGHUP" },
      { pod: pod({ shareProcessNamespace: true, securityContext: { runAsUser: 1000 } }) },
      [
        'akv-injector.io/notify-web: a signal needs an explicit non-root runAsUser and an explicit runAsGroup for container "web" (its securityContext or the pod\'s), but no runAsGroup is set: the sidecar runs as that user and group, since Linux lets a process signal another of its user, and read its environment (how the sidecar finds it) with its group too, without a capability (got "signal:SIGHUP")',
      ],
    ],
    [
      "a signal to a root container",
      { [APP]: "signal:SIGHUP" },
      {
        pod: pod({
          shareProcessNamespace: true,
          containers: [
            { name: "app", image: "x", securityContext: { runAsUser: 0, runAsGroup: 0 } },
          ],
        }),
      },
      [
        'akv-injector.io/notify-app: a signal needs an explicit non-root runAsUser and an explicit runAsGroup for container "app" (its securityContext or the pod\'s), but runAsUser is 0: the sidecar runs as that user and group, since Linux lets a process signal another of its user, and read its environment (how the sidecar finds it) with its group too, without a capability (got "signal:SIGHUP")',
      ],
    ],
    [
      "two signalled containers of different users",
      { [APP]: "signal:SIGHUP", [WEB]: "signal:SIGHUP" },
      {
        pod: pod({
          shareProcessNamespace: true,
          securityContext: { runAsUser: 1000, runAsGroup: 2000 },
        }),
      },
      [
        'akv-injector.io/notify-app, akv-injector.io/notify-web: signalled containers must run as one user and group, the sidecar\'s ("app" runs as 1000:1000, "web" runs as 1000:2000)',
      ],
    ],
  ])("refuses %s", (_case, annotations, options, problems) => {
    expect(parse(annotations, options).problems).toEqual(problems);
  });
});
