import { describe, expect, it } from "vitest";
import { usageError } from "../testing/cli.ts";
import { describeDocument, MAX_INPUT_BYTES, parseManifests } from "./documents.ts";

const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: team-a }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec: { containers: [{ name: app, image: busybox }] }
`;

describe("parseManifests", () => {
  it("reads and classifies every document, in order, counting empty ones", () => {
    const text = `---
apiVersion: v1
kind: ServiceAccount
metadata: { name: app }
---
# only a comment
---
${DEPLOYMENT}---
apiVersion: v1
kind: Pod
metadata: { generateName: job- }
spec: { containers: [] }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: settings }
---
apiVersion: batch/v1
kind: CronJob
metadata: { name: nightly }
spec: { jobTemplate: { spec: { template: { spec: {} } } } }
---
apiVersion: example.com/v1
kind: Job
metadata: { name: custom }
---
`;
    const docs = parseManifests(text, "all.yaml");
    expect(
      docs.map((d) => [
        d.index,
        d.kind,
        d.name,
        d.namespace,
        d.shape.type,
        d.shape.type === "workload" ? d.shape.kind : "",
      ]),
    ).toEqual([
      [1, "ServiceAccount", "app", undefined, "serviceAccount", ""],
      [3, "Deployment", "web", "team-a", "workload", "Deployment"],
      [4, "Pod", "job-*", undefined, "pod", ""],
      [5, "ConfigMap", "settings", undefined, "other", ""],
      [6, "CronJob", "nightly", undefined, "workload", "CronJob"],
      [7, "Job", "custom", undefined, "other", ""],
    ]);
    const cron = docs[4];
    expect(cron?.shape.type === "workload" && cron.shape.template).toEqual({ spec: {} });
  });

  it("reads JSON", () => {
    const docs = parseManifests(JSON.stringify({ kind: "Pod", spec: {} }), "pod.json");
    expect(docs.map((d) => [d.kind, d.name, d.shape.type])).toEqual([["Pod", "(unnamed)", "pod"]]);
  });

  it("names documents by file, index, kind and name", () => {
    const [doc] = parseManifests(DEPLOYMENT, "app.yaml");
    expect(doc && describeDocument("app.yaml", doc)).toBe("app.yaml, document 1 (Deployment web)");
  });

  it.each([
    ["nothing", "", "app.yaml: no documents"],
    ["only separators", "---\n---\n", "app.yaml: no documents"],
    ["bad YAML", "kind: Pod\n---\na: [", "app.yaml, document 2: not valid YAML"],
    [
      "a list",
      "- a\n",
      "app.yaml, document 1: expected a Kubernetes object (a map with apiVersion and kind), got a list",
    ],
    [
      "a string",
      `${DEPLOYMENT}---\nhello\n`,
      "app.yaml, document 2: expected a Kubernetes object (a map with apiVersion and kind), got a string",
    ],
    [
      "no kind",
      "metadata: { name: x }\n",
      "app.yaml, document 1: kind: expected the object's kind, a string (got nothing)",
    ],
    [
      "a kind that is not a string",
      "kind: 3\n",
      "app.yaml, document 1: kind: expected the object's kind, a string (got 3)",
    ],
    [
      "a List",
      "apiVersion: v1\nkind: List\nitems: []\n",
      "app.yaml, document 1 (List (unnamed)): a List is not previewed",
    ],
    [
      "a DeploymentList",
      "apiVersion: apps/v1\nkind: DeploymentList\nitems: []\n",
      "a DeploymentList is not previewed; give its items as documents of their own",
    ],
    [
      "a Deployment without a template",
      `${DEPLOYMENT}---\n${DEPLOYMENT.replace(/ {2}template:[\s\S]*/, "")}`,
      "app.yaml, document 2 (Deployment web): spec.template: expected the pod template, an object (got nothing)",
    ],
    [
      "a CronJob without a job template",
      "apiVersion: batch/v1\nkind: CronJob\nmetadata: { name: c }\nspec: { schedule: x }\n",
      "app.yaml, document 1 (CronJob c): spec.jobTemplate.spec.template: expected the pod template",
    ],
  ])("refuses %s, naming the document", (_name, text, expected) => {
    const message = usageError(() => parseManifests(text, "app.yaml"));
    expect(message).toContain(expected);
  });

  it("refuses a file over the limit before parsing it", () => {
    const text = `# ${"x".repeat(MAX_INPUT_BYTES)}\nkind: Pod\n`;
    expect(usageError(() => parseManifests(text, "big.yaml"))).toContain(
      `big.yaml: ${String(MAX_INPUT_BYTES + 13)} bytes, over the limit of ${String(MAX_INPUT_BYTES)}`,
    );
  });

  it("refuses a billion laughs", () => {
    const lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 0; i < 12; i++) {
      const prev = String.fromCharCode(97 + i);
      const next = String.fromCharCode(98 + i);
      lines.push(
        `${next}: &${next} [*${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}]`,
      );
    }
    lines.push("kind: Pod");
    expect(usageError(() => parseManifests(lines.join("\n"), "laughs.yaml"))).toContain(
      "laughs.yaml, document 1: not valid YAML: Excessive alias count",
    );
  });
});
