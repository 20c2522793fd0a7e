/**
 * The patch is checked the way the apiserver uses it: applied to the pod with
 * a JSON Patch library, then the resulting pod is inspected.
 */
import { describe, expect, it } from "vitest";
import { Injected, STATUS_ANNOTATION } from "../common/names.ts";
import { parseSpec } from "../common/spec.ts";
import { parsePod } from "./admission-review.ts";
import { parseInjectionConfig } from "./injection-config.ts";
import { buildPatch, escapePointer, SIDECAR_USER, type PatchOperation } from "./patch.ts";
import { withSidecarExtraCa, type InjectionSettings } from "./settings.ts";
import {
  applyTestPatch,
  CLIENT_ID,
  SIDECAR_IMAGE,
  TENANT_ID,
  testPod,
  testServiceAccount,
  testSettings,
} from "../testing/webhook.ts";
import { createCertificateAuthority } from "../certs/index.ts";

interface Container {
  name: string;
  image?: string;
  imagePullPolicy?: string;
  args?: string[];
  env?: { name: string; value: string }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  restartPolicy?: string;
  startupProbe?: unknown;
  securityContext?: unknown;
  resources?: unknown;
}
interface ResultPod {
  metadata: { name?: string; generateName?: string; annotations?: Record<string, string> };
  spec: {
    containers: Container[];
    initContainers?: Container[];
    volumes?: { name: string }[];
  };
}

const annotations = {
  "akv-injector.io/vault": "myvault",
  "akv-injector.io/secrets": "db-password",
};

function inject(
  pod: Record<string, unknown>,
  settings: InjectionSettings = testSettings(),
): { result: ResultPod; ops: PatchOperation[] } {
  const parsed = parsePod(pod, "team-a");
  if (!parsed.ok) throw new Error(parsed.problems.join("; "));
  const config = parseInjectionConfig(parsed.pod, testServiceAccount(), settings);
  if (!config.ok) throw new Error(config.problems.join("; "));
  const ops = buildPatch(parsed.pod, config.config, settings);
  return { result: applyTestPatch(pod, ops) as unknown as ResultPod, ops };
}

const sidecarOf = (pod: ResultPod): Container => {
  const first = pod.spec.initContainers?.[0];
  if (first?.name !== Injected.containerName)
    throw new Error("the sidecar is not the first init container");
  return first;
};
const envOf = (c: Container): Record<string, string> =>
  Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));

