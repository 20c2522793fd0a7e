/**
 * What only a real kubelet shows about the injected containers' lives: the
 * native sidecar's startup probe holding the app back until the first sync,
 * Jobs that complete in both modes, and a deleted pod's sidecar ending
 * promptly on SIGTERM.
 */
import { createHash } from "node:crypto";
import type { V1Pod } from "@kubernetes/client-node";
import { Injected, INJECT_LABEL } from "../../../common/names.ts";
import { buildPod, freshValue, WORKLOAD } from "../../scenarios.ts";
import { apply, getJson, kubectlOk, waitReady } from "./kubectl.ts";
import type { Check, KindKit } from "./runner.ts";

/** How long the mock vault holds the first authenticated read in the ordering check. */
const FIRST_READ_DELAY_MS = 5000;

export async function runLifecycleChecks(kit: KindKit, check: Check): Promise<void> {
  const { namespace: ns } = kit;

  await check(
    "native sidecar: the app starts only after the first sync (startup probe)",
    async () => {
      const secret = { name: "order-secret", value: freshValue("order") };
      await kit.setSecret(secret.name, secret.value);
      // Hold the sidecar's first authenticated read, so an app started early would find nothing.
      await kit.vault("POST", "faults", {
        action: { type: "latency", ms: FIRST_READ_DELAY_MS },
        match: { secret: secret.name, authenticated: true },
        times: 1,
      });
      const pod = podReading(kit, "ordering", secret.name);
      withAppScript(
        pod,
        `if [ -s /mnt/secrets/${secret.name} ]; then echo first-read-ok; else echo first-read-missing; fi; exec sleep 3600`,
      );
      await apply(pod);
      await waitReady(ns, "ordering");
      const logs = await kubectlOk(["logs", "-n", ns, "ordering", "-c", "app"]);
      if (!logs.includes("first-read-ok"))
        throw new Error(`the app started before its files: ${logs.trim()}`);
      const stored = await getJson<V1Pod>(["pod", "-n", ns, "ordering"]);
      const sidecar = stored.status?.initContainerStatuses?.find(
        (s) => s.name === Injected.containerName,
      );
      const app = stored.status?.containerStatuses?.find((s) => s.name === "app");
      const sidecarStart = sidecar?.state?.running?.startedAt;
      const appStart = app?.state?.running?.startedAt;
      if (sidecar?.started !== true || sidecarStart === undefined || appStart === undefined)
        throw new Error(`unexpected statuses: ${JSON.stringify({ sidecar, app })}`);
      // startedAt has whole seconds: allow one.
      const gap = new Date(appStart).getTime() - new Date(sidecarStart).getTime();
      if (gap < FIRST_READ_DELAY_MS - 1000)
        throw new Error(
          `the app started ${String(gap)} ms after the sidecar, before its first sync could end`,
        );
    },
  );

  for (const mode of ["init", "sidecar"] as const) {
    await check(`a Job in ${mode} mode reads its secret and completes`, async () => {
      const secret = { name: `job-${mode}`, value: freshValue(`job-${mode}`) };
      await kit.setSecret(secret.name, secret.value);
      const name = `reader-${mode}`;
      await kubectlOk(["delete", "job", "-n", ns, name, "--ignore-not-found", "--wait=true"]);
      const pod = podReading(kit, name, secret.name, { "akv-injector.io/mode": mode });
      // The Job compares a digest, so the value itself is never in the spec or a log.
      const digest = createHash("sha256").update(secret.value).digest("hex");
      if (pod.spec !== undefined) pod.spec.restartPolicy = "Never";
      withAppScript(
        pod,
        `[ "$(sha256sum < /mnt/secrets/${secret.name} | cut -d' ' -f1)" = ${digest} ]`,
      );
      await apply({
        apiVersion: "batch/v1",
        kind: "Job",
        metadata: { name, namespace: ns },
        spec: {
          backoffLimit: 0,
          ttlSecondsAfterFinished: 600,
          template: {
            metadata: {
              labels: { [INJECT_LABEL]: "true" },
              annotations: pod.metadata?.annotations,
            },
            spec: pod.spec,
          },
        },
      });
      await kubectlOk([
        "wait",
        "-n",
        ns,
        `job/${name}`,
        "--for=condition=Complete",
        "--timeout=180s",
      ]);
    });
  }

  await check("a deleted pod ends promptly: the sidecar exits on SIGTERM", async () => {
    const secret = { name: "stop-secret", value: freshValue("stop") };
    await kit.setSecret(secret.name, secret.value);
    const pod = podReading(kit, "stopping", secret.name);
    // A sidecar that ignored SIGTERM would hold the pod for the whole grace period.
    const grace = 60;
    if (pod.spec !== undefined) pod.spec.terminationGracePeriodSeconds = grace;
    withAppScript(pod, "trap 'exit 0' TERM; sleep 3600 & wait");
    await apply(pod);
    await waitReady(ns, "stopping");
    const started = Date.now();
    await kubectlOk(["delete", "pod", "-n", ns, "stopping", "--wait=true", "--timeout=90s"]);
    const took = (Date.now() - started) / 1000;
    if (took > 20)
      throw new Error(`deleting the pod took ${took.toFixed(1)} s (grace ${String(grace)} s)`);
  });
}

/** A labelled pod of the workload whose files hold one secret. */
function podReading(
  kit: KindKit,
  name: string,
  secret: string,
  annotations: Readonly<Record<string, string>> = {},
): V1Pod {
  return buildPod(
    {
      pod: name,
      serviceAccount: WORKLOAD.serviceAccount,
      annotations: {
        "akv-injector.io/vault": kit.ctx.vaultUrl,
        "akv-injector.io/secrets": secret,
        ...annotations,
      },
    },
    kit.ctx,
    kit.namespace,
  );
}

/** Replaces the app container's `sleep` with a shell script. */
function withAppScript(pod: V1Pod, script: string): void {
  const app = pod.spec?.containers[0];
  if (app !== undefined) app.command = ["sh", "-c", script];
}
