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
import { Kind } from "../setup.ts";
import { dryRunCreate, kubectl, kubectlOk, runCommand } from "./kubectl.ts";
import type { Check, HelmRelease, KindKit } from "./runner.ts";

/**
 * How many admissions are in flight at once while replicas go away: several,
 * so the apiserver holds several keep-alive connections to the leaving
 * replica, and one is likely busy at the moment it stops.
 */
const WORKERS = 4;
/** Admissions keep coming this long after a replica has gone. */
const AFTER_MS = 3000;

export async function runWebhookChecks(kit: KindKit, check: Check): Promise<void> {
  const { release } = kit;
  const selector = `app.kubernetes.io/instance=${release.release},app.kubernetes.io/component=webhook`;

  await check(
    "chart conventions on a node: an arbitrary uid, extra env and volume, metrics through the Service",
    async () => {
      const [pod] = await readyReplicas(release.namespace, selector);
      if (pod === undefined) throw new Error("no ready webhook replica");
      // Distroless has no shell; its node reports what the process sees.
      const probe = `const fs = require("node:fs"); fs.writeFileSync("/scratch/probe", "1");
console.log(JSON.stringify({ uid: process.getuid(), gid: process.getgid(), tz: process.env.TZ }));`;
      const seen = JSON.parse(
        await kubectlOk([
          "exec",
          "-n",
          release.namespace,
          pod,
          "-c",
          "webhook",
          "--",
          "/nodejs/bin/node",
          "-e",
          probe,
        ]),
      ) as { uid: number; gid: number; tz?: string };
      const want = { uid: Kind.arbitraryUid, gid: Kind.arbitraryUid, tz: "UTC" };
      if (JSON.stringify(seen) !== JSON.stringify(want))
        throw new Error(
          `the webhook runs with ${JSON.stringify(seen)}, want ${JSON.stringify(want)}`,
        );
      // The apiserver's service proxy reaches the Service's `metrics` port as Prometheus would.
      const metrics = await kubectlOk([
        "get",
        "--raw",
        `/api/v1/namespaces/${release.namespace}/services/http:${release.release}:metrics/proxy/metrics`,
      ]);
      if (!metrics.includes("akv_injector_admissions_total"))
        throw new Error(`no admission metrics through the Service: ${metrics.slice(0, 200)}`);
    },
  );

  await check(
    "webhook replicas deleted one by one during admission: the others serve every pod",
    async () => {
      const pods = await readyReplicas(release.namespace, selector);
      if (pods.length < 2)
        throw new Error(`expected two webhook replicas, found ${pods.join(", ")}`);
      // Every replica in turn: the apiserver keeps its connections to the
      // one it reached first, whichever that was, so that one must go too.
      const deleteEach = async (): Promise<void> => {
        for (const pod of pods) {
          await kubectlOk(["delete", "-n", release.namespace, `pod/${pod}`, "--wait=true"]);
          await eventually(
            async () => {
              const ready = await readyReplicas(release.namespace, selector);
              if (ready.length < pods.length)
                throw new Error(`${String(ready.length)} webhook replicas ready`);
            },
            180_000,
            1000,
          );
        }
      };
      await admitWhile(kit, "replica", deleteEach());
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
      await admitWhile(kit, "upgrade", upgrade);
      // Replicas of the old release answer until their shutdown delay ends.
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

/**
 * Admits pods from {@link WORKERS} loops until `during` settles and
 * {@link AFTER_MS} more have passed. Throws naming the first failed
 * admissions, what `during` threw, or when too few ran to mean anything.
 */
async function admitWhile(kit: KindKit, prefix: string, during: Promise<unknown>): Promise<void> {
  let until = Number.POSITIVE_INFINITY;
  const settled = (): void => {
    until = Date.now() + AFTER_MS;
  };
  during.then(settled, settled);
  const failures: string[] = [];
  let sent = 0;
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; Date.now() < until; i++) {
      sent++;
      const name = `${prefix}-${String(w)}-${String(i)}`;
      const problem = await admitOnce(kit, name);
      if (problem !== undefined) failures.push(`${name}: ${problem}`);
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
  await during;
  if (failures.length > 0) {
    const first = failures.slice(0, 5).join("; ");
    throw new Error(`${String(failures.length)} of ${String(sent)} admissions failed: ${first}`);
  }
  if (sent < 4 * WORKERS) throw new Error(`only ${String(sent)} admissions ran`);
}

/** The names of the webhook's ready pods that are not being deleted. */
async function readyReplicas(namespace: string, selector: string): Promise<string[]> {
  const list = JSON.parse(
    await kubectlOk(["get", "pods", "-n", namespace, "-l", selector, "-o", "json"]),
  ) as { items: V1Pod[] };
  return list.items
    .filter(
      (pod) =>
        pod.metadata?.deletionTimestamp === undefined &&
        pod.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true,
    )
    .map((pod) => pod.metadata?.name ?? "");
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
  const pod = await dryRunCreate(labelledPod(kit, name));
  if ("problem" in pod) return pod.problem;
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
