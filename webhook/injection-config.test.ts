// Over 400 lines on purpose: the cases of the whole composition (every refusal of the contract, every annotation); each concern's table test sits beside its parser in injection-config/.
import { describe, expect, it } from "vitest";
import { Injected, ServiceAccountAnnotation } from "../common/names.ts";
import { encodeSpec, parseSpec, SpecError } from "../common/spec.ts";
import {
  checkMountPath,
  parseInjectionConfig,
  type InjectionConfig,
  type ServiceAccount,
} from "./injection-config.ts";
import {
  CLIENT_ID,
  TENANT_ID,
  TEST_ANNOTATIONS,
  testParsedPod,
  testServiceAccount,
  testSettings,
} from "../testing/webhook.ts";

const VERSION = "0123456789abcdef0123456789abcdef";
const OTHER_CLIENT = "11111111-2222-3333-4444-555555555555";
const base = { "akv-injector.io/vault": "myvault", "akv-injector.io/secrets": "db-password" };

function parse(
  annotations: Record<string, string>,
  options: {
    spec?: Record<string, unknown>;
    sa?: ServiceAccount;
    env?: Record<string, string>;
  } = {},
) {
  return parseInjectionConfig(
    testParsedPod(annotations, options.spec),
    options.sa ?? testServiceAccount(),
    testSettings(options.env),
  );
}

function config(
  annotations: Record<string, string>,
  options: Parameters<typeof parse>[1] = {},
): InjectionConfig {
  const result = parse(annotations, options);
  if (!result.ok) throw new Error(result.problems.join("; "));
  return result.config;
}

function problems(annotations: Record<string, string>, options: Parameters<typeof parse>[1] = {}) {
  const result = parse(annotations, options);
  expect(result.ok, "expected a refusal").toBe(false);
  return result.ok ? [] : result.problems;
}

const twoContainers = {
  initContainers: [{ name: "migrate", image: "x" }],
  containers: [
    { name: "app", image: "x" },
    { name: "proxy", image: "y" },
  ],
};

