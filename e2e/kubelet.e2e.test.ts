/**
 * The test kubelet on its own, with a stand-in container, so a failure here
 * says "the harness", not "the sidecar": projected tokens minted through
 * TokenRequest and valid for the pod's service account, volumes at the
 * container's real paths, the user and read-only root filesystem of the
 * security context, read-only app mounts, no token in app containers, token
 * refresh, SIGTERM on stop, and nothing left behind (processes, mounts,
 * folders), in both layouts.
 */
import { CoreV1Api, type V1Pod } from "@kubernetes/client-node";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createLocalJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Injected } from "../common/names.ts";
import { startControlPlane, type ControlPlane } from "./cluster/control-plane.ts";
import { httpGet } from "./host/network.ts";
import { isGroupAlive } from "./host/processes.ts";
import { REPO_ROOT } from "./host/repo.ts";
import { TestKubelet } from "./kubelet/kubelet.ts";
import { detectLayout, type LayoutKind } from "./kubelet/layout.ts";

let cp: ControlPlane;
let core: CoreV1Api;
let available: LayoutKind;

beforeAll(async () => {
  cp = await startControlPlane();
  core = cp.kubeConfig().makeApiClient(CoreV1Api);
  available = await detectLayout();
  await core.createNamespace({ body: { metadata: { name: "kubelet-check" } } });
  await core.createNamespacedServiceAccount({
    namespace: "kubelet-check",
    body: { metadata: { name: "worker" } },
  });
});

afterAll(async () => {
  await cp.stop();
});

const FAKE_IMAGE = "example.test/fake-container:1";
const OUT = "/var/run/akv-injector/secrets";

