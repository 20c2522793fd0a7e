/**
 * The control plane itself: what the rest of the suite relies on, checked
 * against the real kube-apiserver. Tokens minted by TokenRequest verify
 * against the JWKS that an anonymous client reads through OIDC discovery
 * (what Entra ID does with an AKS issuer); anonymous clients get nothing
 * else; and no process survives the Node process that started it, even a
 * SIGKILLed one.
 */
import { CoreV1Api } from "@kubernetes/client-node";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { createLocalJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Injected } from "../common/names.ts";
import { startControlPlane, type ControlPlane } from "./cluster/control-plane.ts";
import { httpGet } from "./host/network.ts";
import { isGroupAlive, sweepOrphans } from "./host/processes.ts";
import { REPO_ROOT } from "./host/repo.ts";

let cp: ControlPlane;

beforeAll(async () => {
  cp = await startControlPlane({
    onProgress: (line) => {
      console.log(line);
    },
  });
  console.log(`control plane start timings (ms): ${JSON.stringify(cp.timings)}`);
});

afterAll(async () => {
  await cp.stop();
});

describe("control plane", () => {
  it("mints audience-bound tokens that verify against the anonymously readable JWKS", async () => {
    const core = cp.kubeConfig().makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: "cp-check" } } });
    await core.createNamespacedServiceAccount({
      namespace: "cp-check",
      body: { metadata: { name: "app" } },
    });
    const minted = await core.createNamespacedServiceAccountToken({
      name: "app",
      namespace: "cp-check",
      body: {
        spec: {
          audiences: [Injected.tokenAudience],
          expirationSeconds: Injected.tokenExpirationSeconds,
        },
      },
    });
    const token = minted.status?.token ?? "";
    expect(token).not.toBe("");

    // No client certificate, no token: only the CA, as the mock AAD has.
    const discovery = await httpGet(`${cp.issuer}/.well-known/openid-configuration`, {
      ca: cp.caPem,
    });
    expect(discovery.status).toBe(200);
    const config = JSON.parse(discovery.body) as { issuer: string; jwks_uri: string };
    expect(config.issuer).toBe(cp.issuer);
    expect(config.jwks_uri).toBe(`${cp.issuer}/openid/v1/jwks`);
    const jwks = await httpGet(config.jwks_uri, { ca: cp.caPem });
    expect(jwks.status).toBe(200);

    const { payload, protectedHeader } = await jwtVerify(
      token,
      createLocalJWKSet(JSON.parse(jwks.body) as Parameters<typeof createLocalJWKSet>[0]),
      { issuer: cp.issuer, audience: Injected.tokenAudience },
    );
    expect(protectedHeader.alg).toBe("RS256");
    expect(payload.sub).toBe("system:serviceaccount:cp-check:app");
    const lifetime = (payload.exp ?? 0) - (payload.iat ?? 0);
    expect(lifetime).toBe(Injected.tokenExpirationSeconds);
  });

  it("gives anonymous clients discovery and health only", async () => {
    const anonymous = async (path: string): Promise<number> =>
      (await httpGet(`${cp.server}${path}`, { ca: cp.caPem })).status;
    expect(await anonymous("/readyz")).toBe(200);
    expect(await anonymous("/openid/v1/jwks")).toBe(200);
    expect(await anonymous("/api/v1/namespaces")).toBe(401);
    expect(await anonymous("/version")).toBe(401);
    // The admin's client certificate works everywhere.
    const admin = await httpGet(`${cp.server}/api/v1/namespaces`, {
      ca: cp.caPem,
      cert: cp.adminCertPem,
      key: cp.adminKeyPem,
    });
    expect(admin.status).toBe(200);
  });

  it("leaves no process behind when the Node process that started it is SIGKILLed", async () => {
    const script = [
      `import { startControlPlane } from ${JSON.stringify(`${REPO_ROOT}/e2e/cluster/control-plane.ts`)};`,
      `const cp = await startControlPlane({ binaries: ${JSON.stringify(cp.binaries)} });`,
      "console.log(JSON.stringify({ etcd: cp.etcd.pid, apiserver: cp.apiserver.pid, dir: cp.dir }));",
      "setInterval(() => {}, 1000);",
    ].join("\n");
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.setEncoding("utf8");
    await new Promise<void>((ok, fail) => {
      child.stdout.on("data", (c: string) => {
        out += c;
        if (out.includes("\n")) ok();
      });
      child.once("exit", () => {
        fail(new Error("the child exited before the control plane was up"));
      });
    });
    const pids = JSON.parse(out) as { etcd: number; apiserver: number; dir: string };
    expect(isGroupAlive(pids.etcd)).toBe(true);
    expect(isGroupAlive(pids.apiserver)).toBe(true);
    const exited = once(child, "exit");
    child.kill("SIGKILL");
    await exited;
    const deadline = Date.now() + 10_000;
    while ((isGroupAlive(pids.etcd) || isGroupAlive(pids.apiserver)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(isGroupAlive(pids.etcd)).toBe(false);
    expect(isGroupAlive(pids.apiserver)).toBe(false);
    // Nothing could remove the killed run's folder; the next start sweeps it.
    expect(existsSync(pids.dir)).toBe(true);
    sweepOrphans(dirname(pids.dir), "akv-e2e-cp-");
    expect(existsSync(pids.dir)).toBe(false);
    expect(existsSync(cp.dir)).toBe(true);
  });
});