describe("parseInjectionConfig: refusals of the contract", () => {
  // [case, annotations, options, expected substrings of the one problem]
  const cases: [string, Record<string, string>, Parameters<typeof parse>[1], string[]][] = [
    [
      "unknown annotation under the prefix",
      { ...base, "akv-injector.io/secert-x": "a" },
      {},
      ["akv-injector.io/secert-x: unknown annotation", "known: akv-injector.io/vault"],
    ],
    [
      "the inject label given as an annotation",
      { ...base, "akv-injector.io/inject": "true" },
      {},
      ["akv-injector.io/inject: unknown annotation", "is a pod label"],
    ],
    [
      "a notification to another host",
      { ...base, "akv-injector.io/notify-app": "http://10.0.0.1/" },
      {},
      ["akv-injector.io/notify-app: expected a loopback host", '(got "http://10.0.0.1/")'],
    ],
    [
      "a metrics port outside 1024-65535",
      { ...base, "akv-injector.io/metrics-port": "80" },
      {},
      ["akv-injector.io/metrics-port: expected a port number from 1024 to 65535", '(got "80")'],
    ],
    [
      "bad secret name in secrets",
      { ...base, "akv-injector.io/secrets": "db-password,under_score" },
      {},
      ["akv-injector.io/secrets: expected a secret name of 1-127", '(got "under_score")'],
    ],
    [
      "bad secret name in secret-<file>",
      { ...base, "akv-injector.io/secret-db.txt": "db.password" },
      {},
      ["akv-injector.io/secret-db.txt: expected a secret name", '(got "db.password")'],
    ],
    [
      "bad secret version",
      { ...base, "akv-injector.io/secrets": "db-password/123" },
      {},
      [
        "akv-injector.io/secrets: expected a secret version of 32 hex digits",
        '(got "db-password/123")',
      ],
    ],
    [
      "bad file name (the contract's example)",
      { ...base, "akv-injector.io/secret-../x": "db-password" },
      {},
      ["akv-injector.io/secret-../x: file name must be one path segment", '(got "../x")'],
    ],
    [
      "bad file name of a template",
      { ...base, "akv-injector.io/template-..env": "x" },
      {},
      ["akv-injector.io/template-..env: file name must be one path segment", '(got "..env")'],
    ],
    [
      "empty file name",
      { ...base, "akv-injector.io/secret-": "db-password" },
      {},
      ["akv-injector.io/secret-: file name must be one path segment", '(got "")'],
    ],
    [
      "vault URL not https",
      { ...base, "akv-injector.io/vault": "http://myvault.vault.azure.net" },
      {},
      [
        "akv-injector.io/vault: expected an https:// vault URL",
        '(got "http://myvault.vault.azure.net")',
      ],
    ],
    [
      "vault URL outside the allowed suffixes",
      { ...base, "akv-injector.io/vault": "https://evil.example.com" },
      {},
      [
        "akv-injector.io/vault: expected a vault host under one of the allowed suffixes: .vault.azure.net",
        "evil.example.com",
      ],
    ],
    [
      "vault URL with a path",
      { ...base, "akv-injector.io/vault": "https://myvault.vault.azure.net/secrets" },
      {},
      ["akv-injector.io/vault: expected a vault URL with no path"],
    ],
    [
      "bad vault name",
      { ...base, "akv-injector.io/vault": "my--vault" },
      {},
      ["akv-injector.io/vault: expected a vault name of 3-24 characters", '(got "my--vault")'],
    ],
    [
      "missing vault",
      { "akv-injector.io/secrets": "a" },
      {},
      ["akv-injector.io/vault: is required"],
    ],
    [
      "duplicate target file across annotations",
      { ...base, "akv-injector.io/secret-db-password": "other" },
      {},
      [
        'akv-injector.io/secret-db-password: file "db-password" is also written by akv-injector.io/secrets',
      ],
    ],
    [
      "duplicate target file within secrets",
      { ...base, "akv-injector.io/secrets": `db-password,db-password/${VERSION}` },
      {},
      [
        `akv-injector.io/secrets: file "db-password" is written by both 'db-password' and 'db-password/`,
      ],
    ],
    [
      "duplicate target file between a secret and a template",
      { ...base, "akv-injector.io/secret-app.env": "a", "akv-injector.io/template-app.env": "x" },
      {},
      [
        'akv-injector.io/template-app.env: file "app.env" is also written by akv-injector.io/secret-app.env',
      ],
    ],
    [
      "template referencing a bad ref",
      { ...base, "akv-injector.io/template-app.env": 'PASS={{ secret "bad_name" }}' },
      {},
      ["akv-injector.io/template-app.env: expected a secret name", `'{{ secret "bad_name" }}'`],
    ],
    [
      "template with another action",
      { ...base, "akv-injector.io/template-app.env": "X={{ .Values.x }}" },
      {},
      ["akv-injector.io/template-app.env: expected only {{ secret", "{{ .Values.x }}"],
    ],
    [
      "containers naming a container the pod lacks",
      { ...base, "akv-injector.io/containers": "app,sidecar" },
      {},
      [
        'akv-injector.io/containers: the pod has no container "sidecar" (it has: app)',
        '(got "app,sidecar")',
      ],
    ],
    [
      "containers naming the injected container",
      { ...base, "akv-injector.io/containers": "akv-injector" },
      {},
      ['akv-injector.io/containers: "akv-injector" is the injected container itself'],
    ],
    [
      "containers empty",
      { ...base, "akv-injector.io/containers": " , " },
      {},
      ["akv-injector.io/containers: expected a comma-separated list of container names"],
    ],
    [
      "no client id anywhere",
      base,
      { sa: testServiceAccount("app", "team-a", {}) },
      [
        "akv-injector.io/client-id: no client id: annotate service account team-a/app with azure.workload.identity/client-id, or the pod with akv-injector.io/client-id",
      ],
    ],
    [
      "bad client id on the pod",
      { ...base, "akv-injector.io/client-id": "my-app" },
      {},
      ['akv-injector.io/client-id: expected a client id (a GUID) (got "my-app")'],
    ],
    [
      "bad client id on the service account",
      base,
      { sa: testServiceAccount("app", "team-a", { [ServiceAccountAnnotation.clientId]: "nope" }) },
      [
        'service account team-a/app annotation azure.workload.identity/client-id: expected a client id (a GUID) (got "nope")',
      ],
    ],
    [
      "bad tenant id on the service account",
      base,
      {
        sa: testServiceAccount("app", "team-a", {
          [ServiceAccountAnnotation.clientId]: CLIENT_ID,
          [ServiceAccountAnnotation.tenantId]: "x/../y",
        }),
      },
      [
        "service account team-a/app annotation azure.workload.identity/tenant-id: expected the tenant's GUID",
        '(got "x/../y")',
      ],
    ],
    [
      "no secrets at all",
      { "akv-injector.io/vault": "myvault" },
      {},
      [
        "akv-injector.io/secrets: at least one of akv-injector.io/secrets, akv-injector.io/secret-<file> or akv-injector.io/template-<file> is required",
      ],
    ],
    [
      "an empty secrets list",
      { ...base, "akv-injector.io/secrets": " ,, " },
      {},
      [
        "akv-injector.io/secrets: expected a comma-separated list of NAME[/VERSION] or https://<vault>/secrets/NAME[/VERSION]",
      ],
    ],
    [
      "bad format",
      { ...base, "akv-injector.io/format-db-password": "json" },
      {},
      [
        'akv-injector.io/format-db-password: expected one of raw, pem, cert, key, base64-decode (got "json")',
      ],
    ],
    [
      "format of a file nobody writes",
      { ...base, "akv-injector.io/format-tls.pem": "pem" },
      {},
      ['akv-injector.io/format-tls.pem: no file "tls.pem" is written by akv-injector.io/secrets'],
    ],
    [
      "format of a template other than raw",
      { ...base, "akv-injector.io/template-t": "x", "akv-injector.io/format-t": "pem" },
      {},
      ['akv-injector.io/format-t: a template is always written raw (got "pem")'],
    ],
    [
      "bad mode",
      { ...base, "akv-injector.io/mode": "daemon" },
      {},
      ['akv-injector.io/mode: expected sidecar or init (got "daemon")'],
    ],
    [
      "bad refresh interval",
      { ...base, "akv-injector.io/refresh-interval": "5 minutes" },
      {},
      [
        "akv-injector.io/refresh-interval: expected a positive Go-style duration",
        '(got "5 minutes")',
      ],
    ],
    [
      "refresh interval under 1s",
      { ...base, "akv-injector.io/refresh-interval": "500ms" },
      {},
      ['akv-injector.io/refresh-interval: expected a duration from 1s to 480h (got "500ms")'],
    ],
    [
      "refresh interval over what a timer holds (it would fire at once, in a loop)",
      { ...base, "akv-injector.io/refresh-interval": "1000h" },
      {},
      ['akv-injector.io/refresh-interval: expected a duration from 1s to 480h (got "1000h")'],
    ],
    [
      "bad file mode",
      { ...base, "akv-injector.io/file-mode": "rw-r--r--" },
      {},
      ["akv-injector.io/file-mode: expected an octal file mode like 0644", '(got "rw-r--r--")'],
    ],
    [
      "relative mount path",
      { ...base, "akv-injector.io/mount-path": "secrets" },
      {},
      ["akv-injector.io/mount-path: expected an absolute directory", '(got "secrets")'],
    ],
    [
      "mount path with ..",
      { ...base, "akv-injector.io/mount-path": "/mnt/../etc" },
      {},
      ["akv-injector.io/mount-path: expected an absolute directory"],
    ],
    [
      "mount path that a target already uses",
      base,
      {
        spec: {
          containers: [
            {
              name: "app",
              image: "x",
              volumeMounts: [{ name: "data", mountPath: "/mnt/secrets/" }],
            },
          ],
        },
      },
      ['akv-injector.io/mount-path: container "app" already mounts volume "data" at /mnt/secrets'],
    ],
    [
      "a status annotation the webhook did not write",
      { ...base, "akv-injector.io/status": "skip" },
      {},
      ['akv-injector.io/status: is written by the webhook only; remove it (got "skip")'],
    ],
    [
      "a reserved volume name",
      base,
      { spec: { volumes: [{ name: "akv-secrets", emptyDir: {} }] } },
      ['spec.volumes: the pod already has a volume "akv-secrets"'],
    ],
    [
      "an app container mounting the token volume the patch adds",
      base,
      {
        spec: {
          containers: [
            {
              name: "app",
              image: "x",
              volumeMounts: [{ name: "akv-injector-token", mountPath: "/tok" }],
            },
          ],
        },
      },
      [
        'spec.containers[0].volumeMounts: container "app" mounts volume "akv-injector-token", which only the injected sidecar may mount',
      ],
    ],
    [
      "an init container mounting the token volume the patch adds",
      { ...base, "akv-injector.io/containers": "app" },
      {
        spec: {
          initContainers: [
            {
              name: "warm",
              image: "x",
              volumeMounts: [{ name: "akv-injector-token", mountPath: "/tok" }],
            },
          ],
        },
      },
      ['spec.initContainers[0].volumeMounts: container "warm" mounts volume "akv-injector-token"'],
    ],
    [
      "a container left out of the targets mounting the secrets volume read-write",
      { ...base, "akv-injector.io/containers": "app" },
      {
        spec: {
          containers: [
            { name: "app", image: "x" },
            {
              name: "sneaky",
              image: "x",
              volumeMounts: [{ name: "akv-secrets", mountPath: "/plant" }],
            },
          ],
        },
      },
      [
        'spec.containers[1].volumeMounts: container "sneaky" mounts volume "akv-secrets" read-write, and only the injected sidecar writes to it',
      ],
    ],
    [
      "a Windows pod (spec.os.name)",
      base,
      { spec: { os: { name: "windows" } } },
      ["spec.os.name: the pod runs on Windows", "runs on Linux nodes only"],
    ],
    [
      "a Windows pod (node selector)",
      base,
      { spec: { nodeSelector: { "kubernetes.io/os": "windows" } } },
      ["spec.nodeSelector: the pod runs on Windows (kubernetes.io/os: windows)"],
    ],
    [
      "a Windows pod (required node affinity)",
      base,
      {
        spec: {
          affinity: {
            nodeAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [
                  {
                    matchExpressions: [
                      { key: "kubernetes.io/os", operator: "In", values: ["windows"] },
                    ],
                  },
                ],
              },
            },
          },
        },
      },
      [
        "spec.affinity.nodeAffinity: the pod runs on Windows (required node affinity kubernetes.io/os in [windows])",
      ],
    ],
    ...[
      "/etc",
      "/usr/",
      "/proc/self",
      "/var/run/secrets/kubernetes.io/serviceaccount",
      "/dev/shm",
    ].map((path): (typeof cases)[number] => [
      `a mount path over a system folder: ${path}`,
      { ...base, "akv-injector.io/mount-path": path },
      {},
      [
        `akv-injector.io/mount-path: expected an absolute directory`,
        "this one ",
        `(got "${path}")`,
      ],
    ]),
    [
      "a reserved container name",
      base,
      { spec: { initContainers: [{ name: "akv-injector", image: "x" }] } },
      ['spec: the pod already has a container "akv-injector"'],
    ],
  ];

  it.each(cases)("refuses %s", (_name, annotations, options, expected) => {
    const list = problems(annotations, options);
    expect(list).toHaveLength(1);
    for (const text of expected) expect(list[0]).toContain(text);
  });

  it("reports every problem at once", () => {
    const list = problems(
      {
        "akv-injector.io/vault": "http://x",
        "akv-injector.io/secrets": "ok,bad_one",
        "akv-injector.io/secret-../x": "a",
        "akv-injector.io/mode": "daemon",
        "akv-injector.io/unknown": "1",
      },
      { sa: testServiceAccount("app", "team-a", {}) },
    );
    expect(list.map((p) => p.split(":")[0])).toEqual([
      "akv-injector.io/unknown",
      "akv-injector.io/vault",
      "akv-injector.io/secrets",
      "akv-injector.io/secret-../x",
      "akv-injector.io/mode",
      "akv-injector.io/client-id",
    ]);
  });

  it("shortens long values in messages", () => {
    const list = problems({ ...base, "akv-injector.io/mode": "x".repeat(500) });
    expect(list[0]?.length).toBeLessThan(200);
    expect(list[0]).toContain("…");
  });
});

