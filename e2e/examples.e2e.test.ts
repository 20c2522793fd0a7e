/**
 * Every manifest in `examples/` goes through the real kube-apiserver with the
 * webhook registered, as a user would apply it, and its pods are injected and
 * served.
 *
 * How admission is exercised: the webhook sees pods, never Deployments, Jobs
 * or CronJobs, and this control plane runs no controllers. So each file is
 * first server-side applied as it is (placeholders replaced) in a fresh
 * namespace, which has the apiserver validate the workload and its pod
 * template; then, for each workload, the pod its controller would create is
 * created for real through the API, with admission running: the template's
 * labels, annotations and spec as they are (what the ReplicaSet and Job
 * controllers copy into every pod; the labels they add of their own, such as
 * `pod-template-hash`, are not ones the webhook reads), a `generateName`, the
 * namespace. A label put on the workload's own metadata instead of its
 * template, or annotations the webhook refuses, fail here as they would in a
 * cluster. Each stored pod must be injected with no admission warning, and
 * is then run by the test kubelet against the mock Entra ID and Key Vault
 * (seeded with every secret the pod names, a certificate where a file asks
 * for `cert`, `key` or `pem`, base64 where it asks for `base64-decode`), and
 * every file the pod asks for must be readable in every target container, as
 * that container's user.
 *
 * The only substitutions: the vault (`myvault` → the mock Key Vault's URL)
 * and the client id (the all-zero GUID → an app of the mock tenant federated
 * with the namespace's `app` service account and granted the vault).
 */
import type { V1Pod, V1PodTemplateSpec } from "@kubernetes/client-node";
import { randomBytes, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubeObject } from "../charts/helm.ts";
import {
  INJECT_LABEL,
  Injected,
  SidecarEnv,
  STATUS_ANNOTATION,
  STATUS_INJECTED,
} from "../common/names.ts";
import { listSecretRefs, parseSpec, type FileSpec, type SyncSpec } from "../common/spec.ts";
import { formatSecretRef } from "../common/refs.ts";
import { startEnvironment, type Environment } from "./cluster/environment.ts";
import { applyObjects } from "./cluster/objects.ts";
import { REPO_ROOT } from "./host/repo.ts";
import { certificateSecret, freshValue } from "./scenarios.ts";

const EXAMPLES = join(REPO_ROOT, "examples");
const NAMESPACE = "examples";
/** The placeholders the examples hold, as a user would find them. */
const VAULT_PLACEHOLDER = "myvault";
const CLIENT_ID_PLACEHOLDER = "00000000-0000-0000-0000-000000000000";

let env: Environment;
let clientId: string;

/** The manifests of every `examples/*.yaml`, by file, placeholders replaced. */
async function readExamples(): Promise<Map<string, KubeObject[]>> {
  const out = new Map<string, KubeObject[]>();
  const files = (await readdir(EXAMPLES)).filter((f) => f.endsWith(".yaml")).sort();
  for (const file of files) {
    const text = (await readFile(join(EXAMPLES, file), "utf8"))
      .replaceAll(`vault: ${VAULT_PLACEHOLDER}`, `vault: ${env.vault.url}`)
      .replaceAll(CLIENT_ID_PLACEHOLDER, clientId);
    const docs = parseAllDocuments(text).map((d) => d.toJS() as KubeObject | null);
    out.set(
      file,
      docs
        .filter((d): d is KubeObject => d !== null)
        .map((d) => ({ ...d, metadata: { ...d.metadata, namespace: NAMESPACE } })),
    );
  }
  return out;
}

/** The pod template a controller makes pods from, or undefined for an object that makes none. */
function podTemplateOf(object: KubeObject): V1PodTemplateSpec | undefined {
  type WithTemplate = { spec?: { template?: V1PodTemplateSpec } };
  switch (object.kind) {
    case "ServiceAccount":
      return undefined;
    case "Deployment":
    case "StatefulSet":
    case "DaemonSet":
    case "ReplicaSet":
    case "Job":
      return (object as WithTemplate).spec?.template;
    case "CronJob":
      return (object as { spec?: { jobTemplate?: WithTemplate } }).spec?.jobTemplate?.spec
        ?.template;
    default:
      throw new Error(`${object.kind} ${object.metadata.name}: this test does not know the kind`);
  }
}

/** The pod a controller creates from a template: its labels, annotations and spec, a generated name. */
function podFrom(object: KubeObject, template: V1PodTemplateSpec): V1Pod {
  if (template.spec === undefined) throw new Error(`${object.metadata.name}: no pod spec`);
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      generateName: `${object.metadata.name}-`,
      namespace: NAMESPACE,
      ...(template.metadata?.labels === undefined ? {} : { labels: template.metadata.labels }),
      ...(template.metadata?.annotations === undefined
        ? {}
        : { annotations: template.metadata.annotations }),
    },
    spec: template.spec,
  };
}

