/**
 * The end-to-end cases, shared by the local suite (real apiserver, test
 * kubelet) and the kind checks (`e2e/kind/`, a real cluster): the same pods,
 * secrets, refusals and expected files, and the same checks of what the app
 * container sees, run through a {@link PodAccess} that is the test kubelet
 * here and `kubectl exec` in kind. Checks throw an Error that says what
 * differed; they use only `cat`, `stat` and `ls`, which busybox has too.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { randomBytes } from "node:crypto";
import { INJECT_LABEL, Injected } from "../common/names.ts";

/** How a check reaches into a pod's container. */
export interface PodAccess {
  exec(
    container: string,
    argv: readonly string[],
  ): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** What differs between the places a scenario runs. */
export interface ScenarioContext {
  /** The vault the pods name (`https://127.0.0.1:PORT` here, the mock's Service in kind). */
  readonly vaultUrl: string;
  /** The app containers' image; they only need `sleep`, `cat`, `stat`, `ls`. */
  readonly appImage: string;
}

/** A secret in the vault, its value fresh for every run (the log scan looks for it). */
export interface SecretSeed {
  readonly name: string;
  readonly value: string;
}

/** A file the app must see: its path in the container, content and mode. */
export interface ExpectedFile {
  readonly container: string;
  readonly path: string;
  readonly content: string;
  /** Octal, as `stat -c %a` prints it. */
  readonly mode: string;
}

/** A labelled pod that the webhook injects and the sidecar serves. */
export interface InjectionScenario {
  readonly name: string;
  readonly pod: string;
  readonly serviceAccount: string;
  readonly annotations: Readonly<Record<string, string>>;
  readonly containers: readonly string[];
  readonly initContainers?: readonly string[];
  readonly secrets: readonly SecretSeed[];
  readonly expected: readonly ExpectedFile[];
  /** Containers that must not have the secrets mount. */
  readonly withoutMount?: readonly { container: string; path: string }[];
  /**
   * The pod's fsGroup. Files the sidecar (its own user) writes with a mode
   * closed to "other", like 0440, are readable by an app of another user only
   * through the group: the fsGroup owns the volume (setgid) and is every
   * container's supplementary group.
   */
  readonly fsGroup?: number;
}

/** A pod the webhook refuses, and words its message must contain. */
export interface RefusalScenario {
  readonly name: string;
  readonly pod: string;
  readonly serviceAccount: string;
  readonly annotations: Readonly<Record<string, string>>;
  readonly containers?: readonly string[];
  /** Each must appear in the refusal message. */
  readonly message: readonly string[];
}

/** A value no log line could contain by chance. */
export function freshValue(label: string): string {
  return `${label}-${randomBytes(18).toString("base64url")}`;
}

/** The namespace, service account and its client id every scenario uses. */
export const WORKLOAD = { namespace: "team-a", serviceAccount: "app", otherServiceAccount: "no-identity" };

/** The scenarios of one run (values fresh each time). */
export function injectionScenarios(ctx: ScenarioContext): InjectionScenario[] {
  const db = { name: "db-password", value: freshValue("db") };
  const api = { name: "api-key", value: freshValue("api") };
  const config = { name: "app-config", value: `{"endpoint":"https://example.test","seed":"${freshValue("cfg")}"}` };
  const token = { name: "init-token", value: freshValue("init") };
  return [
    {
      name: "secrets listed in one annotation, default mount path, every container",
      pod: "basic",
      serviceAccount: WORKLOAD.serviceAccount,
      annotations: {
        "akv-injector.io/vault": ctx.vaultUrl,
        "akv-injector.io/secrets": `${db.name},${api.name}`,
      },
      containers: ["app", "helper"],
      secrets: [db, api],
      expected: [
        { container: "app", path: "/mnt/secrets/db-password", content: db.value, mode: "644" },
        { container: "app", path: "/mnt/secrets/api-key", content: api.value, mode: "644" },
        { container: "helper", path: "/mnt/secrets/db-password", content: db.value, mode: "644" },
      ],
    },
    {
      name: "per-file secrets and templates, a mount path, a file mode, one target container",
      pod: "files",
      serviceAccount: WORKLOAD.serviceAccount,
      annotations: {
        "akv-injector.io/vault": ctx.vaultUrl,
        "akv-injector.io/secret-config.json": config.name,
        "akv-injector.io/template-app.env": `user=app\npass={{ secret "${db.name}" }}\n`,
        "akv-injector.io/mount-path": "/etc/app/secrets",
        "akv-injector.io/file-mode": "0440",
        "akv-injector.io/containers": "app",
      },
      fsGroup: 1000,
      containers: ["app", "metrics"],
      secrets: [db, config],
      expected: [
        { container: "app", path: "/etc/app/secrets/config.json", content: config.value, mode: "440" },
        {
          container: "app",
          path: "/etc/app/secrets/app.env",
          content: `user=app\npass=${db.value}\n`,
          mode: "440",
        },
      ],
      withoutMount: [{ container: "metrics", path: "/etc/app/secrets/app.env" }],
    },
    {
      name: "init mode: one sync before the app starts, no refresh",
      pod: "init",
      serviceAccount: WORKLOAD.serviceAccount,
      annotations: {
        "akv-injector.io/vault": ctx.vaultUrl,
        "akv-injector.io/secrets": token.name,
        "akv-injector.io/mode": "init",
      },
      containers: ["app"],
      secrets: [token],
      expected: [{ container: "app", path: "/mnt/secrets/init-token", content: token.value, mode: "644" }],
    },
  ];
}

/** The refusals the contract lists, each with the words its message must hold. */
export function refusalScenarios(ctx: ScenarioContext): RefusalScenario[] {
  const vault = { "akv-injector.io/vault": ctx.vaultUrl };
  const base = { serviceAccount: WORKLOAD.serviceAccount };
  return [
    {
      ...base,
      name: "unknown annotation under the prefix",
      pod: "refuse-unknown",
      annotations: { ...vault, "akv-injector.io/secrets": "a", "akv-injector.io/secretz": "b" },
      message: ["akv-injector.io/secretz"],
    },
    {
      ...base,
      name: "bad secret name",
      pod: "refuse-secret-name",
      annotations: { ...vault, "akv-injector.io/secrets": "db_password" },
      message: ["akv-injector.io/secrets", "db_password"],
    },
    {
      ...base,
      name: "bad secret version",
      pod: "refuse-version",
      annotations: { ...vault, "akv-injector.io/secrets": "db/123" },
      message: ["akv-injector.io/secrets", "version"],
    },
    {
      ...base,
      name: "file name that leaves the folder",
      pod: "refuse-file-name",
      annotations: { ...vault, "akv-injector.io/secret-..x": "db" },
      message: ["akv-injector.io/secret-..x", "one path segment"],
    },
    {
      ...base,
      name: "vault outside the allowed suffixes",
      pod: "refuse-vault",
      annotations: { "akv-injector.io/vault": "https://evil.example.com", "akv-injector.io/secrets": "db" },
      message: ["akv-injector.io/vault", "https://evil.example.com"],
    },
    {
      ...base,
      name: "plain http vault",
      pod: "refuse-http-vault",
      annotations: { "akv-injector.io/vault": "http://127.0.0.1:1", "akv-injector.io/secrets": "db" },
      message: ["akv-injector.io/vault"],
    },
    {
      ...base,
      name: "duplicate target file",
      pod: "refuse-duplicate",
      annotations: { ...vault, "akv-injector.io/secrets": "db", "akv-injector.io/secret-db": "other" },
      message: ["db"],
    },
    {
      ...base,
      name: "template with a bad ref",
      pod: "refuse-template",
      annotations: { ...vault, "akv-injector.io/template-x": '{{ secret "bad name" }}' },
      message: ["akv-injector.io/template-x"],
    },
    {
      ...base,
      name: "containers naming a container the pod lacks",
      pod: "refuse-containers",
      annotations: { ...vault, "akv-injector.io/secrets": "db", "akv-injector.io/containers": "nope" },
      message: ["akv-injector.io/containers", "nope"],
    },
    {
      ...base,
      name: "nothing to write",
      pod: "refuse-empty",
      annotations: { ...vault },
      message: ["akv-injector.io/secrets"],
    },
    {
      serviceAccount: WORKLOAD.otherServiceAccount,
      name: "no client id anywhere",
      pod: "refuse-client-id",
      annotations: { ...vault, "akv-injector.io/secrets": "db" },
      message: ["azure.workload.identity/client-id"],
    },
    {
      serviceAccount: "missing-account",
      name: "a service account that does not exist",
      pod: "refuse-missing-account",
      annotations: { ...vault, "akv-injector.io/secrets": "db" },
      message: ["missing-account"],
    },
  ];
}

/** The pod manifest of a scenario, labelled for injection. */
export function buildPod(
  scenario: Pick<InjectionScenario, "pod" | "serviceAccount" | "annotations"> & {
    containers?: readonly string[];
    initContainers?: readonly string[];
    fsGroup?: number;
  },
  ctx: ScenarioContext,
  namespace = WORKLOAD.namespace,
): V1Pod {
  const container = (name: string) => ({
    name,
    image: ctx.appImage,
    command: ["sleep", "3600"],
    securityContext: { runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true },
  });
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: scenario.pod,
      namespace,
      labels: { [INJECT_LABEL]: "true", "e2e.akv-injector.io/scenario": scenario.pod },
      annotations: { ...scenario.annotations },
    },
    spec: {
      serviceAccountName: scenario.serviceAccount,
      terminationGracePeriodSeconds: 5,
      ...(scenario.fsGroup === undefined ? {} : { securityContext: { fsGroup: scenario.fsGroup } }),
      containers: (scenario.containers ?? ["app"]).map(container),
      ...(scenario.initContainers === undefined
        ? {}
        : { initContainers: scenario.initContainers.map(container) }),
    },
  };
}

