/** `preview` shows what `notify-<container>` does to a pod, from the same decision as the webhook. */
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { PREVIEW_SERVICE_ACCOUNT as SA } from "../testing/cli.ts";
import { preview } from "./preview.ts";

const pod = (annotation: string, spec: string): string => `apiVersion: v1
kind: Pod
metadata:
  name: app
  namespace: team-a
  labels:
    akv-injector.io/inject: "true"
  annotations:
    akv-injector.io/vault: myvault
    akv-injector.io/secrets: db-password
    ${annotation}
spec:
  serviceAccountName: app
${spec}  containers:
    - name: app
      image: nginx
      securityContext:
        runAsUser: 101
        runAsGroup: 101
`;

interface Container {
  name: string;
  env?: { name: string; value: string }[];
  securityContext?: { runAsUser?: number; runAsGroup?: number };
}
interface OutPod {
  spec: { initContainers: Container[]; containers: Container[] };
}

const run = (text: string) =>
  preview({
    manifests: { text, source: "pod.yaml" },
    serviceAccount: { text: SA, source: "sa.yaml" },
    env: {},
  });

describe("preview of notify-<container>", () => {
  it("shows the targets passed to the sidecar, its user, and the signalled container's marker", async () => {
    const result = await run(
      pod('akv-injector.io/notify-app: "signal:SIGHUP"', "  shareProcessNamespace: true\n"),
    );
    expect(result.stderr).toEqual([]);
    expect(result.exitCode).toBe(0);
    const out = parse(result.stdout ?? "") as OutPod;
    const sidecar = out.spec.initContainers[0];
    expect(sidecar?.env?.find((e) => e.name === "AKV_INJECTOR_NOTIFY")?.value).toBe(
      '[{"container":"app","target":"signal:SIGHUP"}]',
    );
    expect(sidecar?.securityContext).toMatchObject({ runAsUser: 101, runAsGroup: 101 });
    expect(out.spec.containers[0]?.env).toEqual([{ name: "AKV_INJECTOR_CONTAINER", value: "app" }]);
  });

  it("prints the refusal of a signal without a shared PID namespace, and exits 1", async () => {
    const result = await run(pod('akv-injector.io/notify-app: "signal:SIGHUP"', ""));
    expect(result.exitCode).toBe(1);
    expect(result.stderr[0]).toContain(
      'akv-injector.io/notify-app: a signal needs spec.shareProcessNamespace: true (the sidecar sees the app\'s processes only in a shared PID namespace) (got "signal:SIGHUP")',
    );
  });
});
