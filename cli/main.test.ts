/** The CLI as users run it: a process, its output and its exit status. */
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const MAIN = new URL("main.ts", import.meta.url).pathname;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "akv-cli-"));
  await writeFile(
    join(dir, "pod.yaml"),
    `apiVersion: v1
kind: Pod
metadata:
  generateName: web-
  labels: { akv-injector.io/inject: "true" }
  annotations:
    akv-injector.io/vault: myvault
    akv-injector.io/secrets: db-password
    akv-injector.io/client-id: 4d0e2f2a-7f44-4d9b-9bd8-0e0b8a1f3c11
spec:
  containers: [{ name: app, image: busybox }]
`,
  );
  await writeFile(
    join(dir, "bad.yaml"),
    `kind: Pod
metadata:
  labels: { akv-injector.io/inject: "true" }
  annotations: { akv-injector.io/vault: "http://x", akv-injector.io/secrets: a }
spec:
  containers: [{ name: app, image: busybox }]
`,
  );
  await writeFile(join(dir, "list.yaml"), "apiVersion: v1\nkind: List\nitems: []\n");
  await writeFile(
    join(dir, "app.yaml"),
    `apiVersion: v1
kind: ServiceAccount
metadata: { name: app, namespace: team-a, annotations: { azure.workload.identity/client-id: 4d0e2f2a-7f44-4d9b-9bd8-0e0b8a1f3c11 } }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: settings, namespace: team-a }
data: { a: "1" }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: team-a }
spec:
  selector: { matchLabels: { app: web, akv-injector.io/inject: "true" } }
  template:
    metadata:
      labels: { app: web, akv-injector.io/inject: "true" }
      annotations: { akv-injector.io/vault: myvault, akv-injector.io/secrets: db-password }
    spec:
      serviceAccountName: app
      containers: [{ name: app, image: busybox }]
---
apiVersion: batch/v1
kind: Job
metadata: { name: migrate, namespace: team-a }
spec:
  template:
    metadata:
      labels: { akv-injector.io/inject: "true" }
      annotations: { akv-injector.io/vault: "http://x", akv-injector.io/secrets: a }
    spec:
      serviceAccountName: app
      restartPolicy: Never
      containers: [{ name: app, image: busybox }]
`,
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function cli(args: string[], options: { input?: string; env?: Record<string, string> } = {}) {
  const result = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: "utf8",
    input: options.input ?? "",
    env: { PATH: process.env.PATH ?? "", ...options.env },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("akv-injector (process)", () => {
  it("prints the mutated pod and exits 0", () => {
    const { status, stdout, stderr } = cli(["preview", join(dir, "pod.yaml")], {
      env: { AKV_INJECTOR_SIDECAR_IMAGE: "from-env:1" },
    });
    expect(stderr).toContain("no --service-account given");
    expect(status).toBe(0);
    const pod = parse(stdout) as { spec: { initContainers: { name: string; image: string }[] } };
    expect(pod.spec.initContainers[0]).toMatchObject({ name: "akv-injector", image: "from-env:1" });
  });

  it("reads the pod from standard input", () => {
    const { status, stdout } = cli(["preview", "-", "--sidecar-image", "flag:2"], {
      input: `kind: Pod
metadata: { name: a, labels: { akv-injector.io/inject: "true" }, annotations: { akv-injector.io/vault: v1x, akv-injector.io/secrets: s, akv-injector.io/client-id: 4d0e2f2a-7f44-4d9b-9bd8-0e0b8a1f3c11 } }
spec: { containers: [{ name: app, image: busybox }] }
`,
    });
    expect(status).toBe(0);
    expect(stdout).toContain("image: flag:2");
  });

  it("prints the refusal on stderr and exits 1", () => {
    const { status, stdout, stderr } = cli(["preview", join(dir, "bad.yaml")]);
    expect(status).toBe(1);
    expect(stdout).toBe("");
    expect(stderr).toContain(
      `Error: ${join(dir, "bad.yaml")}, document 1 (Pod (unnamed)): admission webhook would deny the request: akv-injector.io/vault: expected an https:// vault URL (got "http://x")`,
    );
  });

  it.each([
    [["preview"], "missing FILE.yaml"],
    [["preview", "/nonexistent/pod.yaml"], "cannot read file /nonexistent/pod.yaml"],
    [["preview", "POD", "-o", "wide"], "-o wide: expected one of yaml, json"],
    [["preview", "LIST"], "a List is not previewed"],
    [["preview", "POD", "--file-mode", "9"], ""],
    [["frobnicate"], "unknown command"],
  ])("exits 2 on bad usage: %j", (args, expected) => {
    const resolved = args.map((a) =>
      a === "POD" ? join(dir, "pod.yaml") : a === "LIST" ? join(dir, "list.yaml") : a,
    );
    const { status, stderr } = cli(resolved);
    expect(status).toBe(2);
    expect(stderr).toMatch(/^akv-injector: /);
    expect(stderr).toContain(expected);
  });

  it("names the variable behind a bad flag", () => {
    const { stderr } = cli(["preview", join(dir, "pod.yaml"), "--file-mode", "9"]);
    expect(stderr).toContain("AKV_INJECTOR_FILE_MODE");
  });

  it("prints help", () => {
    const { status, stdout } = cli(["--help"]);
    expect(status).toBe(0);
    expect(stdout).toMatch(/^Usage: akv-injector preview FILE\.yaml/);
  });

  it("prints the package's version", async () => {
    const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    const { status, stdout } = cli(["--version"]);
    expect(status).toBe(0);
    expect(stdout).toBe(`${pkg.version}\n`);
  });

  it("previews every document of a file, prints all, names the refused one, exits 1", () => {
    const { status, stdout, stderr } = cli(["preview", join(dir, "app.yaml")]);
    expect(status).toBe(1);
    const docs = parseAllDocuments(stdout).map((d) => d.toJS() as Record<string, unknown>);
    expect(docs.map((d) => d.kind)).toEqual(["ServiceAccount", "ConfigMap", "Deployment"]);
    const deployment = docs[2] as {
      spec: {
        template: { spec: { initContainers: { env: { name: string; value: string }[] }[] } };
      };
    };
    expect(
      deployment.spec.template.spec.initContainers[0]?.env.find((e) => e.name === "AZURE_CLIENT_ID")
        ?.value,
    ).toBe("4d0e2f2a-7f44-4d9b-9bd8-0e0b8a1f3c11");
    expect(stderr).toContain(
      `Warning: ${join(dir, "app.yaml")}, document 3 (Deployment web): spec.selector.matchLabels has akv-injector.io/inject`,
    );
    expect(stderr).toContain(
      `Error: ${join(dir, "app.yaml")}, document 4 (Job migrate): admission webhook would deny the request: akv-injector.io/vault`,
    );
    expect(stderr).not.toContain("akv-injector: ");
  });

  it("prints JSON: a List for several documents, the object for one", () => {
    const several = cli(["preview", join(dir, "app.yaml"), "-o", "json"]);
    expect(several.status).toBe(1);
    const list = JSON.parse(several.stdout) as { kind: string; items: { kind: string }[] };
    expect(list.kind).toBe("List");
    expect(list.items.map((i) => i.kind)).toEqual(["ServiceAccount", "ConfigMap", "Deployment"]);
    const one = cli(["preview", join(dir, "pod.yaml"), "--output=json"]);
    expect(one.status).toBe(0);
    expect((JSON.parse(one.stdout) as { kind: string }).kind).toBe("Pod");
  });

  it("stops reading standard input past the limit", () => {
    const { status, stderr } = cli(["preview", "-"], {
      input: `kind: Pod\n# ${"x".repeat(17 * 1024 * 1024)}\n`,
    });
    expect(status).toBe(2);
    expect(stderr).toContain("file -: over the limit of 16777216 bytes");
  });
});
