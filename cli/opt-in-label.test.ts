import { describe, expect, it } from "vitest";
import { INJECT_LABEL } from "../common/names.ts";
import { findOptInLabelTraps } from "./opt-in-label.ts";
import { WORKLOAD_KINDS, type WorkloadKind } from "./workloads.ts";

const IN = { [INJECT_LABEL]: "true" };

interface Placement {
  /** The workload's own `metadata.labels`. */
  own?: Record<string, string>;
  /** `spec.selector`. */
  selector?: unknown;
  /** The pod template's labels. */
  template?: Record<string, string>;
  /** A CronJob's `spec.jobTemplate.metadata.labels`. */
  jobTemplate?: Record<string, string>;
}

function workload(kind: WorkloadKind, p: Placement): unknown {
  const template = { metadata: { labels: { app: "web", ...p.template } }, spec: {} };
  const jobSpec = { selector: p.selector, template };
  return {
    kind,
    metadata: { name: "web", labels: { app: "web", ...p.own } },
    spec:
      kind === "CronJob"
        ? { jobTemplate: { metadata: { labels: p.jobTemplate }, spec: jobSpec } }
        : jobSpec,
  };
}

const SELECTOR_WORDS =
  "a selector cannot be changed, so removing the label later means deleting and re-creating the";

describe.each(WORKLOAD_KINDS)("findOptInLabelTraps: %s", (kind) => {
  const spec = kind === "CronJob" ? "spec.jobTemplate.spec" : "spec";

  it.each<[string, Placement, string[]]>([
    ["the label on the template alone", { template: IN }, []],
    ["no label anywhere", {}, []],
    ["the label on the workload and the template", { own: IN, template: IN }, []],
    ["a selector on other labels", { template: IN, selector: { matchLabels: { app: "web" } } }, []],
    [
      "the label in matchLabels",
      { template: IN, selector: { matchLabels: { app: "web", ...IN } } },
      [`${spec}.selector.matchLabels has ${INJECT_LABEL}: ${SELECTOR_WORDS} ${kind}`],
    ],
    [
      'the label in matchLabels, even as "false"',
      { selector: { matchLabels: { [INJECT_LABEL]: "false" } } },
      [`${spec}.selector.matchLabels has ${INJECT_LABEL}`],
    ],
    [
      "the label in matchExpressions",
      {
        template: IN,
        selector: {
          matchExpressions: [
            { key: "app", operator: "In", values: ["web"] },
            { key: INJECT_LABEL, operator: "Exists" },
          ],
        },
      },
      [`${spec}.selector.matchExpressions[1] is on ${INJECT_LABEL}: ${SELECTOR_WORDS} ${kind}`],
    ],
    [
      "the label on the workload only",
      { own: IN },
      [
        `metadata.labels has ${INJECT_LABEL}: "true", but ${spec}.template.metadata.labels does not: the webhook sees pods, not the ${kind}, so nothing will be injected`,
      ],
    ],
    [
      'the label on the workload, "false" on the template',
      { own: IN, template: { [INJECT_LABEL]: "false" } },
      [
        `metadata.labels has ${INJECT_LABEL}: "true", but ${spec}.template.metadata.labels does not`,
      ],
    ],
    ['"false" on the workload only', { own: { [INJECT_LABEL]: "false" } }, []],
    [
      "both traps at once",
      { own: IN, selector: { matchLabels: IN } },
      [`${spec}.selector.matchLabels has`, `metadata.labels has ${INJECT_LABEL}: "true", but`],
    ],
    [
      "odd selector shapes",
      { selector: { matchLabels: "x", matchExpressions: [null, "y", {}] } },
      [],
    ],
    ["a selector that is a string", { selector: "x" }, []],
  ])("%s", (_name, placement, expected) => {
    const warnings = findOptInLabelTraps(workload(kind, placement), kind);
    expect(warnings).toHaveLength(expected.length);
    expected.forEach((words, i) => {
      expect(warnings[i]).toContain(words);
    });
  });
});

describe("findOptInLabelTraps: a CronJob's job template", () => {
  it("warns of the label on the job template's labels", () => {
    expect(findOptInLabelTraps(workload("CronJob", { jobTemplate: IN }), "CronJob")).toEqual([
      `spec.jobTemplate.metadata.labels has ${INJECT_LABEL}: "true", but spec.jobTemplate.spec.template.metadata.labels does not: the webhook sees pods, not the CronJob, so nothing will be injected; put the label on the pod template`,
    ]);
  });

  it("tolerates any shape", () => {
    for (const object of [
      undefined,
      null,
      "x",
      [],
      {},
      { spec: [] },
      { metadata: { labels: [] } },
    ]) {
      expect(findOptInLabelTraps(object, "CronJob")).toEqual([]);
      expect(findOptInLabelTraps(object, "Deployment")).toEqual([]);
    }
  });
});
