import { describe, expect, it } from "vitest";
import type { Mode } from "../../common/names.ts";
import { collectProblems } from "../../testing/webhook.ts";
import type { PodContainer } from "../admission-review.ts";
import { parseMetricsPortAnnotation } from "./metrics-port.ts";

const KEY = "akv-injector.io/metrics-port";
const range = (got: string): string =>
  `${KEY}: expected a port number from 1024 to 65535 (got ${JSON.stringify(got)})`;
const pod = {
  containers: [
    { name: "app", volumeMounts: undefined, ports: [8080, 9090] },
    { name: "helper", volumeMounts: undefined },
  ] as PodContainer[],
  initContainers: [
    { name: "proxy", volumeMounts: undefined, ports: [15001] },
    // A pod injected before: the sidecar's own port is no clash.
    { name: "akv-injector", volumeMounts: undefined, ports: [9102] },
  ] as PodContainer[],
};

describe("parseMetricsPortAnnotation", () => {
  // [case, annotation, mode, the port, the problems]
  it.each<[string, string | undefined, Mode, number | undefined, string[]]>([
    ["unset: no metrics", undefined, "sidecar", undefined, []],
    ["a free port", "9102", "sidecar", 9102, []],
    ["white space around it", " 9102 ", "sidecar", 9102, []],
    ["the lowest", "1024", "sidecar", 1024, []],
    ["the highest", "65535", "sidecar", 65_535, []],
    ["a privileged port", "80", "sidecar", undefined, [range("80")]],
    ["1023", "1023", "sidecar", undefined, [range("1023")]],
    ["over 65535", "65536", "sidecar", undefined, [range("65536")]],
    ["zero", "0", "sidecar", undefined, [range("0")]],
    ["a name, not a number", "metrics", "sidecar", undefined, [range("metrics")]],
    ["a fraction", "9102.5", "sidecar", undefined, [range("9102.5")]],
    ["hexadecimal", "0x238e", "sidecar", undefined, [range("0x238e")]],
    ["empty", "", "sidecar", undefined, [range("")]],
    [
      "an app container's port",
      "9090",
      "sidecar",
      undefined,
      [
        `${KEY}: expected a port no container of the pod declares: container "app" has containerPort 9090 (got "9090")`,
      ],
    ],
    [
      "an init container's port",
      "15001",
      "sidecar",
      undefined,
      [
        `${KEY}: expected a port no container of the pod declares: container "proxy" has containerPort 15001 (got "15001")`,
      ],
    ],
    [
      "init mode",
      "9102",
      "init",
      undefined,
      [
        `${KEY}: expected no metrics port in init mode: the init container exits after one sync, so nothing could scrape it (got "9102")`,
      ],
    ],
  ])("%s", (_case, text, mode, port, problems) => {
    const result = collectProblems((list) => parseMetricsPortAnnotation(text, pod, mode, list));
    expect(result.value).toBe(port);
    expect(result.problems).toEqual(problems);
    expect(result.warnings).toEqual([]);
  });
});
