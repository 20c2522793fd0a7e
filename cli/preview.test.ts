import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { createCertificateAuthority } from "../certs/index.ts";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import { HELP, parseCliArgs, preview, PREVIEW_DEFAULTS, type PreviewInput } from "./preview.ts";

const CLIENT_ID = "4d0e2f2a-7f44-4d9b-9bd8-0e0b8a1f3c11";

const POD = `apiVersion: v1
kind: Pod
metadata:
  name: app
  namespace: team-a
  labels:
    akv-injector.io/inject: "true"
  annotations:
    akv-injector.io/vault: myvault
    akv-injector.io/secrets: db-password
spec:
  serviceAccountName: app
  containers:
    - name: app
      image: busybox
`;
const SA = `apiVersion: v1
kind: ServiceAccount
metadata:
  name: app
  namespace: team-a
  annotations:
    azure.workload.identity/client-id: ${CLIENT_ID}
`;

interface Container {
  name: string;
  image: string;
  env?: { name: string; value: string }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface OutPod {
  metadata: { annotations: Record<string, string> };
  spec: { initContainers: Container[]; containers: Container[] };
}

const input = (overrides: Partial<PreviewInput> = {}): PreviewInput => ({
  pod: { text: POD, source: "pod.yaml" },
  serviceAccount: { text: SA, source: "sa.yaml" },
  env: {},
  ...overrides,
});

async function usageError(run: () => unknown): Promise<string> {
  try {
    await run();
  } catch (error) {
    expect(isAkvError(error, ErrorCode.CLI_USAGE)).toBe(true);
    return (error as Error).message;
  }
  throw new Error("expected a usage error");
}

describe("parseCliArgs", () => {
  it("reads preview with every option", () => {
    expect(
      parseCliArgs([
        "preview",
        "pod.yaml",
        "--service-account",
        "sa.yaml",
        "--namespace",
        "ns",
        "--tenant-id",
        "t",
        "--sidecar-image=img",
        "--vault-suffixes",
        "127.0.0.1",
        "--authority-host",
        "https://a/",
        "--refresh-interval",
        "1m",
        "--tmpfs-size-limit",
        "1Mi",
        "--file-mode",
        "0600",
        "--sidecar-resources",
        "{}",
        "--extra-ca-file",
        "ca.pem",
      ]),
    ).toEqual({
      command: "preview",
      podFile: "pod.yaml",
      serviceAccountFile: "sa.yaml",
      namespace: "ns",
      extraCaFile: "ca.pem",
      settingsEnv: {
        AZURE_TENANT_ID: "t",
        AKV_INJECTOR_SIDECAR_IMAGE: "img",
        AKV_INJECTOR_VAULT_SUFFIXES: "127.0.0.1",
        AZURE_AUTHORITY_HOST: "https://a/",
        AKV_INJECTOR_REFRESH_INTERVAL: "1m",
        AKV_INJECTOR_TMPFS_SIZE_LIMIT: "1Mi",
        AKV_INJECTOR_FILE_MODE: "0600",
        AKV_INJECTOR_SIDECAR_RESOURCES: "{}",
      },
    });
  });

  it("reads --help anywhere", () => {
    expect(parseCliArgs(["--help"])).toEqual({ command: "help" });
    expect(parseCliArgs(["preview", "-h"])).toEqual({ command: "help" });
  });

  it.each([
    [[], "missing command"],
    [["apply", "x"], "unknown command 'apply'"],
    [["preview"], "missing POD.yaml"],
    [["preview", "a.yaml", "b.yaml"], "unexpected arguments: b.yaml"],
    [["preview", "a.yaml", "--bogus"], "--bogus"],
    [["preview", "a.yaml", "--namespace"], "--namespace"],
  ])("refuses %j", async (argv, expected) => {
    const message = await usageError(() => parseCliArgs(argv));
    expect(message).toContain(expected);
    expect(message).toContain("akv-injector --help");
  });

  it("documents every flag and the defaults in --help", () => {
    for (const flag of [
      "--service-account",
      "--namespace",
      "--tenant-id",
      "--sidecar-image",
      "--vault-suffixes",
      "--authority-host",
      "--refresh-interval",
      "--tmpfs-size-limit",
      "--file-mode",
      "--sidecar-resources",
      "--extra-ca-file",
      "$AZURE_TENANT_ID",
      PREVIEW_DEFAULTS.tenantId,
      PREVIEW_DEFAULTS.sidecarImage,
    ]) {
      expect(HELP).toContain(flag);
    }
  });
});

describe("preview", () => {
  it("prints the mutated pod as the webhook would make it", async () => {
    const result = await preview(input());
    expect(result.exitCode).toBe(0);
    expect(result.outcome).toBe("injected");
    expect(result.stderr).toEqual([]);
    const pod = parse(result.stdout ?? "") as OutPod;
    expect(pod.metadata.annotations["akv-injector.io/status"]).toBe("injected");
    const sidecar = pod.spec.initContainers[0];
    expect(sidecar?.name).toBe("akv-injector");
    expect(sidecar?.image).toBe(PREVIEW_DEFAULTS.sidecarImage);
    expect(sidecar?.env?.find((e) => e.name === "AZURE_CLIENT_ID")?.value).toBe(CLIENT_ID);
    expect(sidecar?.env?.find((e) => e.name === "AZURE_TENANT_ID")?.value).toBe(
      PREVIEW_DEFAULTS.tenantId,
    );
    expect(pod.spec.containers[0]?.volumeMounts).toEqual([
      { name: "akv-secrets", mountPath: "/mnt/secrets", subPath: "files", readOnly: true },
    ]);
  });

  it("takes settings from the environment and flags", async () => {
    const result = await preview(
      input({
        env: {
          AZURE_TENANT_ID: "contoso.onmicrosoft.com",
          AKV_INJECTOR_SIDECAR_IMAGE: "registry.local/sidecar:1",
        },
      }),
    );
    const pod = parse(result.stdout ?? "") as OutPod;
    expect(pod.spec.initContainers[0]?.image).toBe("registry.local/sidecar:1");
    expect(pod.spec.initContainers[0]?.env?.find((e) => e.name === "AZURE_TENANT_ID")?.value).toBe(
      "contoso.onmicrosoft.com",
    );
  });

  it("passes an extra CA bundle to the sidecar", async () => {
    const ca = createCertificateAuthority({ commonName: "x", now: new Date() });
    const result = await preview(input({ extraCaPem: ca.certPem }));
    const pod = parse(result.stdout ?? "") as OutPod;
    expect(pod.spec.initContainers[0]?.env?.at(-1)?.name).toBe("AKV_INJECTOR_EXTRA_CA_CERTS");
  });

  it("prints the refusal and warnings, and exits 1", async () => {
    const pod = POD.replace(
      "akv-injector.io/secrets: db-password",
      "akv-injector.io/secrets: db-password\n    akv-injector.io/secret-../x: a\n    akv-injector.io/refresh-interval: 5s",
    );
    const result = await preview(input({ pod: { text: pod, source: "pod.yaml" } }));
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toBeUndefined();
    expect(result.stderr[0]).toMatch(
      /^Error: admission webhook would deny the request: akv-injector\.io\/secret-\.\.\/x: file name must be one path segment/,
    );
    expect(result.stderr[1]).toMatch(
      /^Warning: akv-injector\.io\/refresh-interval: 5s is under 30s/,
    );
  });

  it("admits with warnings and exits 0", async () => {
    const pod = POD.replace(
      "akv-injector.io/secrets: db-password",
      'akv-injector.io/secrets: db-password\n    akv-injector.io/refresh-interval: "10s"',
    );
    const result = await preview(input({ pod: { text: pod, source: "pod.yaml" } }));
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toHaveLength(1);
    expect(result.stderr[0]).toMatch(/^Warning: /);
  });

  it("without a service account file, assumes one with no annotations and says so", async () => {
    const rest: PreviewInput = { pod: { text: POD, source: "pod.yaml" }, env: {} };
    const refused = await preview(rest);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr.join("\n")).toContain("akv-injector.io/client-id: no client id");
    expect(refused.stderr.join("\n")).toContain("note: no --service-account given");
    const pod = POD.replace(
      "akv-injector.io/secrets: db-password",
      `akv-injector.io/secrets: db-password\n    akv-injector.io/client-id: ${CLIENT_ID}`,
    );
    expect((await preview({ ...rest, pod: { text: pod, source: "pod.yaml" } })).exitCode).toBe(0);
  });

  it("leaves a pod without the label unchanged and says why", async () => {
    const pod = POD.replace('akv-injector.io/inject: "true"', 'app: "web"');
    const result = await preview(input({ pod: { text: pod, source: "pod.yaml" } }));
    expect(result.exitCode).toBe(0);
    expect(result.outcome).toBe("skipped");
    expect(parse(result.stdout ?? "")).toEqual(parse(pod));
    expect(result.stderr[0]).toContain('lacks the label akv-injector.io/inject: "true"');
  });

  it("reads JSON too", async () => {
    const json = JSON.stringify(parse(POD));
    expect((await preview(input({ pod: { text: json, source: "pod.json" } }))).outcome).toBe(
      "injected",
    );
  });

  it("uses --namespace over the pod's", async () => {
    const sa = SA.replace("namespace: team-a", "namespace: other");
    const result = await preview(
      input({ namespace: "other", serviceAccount: { text: sa, source: "sa.yaml" } }),
    );
    expect(result.exitCode).toBe(0);
  });

  it.each([
    ["not YAML", { pod: { text: "a: [", source: "pod.yaml" } }, "pod.yaml: not valid YAML"],
    [
      "two documents",
      { pod: { text: `${POD}---\n${POD}`, source: "pod.yaml" } },
      "pod.yaml: expected one Pod document, found 2",
    ],
    ["empty", { pod: { text: "", source: "pod.yaml" } }, "expected one Pod document, found 0"],
    [
      "a Deployment",
      { pod: { text: "kind: Deployment\nspec:\n  template: {}\n", source: "d.yaml" } },
      'd.yaml: expected kind: Pod, found "Deployment"; for a Deployment, preview its spec.template as a Pod',
    ],
    ["a list", { pod: { text: "- a\n", source: "pod.yaml" } }, "pod.yaml: expected a Pod object"],
    [
      "a service account of another name",
      { serviceAccount: { text: SA.replace("name: app", "name: web"), source: "sa.yaml" } },
      'sa.yaml is service account "web", but the pod uses "app"',
    ],
    [
      "a service account of another namespace",
      {
        serviceAccount: {
          text: SA.replace("namespace: team-a", "namespace: b"),
          source: "sa.yaml",
        },
      },
      'sa.yaml is in namespace "b", but the pod is in "team-a"',
    ],
    [
      "a service account file holding a pod",
      { serviceAccount: { text: POD, source: "sa.yaml" } },
      'sa.yaml: expected kind: ServiceAccount, found "Pod"',
    ],
  ])("refuses %s as bad usage", async (_name, overrides, expected) => {
    expect(await usageError(() => preview(input(overrides)))).toContain(expected);
  });

  it("refuses bad settings flags, naming the variable", async () => {
    const error: unknown = await preview(input({ env: { AKV_INJECTOR_FILE_MODE: "999" } })).catch(
      (e: unknown) => e,
    );
    expect(isAkvError(error, ErrorCode.SETTINGS_INVALID)).toBe(true);
    expect((error as Error).message).toContain("AKV_INJECTOR_FILE_MODE");
  });
});