describe("parseInjectionConfig: clusters whose kubelets may lack native sidecars", () => {
  const env = { AKV_INJECTOR_NATIVE_SIDECARS: "false" };
  const base = { "akv-injector.io/vault": "myvault", "akv-injector.io/secrets": "db-password" };

  it("falls back to init mode, saying why, when the pod does not choose", () => {
    const result = parse(base, { env });
    expect(result.ok && result.config.spec.mode).toBe("init");
    expect(result.warnings).toEqual([
      expect.stringContaining(
        "akv-injector.io/mode: init: this cluster's kubelets may predate native sidecars (the webhook's AKV_INJECTOR_NATIVE_SIDECARS is false)",
      ),
    ]);
  });

  it("refuses an explicit sidecar mode, and takes an explicit init mode silently", () => {
    expect(problems({ ...base, "akv-injector.io/mode": "sidecar" }, { env })).toEqual([
      "akv-injector.io/mode: expected init: this cluster's kubelets may predate native sidecars (the webhook's AKV_INJECTOR_NATIVE_SIDECARS is false) (got \"sidecar\")",
    ]);
    const init = parse({ ...base, "akv-injector.io/mode": "init" }, { env });
    expect(init.ok && init.config.spec.mode).toBe("init");
    expect(init.warnings).toEqual([]);
  });
});

