/**
 * The webhook as its image runs it, for the benches: `dist/webhook.mjs`
 * (`npm run build` makes it) under the Node flags of Dockerfile.webhook's
 * ENTRYPOINT, in a memory group with the chart's limit, against a fake
 * apiserver holding the service accounts the requests name.
 */
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { access, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import {
  FakeApiServer,
  fakeKubeConfig,
  fakeServiceAccount,
} from "../../testing/webhook-apiserver.ts";
import { CLIENT_ID } from "../../testing/webhook.ts";
import { spawnInGroup, type MemoryGroup } from "./process.ts";

export const WEBHOOK_BUNDLE = new URL("../../dist/webhook.mjs", import.meta.url).pathname;

const DOCKERFILE = readFileSync(new URL("../../Dockerfile.webhook", import.meta.url), "utf8");

/** The flags Dockerfile.webhook's ENTRYPOINT gives node, read from it so the benches follow the image. */
export const IMAGE_NODE_FLAGS: readonly string[] = entrypointFlags(DOCKERFILE);

/** The environment the final stage of Dockerfile.webhook sets (`ENV NAME=value`). */
export const IMAGE_ENV: Readonly<Record<string, string>> = finalStageEnv(DOCKERFILE);

function entrypointFlags(dockerfile: string): string[] {
  const line = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile)?.[1];
  if (line === undefined) throw new Error("Dockerfile.webhook has no ENTRYPOINT in exec form");
  return (JSON.parse(line) as string[]).filter((arg) => arg.startsWith("--"));
}

function finalStageEnv(dockerfile: string): Record<string, string> {
  const finalStage = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
  const env: Record<string, string> = {};
  for (const [, name = "", value = ""] of finalStage.matchAll(/^ENV\s+(\w+)=("[^"]*"|\S+)\s*$/gm))
    env[name] = value.replace(/^"|"$/g, "");
  return env;
}

/** Fails early, naming the fix, when the bundle has not been built. */
export async function requireBundle(path = WEBHOOK_BUNDLE): Promise<void> {
  try {
    await access(path);
  } catch {
    throw new Error(`${path} is missing: run \`npm run build\` first`);
  }
}

/** A fake apiserver with these service accounts (`namespace/name`), each annotated with a client id. */
export async function startFakeApiServer(
  accounts: readonly string[],
): Promise<{ api: FakeApiServer; url: string }> {
  const api = new FakeApiServer();
  for (const account of accounts) {
    const [namespace = "", name = ""] = account.split("/");
    api.add(
      fakeServiceAccount(namespace, name, { "azure.workload.identity/client-id": CLIENT_ID }),
      false,
    );
  }
  return { api, url: await api.listen() };
}

/**
 * The webhook's environment for a serving certificate in `dir` (tls.crt,
 * tls.key) and a kubeconfig of the fake apiserver, written there.
 */
export async function imageWebhookEnv(
  dir: string,
  api: { api: FakeApiServer; url: string },
  port: number,
): Promise<NodeJS.ProcessEnv> {
  await writeFile(join(dir, "kubeconfig"), fakeKubeConfig(api.url, api.api.caPem).yaml);
  return {
    ...IMAGE_ENV,
    PATH: process.env.PATH ?? "",
    KUBECONFIG: join(dir, "kubeconfig"),
    AKV_INJECTOR_TLS_CERT_FILE: join(dir, "tls.crt"),
    AKV_INJECTOR_TLS_KEY_FILE: join(dir, "tls.key"),
    AKV_INJECTOR_PORT: String(port),
    AKV_INJECTOR_HEALTH_PORT: "0",
    AKV_INJECTOR_SIDECAR_IMAGE: "example/sidecar:1",
    AZURE_TENANT_ID: "72f988bf-86f1-41af-91ab-2d7cd011db47",
  };
}

/**
 * Starts the bundle as the image does, `prefix` (taskset, nice) before
 * node, and resolves once its log says it listens. Its stdout is a pipe this
 * process drains, as a container runtime drains a container's.
 */
export async function startImageWebhook(opts: {
  readonly group: MemoryGroup;
  readonly env: NodeJS.ProcessEnv;
  /** Default dist/webhook.mjs. */
  readonly entry?: string;
  readonly prefix?: readonly string[];
  /** Node's flags; default the image's. */
  readonly flags?: readonly string[];
}): Promise<ChildProcess> {
  const child = spawnInGroup(
    opts.group,
    [
      ...(opts.prefix ?? []),
      process.execPath,
      ...(opts.flags ?? IMAGE_NODE_FLAGS),
      opts.entry ?? WEBHOOK_BUNDLE,
    ],
    { env: opts.env },
  );
  // A bench that dies must not leave a webhook holding its port and core.
  const killOnExit = (): void => {
    child.kill("SIGKILL");
  };
  process.once("exit", killOnExit);
  child.once("exit", () => process.off("exit", killOnExit));
  const lines = createInterface({ input: child.stdout });
  const listening = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error("the webhook did not listen within 30 s"));
    }, 30_000);
    const firstLines: string[] = [];
    lines.on("line", (line) => {
      if (firstLines.length < 20) firstLines.push(line);
      if (!line.includes('"listening"')) return;
      clearTimeout(timer);
      resolve();
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the webhook exited with ${String(code)}: ${firstLines.join("\n")}`));
    });
  });
  await listening;
  return child;
}
