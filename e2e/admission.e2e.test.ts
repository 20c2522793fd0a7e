/**
 * Admission against the real kube-apiserver: the chart installed (rendered by
 * Helm, server-side applied), the webhook running as the chart's pod, pods
 * created through the API. What is stored is what the contract says; a
 * refusal reaches the API client with the webhook's message; pods without
 * the label are never sent; an already injected pod comes back unchanged,
 * also when the apiserver reinvokes us after another webhook changed it.
 */
import {
  AdmissionregistrationV1Api,
  type V1Container,
  type V1Pod,
  type V1Status,
} from "@kubernetes/client-node";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCertificateAuthority, createServingCertificate } from "../certs/index.ts";
import {
  Defaults,
  INJECT_LABEL,
  Injected,
  SidecarEnv,
  STATUS_ANNOTATION,
  STATUS_INJECTED,
} from "../common/names.ts";
import { parseSpec } from "../common/spec.ts";
import { startEnvironment, type Environment } from "./cluster/environment.ts";
import type { Workload } from "./cluster/workload.ts";
import { REPO_ROOT } from "./host/repo.ts";
import {
  buildPod,
  eventually,
  injectionScenarios,
  refusalScenarios,
  WORKLOAD,
  type ScenarioContext,
} from "./scenarios.ts";

let env: Environment;
let workload: Workload;
let ctx: ScenarioContext;

beforeAll(async () => {
  env = await startEnvironment();
  workload = await env.addWorkload({
    namespace: WORKLOAD.namespace,
    serviceAccount: WORKLOAD.serviceAccount,
  });
  // A service account without the client id annotation.
  await env.core.createNamespacedServiceAccount({
    namespace: WORKLOAD.namespace,
    body: { metadata: { name: WORKLOAD.otherServiceAccount } },
  });
  ctx = { vaultUrl: env.vault.url, secondVaultUrl: env.secondVaultUrl, appImage: "busybox:1.37" };
});

afterAll(async () => {
  await env.stop();
});

async function createPod(pod: V1Pod): Promise<{ pod: V1Pod; warnings: readonly string[] }> {
  const namespace = pod.metadata?.namespace ?? WORKLOAD.namespace;
  const response = await env.api("POST", `/api/v1/namespaces/${namespace}/pods`, pod);
  if (response.status !== 201) {
    throw new Error(`pod not created (${response.status}): ${JSON.stringify(response.body)}`);
  }
  return { pod: response.body as V1Pod, warnings: response.warnings };
}

const envOf = (container: V1Container | undefined, name: string): string | undefined =>
  container?.env?.find((e) => e.name === name)?.value;