describe("parseInjectionConfig: every annotation", () => {
  it("builds the default config from vault and secrets", () => {
    const c = config(base);
    expect(c).toEqual({
      spec: {
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
        outputDir: Injected.sidecarOutputDir,
      },
      mountPath: "/mnt/secrets",
      targets: [{ list: "containers", index: 0, name: "app" }],
      clientId: CLIENT_ID,
      tenantId: TENANT_ID,
    });
    expect(Object.isFrozen(c.spec.files[0])).toBe(true);
  });

  it("vault: a bare name takes the first dotted suffix", () => {
    const c = config(base, {
      env: { AKV_INJECTOR_VAULT_SUFFIXES: "127.0.0.1:8444,.vault.azure.cn" },
    });
    expect(c.spec.vaultUrl).toBe("https://myvault.vault.azure.cn");
  });

  it("vault: a URL on an exact-host entry (a local emulator)", () => {
    const c = config(
      { ...base, "akv-injector.io/vault": "https://127.0.0.1:8444/" },
      { env: { AKV_INJECTOR_VAULT_SUFFIXES: "127.0.0.1:8444" } },
    );
    expect(c.spec.vaultUrl).toBe("https://127.0.0.1:8444");
  });

  it("secrets: a list with versions, each written to its name", () => {
    const c = config({ ...base, "akv-injector.io/secrets": ` a , b/${VERSION.toUpperCase()} ` });
    expect(c.spec.files).toEqual([
      { file: "a", format: "raw", source: { kind: "secret", ref: { name: "a" } } },
      {
        file: "b",
        format: "raw",
        source: { kind: "secret", ref: { name: "b", version: VERSION } },
      },
    ]);
  });

  it("secret-<file>, template-<file> and format-<file>", () => {
    const c = config({
      "akv-injector.io/vault": "myvault",
      "akv-injector.io/secret-tls.pem": "tls-cert",
      "akv-injector.io/format-tls.pem": "pem",
      "akv-injector.io/template-app.env": 'USER=app\nPASS={{ secret "db-password" }}\n',
      "akv-injector.io/format-app.env": "raw",
    });
    expect(c.spec.files).toEqual([
      { file: "tls.pem", format: "pem", source: { kind: "secret", ref: { name: "tls-cert" } } },
      {
        file: "app.env",
        format: "raw",
        source: {
          kind: "template",
          parts: [{ text: "USER=app\nPASS=" }, { secret: { name: "db-password" } }, { text: "\n" }],
        },
      },
    ]);
  });

  it.each(["raw", "pem", "cert", "key", "base64-decode"])("format-<file>: %s", (format) => {
    const c = config({ ...base, "akv-injector.io/format-db-password": format });
    expect(c.spec.files[0]?.format).toBe(format);
  });

  it("mount-path", () => {
    expect(config({ ...base, "akv-injector.io/mount-path": "/etc/app/secrets/" }).mountPath).toBe(
      "/etc/app/secrets",
    );
  });

  it("containers: all containers and init containers by default", () => {
    expect(config(base, { spec: twoContainers }).targets).toEqual([
      { list: "initContainers", index: 0, name: "migrate" },
      { list: "containers", index: 0, name: "app" },
      { list: "containers", index: 1, name: "proxy" },
    ]);
  });

  it("containers: only those named", () => {
    const result = parse(
      { ...base, "akv-injector.io/containers": "proxy, migrate" },
      { spec: twoContainers },
    );
    expect(result.ok && result.config.targets).toEqual([
      { list: "containers", index: 1, name: "proxy" },
      { list: "initContainers", index: 0, name: "migrate" },
    ]);
    expect(result.warnings).toEqual([]);
  });

  it("containers: warns when no app container is named", () => {
    const result = parse(
      { ...base, "akv-injector.io/containers": "migrate" },
      { spec: twoContainers },
    );
    expect(result.ok).toBe(true);
    expect(result.warnings).toEqual([
      "akv-injector.io/containers: names no app container, so only init containers see the secrets",
    ]);
  });

  it("mode: init", () => {
    expect(config({ ...base, "akv-injector.io/mode": "init" }).spec.mode).toBe("init");
  });

  it("refresh-interval: the chart's default, and the pod's", () => {
    expect(
      config(base, { env: { AKV_INJECTOR_REFRESH_INTERVAL: "10m" } }).spec.refreshIntervalMs,
    ).toBe(600_000);
    const result = parse({ ...base, "akv-injector.io/refresh-interval": "1h30m" });
    expect(result.ok && result.config.spec.refreshIntervalMs).toBe(5_400_000);
    expect(result.warnings).toEqual([]);
  });

  it("refresh-interval: warns under 30s", () => {
    const result = parse({ ...base, "akv-injector.io/refresh-interval": "10s" });
    expect(result.ok && result.config.spec.refreshIntervalMs).toBe(10_000);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toMatch(/^akv-injector\.io\/refresh-interval: 10s is under 30s/);
  });

  it("refresh-interval: warns that init mode ignores it", () => {
    const result = parse({
      ...base,
      "akv-injector.io/refresh-interval": "10s",
      "akv-injector.io/mode": "init",
    });
    expect(result.warnings).toEqual([
      "akv-injector.io/refresh-interval: is ignored in init mode, which syncs once",
    ]);
  });

  it("file-mode: warns when files are closed to other users and the pod has no fsGroup", () => {
    const closed = { ...base, "akv-injector.io/file-mode": "0440" };
    const result = parse(closed);
    expect(result.ok).toBe(true);
    expect(result.warnings).toEqual([
      `akv-injector.io/file-mode: 0440 closes the files to other users and the pod sets no securityContext.fsGroup: only containers running as user ${Injected.sidecarUser} can read them`,
    ]);
    expect(parse(closed, { spec: { securityContext: { fsGroup: 2000 } } }).warnings).toEqual([]);
    expect(parse({ ...base, "akv-injector.io/file-mode": "0444" }).warnings).toEqual([]);
    expect(parse(base, { env: { AKV_INJECTOR_FILE_MODE: "0600" } }).warnings).toHaveLength(1);
  });

  it("file-mode: the chart's default, and the pod's", () => {
    expect(config(base, { env: { AKV_INJECTOR_FILE_MODE: "0600" } }).spec.fileMode).toBe(0o600);
    expect(config({ ...base, "akv-injector.io/file-mode": "440" }).spec.fileMode).toBe(0o440);
  });

  it("client-id: the pod's overrides the service account's", () => {
    expect(config({ ...base, "akv-injector.io/client-id": OTHER_CLIENT }).clientId).toBe(
      OTHER_CLIENT,
    );
    const sa = testServiceAccount("app", "team-a", {
      [ServiceAccountAnnotation.clientId]: "broken",
    });
    expect(config({ ...base, "akv-injector.io/client-id": OTHER_CLIENT }, { sa }).clientId).toBe(
      OTHER_CLIENT,
    );
  });

  it("tenant: the service account's, else the settings'", () => {
    const sa = testServiceAccount("app", "team-a", {
      [ServiceAccountAnnotation.clientId]: CLIENT_ID,
      [ServiceAccountAnnotation.tenantId]: "0000000A-0000-0000-0000-00000000000B",
    });
    expect(config(base, { sa }).tenantId).toBe("0000000a-0000-0000-0000-00000000000b");
    expect(config(base).tenantId).toBe(TENANT_ID);
  });

  it("ignores annotations outside the prefix", () => {
    expect(parse({ ...base, "example.com/x": "1", "akv-injector.io.evil/y": "2" }).ok).toBe(true);
  });

  it("refresh-interval: the webhook's bounds are the sidecar parser's", () => {
    // [annotation, milliseconds, the first value outside the bounds]
    for (const [text, ms, outside] of [
      ["1s", 1000, 999],
      ["480h", 480 * 3_600_000, 480 * 3_600_000 + 1],
    ] as const) {
      const c = config({ ...base, "akv-injector.io/refresh-interval": text });
      expect(parseSpec(encodeSpec(c.spec)).refreshIntervalMs).toBe(ms);
      expect(() => parseSpec(encodeSpec({ ...c.spec, refreshIntervalMs: outside }))).toThrow(
        SpecError,
      );
    }
    expect(parse({ ...base, "akv-injector.io/refresh-interval": "999ms" }).ok).toBe(false);
    expect(parse({ ...base, "akv-injector.io/refresh-interval": "480h1ms" }).ok).toBe(false);
  });

  it("makes a spec that the sidecar's parser accepts unchanged", () => {
    const c = config({
      "akv-injector.io/vault": "myvault",
      "akv-injector.io/secrets": `a,b/${VERSION}`,
      "akv-injector.io/secret-tls.pem": "cert",
      "akv-injector.io/format-tls.pem": "pem",
      "akv-injector.io/template-t.env": 'X={{ secret "a" }}',
      "akv-injector.io/mode": "init",
      "akv-injector.io/file-mode": "0400",
    });
    expect(parseSpec(encodeSpec(c.spec))).toEqual(c.spec);
  });
});

