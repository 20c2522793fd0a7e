/**
 * The webhook as operators live with it: a replica going away while pods
 * are admitted (the other serves), and the release's lifecycle through Helm
 * (`helm upgrade` keeps admission working; `helm uninstall` leaves no
 * webhook configuration behind, so labelled pods are then created as they
 * are). The release is installed again at the end, as up.sh left it.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { Injected } from "../../../common/names.ts";
import { buildPod, eventually, WORKLOAD } from "../../scenarios.ts";
import { kubectl, kubectlOk, runCommand } from "./kubectl.ts";
import type { Check, HelmRelease, KindKit } from "./runner.ts";

/** How many admissions the replica check sends while a replica goes away. */
const ADMISSIONS = 40;

export async function runWebhookChecks(kit: KindKit, check: Check): Promise<void> {
  const { release } = kit;
  const selector = `app.kubernetes.io/instance=${release.release},app.kubernetes.io/component=webhook`;

  await check(
    "a webhook replica deleted during admission: the other serves every pod",
    async () => {
      const pods = (
        await kubectlOk(["get", "pods", "-n", release.namespace, "-l", selector, "-o", "name"])
      )
        .split("\n")
        .filter((p) => p !== "");
      if (pods.length < 2)
        throw new Error(`expected two webhook replicas, found ${pods.join(", ")}`);
      let victim: Promise<void> | undefined;
      const failures: string[] = [];
      for (let i = 0; i < ADMISSIONS; i++) {
        if (i === 5) {
          victim = kubectlOk([
            "delete",
            "-n",
            release.namespace,
            pods[0] ?? "",
            "--wait=true",
          ]).then(() => undefined);
        }
        const problem = await admitOnce(kit, `replica-${String(i)}`);
        if (problem !== undefined) failures.push(`#${String(i)}: ${problem}`);
      }
      await victim;
      await kubectlOk([
        "rollout",
        "status",
        "-n",
        release.namespace,
        `deploy/${release.release}`,
        "--timeout=180s",
      ]);
      if (failures.length > 0) throw new Error(failures.join("; "));
    },
  );

  await check(
    "helm upgrade: every pod admitted during the rollout, then the new setting",
    async () => {
      const upgrade = helm(release, [
        "upgrade",
        release.release,
        release.chart,
        "--reuse-values",
        "--set",
        "sidecar.refreshInterval=7m",
        "--wait",
        "--timeout",
        "5m",
      ]);
      const rollout = { running: true };
      const ended = (): void => {
        rollout.running = false;
      };
      upgrade.then(ended, ended);
      const failures: string[] = [];
      for (let i = 0; rollout.running; i++) {
        const problem = await admitOnce(kit, `upgrade-${String(i)}`);
        if (problem !== undefined) failures.push(`#${String(i)}: ${problem}`);
      }
      await upgrade;
      if (failures.length > 0) throw new Error(failures.join("; "));
      // Replicas of the old release answer until their preStop pause ends.
      await eventually(
        async () => {
          const problem = await admitOnce(kit, "after-upgrade", (pod) => {
            const sidecar = pod.spec?.initContainers?.[0];
            const spec = sidecar?.env?.find((e) => e.name === "AKV_INJECTOR_SPEC")?.value ?? "";
            return spec.includes('"refreshIntervalMs":420000')
              ? undefined
              : "the upgraded refresh interval is not in the spec";
          });
          if (problem !== undefined) throw new Error(problem);
        },
        60_000,
        1000,
      );
    },
  );

  await check("helm uninstall leaves no webhook configuration behind", async () => {
    await helm(release, ["uninstall", release.release, "--wait", "--timeout", "5m"]);
    const left = await kubectlOk([
      "get",
      "mutatingwebhookconfigurations",
      "-l",
      `app.kubernetes.io/instance=${release.release}`,
      "-o",
      "name",
    ]);
    if (left.trim() !== "") throw new Error(`left behind: ${left.trim()}`);
    // With failurePolicy Fail, a webhook configuration left behind would refuse this pod.
    const run = await kubectl(
      ["create", "--dry-run=server", "-o", "json", "-f", "-"],
      JSON.stringify(labelledPod(kit, "after-uninstall")),
    );
    if (run.code !== 0) throw new Error(`a labelled pod was refused: ${run.stderr.trim()}`);
    const pod = JSON.parse(run.stdout) as V1Pod;
    if (pod.spec?.initContainers !== undefined)
      throw new Error("a pod was injected after uninstall");
  });

  await check("helm install again: admission works as before", async () => {
    await helm(release, [
      "upgrade",
      "--install",
      release.release,
      release.chart,
      "--values",
      release.valuesFile,
      "--wait",
      "--timeout",
      "5m",
    ]);
    const problem = await admitOnceEventually(kit, "reinstalled");
    if (problem !== undefined) throw new Error(problem);
  });
}

/** A labelled pod that the webhook would inject (server-side dry run creates nothing). */
function labelledPod(kit: KindKit, name: string): V1Pod {
  return buildPod(
    {
      pod: name,
      serviceAccount: WORKLOAD.serviceAccount,
      annotations: {
        "akv-injector.io/vault": kit.ctx.vaultUrl,
        "akv-injector.io/secrets": "db-password",
      },
    },
    kit.ctx,
    kit.namespace,
  );
}

/** One admission by server-side dry run; what went wrong, or undefined when injected. */
async function admitOnce(
  kit: KindKit,
  name: string,
  inspect: (pod: V1Pod) => string | undefined = () => undefined,
): Promise<string | undefined> {
  const run = await kubectl(
    ["create", "--dry-run=server", "-o", "json", "-f", "-"],
    JSON.stringify(labelledPod(kit, name)),
  );
  if (run.code !== 0) return run.stderr.trim();
  const pod = JSON.parse(run.stdout) as V1Pod;
  if (pod.spec?.initContainers?.[0]?.name !== Injected.containerName) return "not injected";
  return inspect(pod);
}

/** A fresh install writes its caBundle at start: retry for a while. */
async function admitOnceEventually(kit: KindKit, name: string): Promise<string | undefined> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const problem = await admitOnce(kit, name);
    if (problem === undefined || Date.now() > deadline) return problem;
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function helm(release: HelmRelease, args: readonly string[]): Promise<void> {
  const run = await runCommand(release.helm, [
    ...args,
    "--kube-context",
    release.kubeContext,
    "--namespace",
    release.namespace,
  ]);
  if (run.code !== 0) throw new Error(`helm ${args.join(" ")}: ${run.stderr.trim()}`);
}
