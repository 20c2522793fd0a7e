/**
 * The e2e checks against a kind cluster (after `up.sh`): the same scenarios
 * as the local suite (`e2e/scenarios.ts`), with `kubectl` instead of the
 * test kubelet, and the mocks configured through their admin API over
 * `kubectl port-forward`. Prints one line per check and a closing
 * `N passed, N failed` line; exits non-zero when any failed.
 *
 * Usage: node e2e/kind/checks.ts OUT_DIR   (the folder setup.ts wrote)
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { request } from "node:https";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { Injected, ServiceAccountAnnotation } from "../../common/names.ts";
import {
  buildPod,
  checkAppView,
  eventually,
  findLeaks,
  freshValue,
  injectionScenarios,
  refusalScenarios,
  WORKLOAD,
  type PodAccess,
  type ScenarioContext,
} from "../scenarios.ts";
import { Kind, type KindState } from "./setup.ts";

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs kubectl (KUBECTL overrides the binary) with optional stdin. */
function kubectl(args: readonly string[], input?: string): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.env.KUBECTL ?? "kubectl", args, {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.once("error", reject);
    child.once("close", (code) => {
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

async function kubectlOk(args: readonly string[], input?: string): Promise<string> {
  const run = await kubectl(args, input);
  if (run.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${run.stderr.trim()}`);
  return run.stdout;
}

/** `kubectl exec` as a {@link PodAccess}. */
function execAccess(namespace: string, pod: string): PodAccess {
  return {
    exec: (container, argv) =>
      kubectl(["exec", "-n", namespace, pod, "-c", container, "--", ...argv]),
  };
}

/** A port-forward to a mock's Service; resolves with the local port once it listens. */
async function portForward(service: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(
    process.env.KUBECTL ?? "kubectl",
    ["port-forward", "-n", Kind.mocksNamespace, `svc/${service}`, ":443"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const port = await new Promise<number>((resolvePromise, reject) => {
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      out += c;
      const match = /127\.0\.0\.1:(\d+)/.exec(out);
      if (match?.[1] !== undefined) resolvePromise(Number(match[1]));
    });
    child.once("exit", (code) => {
      reject(new Error(`port-forward to ${service} exited (${String(code)})`));
    });
  });
  return { port, child };
}

/** The mocks' admin API over the port-forward. */
function admin(port: number, caPem: string) {
  return (method: string, path: string, body?: unknown): Promise<unknown> =>
    new Promise((resolvePromise, reject) => {
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
            else resolvePromise(text === "" ? undefined : (JSON.parse(text) as unknown));
          });
        },
      );
      req.once("error", reject);
      req.end(payload);
    });
}

async function main(): Promise<void> {
  const out = resolve(process.argv[2] ?? "e2e/kind/out");
  const state = JSON.parse(await readFile(join(out, "state.json"), "utf8")) as KindState;
  const ctx: ScenarioContext = { vaultUrl: `https://${Kind.vaultHost}`, appImage: Kind.appImage };
  const discovery = JSON.parse(
    await kubectlOk(["get", "--raw", "/.well-known/openid-configuration"]),
  ) as { issuer: string };

  const [aadForward, vaultForward] = await Promise.all([
    portForward("mock-aad"),
    portForward("mock-key-vault"),
  ]);
  const forwards = [aadForward, vaultForward];
  const aad = admin(aadForward.port, state.mockCaPem);
  const vault = admin(vaultForward.port, state.mockCaPem);

  let passed = 0;
  let failed = 0;
  const values: string[] = [];
  const check = async (name: string, body: () => Promise<void>): Promise<void> => {
    try {
      await body();
      passed++;
      process.stdout.write(`ok   ${name}\n`);
    } catch (error) {
      failed++;
      process.stdout.write(
        `FAIL ${name}: ${error instanceof Error ? error.message : String(error)}\n`,
      );
    }
  };

  try {
    // The workload identity, as the walkthrough sets it up.
    const clientId = randomUUID();
    const ns = WORKLOAD.namespace;
    await kubectlOk(["create", "namespace", ns]);
    await kubectlOk(
      ["apply", "-f", "-"],
      stringify({
        apiVersion: "v1",
        kind: "ServiceAccount",
        metadata: {
          name: WORKLOAD.serviceAccount,
          namespace: ns,
          annotations: { [ServiceAccountAnnotation.clientId]: clientId },
        },
      }) +
        "---\n" +
        stringify({
          apiVersion: "v1",
          kind: "ServiceAccount",
          metadata: { name: WORKLOAD.otherServiceAccount, namespace: ns },
        }),
    );
    await aad("POST", "apps", { tenantId: state.tenantId, clientId });
    await aad("POST", "federated-credentials", {
      tenantId: state.tenantId,
      clientId,
      issuer: discovery.issuer,
      subject: `system:serviceaccount:${ns}:${WORKLOAD.serviceAccount}`,
    });
    await vault("POST", "roles", { principal: clientId });
    const setSecret = async (name: string, value: string, contentType?: string): Promise<void> => {
      values.push(value);
      await vault("PUT", `secrets/${name}`, {
        value,
        ...(contentType === undefined ? {} : { contentType }),
      });
    };

    for (const scenario of injectionScenarios(ctx)) {
      await check(scenario.name, async () => {
        for (const s of scenario.secrets) await setSecret(s.name, s.value, s.contentType);
        await kubectlOk(["apply", "-f", "-"], JSON.stringify(buildPod(scenario, ctx)));
        await kubectlOk([
          "wait",
          "-n",
          ns,
          `pod/${scenario.pod}`,
          "--for=condition=Ready",
          "--timeout=180s",
        ]);
        await checkAppView(execAccess(ns, scenario.pod), scenario);
      });
    }

    for (const scenario of refusalScenarios(ctx)) {
      await check(`refused: ${scenario.name}`, async () => {
        const run = await kubectl(["create", "-f", "-"], JSON.stringify(buildPod(scenario, ctx)));
        if (run.code === 0) throw new Error("the pod was admitted");
        for (const words of scenario.message) {
          if (!run.stderr.includes(words))
            throw new Error(`message lacks '${words}': ${run.stderr.trim()}`);
        }
      });
    }

    await check("pods without the label are left alone", async () => {
      const pod = buildPod(
        { pod: "unlabelled", serviceAccount: WORKLOAD.serviceAccount, annotations: {} },
        ctx,
      );
      delete pod.metadata?.labels?.["akv-injector.io/inject"];
      const stored = JSON.parse(
        await kubectlOk(["create", "-o", "json", "-f", "-"], JSON.stringify(pod)),
      ) as { spec: { initContainers?: unknown[] } };
      if (stored.spec.initContainers !== undefined)
        throw new Error("an unlabelled pod was injected");
    });

    await check("rotation reaches every file of a pod together", async () => {
      await setSecret("rot-a", freshValue("a1"));
      await setSecret("rot-b", freshValue("b1"));
      const pod = buildPod(
        {
          pod: "rotate",
          serviceAccount: WORKLOAD.serviceAccount,
          annotations: {
            "akv-injector.io/vault": ctx.vaultUrl,
            "akv-injector.io/secrets": "rot-a,rot-b",
            "akv-injector.io/refresh-interval": "5s",
          },
        },
        ctx,
      );
      await kubectlOk(["apply", "-f", "-"], JSON.stringify(pod));
      await kubectlOk(["wait", "-n", ns, "pod/rotate", "--for=condition=Ready", "--timeout=180s"]);
      const a2 = freshValue("a2");
      const b2 = freshValue("b2");
      await setSecret("rot-a", a2);
      await setSecret("rot-b", b2);
      const access = execAccess(ns, "rotate");
      await eventually(
        async () => {
          // One `..data` target read in one exec: both files of one generation.
          const run = await access.exec("app", [
            "sh",
            "-c",
            'd=/mnt/secrets/$(readlink /mnt/secrets/..data); cat "$d/rot-a"; echo; cat "$d/rot-b"',
          ]);
          const [a, b] = run.stdout.split("\n");
          if (a === a2 && b === b2) return;
          if ((a === a2) !== (b === b2)) throw new Error("a mixed generation was visible");
          throw new Error("not rotated yet");
        },
        60_000,
        1000,
      );
    });

    await check("logs hold no secret value and no token", async () => {
      const logs = new Map<string, string>();
      const pods = JSON.parse(await kubectlOk(["get", "pods", "-A", "-o", "json"])) as {
        items: {
          metadata: { name: string; namespace: string };
          spec: { containers: { name: string }[]; initContainers?: { name: string }[] };
        }[];
      };
      for (const pod of pods.items) {
        const { name, namespace } = pod.metadata;
        if (![ns, Kind.releaseNamespace, Kind.mocksNamespace].includes(namespace)) continue;
        for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) {
          const run = await kubectl(["logs", "-n", namespace, name, "-c", c.name]);
          logs.set(`${namespace}/${name}/${c.name}`, run.stdout);
        }
      }
      if (![...logs.keys()].some((k) => k.endsWith(`/${Injected.containerName}`))) {
        throw new Error("no sidecar logs found");
      }
      const leaks = findLeaks(logs, values);
      if (leaks.length > 0) throw new Error(leaks.join("; "));
    });
  } finally {
    for (const f of forwards) f.child.kill();
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  process.exitCode = failed === 0 ? 0 : 1;
}

await main();
