/**
 * The kind path in step with what runs here (kind itself needs Docker): the
 * manifests and Helm values `e2e/kind/setup.ts` writes are accepted by the
 * real apiserver, and the mocks start with exactly the arguments of their
 * kind Deployment (paths and ports mapped to this machine).
 */
import { CoreV1Api } from "@kubernetes/client-node";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderChart, type KubeObject } from "../charts/helm.ts";
import { startControlPlane, type ControlPlane } from "./cluster/control-plane.ts";
import { applyObjects, ensureNamespace } from "./cluster/objects.ts";
import { REPO_ROOT } from "./host/repo.ts";
import { Kind, kindValues, makeMocksTls, mocksManifests, type KindState } from "./kind/setup.ts";

let cp: ControlPlane;
const tls = makeMocksTls();
const state: KindState = { tenantId: "11111111-2222-3333-4444-555555555555", mockCaPem: tls.caPem };

beforeAll(async () => {
  cp = await startControlPlane();
});

afterAll(async () => {
  await cp.stop();
});

describe("the kind path", () => {
  it("deploys mocks and chart values the apiserver accepts", async () => {
    const manifests = mocksManifests(state, tls) as unknown as KubeObject[];
    await applyObjects(cp.kubeConfig(), manifests);
    const objects = await renderChart({
      values: kindValues(state),
      releaseName: Kind.release,
      namespace: Kind.releaseNamespace,
    });
    await ensureNamespace(cp.kubeConfig().makeApiClient(CoreV1Api), Kind.releaseNamespace);
    await applyObjects(cp.kubeConfig(), objects);
    const deployment = objects.find((o) => o.kind === "Deployment") as
      | {
          spec: {
            template: { spec: { containers: { env: { name: string; value?: string }[] }[] } };
          };
        }
      | undefined;
    const env = deployment?.spec.template.spec.containers[0]?.env ?? [];
    expect(env.find((e) => e.name === "AZURE_AUTHORITY_HOST")?.value).toBe(
      `https://${Kind.aadHost}/`,
    );
    // Both names of the mock vault: object identifiers of two vault hosts.
    expect(env.find((e) => e.name === "AKV_INJECTOR_VAULT_SUFFIXES")?.value).toBe(
      `${Kind.vaultHost},${Kind.secondVaultHost}`,
    );
  });

  it("starts the mocks with the kind Deployment's arguments", async () => {
    const deployment = mocksManifests(state, tls).find((m) => m.kind === "Deployment") as {
      spec: { template: { spec: { containers: { args: string[] }[] } } };
    };
    const args = deployment.spec.template.spec.containers[0]?.args ?? [];
    const dir = await mkdtemp(join(tmpdir(), "akv-kind-mocks-"));
    try {
      await writeFile(join(dir, "tls.crt"), tls.certPem);
      await writeFile(join(dir, "tls.key"), tls.keyPem);
      await writeFile(join(dir, "ca.crt"), tls.caPem);
      await writeFile(join(dir, "cluster-ca.crt"), cp.caPem);
      // The cluster's paths and fixed ports, mapped to this machine.
      const local = args.map((arg) =>
        arg
          .replace("/etc/mocks/tls/", `${dir}/`)
          .replace(
            "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
            join(dir, "cluster-ca.crt"),
          )
          .replace("--host=0.0.0.0", "--host=127.0.0.1")
          .replace(/^--(aad|key-vault)-port=\d+$/, "--$1-port=0")
          .replace("/tmp/mocks", dir),
      );
      const child = spawn(process.execPath, [join(REPO_ROOT, "mocks/main.ts"), ...local], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
      const line = await new Promise<string>((resolve, reject) => {
        let out = "";
        child.stdout.setEncoding("utf8").on("data", (c: string) => {
          out += c;
          if (out.includes("\n")) resolve(out.split("\n")[0] ?? "");
        });
        child.once("exit", (code) => {
          reject(new Error(`the mocks exited (${String(code)}): ${stderr}`));
        });
      });
      const summary = JSON.stringify(JSON.parse(line));
      expect(summary).toContain(`https://${Kind.aadHost}`);
      expect(summary).toContain(`https://${Kind.vaultHost}`);
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
