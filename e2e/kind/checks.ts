/**
 * The e2e checks against a kind cluster (after `up.sh`): the shared
 * scenarios (`e2e/scenarios.ts`) and what only real nodes show, with
 * `kubectl` instead of the test kubelet and the mocks configured through
 * their admin API over `kubectl port-forward`. Each run starts from a fresh
 * workload namespace and a fresh identity, so it can run again on a kept
 * cluster. Prints one line per check and a closing `N passed, N failed`
 * line; exits non-zero when any failed.
 *
 * Usage: node e2e/kind/checks.ts OUT_DIR   (the folder setup.ts wrote)
 * Env: KUBECTL (pinned to the cluster), HELM, KIND_CONTEXT, AKV_KIND_CHART,
 * DOCKER (default `docker`); AKV_KIND_ONLY runs only the checks whose name
 * holds it.
 */
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ServiceAccountAnnotation } from "../../common/names.ts";
import { WORKLOAD, type ScenarioContext } from "../scenarios.ts";
import { runImageChecks } from "./checks/images.ts";
import { runInjectionChecks } from "./checks/injection.ts";
import { admin, apply, kubectlOk, portForward, type Admin } from "./checks/kubectl.ts";
import { runLifecycleChecks } from "./checks/lifecycle.ts";
import { runLogChecks } from "./checks/logs.ts";
import { CheckRunner, type HelmRelease, type KindKit } from "./checks/runner.ts";
import { runWebhookChecks } from "./checks/webhook.ts";
import { Kind, type KindState } from "./setup.ts";

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") throw new Error(`${name} is not set (run check.sh)`);
  return value;
}

/** A fresh workload namespace with the walkthrough's identity: SA annotated, federated, granted. */
async function setUpWorkload(state: KindState, aad: Admin, vault: Admin): Promise<void> {
  const ns = WORKLOAD.namespace;
  await kubectlOk([
    "delete",
    "namespace",
    ns,
    "--ignore-not-found",
    "--wait=true",
    "--timeout=180s",
  ]);
  await kubectlOk(["create", "namespace", ns]);
  const clientId = randomUUID();
  await apply({
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: {
      name: WORKLOAD.serviceAccount,
      namespace: ns,
      annotations: { [ServiceAccountAnnotation.clientId]: clientId },
    },
  });
  await apply({
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: WORKLOAD.otherServiceAccount, namespace: ns },
  });
  const discovery = JSON.parse(
    await kubectlOk(["get", "--raw", "/.well-known/openid-configuration"]),
  ) as { issuer: string };
  await aad("POST", "apps", { tenantId: state.tenantId, clientId });
  await aad("POST", "federated-credentials", {
    tenantId: state.tenantId,
    clientId,
    issuer: discovery.issuer,
    subject: `system:serviceaccount:${ns}:${WORKLOAD.serviceAccount}`,
  });
  await vault("POST", "roles", { principal: clientId });
  // Certificates and public keys (certificates/read, keys/read): the objects scenario.
  await vault("POST", "roles", { principal: clientId, role: "Key Vault Reader" });
}

async function main(): Promise<void> {
  const out = resolve(process.argv[2] ?? "e2e/kind/out");
  const state = JSON.parse(await readFile(join(out, "state.json"), "utf8")) as KindState;
  const ctx: ScenarioContext = {
    vaultUrl: `https://${Kind.vaultHost}`,
    secondVaultUrl: `https://${Kind.secondVaultHost}`,
    appImage: Kind.appImage,
  };
  const release: HelmRelease = {
    helm: requiredEnv("HELM"),
    chart: requiredEnv("AKV_KIND_CHART"),
    valuesFile: join(out, "values.yaml"),
    release: Kind.release,
    namespace: Kind.releaseNamespace,
    kubeContext: requiredEnv("KIND_CONTEXT"),
  };

  const runner = new CheckRunner(process.env.AKV_KIND_ONLY || undefined);
  await runImageChecks(runner.check);
  const forwards = await Promise.all([portForward("mock-aad"), portForward("mock-key-vault")]);
  try {
    const [aadForward, vaultForward] = forwards;
    const aad = admin(aadForward.port, state.mockCaPem);
    const vault = admin(vaultForward.port, state.mockCaPem);
    await setUpWorkload(state, aad, vault);
    const values: string[] = [];
    const kit: KindKit = {
      ctx,
      namespace: WORKLOAD.namespace,
      aad,
      vault,
      release,
      values,
      setObject: async (seed) => {
        if (seed.kind === "certificate")
          await vault("PUT", `certificates/${seed.name}`, {
            keyPem: seed.keyPem,
            certPems: seed.certPems,
          });
        else await vault("PUT", `keys/${seed.name}`, { pem: seed.pem });
      },
      setSecret: async (name, value, contentType) => {
        values.push(value);
        await vault("PUT", `secrets/${name}`, {
          value,
          ...(contentType === undefined ? {} : { contentType }),
        });
      },
    };
    await runInjectionChecks(kit, runner.check);
    await runLifecycleChecks(kit, runner.check);
    await runLogChecks(kit, runner.check);
    // Last: it uninstalls and reinstalls the release.
    await runWebhookChecks(kit, runner.check);
  } finally {
    for (const f of forwards) f.child.kill();
  }
  process.stdout.write(`${runner.summary()}\n`);
  process.exitCode = runner.failed === 0 ? 0 : 1;
}

await main();