/** Seeds every secret the spec reads, shaped as its files need it; returns the raw values by ref. */
function seedSecrets(spec: SyncSpec): Map<string, string> {
  const values = new Map<string, string>();
  const formatsOf = (ref: string): Set<FileSpec["format"]> =>
    new Set(
      spec.files
        .filter((f) => f.source.kind === "secret" && formatSecretRef(f.source.ref) === ref)
        .map((f) => f.format),
    );
  for (const ref of listSecretRefs(spec)) {
    const key = formatSecretRef(ref);
    const formats = formatsOf(key);
    if (formats.has("pem") || formats.has("cert") || formats.has("key")) {
      const { secret } = certificateSecret(ref.name);
      env.vault.setSecret(
        ref.name,
        secret.value,
        secret.contentType === undefined ? {} : { contentType: secret.contentType },
      );
    } else if (formats.has("base64-decode")) {
      env.vault.setSecret(ref.name, randomBytes(32).toString("base64"));
    } else {
      const value = freshValue(ref.name);
      env.vault.setSecret(ref.name, value);
      values.set(key, value);
    }
  }
  return values;
}

beforeAll(async () => {
  env = await startEnvironment();
  clientId = randomUUID();
  env.aad.addApp(env.tenantId, {
    clientId,
    federatedCredentials: [
      { issuer: env.cp.issuer, subject: `system:serviceaccount:${NAMESPACE}:app` },
    ],
  });
  env.vault.grantRole({ principal: clientId });
  const created = await env.api("POST", "/api/v1/namespaces", {
    metadata: { name: NAMESPACE },
  });
  expect(created.status).toBe(201);
});

afterAll(async () => {
  await env.stop();
});

describe("examples/", () => {
  it("holds a service account and the workloads the docs name", async () => {
    const examples = await readExamples();
    const kinds = [...examples.values()].flat().map((o) => o.kind);
    expect(kinds).toEqual(
      expect.arrayContaining(["ServiceAccount", "Deployment", "Job", "CronJob"]),
    );
  });

  it("every file is accepted by the apiserver as it is (server-side apply)", async () => {
    const examples = await readExamples();
    for (const [file, objects] of examples) {
      await expect(applyObjects(env.kubeConfig, objects), file).resolves.toBeUndefined();
    }
  });

  // After the apply above: the pods run as the example's service account.
  it("every workload's pods are injected, and the sidecar serves every file they ask for", async () => {
    const examples = await readExamples();
    let workloads = 0;
    for (const [file, objects] of examples) {
      for (const object of objects) {
        const template = podTemplateOf(object);
        if (template === undefined) continue;
        workloads++;
        const what = `${file}: ${object.kind} ${object.metadata.name}`;
        const response = await env.api(
          "POST",
          `/api/v1/namespaces/${NAMESPACE}/pods`,
          podFrom(object, template),
        );
        expect(response.status, `${what}: ${JSON.stringify(response.body)}`).toBe(201);
        expect(response.warnings, `${what}: admission warnings`).toEqual([]);
        const pod = response.body as V1Pod;
        expect(
          pod.metadata?.annotations?.[STATUS_ANNOTATION],
          `${what}: not injected (is the ${INJECT_LABEL} label on the pod template?)`,
        ).toBe(STATUS_INJECTED);
        const sidecar = pod.spec?.initContainers?.[0];
        expect(sidecar?.name, what).toBe(Injected.containerName);
        const spec = parseSpec(sidecar?.env?.find((e) => e.name === SidecarEnv.spec)?.value ?? "");
        const mode = template.metadata?.annotations?.["akv-injector.io/mode"] ?? "sidecar";
        expect(spec.mode, what).toBe(mode);
        expect(sidecar?.restartPolicy, what).toBe(mode === "sidecar" ? "Always" : undefined);
        const targets = [...(pod.spec?.containers ?? [])].flatMap((c) => {
          const mount = c.volumeMounts?.find((m) => m.name === Injected.secretsVolume);
          return mount === undefined ? [] : [{ container: c.name, dir: mount.mountPath }];
        });
        expect(targets.length, `${what}: app containers with the secrets`).toBeGreaterThan(0);

        const values = seedSecrets(spec);
        const running = await env.runPod(NAMESPACE, pod.metadata?.name ?? "");
        try {
          for (const { container, dir } of targets) {
            for (const f of spec.files) {
              const read = await running.exec(container, ["cat", `${dir}/${f.file}`]);
              const where = `${what}: ${container} reads ${dir}/${f.file}`;
              expect(read.code, `${where}: ${read.stderr}`).toBe(0);
              expect(read.stdout.length, where).toBeGreaterThan(0);
              if (f.source.kind === "secret" && f.format === "raw") {
                expect(read.stdout, where).toBe(values.get(formatSecretRef(f.source.ref)));
              }
              if (f.source.kind === "template") {
                expect(read.stdout, where).not.toContain("{{");
                for (const part of f.source.parts) {
                  if ("secret" in part) {
                    expect(read.stdout, where).toContain(values.get(formatSecretRef(part.secret)));
                  }
                }
              }
            }
          }
        } finally {
          await running.stop();
        }
      }
    }
    expect(workloads).toBeGreaterThanOrEqual(4);
  });
});