function fakePod(name: string): V1Pod {
  return {
    metadata: { name, namespace: "kubelet-check" },
    spec: {
      serviceAccountName: "worker",
      initContainers: [
        {
          name: "fake",
          image: FAKE_IMAGE,
          args: ["run"],
          restartPolicy: "Always",
          env: [
            { name: "FAKE_OUT", value: OUT },
            { name: "AZURE_FEDERATED_TOKEN_FILE", value: Injected.tokenFile },
            { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
          ],
          startupProbe: {
            exec: { command: ["/nodejs/bin/node", "/app/fake.ts", "probe"] },
            periodSeconds: 1,
            failureThreshold: 20,
          },
          securityContext: {
            runAsUser: 65532,
            runAsNonRoot: true,
            readOnlyRootFilesystem: true,
            allowPrivilegeEscalation: false,
          },
          volumeMounts: [
            { name: "akv-secrets", mountPath: OUT },
            { name: "akv-injector-token", mountPath: Injected.tokenMountPath, readOnly: true },
          ],
        },
      ],
      containers: [
        {
          name: "app",
          image: "busybox:1.37",
          securityContext: { runAsUser: 1000 },
          volumeMounts: [{ name: "akv-secrets", mountPath: "/mnt/secrets", readOnly: true }],
        },
      ],
      volumes: [
        { name: "akv-secrets", emptyDir: { medium: "Memory", sizeLimit: "1Mi" } },
        {
          name: "akv-injector-token",
          projected: {
            sources: [
              {
                serviceAccountToken: {
                  audience: Injected.tokenAudience,
                  expirationSeconds: 3600,
                  path: Injected.tokenPath,
                },
              },
            ],
          },
        },
      ],
    },
  };
}

async function verifyToken(token: string): Promise<Record<string, unknown>> {
  const jwks = await httpGet(`${cp.issuer}/openid/v1/jwks`, { ca: cp.caPem });
  const { payload } = await jwtVerify(
    token,
    createLocalJWKSet(JSON.parse(jwks.body) as Parameters<typeof createLocalJWKSet>[0]),
    { issuer: cp.issuer, audience: Injected.tokenAudience },
  );
  return payload;
}

describe.each(["namespace", "folders"] as const)("test kubelet, %s layout", (layout) => {
  it("runs a pod as the kubelet would and leaves nothing behind", async (context) => {
    if (layout === "namespace" && available !== "namespace") {
      context.skip("mount namespaces are not available here (not root, or no unshare)");
    }
    const name = `fake-${layout}`;
    await core.createNamespacedPod({ namespace: "kubelet-check", body: fakePod(name) });
    const kubelet = new TestKubelet({
      kubeConfig: cp.kubeConfig(),
      logDir: cp.logDir,
      layout,
      images: { [FAKE_IMAGE]: { entrypoint: ["/nodejs/bin/node", "/app/fake.ts"] } },
      files: {
        "/nodejs/bin/node": process.execPath,
        "/app/fake.ts": join(REPO_ROOT, "e2e/kubelet/fake-container.ts"),
      },
    });
    await using pod = await kubelet.runPod("kubelet-check", name);
    const fake = pod.process("fake");
    expect(fake).toBeDefined();
    const pids = [fake?.pid ?? 0];

    // What the app container sees, read as the app (`kubectl exec`).
    const cat = await pod.exec("app", ["cat", "/mnt/secrets/report.json"]);
    expect(cat.stderr).toBe("");
    const report = JSON.parse(cat.stdout) as {
      uid: number;
      rootWritable: boolean;
      token: string;
      env: string[];
    };
    const claims = await verifyToken(report.token);
    expect(claims.sub).toBe("system:serviceaccount:kubelet-check:worker");
    // Bound to the pod, as the kubelet's tokens are.
    expect(JSON.stringify(claims)).toContain(`"name":"${name}"`);
    expect(report.env).toContain("POD_NAME");
    expect(report.env).not.toContain("NODE_OPTIONS");

    const tokenPath = Injected.tokenFile;
    const before = await pod.exec("fake", ["cat", tokenPath]);
    await pod.refreshTokens();
    const after = await pod.exec("fake", ["cat", tokenPath]);
    expect(after.stdout).not.toBe(before.stdout);
    await verifyToken(after.stdout);

    if (layout === "namespace") {
      expect(report.uid).toBe(65532);
      expect(report.rootWritable).toBe(false);
      // The app's mount is read-only, and the token is not in the app container.
      const write = await pod.exec("app", ["sh", "-c", "echo x > /mnt/secrets/intruder"]);
      expect(write.code).not.toBe(0);
      await expect(writeFile(pod.hostPath("app", "/mnt/secrets/intruder"), "x")).rejects.toThrow(
        /EROFS|read-only/,
      );
      const token = await pod.exec("app", ["cat", tokenPath]);
      expect(token.code).not.toBe(0);
      const asApp = await pod.exec("app", ["id", "-u"]);
      expect(asApp.stdout.trim()).toBe("1000");
      // The volume as a real kubelet mounts it (checked on kind): a sticky,
      // world-writable tmpfs root, with systemd's fs.protected_symlinks=1 in force.
      const root = await pod.exec("app", ["stat", "-c", "%a %U", "/mnt/secrets"]);
      expect(root.stdout.trim()).toBe("1777 root");
      expect((await readFile("/proc/sys/fs/protected_symlinks", "utf8")).trim()).toBe("1");
      // Nothing was made on the machine.
      expect(existsSync("/var/run/akv-injector")).toBe(false);
      expect(existsSync(Injected.tokenMountPath)).toBe(false);
    } else {
      expect(await readFile(pod.hostPath("app", "/mnt/secrets/report.json"), "utf8")).toContain(
        '"token"',
      );
    }

    const exits = await pod.stop();
    expect(exits.get("fake")).toEqual({ code: 0, signal: null });
    for (const pid of pids) expect(isGroupAlive(pid)).toBe(false);
    const mounts = await readFile("/proc/self/mounts", "utf8");
    expect(mounts).not.toContain("akv-kubelet");
  });
});

it("refuses a pod whose runAsNonRoot container would run as root", async () => {
  const pod = fakePod("fake-root");
  const sidecar = pod.spec?.initContainers?.[0];
  if (sidecar?.securityContext !== undefined) delete sidecar.securityContext.runAsUser;
  await core.createNamespacedPod({ namespace: "kubelet-check", body: pod });
  const kubelet = new TestKubelet({
    kubeConfig: cp.kubeConfig(),
    logDir: cp.logDir,
    images: { [FAKE_IMAGE]: { entrypoint: ["/nodejs/bin/node", "/app/fake.ts"] } },
    files: {},
  });
  await expect(kubelet.runPod("kubelet-check", "fake-root")).rejects.toThrow(/runAsNonRoot/);
});

it("lays out an fsGroup volume and a subPath folder as the kubelet does", async (context) => {
  if (available !== "namespace") {
    context.skip("mount namespaces are not available here (not root, or no unshare)");
  }
  const pod = fakePod("fake-fsgroup");
  if (pod.spec !== undefined) pod.spec.securityContext = { fsGroup: 2000 };
  const app = pod.spec?.containers[0];
  app?.volumeMounts?.push({ name: "akv-secrets", mountPath: "/mnt/sub", subPath: "later" });
  await core.createNamespacedPod({ namespace: "kubelet-check", body: pod });
  const kubelet = new TestKubelet({
    kubeConfig: cp.kubeConfig(),
    logDir: cp.logDir,
    layout: "namespace",
    images: { [FAKE_IMAGE]: { entrypoint: ["/nodejs/bin/node", "/app/fake.ts"] } },
    files: {
      "/nodejs/bin/node": process.execPath,
      "/app/fake.ts": join(REPO_ROOT, "e2e/kubelet/fake-container.ts"),
    },
  });
  await using running = await kubelet.runPod("kubelet-check", "fake-fsgroup");
  // The pod's fsGroup owns the volume, setgid; a missing subPath folder is
  // made when the container starts, root's, with the root's mode.
  const root = await running.exec("app", ["stat", "-c", "%a %U %g", "/mnt/secrets"]);
  expect(root.stdout.trim()).toBe("3777 root 2000");
  const sub = await running.exec("app", ["stat", "-c", "%a %U %g", "/mnt/sub"]);
  expect(sub.stdout.trim()).toBe("3777 root 2000");
  await running.stop();
});
