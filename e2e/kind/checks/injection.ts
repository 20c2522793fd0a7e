/**
 * The shared scenarios (`e2e/scenarios.ts`) on real nodes: every injected
 * pod's files read through `kubectl exec` as the app's own user, every
 * refusal as `kubectl` shows it, unlabelled pods untouched, the token volume
 * in the sidecar alone, and a rotation seen through the app's mount.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { Injected, INJECT_LABEL } from "../../../common/names.ts";
import {
  buildPod,
  checkAppView,
  eventually,
  freshValue,
  injectionScenarios,
  checkNotifiedOnce,
  NOTIFIED_FILE,
  notifyScenarios,
  refusalScenarios,
  WORKLOAD,
} from "../../scenarios.ts";
import { apply, execAccess, getJson, kubectl, kubectlOk, waitReady } from "./kubectl.ts";
import type { Check, KindKit } from "./runner.ts";

export async function runInjectionChecks(kit: KindKit, check: Check): Promise<void> {
  const { ctx, namespace: ns } = kit;
  for (const scenario of injectionScenarios(ctx)) {
    await check(scenario.name, async () => {
      for (const s of scenario.secrets) await kit.setSecret(s.name, s.value, s.contentType);
      for (const o of scenario.objects ?? []) await kit.setObject(o);
      await apply(buildPod(scenario, ctx, ns));
      await waitReady(ns, scenario.pod);
      await checkAppView(execAccess(ns, scenario.pod), scenario);
    });
  }

  for (const scenario of refusalScenarios(ctx)) {
    await check(`refused: ${scenario.name}`, async () => {
      const run = await kubectl(["create", "-f", "-"], JSON.stringify(buildPod(scenario, ctx, ns)));
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
      ns,
    );
    delete pod.metadata?.labels?.[INJECT_LABEL];
    const stored = JSON.parse(
      await kubectlOk(["create", "--dry-run=server", "-o", "json", "-f", "-"], JSON.stringify(pod)),
    ) as V1Pod;
    if (stored.spec?.initContainers !== undefined)
      throw new Error("an unlabelled pod was injected");
  });

  await check("the token volume is mounted in the sidecar alone", async () => {
    const pod = await getJson<V1Pod>(["pod", "-n", ns, "basic"]);
    const all = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
    const withToken = all
      .filter((c) => c.volumeMounts?.some((m) => m.name === Injected.tokenVolume) === true)
      .map((c) => c.name);
    if (withToken.join() !== Injected.containerName)
      throw new Error(`containers mounting ${Injected.tokenVolume}: ${withToken.join(", ")}`);
    const seen = await execAccess(ns, "basic").exec("app", ["ls", "/var/run/secrets"]);
    if (seen.stdout.includes("akv-injector"))
      throw new Error(`the app sees /var/run/secrets/akv-injector: ${seen.stdout.trim()}`);
  });

  await check(
    "sidecar metrics: the app scrapes the annotated port on the pod's network",
    async () => {
      await kit.setSecret("metrics-a", freshValue("m"));
      await apply(
        buildPod(
          {
            pod: "metrics",
            serviceAccount: WORKLOAD.serviceAccount,
            annotations: {
              "akv-injector.io/vault": ctx.vaultUrl,
              "akv-injector.io/secrets": "metrics-a",
              "akv-injector.io/metrics-port": "9102",
            },
          },
          ctx,
          ns,
        ),
      );
      await waitReady(ns, "metrics");
      const pod = await getJson<V1Pod>(["pod", "-n", ns, "metrics"]);
      const sidecar = pod.spec?.initContainers?.find((c) => c.name === Injected.containerName);
      if (sidecar?.ports?.some((p) => p.containerPort === 9102) !== true)
        throw new Error(`the sidecar declares no port 9102: ${JSON.stringify(sidecar?.ports)}`);
      const run = await execAccess(ns, "metrics").exec("app", [
        "wget",
        "-qO-",
        "http://127.0.0.1:9102/metrics",
      ]);
      for (const series of [
        /^akv_injector_sidecar_last_success_timestamp_seconds \d/m,
        /^akv_injector_sidecar_files_published 1$/m,
      ]) {
        if (!series.test(run.stdout))
          throw new Error(`no ${String(series)} in: ${(run.stdout + run.stderr).slice(0, 400)}`);
      }
    },
  );

  // The app records each notification as a line of NOTIFIED_FILE: busybox
  // httpd with a CGI script for HTTP, a shell trap for SIGHUP.
  for (const scenario of notifyScenarios(ctx, 8080)) {
    await check(scenario.name, async () => {
      await kit.setSecret(scenario.secret, freshValue("notify"));
      await apply(buildPod(scenario, ctx, ns));
      await waitReady(ns, scenario.pod);
      const access = execAccess(ns, scenario.pod);
      await checkNotifiedOnce(scenario, {
        notifications: async () => {
          const run = await access.exec("app", ["sh", "-c", `cat ${NOTIFIED_FILE} 2>/dev/null`]);
          return run.stdout.split("\n").filter((line) => line !== "").length;
        },
        rotate: (value) => kit.setSecret(scenario.secret, value),
        pod: access,
      });
    });
  }

  await check(
    "rotation reaches every file of a pod together, through the app's mount",
    async () => {
      await kit.setSecret("rot-a", freshValue("a1"));
      await kit.setSecret("rot-b", freshValue("b1"));
      await apply(
        buildPod(
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
          ns,
        ),
      );
      await waitReady(ns, "rotate");
      const a2 = freshValue("a2");
      const b2 = freshValue("b2");
      await kit.setSecret("rot-a", a2);
      await kit.setSecret("rot-b", b2);
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
      // And by the visible names, as an app opens them.
      const a = await access.exec("app", ["cat", "/mnt/secrets/rot-a"]);
      if (a.stdout !== a2) throw new Error("/mnt/secrets/rot-a does not hold the rotated value");
    },
  );
}