describe("buildPatch", () => {
  it("declares the metrics port and passes it to the sidecar only when metrics-port is set", () => {
    const { result } = inject(
      testPod(
        { ...annotations, "akv-injector.io/metrics-port": "9102" },
        { containers: [{ name: "app", image: "busybox", ports: [{ containerPort: 8080 }] }] },
      ),
    );
    const sidecar = sidecarOf(result) as Container & { ports?: unknown };
    expect(sidecar.ports).toEqual([{ name: "akv-metrics", containerPort: 9102, protocol: "TCP" }]);
    expect(envOf(sidecar).AKV_INJECTOR_METRICS_PORT).toBe("9102");
    const plain = sidecarOf(inject(testPod(annotations)).result) as Container & { ports?: unknown };
    expect(plain.ports).toBeUndefined();
    expect(envOf(plain)).not.toHaveProperty("AKV_INJECTOR_METRICS_PORT");
  });

  it("passes notify targets to the sidecar, runs it as the signalled user and group, and marks that container", () => {
    const pod = testPod(
      {
        ...annotations,
        "akv-injector.io/notify-app": "signal:SIGHUP",
        "akv-injector.io/notify-web": "http://localhost:8080/-/reload",
      },
      {
        shareProcessNamespace: true,
        containers: [
          {
            name: "web",
            image: "nginx",
            env: [{ name: "A", value: "1" }],
          },
          {
            name: "app",
            image: "busybox",
            securityContext: { runAsUser: 1000, runAsGroup: 3000 },
            env: [{ name: "B", value: "2" }],
          },
          { name: "plain", image: "busybox", securityContext: { runAsUser: 1000 } },
        ],
      },
    );
    const { result } = inject(pod);
    const sidecar = sidecarOf(result);
    expect(JSON.parse(envOf(sidecar).AKV_INJECTOR_NOTIFY ?? "")).toEqual([
      { container: "app", target: "signal:SIGHUP" },
      { container: "web", target: "http://localhost:8080/-/reload" },
    ]);
    expect(sidecar.securityContext).toMatchObject({
      runAsUser: 1000,
      runAsGroup: 3000,
      runAsNonRoot: true,
      capabilities: { drop: ["ALL"] },
    });
    const [web, app, plain] = result.spec.containers;
    // Only the signalled container gets the marker, appended to its env.
    expect(app?.env).toEqual([
      { name: "B", value: "2" },
      { name: "AKV_INJECTOR_CONTAINER", value: "app" },
    ]);
    expect(web?.env).toEqual([{ name: "A", value: "1" }]);
    expect(plain?.env).toBeUndefined();
  });

  it("adds the marker env whole to a signalled container that has none", () => {
    const pod = testPod(
      { ...annotations, "akv-injector.io/notify-app": "signal:SIGUSR1" },
      {
        shareProcessNamespace: true,
        securityContext: { runAsUser: 3000, runAsGroup: 3001 },
        containers: [{ name: "app", image: "busybox" }],
      },
    );
    const { result } = inject(pod);
    expect(result.spec.containers[0]?.env).toEqual([
      { name: "AKV_INJECTOR_CONTAINER", value: "app" },
    ]);
    expect(sidecarOf(result).securityContext).toMatchObject({ runAsUser: 3000, runAsGroup: 3001 });
  });

  it("leaves the sidecar's user and env alone without notify annotations", () => {
    const sidecar = sidecarOf(inject(testPod(annotations)).result);
    expect(sidecar.securityContext).toMatchObject({
      runAsUser: SIDECAR_USER,
      runAsGroup: SIDECAR_USER,
    });
    expect(envOf(sidecar)).not.toHaveProperty("AKV_INJECTOR_NOTIFY");
  });

  it("injects exactly the spec of the contract into a minimal pod", () => {
    const pod = testPod(annotations);
    const { result } = inject(pod);

    expect(result.metadata.annotations).toEqual({
      ...annotations,
      [STATUS_ANNOTATION]: "injected",
    });
    expect(result.spec.volumes).toEqual([
      { name: "akv-secrets", emptyDir: { medium: "Memory", sizeLimit: "4Mi" } },
      {
        name: "akv-injector-token",
        projected: {
          sources: [
            {
              serviceAccountToken: {
                audience: "api://AzureADTokenExchange",
                expirationSeconds: 3600,
                path: "azure-identity-token",
              },
            },
          ],
        },
      },
    ]);
    expect(result.spec.initContainers).toHaveLength(1);
    const sidecar = sidecarOf(result);
    const { env, ...rest } = sidecar;
    expect(rest).toEqual({
      name: "akv-injector",
      image: SIDECAR_IMAGE,
      args: ["run"],
      resources: { requests: { cpu: "10m", memory: "64Mi" }, limits: { memory: "128Mi" } },
      volumeMounts: [
        { name: "akv-secrets", mountPath: "/var/run/akv-injector/secrets" },
        {
          name: "akv-injector-token",
          mountPath: "/var/run/secrets/akv-injector/token",
          readOnly: true,
        },
      ],
      securityContext: {
        runAsNonRoot: true,
        runAsUser: SIDECAR_USER,
        runAsGroup: SIDECAR_USER,
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"] },
        seccompProfile: { type: "RuntimeDefault" },
      },
      terminationMessagePolicy: "FallbackToLogsOnError",
      restartPolicy: "Always",
      startupProbe: {
        exec: { command: ["/nodejs/bin/node", "/app/sidecar.mjs", "probe"] },
        periodSeconds: 1,
        failureThreshold: 300,
      },
    });
    expect(env?.map((e) => e.name)).toEqual([
      "AZURE_CLIENT_ID",
      "AZURE_TENANT_ID",
      "AZURE_FEDERATED_TOKEN_FILE",
      "AZURE_AUTHORITY_HOST",
      "AKV_INJECTOR_SPEC",
      "AKV_INJECTOR_VAULT_SUFFIXES",
    ]);
    const e = envOf(sidecar);
    expect(e).toMatchObject({
      AZURE_CLIENT_ID: CLIENT_ID,
      AZURE_TENANT_ID: TENANT_ID,
      AZURE_FEDERATED_TOKEN_FILE: "/var/run/secrets/akv-injector/token/azure-identity-token",
      AZURE_AUTHORITY_HOST: "https://login.microsoftonline.com/",
      AKV_INJECTOR_VAULT_SUFFIXES: ".vault.azure.net,.vault.azure.cn,.vault.usgovcloudapi.net",
    });
    expect(parseSpec(e.AKV_INJECTOR_SPEC ?? "")).toEqual({
      vaultUrl: "https://myvault.vault.azure.net",
      files: [
        {
          file: "db-password",
          format: "raw",
          source: { kind: "secret", ref: { name: "db-password" } },
        },
      ],
      mode: "sidecar",
      refreshIntervalMs: 300_000,
      fileMode: 0o644,
      outputDir: "/var/run/akv-injector/secrets/files",
    });

    const app = result.spec.containers[0];
    expect(app).toEqual({
      name: "app",
      image: "busybox",
      volumeMounts: [
        { name: "akv-secrets", mountPath: "/mnt/secrets", subPath: "files", readOnly: true },
      ],
    });
  });

  it("puts the sidecar first among existing init containers and mounts into them", () => {
    const pod = testPod(annotations, {
      initContainers: [
        { name: "migrate", image: "m", volumeMounts: [{ name: "data", mountPath: "/data" }] },
        { name: "warm", image: "w" },
      ],
      containers: [
        { name: "app", image: "a", volumeMounts: [{ name: "data", mountPath: "/data" }] },
        { name: "proxy", image: "p" },
      ],
      volumes: [{ name: "data", emptyDir: {} }],
    });
    const { result, ops } = inject(pod);
    expect(ops.at(-1)).toMatchObject({ op: "add", path: "/spec/initContainers/0" });
    expect(result.spec.initContainers?.map((c) => c.name)).toEqual([
      "akv-injector",
      "migrate",
      "warm",
    ]);
    const mount = {
      name: "akv-secrets",
      mountPath: "/mnt/secrets",
      subPath: "files",
      readOnly: true,
    };
    expect(result.spec.initContainers?.[1]?.volumeMounts).toEqual([
      { name: "data", mountPath: "/data" },
      mount,
    ]);
    expect(result.spec.initContainers?.[2]?.volumeMounts).toEqual([mount]);
    expect(result.spec.containers[0]?.volumeMounts).toEqual([
      { name: "data", mountPath: "/data" },
      mount,
    ]);
    expect(result.spec.containers[1]?.volumeMounts).toEqual([mount]);
    expect(result.spec.volumes?.map((v) => v.name)).toEqual([
      "data",
      "akv-secrets",
      "akv-injector-token",
    ]);
  });

  it("mounts only into the containers named, and the token into none of them", () => {
    const pod = testPod(
      {
        ...annotations,
        "akv-injector.io/containers": "proxy",
        "akv-injector.io/mount-path": "/etc/creds",
      },
      {
        initContainers: [{ name: "migrate", image: "m" }],
        containers: [
          { name: "app", image: "a" },
          { name: "proxy", image: "p" },
        ],
      },
    );
    const { result } = inject(pod);
    expect(result.spec.containers[0]?.volumeMounts).toBeUndefined();
    expect(result.spec.initContainers?.[1]?.volumeMounts).toBeUndefined();
    expect(result.spec.containers[1]?.volumeMounts).toEqual([
      { name: "akv-secrets", mountPath: "/etc/creds", subPath: "files", readOnly: true },
    ]);
    const all = [...result.spec.containers, ...(result.spec.initContainers ?? [])];
    for (const c of all.filter((x) => x.name !== Injected.containerName)) {
      expect(c.volumeMounts?.some((m) => m.name === Injected.tokenVolume) ?? false).toBe(false);
      expect(c.env).toBeUndefined();
    }
  });

  it("adds annotations whole to a pod that has none, and metadata whole to a pod without it", () => {
    // A config from an annotated pod, applied to pods lacking the objects the patch writes into.
    const annotated = parsePod(testPod(annotations), "team-a");
    if (!annotated.ok) throw new Error("fixture");
    const config = parseInjectionConfig(annotated.pod, testServiceAccount(), testSettings());
    if (!config.ok) throw new Error("fixture");

    const bare = testPod(null);
    const bareParsed = parsePod(bare, "team-a");
    if (!bareParsed.ok) throw new Error("fixture");
    const ops = buildPatch(bareParsed.pod, config.config, testSettings());
    expect(ops[0]).toEqual({
      op: "add",
      path: "/metadata/annotations",
      value: { [STATUS_ANNOTATION]: "injected" },
    });
    const result = applyTestPatch(bare, ops) as unknown as ResultPod;
    expect(result.metadata.annotations).toEqual({ [STATUS_ANNOTATION]: "injected" });

    const noMetadata = { spec: { containers: [{ name: "app", image: "a" }] } };
    const noMetaParsed = parsePod(noMetadata, "team-a");
    if (!noMetaParsed.ok) throw new Error("fixture");
    const result2 = applyTestPatch(
      noMetadata,
      buildPatch(noMetaParsed.pod, config.config, testSettings()),
    ) as unknown as ResultPod;
    expect(result2.metadata.annotations).toEqual({ [STATUS_ANNOTATION]: "injected" });
    expect(sidecarOf(result2).name).toBe("akv-injector");
  });

  it("replaces null arrays instead of appending to them", () => {
    const pod = testPod(annotations, {
      volumes: null,
      initContainers: null,
      containers: [{ name: "app", image: "a", volumeMounts: null }],
    });
    const { result } = inject(pod);
    expect(result.spec.volumes).toHaveLength(2);
    expect(result.spec.initContainers).toHaveLength(1);
    expect(result.spec.containers[0]?.volumeMounts).toHaveLength(1);
  });

  it("injects into a pod that has only generateName", () => {
    const pod = testPod(annotations, {}, { name: undefined, generateName: "app-7d9c-" });
    delete (pod.metadata as Record<string, unknown>).name;
    const { result } = inject(pod);
    expect(result.metadata.generateName).toBe("app-7d9c-");
    expect(result.metadata.name).toBeUndefined();
    expect(sidecarOf(result).image).toBe(SIDECAR_IMAGE);
  });

  it("escapes / and ~ in annotation keys", () => {
    const pod = testPod({ ...annotations, "example.com/a~b": "1" });
    const { ops, result } = inject(pod);
    expect(ops[0]?.path).toBe("/metadata/annotations/akv-injector.io~1status");
    expect(result.metadata.annotations?.["example.com/a~b"]).toBe("1");
    expect(result.metadata.annotations?.["akv-injector.io/status"]).toBe("injected");
    expect(escapePointer("a/b~c/~")).toBe("a~1b~0c~1~0");
  });

  it("in init mode, adds a plain init container: no restart policy, no probe", () => {
    const { result } = inject(testPod({ ...annotations, "akv-injector.io/mode": "init" }));
    const sidecar = sidecarOf(result);
    expect(sidecar.restartPolicy).toBeUndefined();
    expect(sidecar.startupProbe).toBeUndefined();
    expect(JSON.parse(envOf(sidecar).AKV_INJECTOR_SPEC ?? "{}")).toMatchObject({ mode: "init" });
  });

  it("takes image, resources, size limit, authority and suffixes from the settings", () => {
    const settings = testSettings({
      AKV_INJECTOR_SIDECAR_IMAGE: "registry.local/sidecar@sha256:abc",
      AKV_INJECTOR_SIDECAR_RESOURCES: '{"limits":{"memory":"256Mi"}}',
      AKV_INJECTOR_TMPFS_SIZE_LIMIT: "16Mi",
      AZURE_AUTHORITY_HOST: "https://127.0.0.1:8445",
      AKV_INJECTOR_VAULT_SUFFIXES: "127.0.0.1:8444,.vault.azure.net",
    });
    const { result } = inject(testPod(annotations), settings);
    const sidecar = sidecarOf(result);
    expect(sidecar.image).toBe("registry.local/sidecar@sha256:abc");
    expect(sidecar.resources).toEqual({ limits: { memory: "256Mi" } });
    expect(result.spec.volumes?.[0]).toEqual({
      name: "akv-secrets",
      emptyDir: { medium: "Memory", sizeLimit: "16Mi" },
    });
    expect(envOf(sidecar)).toMatchObject({
      AZURE_AUTHORITY_HOST: "https://127.0.0.1:8445/",
      AKV_INJECTOR_VAULT_SUFFIXES: "127.0.0.1:8444,.vault.azure.net",
    });
    expect(envOf(sidecar).AKV_INJECTOR_EXTRA_CA_CERTS).toBeUndefined();
    expect("imagePullPolicy" in sidecar).toBe(false);
  });

  it("sets the sidecar's imagePullPolicy only when the settings name one", () => {
    const settings = testSettings({ AKV_INJECTOR_SIDECAR_IMAGE_PULL_POLICY: "Never" });
    const { result } = inject(testPod(annotations), settings);
    expect(sidecarOf(result)).toMatchObject({ imagePullPolicy: "Never" });
  });

  it("passes the extra CA bundle only when the settings have one", () => {
    const ca = createCertificateAuthority({ commonName: "private", now: new Date() });
    const settings = withSidecarExtraCa(testSettings(), ca.certPem);
    const { result } = inject(testPod(annotations), settings);
    const e = envOf(sidecarOf(result));
    expect(e.AKV_INJECTOR_EXTRA_CA_CERTS).toContain("-----BEGIN CERTIFICATE-----");
    expect(Object.keys(e).at(-1)).toBe("AKV_INJECTOR_EXTRA_CA_CERTS");
  });

  it("only adds, and every operation applies with validation", () => {
    const { ops } = inject(testPod(annotations, { initContainers: [], volumes: [] }));
    expect(new Set(ops.map((o) => o.op))).toEqual(new Set(["add"]));
    expect(ops.map((o) => o.path)).toEqual([
      "/metadata/annotations/akv-injector.io~1status",
      "/spec/volumes/-",
      "/spec/volumes/-",
      "/spec/containers/0/volumeMounts",
      "/spec/initContainers/0",
    ]);
  });
});
