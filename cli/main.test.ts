/** The CLI as users run it: a process, its output and its exit status. */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
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
    expect(stderr).toContain("note: no --service-account given");
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
      'Error: admission webhook would deny the request: akv-injector.io/vault: expected an https:// vault URL (got "http://x")',
    );
  });

  it.each([
    [["preview"], "missing POD.yaml"],
    [["preview", "/nonexistent/pod.yaml"], "cannot read pod /nonexistent/pod.yaml"],
    [["preview", "POD", "--file-mode", "9"], ""],
    [["frobnicate"], "unknown command"],
  ])("exits 2 on bad usage: %j", (args, expected) => {
    const resolved = args.map((a) => (a === "POD" ? join(dir, "pod.yaml") : a));
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
    expect(stdout).toMatch(/^Usage: akv-injector preview POD\.yaml/);
  });
});
