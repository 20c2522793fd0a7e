/**
 * The webhook process as the chart runs it: environment in, a kubeconfig for
 * a (loopback) apiserver, HTTPS admissions, readiness, and a clean exit on
 * SIGTERM.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createCertificateAuthority, createServingCertificate } from "../certs/index.ts";
import { FakeApiServer, fakeKubeConfig, fakeServiceAccount } from "../testing/webhook-apiserver.ts";
import { CLIENT_ID, testPod, testReview } from "../testing/webhook.ts";

const MAIN = new URL("main.ts", import.meta.url).pathname;

let dir: string;
let api: FakeApiServer;
let caPem: string;
let env: Record<string, string>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "akv-webhook-main-"));
  api = new FakeApiServer();
  api.add(
    fakeServiceAccount("team-a", "app", { "azure.workload.identity/client-id": CLIENT_ID }),
    false,
  );
  const server = await api.listen();
  await writeFile(join(dir, "kubeconfig"), fakeKubeConfig(server, api.caPem).yaml);
  const now = new Date();
  const ca = createCertificateAuthority({ commonName: "webhook-ca", now });
  const serving = createServingCertificate(ca, {
    dnsNames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    now,
  });
  caPem = ca.certPem;
  await writeFile(join(dir, "tls.crt"), serving.certPem);
  await writeFile(join(dir, "tls.key"), serving.keyPem);
  env = {
    PATH: process.env.PATH ?? "",
    KUBECONFIG: join(dir, "kubeconfig"),
    AKV_INJECTOR_TLS_CERT_FILE: join(dir, "tls.crt"),
    AKV_INJECTOR_TLS_KEY_FILE: join(dir, "tls.key"),
    AKV_INJECTOR_PORT: "0",
    AKV_INJECTOR_HEALTH_PORT: "0",
    AKV_INJECTOR_SIDECAR_IMAGE: "example/sidecar:1",
    AZURE_TENANT_ID: "72f988bf-86f1-41af-91ab-2d7cd011db47",
  };
});
afterAll(async () => {
  await api.close();
  await rm(dir, { recursive: true, force: true });
});

/** Starts the process and collects its JSON log lines. */
function start(extraEnv: Record<string, string> = {}) {
  const child = spawn(process.execPath, [MAIN], {
    env: { ...env, ...extraEnv },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = "";
  createInterface({ input: child.stdout }).on("line", (line) => {
    logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on("exit", (code) => {
      resolve(code);
    });
  });
  return { child, logs, exited, stderr: () => stderr };
}

function post(
  port: number,
  body: unknown,
): Promise<{ status: number; json: Record<string, unknown>; connection?: string }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path: "/mutate",
        method: "POST",
        ca: caPem,
        agent: false,
        headers: { "content-type": "application/json" },
      },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => {
          resolve({
            status: res.statusCode ?? 0,
            json: JSON.parse(text) as Record<string, unknown>,
            ...(res.headers.connection === undefined ? {} : { connection: res.headers.connection }),
          });
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

describe("akv-injector-webhook (process)", () => {
  let running: ChildProcess | undefined;
  afterAll(() => {
    running?.kill("SIGKILL");
  });

  it("serves admissions, becomes ready, drains on SIGTERM, and exits 0", async () => {
    // Long enough for two requests during the drain on a busy machine.
    const proc = start({ AKV_INJECTOR_SHUTDOWN_DELAY: "4s" });
    running = proc.child;
    await vi.waitFor(
      () => {
        expect(proc.logs.some((l) => l.msg === "listening")).toBe(true);
      },
      { timeout: 15_000 },
    );
    const { port, healthPort } = proc.logs.find((l) => l.msg === "listening") as unknown as {
      port: number;
      healthPort: number;
    };
    await vi.waitFor(
      async () => {
        expect((await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status).toBe(200);
      },
      { timeout: 10_000 },
    );
    const answer = await post(
      port,
      testReview(testPod({ "akv-injector.io/vault": "myvault", "akv-injector.io/secrets": "a" }), {
        uid: "proc-1",
      }),
    );
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({
      response: { uid: "proc-1", allowed: true, patchType: "JSONPatch" },
    });
    const metrics = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
    expect(metrics).toContain('akv_injector_admissions_total{outcome="injected"} 1');
    expect(metrics).toContain("process_resident_memory_bytes");

    proc.child.kill("SIGTERM");
    await vi.waitFor(() => {
      expect(proc.logs.find((l) => l.signal === "SIGTERM")).toMatchObject({
        shutdownDelayMs: 4000,
      });
    });
    // Draining: unready, still answering, and each answer closes its connection.
    const readyz = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
    expect(readyz.status).toBe(503);
    expect(await readyz.json()).toMatchObject({ reasons: ["shutting down"] });
    const during = await post(port, testReview(testPod(), { uid: "proc-2" }));
    expect(during).toMatchObject({ status: 200, connection: "close" });
    expect(proc.logs.some((l) => l.msg === "stopped")).toBe(false);

    expect(await proc.exited).toBe(0);
    expect(proc.logs.map((l) => l.msg)).toEqual(
      expect.arrayContaining(["service account cache synced", "admission", "stopped"]) as string[],
    );
    expect(proc.logs.find((l) => l.msg === "admission")).toMatchObject({
      uid: "proc-1",
      namespace: "team-a",
      pod: "app",
      outcome: "injected",
    });
  });

  it("stops at start-up naming a malformed setting", async () => {
    const proc = start({ AKV_INJECTOR_FILE_MODE: "0999", AKV_INJECTOR_SIDECAR_IMAGE: "" });
    expect(await proc.exited).toBe(1);
    expect(proc.stderr()).toContain("AKV_SETTINGS_INVALID");
    expect(proc.stderr()).toContain("AKV_INJECTOR_FILE_MODE: expected an octal file mode");
    expect(proc.stderr()).toContain("AKV_INJECTOR_SIDECAR_IMAGE: is required");
  });

  it("stops at start-up when the extra CA file cannot be read", async () => {
    const proc = start({ AKV_INJECTOR_SIDECAR_EXTRA_CA_FILE: join(dir, "missing.pem") });
    expect(await proc.exited).toBe(1);
    expect(proc.stderr()).toContain("AKV_INJECTOR_SIDECAR_EXTRA_CA_FILE: cannot read");
  });
});