/** Runs a command in a container; throws with its output when it fails. */
async function run(access: PodAccess, container: string, argv: readonly string[]): Promise<string> {
  const result = await access.exec(container, argv);
  if (result.code !== 0) {
    throw new Error(
      `${container}: ${argv.join(" ")} failed (exit ${String(result.code)}): ${result.stderr.trim()}`,
    );
  }
  return result.stdout;
}

/**
 * What the app sees: each expected file with its content and mode, read as
 * the app container's user; the names are links into `..data` (the atomic
 * layout); containers left out have no such file.
 */
export async function checkAppView(access: PodAccess, scenario: InjectionScenario): Promise<void> {
  for (const file of scenario.expected) {
    const content = await run(access, file.container, ["cat", file.path]);
    if (content !== file.content) {
      throw new Error(
        `${scenario.pod}/${file.container}: ${file.path} holds ${content.length} bytes that are not the secret's value`,
      );
    }
    const mode = (await run(access, file.container, ["stat", "-L", "-c", "%a", file.path])).trim();
    if (mode !== file.mode) {
      throw new Error(`${scenario.pod}/${file.container}: ${file.path} has mode ${mode}, expected ${file.mode}`);
    }
    const dir = file.path.slice(0, file.path.lastIndexOf("/"));
    const listing = await run(access, file.container, ["ls", "-A", dir]);
    if (!listing.split(/\s+/).includes("..data")) {
      throw new Error(`${scenario.pod}/${file.container}: ${dir} has no ..data link (not published atomically)`);
    }
  }
  for (const absent of scenario.withoutMount ?? []) {
    const result = await access.exec(absent.container, ["cat", absent.path]);
    if (result.code === 0) {
      throw new Error(`${scenario.pod}/${absent.container}: ${absent.path} is readable but must not be mounted there`);
    }
  }
  // The token belongs to the sidecar alone.
  for (const container of scenario.containers) {
    const result = await access.exec(container, ["cat", Injected.tokenFile]);
    if (result.code === 0) {
      throw new Error(`${scenario.pod}/${container}: the federated token is readable in an app container`);
    }
  }
}

/** Polls `check` until it passes or `timeoutMs` passes (then throws its last error). */
export async function eventually(
  check: () => Promise<void>,
  timeoutMs: number,
  intervalMs = 200,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Matches any JWT (three base64url parts, a JSON header): none may appear in a log. */
export const JWT_PATTERN = /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/;

/** Lines of `logs` that hold a secret value or a token; empty when clean. */
export function findLeaks(
  logs: ReadonlyMap<string, string>,
  secretValues: readonly string[],
): string[] {
  const leaks: string[] = [];
  for (const [file, text] of logs) {
    text.split("\n").forEach((line, i) => {
      const value = secretValues.find((v) => line.includes(v));
      if (value !== undefined) leaks.push(`${file}:${i + 1}: a secret value (${value.slice(0, 6)}…)`);
      if (JWT_PATTERN.test(line)) leaks.push(`${file}:${i + 1}: a JWT`);
    });
  }
  return leaks;
}
