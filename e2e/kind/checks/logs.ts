/**
 * The log scan on real nodes: no secret value and no token in any container
 * log of the workload, the webhook or the mocks; and the webhook's and the
 * sidecars' JSON lines in the format log tooling reads (level by name,
 * RFC 3339 `time`), as the images write them.
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

/** The webhook's container in the chart's Deployment. */
const WEBHOOK_CONTAINER = "webhook";
const LEVEL_NAMES: readonly unknown[] = ["trace", "debug", "info", "warn", "error", "fatal"];
/** RFC 3339 in UTC with milliseconds, as `Date.prototype.toISOString` writes it. */
const RFC3339_UTC_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/**
 * Checks the JSON lines of the webhook's and the sidecars' containers (keys
 * `namespace/pod/container`; other containers are not ours): each has
 * `level` by name and `time` in RFC 3339 UTC with milliseconds, not after
 * `now` (plus a minute). Lines that are not JSON objects (a Node warning)
 * are left alone. Returns what is wrong, including no line of the webhook
 * or of any sidecar to check.
 */
export function findOffFormatLines(logs: ReadonlyMap<string, string>, now: number): string[] {
  const problems: string[] = [];
  const seen = { webhook: 0, sidecar: 0 };
  for (const [file, text] of logs) {
    const [namespace, , container] = file.split("/");
    const kind =
      container === Injected.containerName
        ? "sidecar"
        : namespace === Kind.releaseNamespace && container === WEBHOOK_CONTAINER
          ? "webhook"
          : undefined;
    if (kind === undefined) continue;
    text.split("\n").forEach((line, i) => {
      if (!line.startsWith("{")) return;
      const where = `${file}:${String(i + 1)}`;
      let parsed: { level?: unknown; time?: unknown };
      try {
        parsed = JSON.parse(line) as { level?: unknown; time?: unknown };
      } catch {
        problems.push(`${where}: not JSON`);
        return;
      }
      seen[kind]++;
      if (!LEVEL_NAMES.includes(parsed.level))
        problems.push(`${where}: level ${JSON.stringify(parsed.level)} is not a level name`);
      const time = parsed.time;
      const at = typeof time === "string" ? Date.parse(time) : Number.NaN;
      if (
        typeof time !== "string" ||
        !RFC3339_UTC_MS.test(time) ||
        Number.isNaN(at) ||
        new Date(at).toISOString() !== time ||
        at > now + 60_000
      )
        problems.push(
          `${where}: time ${JSON.stringify(time)} is not an RFC 3339 UTC time up to now`,
        );
    });
  }
  for (const [kind, count] of Object.entries(seen))
    if (count === 0) problems.push(`no JSON log line of the ${kind} to check`);
  return problems;
}

/** Every container log of the workload, the webhook and the mocks, by `namespace/pod/container`. */
async function readLogs(kit: KindKit): Promise<Map<string, string>> {
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
  return logs;
}

export async function runLogChecks(kit: KindKit, check: Check): Promise<void> {
  await check("logs hold no secret value and no token", async () => {
    const logs = await readLogs(kit);
    if (![...logs.keys()].some((k) => k.endsWith(`/${Injected.containerName}`)))
      throw new Error("no sidecar logs found");
    const leaks = findLeaks(logs, kit.values);
    if (leaks.length > 0) throw new Error(leaks.join("; "));
  });
  await check("webhook and sidecar log lines: level by name, RFC 3339 time", async () => {
    const problems = findOffFormatLines(await readLogs(kit), Date.now());
    // The first few: one wrong formatter makes every line wrong.
    if (problems.length > 0)
      throw new Error(`${String(problems.length)} problems: ${problems.slice(0, 5).join("; ")}`);
  });
}
