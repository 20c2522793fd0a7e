/**
 * The one-command demo (`npm run demo`): Azure Workload Identity's walkthrough
 * with akv-injector instead of app code, on this machine. A real
 * kube-apiserver (built from source once, then reused), mock Entra ID and Key
 * Vault, the chart installed, the webhook running; then the walkthrough's
 * objects (a namespace, a service account with the identity's client id, a
 * federated credential, a vault with `my-secret`, a labelled pod), the pod
 * run by a test kubelet, and what its app container sees, before and after
 * the secret is rotated. Ctrl-C at any point stops everything it started.
 *
 * Flags: `--keep` keeps the run folder (logs, certificates) for a look.
 */
import { stringify } from "yaml";
import { Injected } from "../common/names.ts";
import { startEnvironment, type Environment } from "./cluster/environment.ts";
import type { RunningPod } from "./kubelet/kubelet.ts";
import { eventually } from "./scenarios.ts";

const NAMESPACE = "demo";
const SERVICE_ACCOUNT = "workload-identity-sa";
const POD = "quick-start";
const MOUNT = "/mnt/secrets";

const t0 = performance.now();
const elapsed = (): string => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
const say = (line = ""): void => {
  process.stdout.write(`${line}\n`);
};
const step = (title: string): void => {
  say();
  say(`==> ${title}  [${elapsed()}]`);
};

// A closed stdout (`npm run demo | head`, a terminal's Ctrl-C killing `tee`)
// must not stop the clean-up halfway.
process.stdout.on("error", () => undefined);

let env: Environment | undefined;
let stopping: Promise<void> | undefined;

/** Stops everything once; every exit path goes through here. */
function shutdown(): Promise<void> {
  stopping ??= (async () => {
    if (env !== undefined) {
      say(`stopping everything the demo started…`);
      await env.stop();
      say("stopped: nothing the demo started is running");
    }
  })();
  return stopping;
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    if (stopping !== undefined) {
      // A second Ctrl-C: the children die with us anyway (parent-death
      // signal); the next run sweeps the run folder.
      process.exit(130);
    }
    say();
    say(`${signal}: interrupted`);
    void shutdown().finally(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  say("akv-injector demo: Key Vault secrets as files in a pod, no app code");
  step("control plane (the first run builds kube-apiserver, etcd and helm from source: minutes)");
  env = await startEnvironment({
    keepDir: process.argv.includes("--keep"),
    onProgress: (line) => {
      say(`    ${line}`);
    },
  });
  const { aad, vault, cp } = env;
  say(`    run folder: ${cp.dir}`);
  say(`    service-account issuer: ${cp.issuer} (OIDC discovery open to anonymous readers)`);
  say(`    mock Entra ID: ${aad.url}   mock Key Vault: ${vault.url}`);
  say(`    webhook: ${env.webhookUrl} (the chart's Deployment, run as a pod)`);

  step("the walkthrough's objects");
  const workload = await env.addWorkload({ namespace: NAMESPACE, serviceAccount: SERVICE_ACCOUNT });
  say(`    namespace ${NAMESPACE}, service account ${SERVICE_ACCOUNT}`);
  say(`      annotated azure.workload.identity/client-id: ${workload.clientId}`);
  say(`    federated credential on that identity in tenant ${env.tenantId}:`);
  say(`      issuer   ${cp.issuer}`);
  say(`      subject  ${workload.subject}`);
  say(`      audience ${Injected.tokenAudience}`);
  vault.setSecret("my-secret", "Hello!");
  say(
    `    vault ${vault.url} with secret my-secret = "Hello!"; role Key Vault Secrets User for the identity`,
  );

  step(`a pod labelled akv-injector.io/inject=true, created through the API`);
  const manifest = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: POD,
      namespace: NAMESPACE,
      labels: { "akv-injector.io/inject": "true" },
      annotations: {
        "akv-injector.io/vault": vault.url,
        "akv-injector.io/secrets": "my-secret",
        "akv-injector.io/refresh-interval": "2s",
      },
    },
    spec: {
      serviceAccountName: SERVICE_ACCOUNT,
      containers: [
        {
          name: "app",
          image: "busybox:1.37",
          command: ["sleep", "infinity"],
          securityContext: { runAsUser: 1000, runAsNonRoot: true },
        },
      ],
    },
  };
  say(indent(stringify(manifest)));
  const created = await env.api("POST", `/api/v1/namespaces/${NAMESPACE}/pods`, manifest);
  if (created.status !== 201)
    throw new Error(`the apiserver refused the pod: ${JSON.stringify(created.body)}`);
  for (const warning of created.warnings) say(`    Warning: ${warning}`);

  step("the pod spec the webhook produced (as stored)");
  say(indent(stringify(injectedView(created.body))));

  step(
    "the test kubelet runs the pod: token from TokenRequest, tmpfs volumes, the sidecar for real",
  );
  const pod = await env.runPod(NAMESPACE, POD);
  say(
    `    sidecar started; its startup probe passed after ${pod.startMs} ms (${pod.layout} layout)`,
  );
  await showAppView(pod);

  step('rotation: my-secret = "Hello again!" in the vault; the sidecar refreshes every 2 s');
  vault.setSecret("my-secret", "Hello again!");
  await eventually(async () => {
    const out = await pod.exec("app", ["cat", `${MOUNT}/my-secret`]);
    if (out.stdout !== "Hello again!") throw new Error("not yet");
  }, 30_000);
  await showAppView(pod);

  step("done");
  say(
    `    the chart, the webhook and the sidecar did the walkthrough's work: the app reads a file.`,
  );
  say(`    total ${elapsed()}; control plane ${cp.timings.total} ms`);
}

