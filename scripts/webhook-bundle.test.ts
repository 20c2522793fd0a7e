/**
 * The webhook bundle as the image holds it: what its entry file carries and
 * what it leaves to chunks, and that the built process, started with a
 * kubeconfig (its YAML parser is a chunk), answers a review without loading
 * the Node modules the build keeps out of its start.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { build, type Metafile } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeServingCertificate } from "../bench/webhook/tls.ts";
import { FakeApiServer, fakeKubeConfig, fakeServiceAccount } from "../testing/webhook-apiserver.ts";
import { CLIENT_ID, TEST_ANNOTATIONS, testPod, testReview } from "../testing/webhook.ts";
import { webhookBuildOptions } from "./webhook-bundle.ts";

const dir = mkdtempSync(join(tmpdir(), "akv-webhook-bundle-"));
let metafile: Metafile;

beforeAll(async () => {
  const result = await build({ ...webhookBuildOptions(dir), logLevel: "error" });
  metafile = result.metafile ?? { inputs: {}, outputs: {} };
}, 60_000);
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The npm packages whose code an output file holds. */
function packagesIn(output: string): Set<string> {
  const inputs = Object.keys(metafile.outputs[output]?.inputs ?? {});
  return new Set(inputs.map((p) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(p)?.[1] ?? "ours"));
}

describe("the webhook bundle", () => {
  it("loads the process from a chunk, node-forge and the YAML parser from others, and leaves fastify's schema compilers out", () => {
    const outputs = Object.keys(metafile.outputs).filter((o) => o.endsWith(".mjs"));
    const entry = outputs.find((o) => o.endsWith("/webhook.mjs")) ?? "";
    // The entry only turns the compile cache on, then loads the process.
    expect(packagesIn(entry)).toEqual(new Set(["ours"]));
    const main = outputs.find((o) => /\/webhook-chunks\/main-[^/]+\.mjs$/.test(o)) ?? "";
    expect(packagesIn(main)).toContain("fastify");
    for (const absent of ["node-forge", "yaml", "ajv"]) {
      expect(packagesIn(main), absent).not.toContain(absent);
    }
    // fastify's error serializer needs two small files of fast-json-stringify's; its compiler is not in.
    const files = Object.keys(metafile.inputs);
    expect(files.filter((f) => f.includes("node_modules/fast-json-stringify/")).sort()).toEqual([
      "node_modules/fast-json-stringify/lib/serializer.js",
      "node_modules/fast-json-stringify/lib/v8.js",
    ]);
    const chunks = outputs.filter((o) => o.includes("/webhook-chunks/") && o !== main);
    const inChunks = new Set(chunks.flatMap((c) => [...packagesIn(c)]));
    expect(inChunks).toContain("node-forge");
    expect(inChunks).toContain("yaml");
    expect(inChunks).not.toContain("ajv");
  });

  it("starts from a kubeconfig and answers a review, without loading Node's undici, http2 or worker threads", async () => {
    const api = new FakeApiServer();
    api.add(
      fakeServiceAccount("team-a", "app", { "azure.workload.identity/client-id": CLIENT_ID }),
      false,
    );
    const apiUrl = await api.listen();
    const work = mkdtempSync(join(tmpdir(), "akv-webhook-run-"));
    writeFileSync(join(work, "kubeconfig"), fakeKubeConfig(apiUrl, api.caPem).yaml);
    const caPem = await writeServingCertificate(work, "bundle-ca");
    // Asked by a signal, the process says which Node modules it has loaded.
    const hook = join(work, "modules.cjs");
    writeFileSync(
      hook,
      'process.on("SIGUSR2", () => process.stderr.write("@@modules " + JSON.stringify(process.moduleLoadList) + "\\n"));\n',
    );
    const child = spawn(process.execPath, ["--require", hook, join(dir, "webhook.mjs")], {
      env: {
        PATH: process.env.PATH ?? "",
        KUBECONFIG: join(work, "kubeconfig"),
        AKV_INJECTOR_TLS_CERT_FILE: join(work, "tls.crt"),
        AKV_INJECTOR_TLS_KEY_FILE: join(work, "tls.key"),
        AKV_INJECTOR_PORT: "0",
        AKV_INJECTOR_HEALTH_PORT: "0",
        AKV_INJECTOR_SIDECAR_IMAGE: "example/sidecar:1",
        AZURE_TENANT_ID: "72f988bf-86f1-41af-91ab-2d7cd011db47",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
          const line = chunk.split("\n").find((l) => l.includes('"listening"'));
          if (line !== undefined) resolve((JSON.parse(line) as { port: number }).port);
        });
        child.once("exit", (code) => {
          reject(new Error(`the webhook exited with ${String(code)}: ${stderr}`));
        });
      });
      const body = JSON.stringify(testReview(testPod(TEST_ANNOTATIONS)));
      let answer: { status: number; text: string } = { status: 0, text: "" };
      for (let i = 0; i < 100 && answer.status !== 200; i++) {
        answer = await post(port, caPem, body);
        if (answer.status !== 200) await sleep(50);
      }
      expect(answer.status).toBe(200);
      expect(answer.text).toContain('"patchType":"JSONPatch"');
      child.kill("SIGUSR2");
      for (let i = 0; i < 100 && !stderr.includes("@@modules "); i++) await sleep(20);
      const loaded = (JSON.parse(/@@modules (.*)/.exec(stderr)?.[1] ?? "[]") as string[]).map((m) =>
        m.replace(/^NativeModule /, ""),
      );
      expect(loaded).toContain("https");
      // An ESM import of node:http would load undici (scripts/bundle-plugins.ts).
      const keptOut = ["internal/deps/undici/undici", "http2", "worker_threads"];
      expect(keptOut.filter((m) => loaded.includes(m))).toEqual([]);
    } finally {
      child.kill("SIGKILL");
      await api.close();
      rmSync(work, { recursive: true, force: true });
    }
  }, 60_000);
});

function post(port: number, ca: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const req = request(
      { host: "127.0.0.1", port, method: "POST", path: "/mutate", ca, agent: false },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, text });
        });
      },
    );
    req.setHeader("content-type", "application/json");
    req.on("error", () => {
      resolve({ status: 0, text: "" });
    });
    req.end(body);
  });
}
