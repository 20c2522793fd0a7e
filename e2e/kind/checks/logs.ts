/**
 * The log scan on real nodes: no secret value and no token in any container
 * log of the workload, the webhook or the mocks.
 */
import { Injected } from "../../../common/names.ts";
import { findLeaks } from "../../scenarios.ts";
import { Kind } from "../setup.ts";
import { getJson, kubectl } from "./kubectl.ts";
import type { Check, KindKit } from "./runner.ts";

interface PodList {
  items: {
    metadata: { name: string; namespace: string };
    spec: { containers: { name: string }[]; initContainers?: { name: string }[] };
  }[];
}

export async function runLogChecks(kit: KindKit, check: Check): Promise<void> {
  await check("logs hold no secret value and no token", async () => {
    const logs = new Map<string, string>();
    const pods = await getJson<PodList>(["pods", "-A"]);
    const namespaces = [kit.namespace, Kind.releaseNamespace, Kind.mocksNamespace];
    for (const pod of pods.items) {
      const { name, namespace } = pod.metadata;
      if (!namespaces.includes(namespace)) continue;
      for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) {
        const run = await kubectl(["logs", "-n", namespace, name, "-c", c.name]);
        logs.set(`${namespace}/${name}/${c.name}`, run.stdout);
      }
    }
    if (![...logs.keys()].some((k) => k.endsWith(`/${Injected.containerName}`)))
      throw new Error("no sidecar logs found");
    const leaks = findLeaks(logs, kit.values);
    if (leaks.length > 0) throw new Error(leaks.join("; "));
  });
}