/** What `kubectl exec quick-start -c app -- …` shows. */
async function showAppView(pod: RunningPod): Promise<void> {
  say(`    $ kubectl exec ${POD} -c app -- ls -la ${MOUNT}`);
  say(indent((await pod.exec("app", ["ls", "-la", MOUNT])).stdout, 6));
  say(`    $ kubectl exec ${POD} -c app -- cat ${MOUNT}/my-secret`);
  say(indent((await pod.exec("app", ["cat", `${MOUNT}/my-secret`])).stdout, 6));
}

/**
 * The stored pod without the apiserver's bookkeeping, so the injection stands
 * out; the CA bundle the sidecar gets is shortened to what it is.
 */
function injectedView(body: unknown): unknown {
  const pod = body as {
    metadata: Record<string, unknown>;
    spec: { initContainers?: { env?: { name: string; value?: string }[] }[] } & Record<
      string,
      unknown
    >;
  };
  const { name, namespace, labels, annotations } = pod.metadata;
  const { initContainers, containers, volumes, serviceAccountName } = pod.spec;
  for (const container of initContainers ?? []) {
    for (const variable of container.env ?? []) {
      const count = variable.value?.match(/BEGIN CERTIFICATE/g)?.length ?? 0;
      if (count > 0) {
        variable.value = `<PEM, ${count} certificate(s): the chart's sidecar.extraCaCerts>`;
      }
    }
  }
  return {
    metadata: { name, namespace, labels, annotations },
    spec: { serviceAccountName, initContainers, containers, volumes },
  };
}

function indent(text: string, spaces = 4): string {
  const pad = " ".repeat(spaces);
  return text
    .trimEnd()
    .split("\n")
    .map((l) => `${pad}${l}`)
    .join("\n");
}

try {
  await main();
  await shutdown();
  process.exitCode = 0;
} catch (error) {
  // After Ctrl-C, what was in flight fails as things stop: not news.
  if (stopping === undefined) {
    process.stderr.write(
      `\ndemo failed: ${error instanceof Error ? error.message : String(error)}\n`,
    );
  }
  await shutdown();
  process.exitCode = 1;
}