describe("injection as stored by the apiserver", () => {
  it("injects the sidecar, volumes and mounts exactly as the contract says", async () => {
    const scenario = injectionScenarios(ctx)[0];
    if (scenario === undefined) throw new Error("no scenario");
    const { pod } = await createPod(buildPod(scenario, ctx));
    const spec = pod.spec;

    expect(pod.metadata?.annotations?.[STATUS_ANNOTATION]).toBe(STATUS_INJECTED);
    const sidecar = spec?.initContainers?.[0];
    expect(sidecar?.name).toBe(Injected.containerName);
    expect(sidecar?.image).toBe(env.sidecarImage);
    expect(sidecar?.restartPolicy).toBe("Always");
    expect(sidecar?.command).toBeUndefined();
    expect(sidecar?.args).toEqual(Injected.sidecarRunArgs);
    expect(sidecar?.startupProbe?.exec?.command).toEqual([
      ...Injected.sidecarEntrypoint,
      ...Injected.sidecarProbeArgs,
    ]);
    expect(sidecar?.securityContext).toMatchObject({
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
    // The chart's sidecar.resources, through the webhook's settings.
    expect(sidecar?.resources).toEqual({
      requests: { cpu: "10m", memory: "64Mi" },
      limits: { memory: "128Mi" },
    });

    expect(envOf(sidecar, SidecarEnv.clientId)).toBe(workload.clientId);
    expect(envOf(sidecar, SidecarEnv.tenantId)).toBe(env.tenantId);
    expect(envOf(sidecar, SidecarEnv.federatedTokenFile)).toBe(Injected.tokenFile);
    expect(envOf(sidecar, SidecarEnv.authorityHost)).toBe(`${env.aad.url}/`);
    // The chart's sidecar.extraCaCerts reaches every sidecar as PEM text.
    expect(envOf(sidecar, SidecarEnv.extraCaCerts)?.trim()).toBe(env.mockCaPem.trim());
    const syncSpec = parseSpec(envOf(sidecar, SidecarEnv.spec) ?? "");
    expect(syncSpec).toMatchObject({
      vaultUrl: env.vault.url,
      mode: "sidecar",
      refreshIntervalMs: Defaults.refreshIntervalMs,
      fileMode: Defaults.fileMode,
      outputDir: Injected.sidecarOutputDir,
    });
    expect(syncSpec.files.map((f) => f.file)).toEqual(["db-password", "api-key"]);

    expect(sidecar?.volumeMounts).toEqual(
      expect.arrayContaining([
        { name: Injected.secretsVolume, mountPath: Injected.sidecarSecretsPath },
        { name: Injected.tokenVolume, mountPath: Injected.tokenMountPath, readOnly: true },
      ]),
    );
    expect(spec?.volumes).toEqual(
      expect.arrayContaining([
        {
          name: Injected.secretsVolume,
          emptyDir: { medium: "Memory", sizeLimit: Defaults.tmpfsSizeLimit },
        },
        {
          name: Injected.tokenVolume,
          projected: {
            defaultMode: expect.any(Number) as number,
            sources: [
              {
                serviceAccountToken: {
                  audience: Injected.tokenAudience,
                  expirationSeconds: Injected.tokenExpirationSeconds,
                  path: Injected.tokenPath,
                },
              },
            ],
          },
        },
      ]),
    );
    for (const app of spec?.containers ?? []) {
      expect(app.volumeMounts).toEqual([
        {
          name: Injected.secretsVolume,
          mountPath: Defaults.mountPath,
          subPath: Injected.filesSubPath,
          readOnly: true,
        },
      ]);
      expect(app.env ?? []).toEqual([]);
    }
  });

  it("puts the sidecar first among existing init containers and mounts only the named containers", async () => {
    const { pod } = await createPod(
      buildPod(
        {
          pod: "ordering",
          serviceAccount: WORKLOAD.serviceAccount,
          annotations: {
            "akv-injector.io/vault": ctx.vaultUrl,
            "akv-injector.io/secrets": "db-password",
            "akv-injector.io/containers": "migrate,app",
            "akv-injector.io/mount-path": "/etc/app/secrets",
          },
          containers: ["app", "metrics"],
          initContainers: ["migrate"],
        },
        ctx,
      ),
    );
    const init = pod.spec?.initContainers ?? [];
    expect(init.map((c) => c.name)).toEqual([Injected.containerName, "migrate"]);
    const mountOf = (c: V1Container | undefined) =>
      c?.volumeMounts?.find((m) => m.name === Injected.secretsVolume);
    expect(mountOf(init[1])).toEqual({
      name: Injected.secretsVolume,
      mountPath: "/etc/app/secrets",
      subPath: Injected.filesSubPath,
      readOnly: true,
    });
    const containers = pod.spec?.containers ?? [];
    expect(mountOf(containers.find((c) => c.name === "app"))?.mountPath).toBe("/etc/app/secrets");
    expect(mountOf(containers.find((c) => c.name === "metrics"))).toBeUndefined();
  });

  it("injects a plain init container in init mode", async () => {
    const scenario = injectionScenarios(ctx).find((s) => s.pod === "init");
    if (scenario === undefined) throw new Error("no init scenario");
    const { pod } = await createPod(buildPod(scenario, ctx));
    const sidecar = pod.spec?.initContainers?.[0];
    expect(sidecar?.name).toBe(Injected.containerName);
    expect(sidecar?.restartPolicy).toBeUndefined();
    expect(sidecar?.startupProbe).toBeUndefined();
    expect(parseSpec(envOf(sidecar, SidecarEnv.spec) ?? "").mode).toBe("init");
  });

  it("works for pods with generateName, which have no name at admission", async () => {
    const pod = buildPod(
      {
        pod: "unused",
        serviceAccount: WORKLOAD.serviceAccount,
        annotations: {
          "akv-injector.io/vault": ctx.vaultUrl,
          "akv-injector.io/secrets": "db-password",
        },
      },
      ctx,
    );
    if (pod.metadata !== undefined) {
      delete pod.metadata.name;
      pod.metadata.generateName = "worker-";
    }
    const { pod: stored } = await createPod(pod);
    expect(stored.metadata?.name).toMatch(/^worker-/);
    expect(stored.spec?.initContainers?.[0]?.name).toBe(Injected.containerName);
  });

  it("leaves pods without the label alone (never sent to the webhook)", async () => {
    const pod = buildPod(
      {
        pod: "unlabelled",
        serviceAccount: WORKLOAD.serviceAccount,
        // Even annotations that would be refused: the webhook never sees this pod.
        annotations: { "akv-injector.io/vault": "http://nope", "akv-injector.io/bogus": "x" },
      },
      ctx,
    );
    delete pod.metadata?.labels?.[INJECT_LABEL];
    const { pod: stored } = await createPod(pod);
    expect(stored.spec?.initContainers).toBeUndefined();
    expect(stored.spec?.volumes ?? []).toEqual([]);
    expect(stored.metadata?.annotations?.[STATUS_ANNOTATION]).toBeUndefined();
    const webhookLog = await env.webhookPods[0]?.process("webhook")?.readLog();
    expect(webhookLog).not.toContain('"pod":"unlabelled"');
  });

  it("returns an already injected pod unchanged", async () => {
    const pod = buildPod(
      {
        pod: "already-injected",
        serviceAccount: WORKLOAD.serviceAccount,
        annotations: {
          "akv-injector.io/vault": ctx.vaultUrl,
          "akv-injector.io/secrets": "db-password",
          [STATUS_ANNOTATION]: STATUS_INJECTED,
        },
      },
      ctx,
    );
    const { pod: stored } = await createPod(pod);
    expect(stored.spec?.initContainers).toBeUndefined();
    expect(stored.spec?.containers.map((c) => c.volumeMounts ?? [])).toEqual([[]]);
  });

  it("shows admission warnings to the API client", async () => {
    const { pod, warnings } = await createPod(
      buildPod(
        {
          pod: "warned",
          serviceAccount: WORKLOAD.serviceAccount,
          annotations: {
            "akv-injector.io/vault": ctx.vaultUrl,
            "akv-injector.io/secrets": "db-password",
            "akv-injector.io/refresh-interval": "10s",
          },
        },
        ctx,
      ),
    );
    expect(pod.spec?.initContainers?.[0]?.name).toBe(Injected.containerName);
    expect(warnings.join("\n")).toContain("akv-injector.io/refresh-interval");
  });
});

describe("refusals reach the API client", () => {
  it.each(
    refusalScenarios({
      vaultUrl: "https://placeholder.invalid",
      secondVaultUrl: "https://placeholder.invalid",
      appImage: "busybox",
    }).map((s) => [s.name, s.pod]),
  )("%s", async (_name, podName) => {
    const scenario = refusalScenarios(ctx).find((s) => s.pod === podName);
    if (scenario === undefined) throw new Error(podName);
    const response = await env.api(
      "POST",
      `/api/v1/namespaces/${WORKLOAD.namespace}/pods`,
      buildPod(scenario, ctx),
    );
    const status = response.body as V1Status;
    expect(response.status).toBe(400);
    expect(status.message).toContain('admission webhook "pods.akv-injector.io" denied the request');
    for (const words of scenario.message) expect(status.message).toContain(words);
    // Refused whole: nothing was stored.
    const get = await env.api("GET", `/api/v1/namespaces/${WORKLOAD.namespace}/pods/${podName}`);
    expect(get.status).toBe(404);
  });
});

describe("reinvocation", () => {
  let server: Server | undefined;

  afterAll(async () => {
    await new Promise<void>((resolve) => {
      if (server === undefined) resolve();
      else
        server.close(() => {
          resolve();
        });
    });
  });

  it("mounts the secrets into a container another webhook added after us, and nothing else", async () => {
    // A second mutating webhook, called after ours (configurations go in name
    // order), that adds a container: the apiserver then reinvokes ours
    // (reinvocationPolicy: IfNeeded), which mounts the secrets into it.
    const now = new Date();
    const ca = createCertificateAuthority({ commonName: "e2e other webhook CA", now });
    const leaf = createServingCertificate(ca, { dnsNames: [], ipAddresses: ["127.0.0.1"], now });
    let calls = 0;
    server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString("utf8")));
      req.on("end", () => {
        calls++;
        const review = JSON.parse(body) as { request: { uid: string; object: V1Pod } };
        const has = review.request.object.spec?.containers.some((c) => c.name === "late");
        const patch = has
          ? undefined
          : Buffer.from(
              JSON.stringify([
                {
                  op: "add",
                  path: "/spec/containers/-",
                  value: { name: "late", image: "busybox:1.37" },
                },
              ]),
            ).toString("base64");
        res.setHeader("content-type", "application/json");
        res.end(
          JSON.stringify({
            apiVersion: "admission.k8s.io/v1",
            kind: "AdmissionReview",
            response: {
              uid: review.request.uid,
              allowed: true,
              ...(patch === undefined ? {} : { patchType: "JSONPatch", patch }),
            },
          }),
        );
      });
    });
    const port = await new Promise<number>((resolve) => {
      server?.listen(0, "127.0.0.1", () => {
        const address = server?.address();
        resolve(typeof address === "object" && address !== null ? address.port : 0);
      });
    });
    const admission = env.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
    await admission.createMutatingWebhookConfiguration({
      body: {
        metadata: { name: "zz-e2e-adds-a-container" },
        webhooks: [
          {
            name: "late.e2e.akv-injector.io",
            admissionReviewVersions: ["v1"],
            sideEffects: "None",
            clientConfig: {
              url: `https://127.0.0.1:${port}/`,
              caBundle: Buffer.from(ca.certPem).toString("base64"),
            },
            rules: [
              {
                operations: ["CREATE"],
                apiGroups: [""],
                apiVersions: ["v1"],
                resources: ["pods"],
              },
            ],
            objectSelector: { matchLabels: { "e2e.akv-injector.io/scenario": "reinvoked" } },
            reinvocationPolicy: "Never",
            failurePolicy: "Fail",
          },
        ],
      },
    });
    try {
      // The apiserver picks a new webhook configuration up a moment later: wait
      // until dry runs reach it, then count from zero.
      const probe = buildPod(
        {
          pod: "reinvoked-probe",
          serviceAccount: WORKLOAD.serviceAccount,
          annotations: {
            "akv-injector.io/vault": ctx.vaultUrl,
            "akv-injector.io/secrets": "db-password",
          },
        },
        ctx,
      );
      // The other webhook's selector; a name of its own keeps the probe out of the log check.
      if (probe.metadata?.labels !== undefined)
        probe.metadata.labels["e2e.akv-injector.io/scenario"] = "reinvoked";
      await eventually(
        async () => {
          await env.api("POST", `/api/v1/namespaces/${WORKLOAD.namespace}/pods?dryRun=All`, probe);
          if (calls === 0) throw new Error("the other webhook is not called yet");
        },
        30_000,
        200,
      );
      calls = 0;
      const { pod } = await createPod(
        buildPod(
          {
            pod: "reinvoked",
            serviceAccount: WORKLOAD.serviceAccount,
            annotations: {
              "akv-injector.io/vault": ctx.vaultUrl,
              "akv-injector.io/secrets": "db-password",
            },
          },
          ctx,
        ),
      );
      expect(calls).toBe(1);
      expect(pod.spec?.containers.map((c) => c.name)).toEqual(["app", "late"]);
      // One sidecar, two volumes: the second call only added a mount.
      expect(pod.spec?.initContainers?.map((c) => c.name)).toEqual([Injected.containerName]);
      expect(pod.spec?.volumes?.map((v) => v.name).sort()).toEqual(
        [Injected.secretsVolume, Injected.tokenVolume].sort(),
      );
      // "late" came after injection, and is a target like every container.
      expect(pod.spec?.containers.find((c) => c.name === "late")?.volumeMounts).toEqual([
        {
          name: Injected.secretsVolume,
          mountPath: Defaults.mountPath,
          subPath: Injected.filesSubPath,
          readOnly: true,
        },
      ]);
      const log = (await env.webhookPods[0]?.process("webhook")?.readLog()) ?? "";
      const outcomes = log
        .split("\n")
        .filter((l) => l.includes('"pod":"reinvoked"'))
        .map((l) => (JSON.parse(l) as { outcome: string }).outcome);
      expect(outcomes).toEqual(["injected", "remounted"]);
    } finally {
      await admission.deleteMutatingWebhookConfiguration({ name: "zz-e2e-adds-a-container" });
    }
  });
});

