import { parse, parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";
import { createCertificateAuthority } from "../certs/index.ts";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import { PREVIEW_DEFAULTS } from "./args.ts";
import { PREVIEW_CLIENT_ID as CLIENT_ID, PREVIEW_SERVICE_ACCOUNT as SA } from "../testing/cli.ts";
import { formatOutput, preview, type PreviewInput } from "./preview.ts";

const POD = `apiVersion: v1
kind: Pod
metadata:
  name: app
  namespace: team-a
  labels:
    akv-injector.io/inject: "true"
  annotations:
    akv-injector.io/vault: myvault
    akv-injector.io/secrets: db-password
spec:
  serviceAccountName: app
  containers:
    - name: app
      image: busybox
`;

interface Container {
  name: string;
  image: string;
  env?: { name: string; value: string }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface OutPod {
  metadata: { annotations: Record<string, string> };
  spec: { initContainers: Container[]; containers: Container[] };
}

const input = (overrides: Partial<PreviewInput> = {}): PreviewInput => ({
  manifests: { text: POD, source: "pod.yaml" },
  serviceAccount: { text: SA, source: "sa.yaml" },
  env: {},
  ...overrides,
});

async function usageError(run: () => unknown): Promise<string> {
  try {
    await run();
  } catch (error) {
    expect(isAkvError(error, ErrorCode.CLI_USAGE)).toBe(true);
    return (error as Error).message;
  }
  throw new Error("expected a usage error");
}

describe("preview", () => {
  it("prints the mutated pod as the webhook would make it", async () => {
    const result = await preview(input());
    expect(result.exitCode).toBe(0);
    expect(result.documents[0]?.outcome).toBe("injected");
    expect(result.stderr).toEqual([]);
    const pod = parse(result.stdout ?? "") as OutPod;
    expect(pod.metadata.annotations["akv-injector.io/status"]).toBe("injected");
    const sidecar = pod.spec.initContainers[0];
    expect(sidecar?.name).toBe("akv-injector");
    expect(sidecar?.image).toBe(PREVIEW_DEFAULTS.sidecarImage);
    expect(sidecar?.env?.find((e) => e.name === "AZURE_CLIENT_ID")?.value).toBe(CLIENT_ID);
    expect(sidecar?.env?.find((e) => e.name === "AZURE_TENANT_ID")?.value).toBe(
      PREVIEW_DEFAULTS.tenantId,
    );
    expect(pod.spec.containers[0]?.volumeMounts).toEqual([
      { name: "akv-secrets", mountPath: "/mnt/secrets", subPath: "files", readOnly: true },
    ]);
  });

  it("takes settings from the environment and flags", async () => {
    const result = await preview(
      input({
        env: {
          AZURE_TENANT_ID: "0000000A-0000-0000-0000-00000000000B",
          AKV_INJECTOR_SIDECAR_IMAGE: "registry.local/sidecar:1",
        },
      }),
    );
    const pod = parse(result.stdout ?? "") as OutPod;
    expect(pod.spec.initContainers[0]?.image).toBe("registry.local/sidecar:1");
    expect(pod.spec.initContainers[0]?.env?.find((e) => e.name === "AZURE_TENANT_ID")?.value).toBe(
      "0000000a-0000-0000-0000-00000000000b",
    );
  });

  it("passes an extra CA bundle to the sidecar", async () => {
    const ca = createCertificateAuthority({ commonName: "x", now: new Date() });
    const result = await preview(input({ extraCaPem: ca.certPem }));
    const pod = parse(result.stdout ?? "") as OutPod;
    expect(pod.spec.initContainers[0]?.env?.at(-1)?.name).toBe("AKV_INJECTOR_EXTRA_CA_CERTS");
  });

  it("prints the refusal and warnings, and exits 1", async () => {
    const pod = POD.replace(
      "akv-injector.io/secrets: db-password",
      "akv-injector.io/secrets: db-password\n    akv-injector.io/secret-../x: a\n    akv-injector.io/refresh-interval: 5s",
    );
    const result = await preview(input({ manifests: { text: pod, source: "pod.yaml" } }));
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toBeUndefined();
    expect(result.stderr[0]).toMatch(
      /^Error: pod\.yaml, document 1 \(Pod app\): admission webhook would deny the request: akv-injector\.io\/secret-\.\.\/x: file name must be one path segment/,
    );
    expect(result.stderr[1]).toMatch(
      /^Warning: pod\.yaml, document 1 \(Pod app\): akv-injector\.io\/refresh-interval: 5s is under 30s/,
    );
  });

  it("admits with warnings and exits 0", async () => {
    const pod = POD.replace(
      "akv-injector.io/secrets: db-password",
      'akv-injector.io/secrets: db-password\n    akv-injector.io/refresh-interval: "10s"',
    );
    const result = await preview(input({ manifests: { text: pod, source: "pod.yaml" } }));
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toHaveLength(1);
    expect(result.stderr[0]).toMatch(/^Warning: /);
  });

  it("without a service account file, assumes one with no annotations and says so", async () => {
    const rest: PreviewInput = { manifests: { text: POD, source: "pod.yaml" }, env: {} };
    const refused = await preview(rest);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr.join("\n")).toContain("akv-injector.io/client-id: no client id");
    expect(refused.stderr.join("\n")).toContain(
      "note: pod.yaml, document 1 (Pod app): no --service-account given and no ServiceAccount team-a/app in the file; assuming it exists with no annotations",
    );
    const pod = POD.replace(
      "akv-injector.io/secrets: db-password",
      `akv-injector.io/secrets: db-password\n    akv-injector.io/client-id: ${CLIENT_ID}`,
    );
    expect(
      (await preview({ ...rest, manifests: { text: pod, source: "pod.yaml" } })).exitCode,
    ).toBe(0);
  });

  it("leaves a pod without the label unchanged and says why", async () => {
    const pod = POD.replace('akv-injector.io/inject: "true"', 'app: "web"');
    const result = await preview(input({ manifests: { text: pod, source: "pod.yaml" } }));
    expect(result.exitCode).toBe(0);
    expect(result.documents[0]?.outcome).toBe("skipped");
    expect(parse(result.stdout ?? "")).toEqual(parse(pod));
    expect(result.stderr[0]).toContain('lacks the label akv-injector.io/inject: "true"');
  });

  it("reads JSON too", async () => {
    const json = JSON.stringify(parse(POD));
    expect(
      (await preview(input({ manifests: { text: json, source: "pod.json" } }))).documents[0]
        ?.outcome,
    ).toBe("injected");
  });

  it("uses --namespace over the pod's", async () => {
    const sa = SA.replace("namespace: team-a", "namespace: other");
    const result = await preview(
      input({ namespace: "other", serviceAccount: { text: sa, source: "sa.yaml" } }),
    );
    expect(result.exitCode).toBe(0);
  });

  it.each([
    [
      "not YAML",
      { manifests: { text: "a: [", source: "pod.yaml" } },
      "pod.yaml, document 1: not valid YAML",
    ],
    ["empty", { manifests: { text: "", source: "pod.yaml" } }, "pod.yaml: no documents"],
    [
      "a Deployment without a template",
      {
        manifests: {
          text: "kind: Deployment\nmetadata: { name: d }\nspec: {}\n",
          source: "d.yaml",
        },
      },
      "d.yaml, document 1 (Deployment d): spec.template: expected the pod template",
    ],
    [
      "a list",
      { manifests: { text: "- a\n", source: "pod.yaml" } },
      "pod.yaml, document 1: expected a Kubernetes object",
    ],
    [
      "a service account of another name",
      { serviceAccount: { text: SA.replace("name: app", "name: web"), source: "sa.yaml" } },
      'sa.yaml is service account "web", but pod.yaml, document 1 (Pod app) uses "app"',
    ],
    [
      "a service account of another namespace",
      {
        serviceAccount: {
          text: SA.replace("namespace: team-a", "namespace: b"),
          source: "sa.yaml",
        },
      },
      'sa.yaml is in namespace "b", but pod.yaml, document 1 (Pod app) is in "team-a"',
    ],
    [
      "a service account file of two documents",
      { serviceAccount: { text: `${SA}---\n${SA}`, source: "sa.yaml" } },
      "sa.yaml: expected one ServiceAccount document, found 2",
    ],
    [
      "a service account file holding a pod",
      { serviceAccount: { text: POD, source: "sa.yaml" } },
      'sa.yaml: expected kind: ServiceAccount, found "Pod"',
    ],
  ])("refuses %s as bad usage", async (_name, overrides, expected) => {
    expect(await usageError(() => preview(input(overrides)))).toContain(expected);
  });

  it("refuses bad settings flags, naming the variable", async () => {
    const error: unknown = await preview(input({ env: { AKV_INJECTOR_FILE_MODE: "999" } })).catch(
      (e: unknown) => e,
    );
    expect(isAkvError(error, ErrorCode.SETTINGS_INVALID)).toBe(true);
    expect((error as Error).message).toContain("AKV_INJECTOR_FILE_MODE");
  });
});

/** The pod template of POD as a workload of `kind`, in team-a. */
function workloadYaml(
  kind: string,
  options: { selector?: string; ownLabels?: string } = {},
): string {
  const apiVersion = kind === "Job" || kind === "CronJob" ? "batch/v1" : "apps/v1";
  const template = `metadata:
  labels:
    app: web
    akv-injector.io/inject: "true"
  annotations:
    akv-injector.io/vault: myvault
    akv-injector.io/secrets: db-password
spec:
  serviceAccountName: app
  restartPolicy: ${kind === "Job" || kind === "CronJob" ? "Never" : "Always"}
  containers:
    - name: app
      image: busybox
`;
  const indent = (text: string, n: number) =>
    text
      .trimEnd()
      .split("\n")
      .map((l) => " ".repeat(n) + l)
      .join("\n");
  const selector = options.selector ?? "matchLabels: { app: web }";
  const body =
    kind === "CronJob"
      ? `  schedule: "0 * * * *"\n  jobTemplate:\n    spec:\n      template:\n${indent(template, 8)}\n`
      : `  ${kind === "Job" ? "" : "replicas: 2\n  "}selector: { ${selector} }\n  template:\n${indent(template, 4)}\n`;
  return `apiVersion: ${apiVersion}
kind: ${kind}
metadata:
  name: web
  namespace: team-a
  labels: { app: web${options.ownLabels ?? ""} }
spec:
${body}`;
}

type Obj = Record<string, unknown>;
const templateOf = (object: Obj, kind: string): Obj => {
  const spec = object.spec as Obj;
  const holder = kind === "CronJob" ? ((spec.jobTemplate as Obj).spec as Obj) : spec;
  return holder.template as Obj;
};

describe("preview of workloads", () => {
  it.each(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"])(
    "%s: prints the workload with its pod template mutated, the rest unchanged",
    async (kind) => {
      const text = workloadYaml(kind);
      const result = await preview(input({ manifests: { text, source: "app.yaml" } }));
      expect(result.stderr).toEqual([]);
      expect(result.exitCode).toBe(0);
      expect(result.documents).toEqual([
        { document: `app.yaml, document 1 (${kind} web)`, outcome: "injected" },
      ]);
      const before = parse(text) as Obj;
      const after = parse(result.stdout ?? "") as Obj;
      const template = templateOf(after, kind) as { metadata: Obj; spec: OutPod["spec"] };
      // Only the template changed: put the old one back and the rest is equal.
      const restored = structuredClone(after);
      Object.assign(templateOf(restored, kind), templateOf(before, kind));
      expect(restored).toEqual(before);
      expect(template.metadata).toEqual({
        labels: { app: "web", "akv-injector.io/inject": "true" },
        annotations: {
          "akv-injector.io/vault": "myvault",
          "akv-injector.io/secrets": "db-password",
          "akv-injector.io/status": "injected",
        },
      });
      const sidecar = template.spec.initContainers[0];
      expect(sidecar?.name).toBe("akv-injector");
      expect(sidecar?.env?.find((e) => e.name === "AZURE_CLIENT_ID")?.value).toBe(CLIENT_ID);
      expect(template.spec.containers[0]?.volumeMounts?.[0]?.mountPath).toBe("/mnt/secrets");
    },
  );

  it("looks the service account up in the workload's namespace", async () => {
    const text = workloadYaml("Deployment").replace("namespace: team-a", "namespace: other");
    expect(
      await usageError(() => preview(input({ manifests: { text, source: "app.yaml" } }))),
    ).toContain(
      'sa.yaml is in namespace "team-a", but app.yaml, document 1 (Deployment web) is in "other"',
    );
  });

  it("names the pod after the workload in refusals", async () => {
    const text = workloadYaml("StatefulSet").replace(
      "akv-injector.io/vault: myvault",
      'akv-injector.io/vault: "http://x"',
    );
    const result = await preview(input({ manifests: { text, source: "app.yaml" } }));
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toBeUndefined();
    expect(result.stderr).toEqual([
      'Error: app.yaml, document 1 (StatefulSet web): admission webhook would deny the request: akv-injector.io/vault: expected an https:// vault URL (got "http://x")',
    ]);
  });

  it("passes a template without the opt-in label through unchanged, and says why", async () => {
    const text = workloadYaml("Deployment").replace(/^ *akv-injector\.io\/inject: "true"\n/m, "");
    const result = await preview(input({ manifests: { text, source: "app.yaml" } }));
    expect(result.exitCode).toBe(0);
    expect(result.documents[0]?.outcome).toBe("skipped");
    expect(parse(result.stdout ?? "")).toEqual(parse(text));
    expect(result.stderr).toEqual([
      'note: app.yaml, document 1 (Deployment web): its pod template lacks the label akv-injector.io/inject: "true"; the webhook leaves it unchanged',
    ]);

    // Nor is the missing service account mentioned: the webhook would not read it.
    const alone = await preview({ manifests: { text, source: "app.yaml" }, env: {} });
    expect(alone.stderr).toEqual(result.stderr);
  });

  it("leaves an already previewed workload unchanged", async () => {
    const first = await preview(
      input({ manifests: { text: workloadYaml("Job"), source: "a.yaml" } }),
    );
    const again = await preview(
      input({ manifests: { text: first.stdout ?? "", source: "a.yaml" } }),
    );
    expect(again.documents[0]?.outcome).toBe("unchanged");
    expect(again.stdout).toBe(first.stdout);
  });

  it("warns of the opt-in label on the selector and the workload, exit status unchanged", async () => {
    const text = workloadYaml("Deployment", {
      selector: 'matchLabels: { app: web, akv-injector.io/inject: "true" }',
      ownLabels: ', akv-injector.io/inject: "true"',
    });
    const result = await preview(input({ manifests: { text, source: "app.yaml" } }));
    expect(result.exitCode).toBe(0);
    expect(result.documents[0]?.outcome).toBe("injected");
    expect(result.stderr).toHaveLength(1);
    expect(result.stderr[0]).toMatch(
      /^Warning: app\.yaml, document 1 \(Deployment web\): spec\.selector\.matchLabels has akv-injector\.io\/inject: a selector cannot be changed/,
    );

    const unlabelled = await preview(
      input({
        manifests: {
          text: text.replace(/^ *akv-injector\.io\/inject: "true"\n/m, ""),
          source: "app.yaml",
        },
      }),
    );
    expect(unlabelled.exitCode).toBe(0);
    expect(unlabelled.stderr.map((l) => l.slice(0, 90))).toEqual([
      "Warning: app.yaml, document 1 (Deployment web): spec.selector.matchLabels has akv-injector",
      "Warning: app.yaml, document 1 (Deployment web): metadata.labels has akv-injector.io/inject",
      "note: app.yaml, document 1 (Deployment web): its pod template lacks the label akv-injector",
    ]);
  });
});

const CONFIG_MAP = `apiVersion: v1
kind: ConfigMap
metadata: { name: settings, namespace: team-a }
data: { a: "1" }
`;

describe("preview of several documents", () => {
  const file = (...docs: string[]) => ({ text: docs.join("---\n"), source: "all.yaml" });

  it("previews each, keeps the order, passes other kinds through", async () => {
    const result = await preview(
      input({ manifests: file(CONFIG_MAP, POD, workloadYaml("CronJob"), SA) }),
    );
    expect(result.exitCode).toBe(0);
    expect(result.documents).toEqual([
      { document: "all.yaml, document 1 (ConfigMap settings)", outcome: "passed" },
      { document: "all.yaml, document 2 (Pod app)", outcome: "injected" },
      { document: "all.yaml, document 3 (CronJob web)", outcome: "injected" },
      { document: "all.yaml, document 4 (ServiceAccount app)", outcome: "passed" },
    ]);
    const out = parseAllDocuments(result.stdout ?? "").map((d) => d.toJS() as Obj);
    expect(out.map((o) => o.kind)).toEqual(["ConfigMap", "Pod", "CronJob", "ServiceAccount"]);
    expect(out[0]).toEqual(parse(CONFIG_MAP));
    expect(out[3]).toEqual(parse(SA));
    expect((out[1] as unknown as OutPod).spec.initContainers[0]?.name).toBe("akv-injector");
  });

  it("takes each pod's service account from the file, by namespace and name", async () => {
    const other = SA.replace("namespace: team-a", "namespace: other").replace(CLIENT_ID, "x");
    const result = await preview({
      manifests: file(other, POD, SA),
      env: {},
    });
    expect(result.exitCode).toBe(0);
    const pod = parseAllDocuments(result.stdout ?? "")[1]?.toJS() as OutPod;
    expect(pod.spec.initContainers[0]?.env?.find((e) => e.name === "AZURE_CLIENT_ID")?.value).toBe(
      CLIENT_ID,
    );
    // An account without a namespace is in --namespace, else "default".
    const noNamespace = SA.replace("  namespace: team-a\n", "");
    expect((await preview({ manifests: file(noNamespace, POD), env: {} })).exitCode).toBe(1);
    expect(
      (await preview({ manifests: file(noNamespace, POD), env: {}, namespace: "team-a" })).exitCode,
    ).toBe(0);
  });

  it("prefers --service-account over the file's", async () => {
    const inFile = SA.replace(CLIENT_ID, "11111111-1111-1111-1111-111111111111");
    const result = await preview(input({ manifests: file(inFile, POD) }));
    const pod = parseAllDocuments(result.stdout ?? "")[1]?.toJS() as OutPod;
    expect(pod.spec.initContainers[0]?.env?.find((e) => e.name === "AZURE_CLIENT_ID")?.value).toBe(
      CLIENT_ID,
    );
  });

  it("prints every admitted document, each refusal named, and exits 1", async () => {
    const bad = workloadYaml("DaemonSet").replace(
      /^( *)akv-injector\.io\/secrets: db-password$/m,
      "$1akv-injector.io/secrets: db-password\n$1akv-injector.io/mode: sometimes",
    );
    const result = await preview(input({ manifests: file(CONFIG_MAP, bad, POD, bad) }));
    expect(result.exitCode).toBe(1);
    expect(result.documents.map((d) => d.outcome)).toEqual([
      "passed",
      "refused",
      "injected",
      "refused",
    ]);
    expect(parseAllDocuments(result.stdout ?? "").map((d) => (d.toJS() as Obj).kind)).toEqual([
      "ConfigMap",
      "Pod",
    ]);
    expect(result.stderr).toHaveLength(2);
    expect(result.stderr[0]).toMatch(
      /^Error: all\.yaml, document 2 \(DaemonSet web\): admission webhook would deny the request: akv-injector\.io\/mode: /,
    );
    expect(result.stderr[1]).toMatch(/^Error: all\.yaml, document 4 \(DaemonSet web\): /);
  });

  it("prints JSON: one object for one document, a List for several", async () => {
    const one = await preview(input({ output: "json" }));
    expect((JSON.parse(one.stdout ?? "") as Obj).kind).toBe("Pod");
    const several = await preview(input({ manifests: file(CONFIG_MAP, POD), output: "json" }));
    const list = JSON.parse(several.stdout ?? "") as {
      apiVersion: string;
      kind: string;
      items: Obj[];
    };
    expect(list.apiVersion).toBe("v1");
    expect(list.kind).toBe("List");
    expect(list.items.map((i) => i.kind)).toEqual(["ConfigMap", "Pod"]);
    expect(list.items[0]).toEqual(parse(CONFIG_MAP));
  });
});

describe("formatOutput", () => {
  const a = { kind: "A" };
  const b = { kind: "B" };
  it.each<[string, Obj[], "yaml" | "json", boolean, string | undefined]>([
    ["nothing", [], "yaml", true, undefined],
    ["nothing as JSON", [], "json", false, undefined],
    ["one YAML document", [a], "yaml", false, "kind: A\n"],
    ["two YAML documents", [a, b], "yaml", true, "kind: A\n---\nkind: B\n"],
    ["one JSON object", [a], "json", false, '{\n  "kind": "A"\n}\n'],
    [
      "a List of one left of several",
      [a],
      "json",
      true,
      '{\n  "apiVersion": "v1",\n  "kind": "List",\n  "items": [\n    {\n      "kind": "A"\n    }\n  ]\n}\n',
    ],
    [
      "a List of two",
      [a, b],
      "json",
      true,
      JSON.stringify({ apiVersion: "v1", kind: "List", items: [a, b] }, null, 2) + "\n",
    ],
  ])("%s", (_name, objects, format, several, expected) => {
    expect(formatOutput(objects, format, several)).toBe(expected);
  });
});