describe("checkMountPath", () => {
  it.each(["/mnt/secrets", "/a", "/var/run/app/", "/with space"])("accepts %j", (p) => {
    expect(checkMountPath(p)).toBeUndefined();
  });
  it.each(["", "/", "relative", "/a//b", "/a/./b", "/a/..", "/a\nb", `/${"x".repeat(1100)}`])(
    "refuses %j",
    (p) => {
      expect(checkMountPath(p)).toBeDefined();
    },
  );
});

describe("parseInjectionConfig: the config is frozen all the way down", () => {
  it("freezes the spec, each file, its source, refs and template parts, and the targets", () => {
    const parsed = parseInjectionConfig(
      testParsedPod({
        ...TEST_ANNOTATIONS,
        "akv-injector.io/secret-pinned": "db-password/0123456789abcdef0123456789abcdef",
        "akv-injector.io/template-app.env": 'A={{ secret "a" }}',
      }),
      testServiceAccount(),
      testSettings(),
    );
    if (!parsed.ok) throw new Error(parsed.problems.join("; "));
    const { config } = parsed;
    const frozen: unknown[] = [
      config,
      config.spec,
      config.spec.files,
      config.targets,
      ...config.targets,
    ];
    for (const file of config.spec.files) {
      frozen.push(file, file.source);
      if (file.source.kind === "secret") frozen.push(file.source.ref);
      else {
        frozen.push(file.source.parts, ...file.source.parts);
        for (const part of file.source.parts) if ("secret" in part) frozen.push(part.secret);
      }
    }
    expect(config.spec.files.map((f) => f.source.kind).sort()).toEqual([
      "secret",
      "secret",
      "template",
    ]);
    for (const value of frozen) expect(Object.isFrozen(value)).toBe(true);
  });
});