describe("akv-injector preview (the bundle) takes what people deploy", () => {
  const cli = (args: string[]) =>
    spawnSync(process.execPath, [join(REPO_ROOT, "dist/cli.mjs"), ...args], { encoding: "utf8" });
  type Template = { metadata?: V1Pod["metadata"]; spec?: V1Pod["spec"] };
  type Deployment = { spec: { template: Template } };

  it("prints the package's version", async () => {
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as {
      version: string;
    };
    expect(cli(["--version"]).stdout).toBe(`${pkg.version}\n`);
  });

  it("previews a Deployment that the apiserver accepts, and that the webhook then leaves alone", async () => {
    const template: Template = {
      metadata: {
        labels: { app: "previewed", [INJECT_LABEL]: "true" },
        annotations: {
          "akv-injector.io/vault": ctx.vaultUrl,
          "akv-injector.io/secrets": "db-password",
        },
      },
      spec: {
        serviceAccountName: WORKLOAD.serviceAccount,
        containers: [{ name: "app", image: "busybox:1.37" }],
      },
    };
    const manifests = [
      {
        apiVersion: "v1",
        kind: "ServiceAccount",
        metadata: {
          name: workload.serviceAccount,
          namespace: workload.namespace,
          annotations: { "azure.workload.identity/client-id": workload.clientId },
        },
      },
      {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "previewed", namespace: workload.namespace },
        spec: { selector: { matchLabels: { app: "previewed" } }, template },
      },
    ];
    const dir = await mkdtemp(join(tmpdir(), "akv-preview-e2e-"));
    let list: { kind: string; items: unknown[] };
    try {
      const file = join(dir, "app.yaml");
      await writeFile(file, manifests.map((m) => JSON.stringify(m)).join("\n---\n"));
      const run = cli([
        "preview",
        file,
        "-o",
        "json",
        "--vault-suffixes",
        new URL(ctx.vaultUrl).host,
        "--tenant-id",
        env.tenantId,
        "--sidecar-image",
        env.sidecarImage,
      ]);
      expect(run.stderr).toBe("");
      expect(run.status).toBe(0);
      list = JSON.parse(run.stdout) as typeof list;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(list.kind).toBe("List");
    const previewed = list.items[1] as Deployment;

    // The apiserver validates the previewed Deployment, pod template and all (server-side dry run).
    const deployments = `/apis/apps/v1/namespaces/${workload.namespace}/deployments?dryRun=All`;
    const applied = await env.api("POST", deployments, previewed);
    expect(applied.status, JSON.stringify(applied.body)).toBe(201);
    const stored = (applied.body as Deployment).spec.template;
    expect(stored.spec?.initContainers?.map((c) => c.name)).toEqual([Injected.containerName]);
    expect(stored.metadata?.annotations?.[STATUS_ANNOTATION]).toBe(STATUS_INJECTED);

    // The pods its ReplicaSet creates: the webhook sees them injected already and changes nothing.
    const pods = `/api/v1/namespaces/${workload.namespace}/pods?dryRun=All`;
    const asPod = (t: Template): V1Pod => {
      const metadata = structuredClone(t.metadata ?? {});
      metadata.generateName = "previewed-";
      return {
        apiVersion: "v1",
        kind: "Pod",
        metadata,
        ...(t.spec === undefined ? {} : { spec: t.spec }),
      };
    };
    const fromPreview = await env.api("POST", pods, asPod(previewed.spec.template));
    expect(fromPreview.status, JSON.stringify(fromPreview.body)).toBe(201);
    const podSpec = (fromPreview.body as V1Pod).spec;
    expect(podSpec?.initContainers?.map((c) => c.name)).toEqual([Injected.containerName]);

    // And the preview injects what the webhook injects into the template's pod.
    const fromTemplate = await env.api("POST", pods, asPod(template));
    expect(fromTemplate.status, JSON.stringify(fromTemplate.body)).toBe(201);
    const live = (fromTemplate.body as V1Pod).spec;
    const shape = (spec: V1Pod["spec"]) => ({
      initContainers: spec?.initContainers?.map((c) => [c.name, c.restartPolicy, c.args]),
      volumes: spec?.volumes?.map((v) => v.name),
      mounts: spec?.containers.map((c) => c.volumeMounts),
    });
    expect(shape(previewed.spec.template.spec)).toEqual(shape(live));
  });
});
