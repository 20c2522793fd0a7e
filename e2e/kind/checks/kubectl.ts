/**
 * The kind checks' reach into the cluster: `kubectl` (the `KUBECTL` env names
 * the binary, pinned to the cluster's context by check.sh), `kubectl exec` as
 * a {@link PodAccess}, port-forwards to the mocks and their admin API, and
 * server-side dry runs through the API for checks that send many.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { request } from "node:https";
import { ApiException, CoreV1Api, KubeConfig, type V1Pod } from "@kubernetes/client-node";
import type { PodAccess } from "../../scenarios.ts";
import { Kind } from "../setup.ts";

/** What one command printed and how it ended. */
export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command with optional stdin; never throws for a non-zero exit. */
export function runCommand(command: string, args: readonly string[], input?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.once("error", reject);
    child.once("close", (code) => {
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** Runs kubectl with optional stdin. */
export function kubectl(args: readonly string[], input?: string): Promise<Run> {
  return runCommand(process.env.KUBECTL ?? "kubectl", args, input);
}

/** Runs kubectl; throws with its stderr when it fails. */
export async function kubectlOk(args: readonly string[], input?: string): Promise<string> {
  const run = await kubectl(args, input);
  if (run.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${run.stderr.trim()}`);
  return run.stdout;
}

/** `kubectl get -o json` of one object, parsed. */
export async function getJson<T>(args: readonly string[]): Promise<T> {
  return JSON.parse(await kubectlOk(["get", ...args, "-o", "json"])) as T;
}

/** Applies one object (JSON is YAML). */
export async function apply(object: unknown): Promise<void> {
  await kubectlOk(["apply", "-f", "-"], JSON.stringify(object));
}

/** Waits for a pod's Ready condition. */
export async function waitReady(namespace: string, pod: string, timeout = "180s"): Promise<void> {
  await kubectlOk([
    "wait",
    "-n",
    namespace,
    `pod/${pod}`,
    "--for=condition=Ready",
    `--timeout=${timeout}`,
  ]);
}

let core: CoreV1Api | undefined;

/**
 * Creates a pod by server-side dry run (admission runs, nothing is stored)
 * through the API: the admitted pod, or what the apiserver said. A kubectl
 * process per pod would hold the checks that send many to a few a second.
 */
export async function dryRunCreate(pod: V1Pod): Promise<V1Pod | { readonly problem: string }> {
  if (core === undefined) {
    const config = new KubeConfig();
    config.loadFromDefault();
    config.setCurrentContext(process.env.KIND_CONTEXT ?? config.getCurrentContext());
    core = config.makeApiClient(CoreV1Api);
  }
  try {
    return await core.createNamespacedPod({
      namespace: pod.metadata?.namespace ?? "default",
      body: pod,
      dryRun: "All",
    });
  } catch (error) {
    if (!(error instanceof ApiException)) return { problem: String(error) };
    const status = JSON.parse(String(error.body)) as { message?: string };
    return { problem: `HTTP ${String(error.code)}: ${status.message ?? String(error.body)}` };
  }
}

/** `kubectl exec` as a {@link PodAccess}. */
export function execAccess(namespace: string, pod: string): PodAccess {
  return {
    exec: (container, argv) =>
      kubectl(["exec", "-n", namespace, pod, "-c", container, "--", ...argv]),
  };
}

/** A port-forward to a mock's Service; resolves with the local port once it listens. */
export async function portForward(service: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(
    process.env.KUBECTL ?? "kubectl",
    ["port-forward", "-n", Kind.mocksNamespace, `svc/${service}`, ":443"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      out += c;
      const match = /127\.0\.0\.1:(\d+)/.exec(out);
      if (match?.[1] !== undefined) resolve(Number(match[1]));
    });
    child.once("exit", (code) => {
      reject(new Error(`port-forward to ${service} exited (${String(code)})`));
    });
  });
  return { port, child };
}

/** A mock's admin API call: method, path under `/_mock/`, JSON body. */
export type Admin = (method: string, path: string, body?: unknown) => Promise<unknown>;

/** The mocks' admin API over a port-forward. */
export function admin(port: number, caPem: string): Admin {
  return (method, path, body) =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? "" : JSON.stringify(body);
      const req = request(
        {
          host: "127.0.0.1",
          port,
          method,
          path: `/_mock/${path}`,
          ca: caPem,
          headers: {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(payload),
          },
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (text += c));
          res.on("end", () => {
            if ((res.statusCode ?? 500) >= 300) reject(new Error(`${method} ${path}: ${text}`));
            else resolve(text === "" ? undefined : (JSON.parse(text) as unknown));
          });
        },
      );
      req.once("error", reject);
      req.end(payload);
    });
}
