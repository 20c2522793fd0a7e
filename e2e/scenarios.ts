/**
 * The end-to-end cases, shared by the local suite (real apiserver, test
 * kubelet) and the kind checks (`e2e/kind/`, a real cluster): the same pods,
 * secrets, refusals and expected files, and the same checks of what the app
 * container sees, run through a {@link PodAccess} that is the test kubelet
 * here and `kubectl exec` in kind. Checks throw an Error that says what
 * differed; they use only `cat`, `stat` and `ls`, which busybox has too.
 *
 * Over 400 lines on purpose: a table of scenarios and the checks they share, read as one by both suites.
 */
import type { V1Pod } from "@kubernetes/client-node";
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  X509Certificate,
} from "node:crypto";
import {
  createCertificateAuthority,
  createPkcs12,
  createServingCertificate,
} from "../certs/index.ts";
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
  /**
   * A second vault host, allowed by the webhook's suffixes and in the mock's
   * TLS certificate: the same mock vault under another name
   * (`https://localhost:PORT` here, a second Service in kind), for object
   * identifiers of several vaults in one pod.
   */
  readonly secondVaultUrl: string;
  /** The app containers' image; they only need `sleep`, `cat`, `stat`, `ls`. */
  readonly appImage: string;
}

/** A secret in the vault, its value fresh for every run (the log scan looks for it). */
export interface SecretSeed {
  readonly name: string;
  readonly value: string;
  /** `application/x-pkcs12` for a certificate-backed secret, as Key Vault stores one. */
  readonly contentType?: string;
}

/**
 * A certificate or key in the vault, read through the certificates or keys
 * API (the workload holds Key Vault Reader too: certificates/read, keys/read).
 */
export type ObjectSeed =
  | {
      readonly kind: "certificate";
      readonly name: string;
      readonly keyPem: string;
      /** Leaf first. */
      readonly certPems: readonly string[];
    }
  | { readonly kind: "key"; readonly name: string; readonly pem: string };

/** A file the app must see: its path in the container, content and mode. */
export interface ExpectedFile {
  readonly container: string;
  readonly path: string;
  /** The exact content, or a check of it that returns what is wrong (undefined when right). */
  readonly content: string | ((content: string) => string | undefined);
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
  /** Certificates and keys to put in the vault first. */
  readonly objects?: readonly ObjectSeed[];
  readonly expected: readonly ExpectedFile[];
  /** Containers that must not have the secrets mount. */
  readonly withoutMount?: readonly { container: string; path: string }[];
  /** The app containers' user; default 1000 (another user than the sidecar's 65532). */
  readonly appUser?: number;
  /** A user per app container, over {@link InjectionScenario.appUser}; 0 runs it as root. */
  readonly users?: Readonly<Record<string, number>>;
  /** Whether the app containers' root filesystems are read-only. */
  readonly readOnlyRootFilesystem?: boolean;
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

/**
 * A certificate-backed secret as Key Vault stores it (PKCS#12, no password,
 * base64), with checks of the files made from it: checked with node:crypto,
 * not with the code that made or converts it.
 */
export function certificateSecret(name: string): {
  secret: SecretSeed;
  checkChain: (content: string) => string | undefined;
  checkKey: (content: string) => string | undefined;
} {
  const now = new Date();
  const ca = createCertificateAuthority({ commonName: "e2e scenario CA", now });
  const leaf = createServingCertificate(ca, { dnsNames: ["app.example.test"], now });
  const pkcs12 = createPkcs12({ keyPem: leaf.keyPem, certPems: [leaf.certPem, ca.certPem] });
  const leafCert = new X509Certificate(leaf.certPem);
  const caCert = new X509Certificate(ca.certPem);
  const blocks = (text: string): string[] =>
    text.match(/-----BEGIN [^-]+-----[\s\S]+?-----END [^-]+-----/g) ?? [];
  return {
    secret: { name, value: pkcs12, contentType: "application/x-pkcs12" },
    checkChain: (content) => {
      const certs = blocks(content).map((b) => new X509Certificate(b));
      if (certs.length !== 2) return `holds ${certs.length} certificates, expected leaf and CA`;
      if (certs[0]?.fingerprint256 !== leafCert.fingerprint256)
        return "does not start with the leaf";
      if (certs[1]?.fingerprint256 !== caCert.fingerprint256) return "does not end with the CA";
      if (content.includes("PRIVATE KEY")) return "holds a private key";
      return undefined;
    },
    checkKey: (content) => {
      const [block, ...rest] = blocks(content);
      if (block === undefined || rest.length > 0) return "does not hold exactly one PEM block";
      const publicKey = createPublicKey(createPrivateKey(block)).export({
        type: "spki",
        format: "der",
      });
      const expected = leafCert.publicKey.export({ type: "spki", format: "der" });
      return publicKey.equals(expected) ? undefined : "is not the leaf's private key";
    },
  };
}

/**
 * A certificate (leaf and CA) and an EC key, with what their files must
 * hold: the leaf alone (the certificates API gives no chain) and the key's
 * public part as SPKI PEM.
 */
export function publicObjects(): {
  certificate: ObjectSeed;
  key: ObjectSeed;
  checkLeaf: (content: string) => string | undefined;
  keyPem: string;
} {
  const now = new Date();
  const ca = createCertificateAuthority({ commonName: "e2e objects CA", now });
  const leaf = createServingCertificate(ca, { dnsNames: ["objects.example.test"], now });
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const leafCert = new X509Certificate(leaf.certPem);
  return {
    certificate: {
      kind: "certificate",
      name: "objects-web",
      keyPem: leaf.keyPem,
      certPems: [leaf.certPem, ca.certPem],
    },
    key: {
      kind: "key",
      name: "objects-signing",
      pem: ec.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    },
    checkLeaf: (content) => {
      const blocks = content.match(/-----BEGIN CERTIFICATE-----/g) ?? [];
      if (blocks.length !== 1)
        return `holds ${blocks.length} certificates, expected the leaf alone`;
      return new X509Certificate(content).fingerprint256 === leafCert.fingerprint256
        ? undefined
        : "is not the leaf";
    },
    keyPem: ec.publicKey.export({ type: "spki", format: "pem" }) as string,
  };
}

/** The namespace, service account and its client id every scenario uses. */
export const WORKLOAD = {
  namespace: "team-a",
  serviceAccount: "app",
  otherServiceAccount: "no-identity",
};

/** The scenarios of one run (values fresh each time). */
export function injectionScenarios(ctx: ScenarioContext): InjectionScenario[] {
  const db = { name: "db-password", value: freshValue("db") };
  const api = { name: "api-key", value: freshValue("api") };
  const config = {
    name: "app-config",
    value: `{"endpoint":"https://example.test","seed":"${freshValue("cfg")}"}`,
  };
  const token = { name: "init-token", value: freshValue("init") };
  const tls = certificateSecret("web-tls");
  const remote = { name: "remote-key", value: freshValue("remote") };
  const objects = publicObjects();
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
        {
          container: "app",
          path: "/etc/app/secrets/config.json",
          content: config.value,
          mode: "440",
        },
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
      name: "a certificate-backed secret (PKCS#12) as certificate chain and key files",
      pod: "certificate",
      serviceAccount: WORKLOAD.serviceAccount,
      annotations: {
        "akv-injector.io/vault": ctx.vaultUrl,
        "akv-injector.io/secret-tls.crt": tls.secret.name,
        "akv-injector.io/format-tls.crt": "cert",
        "akv-injector.io/secret-tls.key": tls.secret.name,
        "akv-injector.io/format-tls.key": "key",
        "akv-injector.io/file-mode": "0400",
      },
      // The key is for the app's user alone: run the app as the sidecar's user.
      appUser: 65532,
      containers: ["app"],
      secrets: [tls.secret],
      expected: [
        { container: "app", path: "/mnt/secrets/tls.crt", content: tls.checkChain, mode: "400" },
        { container: "app", path: "/mnt/secrets/tls.key", content: tls.checkKey, mode: "400" },
      ],
    },
    {
      // On a node, the kubelet mounts the volume's root sticky and
      // world-writable, and systemd's fs.protected_symlinks=1 lets only a
      // link's owner follow a link there: root included.
      name: "apps as root and as uid 1000, with read-only root filesystems, read every file",
      pod: "users",
      serviceAccount: WORKLOAD.serviceAccount,
      annotations: {
        "akv-injector.io/vault": ctx.vaultUrl,
        "akv-injector.io/secrets": `${db.name},${api.name}`,
      },
      containers: ["as-root", "as-1000"],
      users: { "as-root": 0, "as-1000": 1000 },
      readOnlyRootFilesystem: true,
      secrets: [db, api],
      expected: ["as-root", "as-1000"].flatMap((container) => [
        { container, path: "/mnt/secrets/db-password", content: db.value, mode: "644" },
        { container, path: "/mnt/secrets/api-key", content: api.value, mode: "644" },
      ]),
    },
    {
      name: "an app as uid 3000 with fsGroup 2000 reads files closed to others (0440)",
      pod: "fsgroup",
      serviceAccount: WORKLOAD.serviceAccount,
      annotations: {
        "akv-injector.io/vault": ctx.vaultUrl,
        "akv-injector.io/secrets": api.name,
        "akv-injector.io/template-app.env": `pass={{ secret "${db.name}" }}\n`,
        "akv-injector.io/file-mode": "0440",
      },
      appUser: 3000,
      fsGroup: 2000,
      readOnlyRootFilesystem: true,
      containers: ["app"],
      secrets: [db, api],
      expected: [
        { container: "app", path: "/mnt/secrets/api-key", content: api.value, mode: "440" },
        {
          container: "app",
          path: "/mnt/secrets/app.env",
          content: `pass=${db.value}\n`,
          mode: "440",
        },
      ],
    },
    {
      name: "object identifiers of two vault hosts, one without the vault annotation",
      pod: "identifiers",
      serviceAccount: WORKLOAD.serviceAccount,
      annotations: {
        "akv-injector.io/secrets": `${ctx.vaultUrl}/secrets/${db.name},${ctx.secondVaultUrl}/secrets/${remote.name}`,
        "akv-injector.io/template-both.env": `a={{ secret "${ctx.vaultUrl}/secrets/${db.name}" }}\nb={{ secret "${ctx.secondVaultUrl}/secrets/${remote.name}" }}\n`,
      },
      containers: ["app"],
      secrets: [db, remote],
      expected: [
        { container: "app", path: "/mnt/secrets/db-password", content: db.value, mode: "644" },
        { container: "app", path: "/mnt/secrets/remote-key", content: remote.value, mode: "644" },
        {
          container: "app",
          path: "/mnt/secrets/both.env",
          content: `a=${db.value}\nb=${remote.value}\n`,
          mode: "644",
        },
      ],
    },
    {
      name: "a certificate's leaf and a key's public part through their APIs, from two vault hosts",
      pod: "objects",
      serviceAccount: WORKLOAD.serviceAccount,
      annotations: {
        "akv-injector.io/vault": ctx.vaultUrl,
        "akv-injector.io/secret-web.crt": `${ctx.vaultUrl}/certificates/${objects.certificate.name}`,
        "akv-injector.io/secrets": `${ctx.secondVaultUrl}/keys/${objects.key.name}`,
      },
      containers: ["app"],
      secrets: [],
      objects: [objects.certificate, objects.key],
      expected: [
        { container: "app", path: "/mnt/secrets/web.crt", content: objects.checkLeaf, mode: "644" },
        {
          container: "app",
          path: `/mnt/secrets/${objects.key.name}`,
          content: objects.keyPem,
          mode: "644",
        },
      ],
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
      expected: [
        { container: "app", path: "/mnt/secrets/init-token", content: token.value, mode: "644" },
      ],
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
      name: "metrics port below 1024",
      pod: "refuse-metrics-port",
      annotations: {
        ...vault,
        "akv-injector.io/secrets": "db",
        "akv-injector.io/metrics-port": "80",
      },
      message: ["akv-injector.io/metrics-port", '"80"', "from 1024 to 65535"],
    },
    {
      ...base,
      name: "a notification to a host other than loopback",
      pod: "refuse-notify-host",
      annotations: {
        ...vault,
        "akv-injector.io/secrets": "db",
        "akv-injector.io/notify-app": "http://169.254.169.254/reload",
      },
      message: ["akv-injector.io/notify-app", '"http://169.254.169.254/reload"', "loopback"],
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
      annotations: {
        "akv-injector.io/vault": "https://evil.example.com",
        "akv-injector.io/secrets": "db",
      },
      message: ["akv-injector.io/vault", "https://evil.example.com"],
    },
    {
      ...base,
      name: "plain http vault",
      pod: "refuse-http-vault",
      annotations: {
        "akv-injector.io/vault": "http://127.0.0.1:1",
        "akv-injector.io/secrets": "db",
      },
      message: ["akv-injector.io/vault"],
    },
    {
      ...base,
      name: "duplicate target file",
      pod: "refuse-duplicate",
      annotations: {
        ...vault,
        "akv-injector.io/secrets": "db",
        "akv-injector.io/secret-db": "other",
      },
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
      name: "object identifier outside the allowed suffixes, and a bare ref without vault",
      pod: "refuse-identifier",
      annotations: {
        "akv-injector.io/secrets": "db",
        "akv-injector.io/secret-x": "https://evil.example.com/secrets/x",
      },
      message: [
        "akv-injector.io/secret-x",
        "https://evil.example.com/secrets/x",
        "allowed suffixes",
        "akv-injector.io/vault: is required for 'db' in akv-injector.io/secrets",
      ],
    },
    {
      ...base,
      name: "object identifier with a query string",
      pod: "refuse-identifier-query",
      annotations: {
        "akv-injector.io/secrets": `${ctx.secondVaultUrl}/secrets/db?api-version=7.4`,
      },
      message: ["akv-injector.io/secrets", "no query string or fragment"],
    },
    {
      ...base,
      name: "containers naming a container the pod lacks",
      pod: "refuse-containers",
      annotations: {
        ...vault,
        "akv-injector.io/secrets": "db",
        "akv-injector.io/containers": "nope",
      },
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

/**
 * A pod whose app is told when its files change (`notify-<container>`): on a
 * node the app's command writes one line to {@link NOTIFIED_FILE} per
 * notification; the test kubelet runs no app, so the local suite answers
 * the HTTP one itself, on the port the annotation names (its containers
 * share this machine's network as a pod's share the pod's).
 */
export interface NotifyScenario {
  readonly name: string;
  readonly pod: string;
  readonly serviceAccount: string;
  /** The one secret, rotated by the check; its file is `/mnt/secrets/<secret>`. */
  readonly secret: string;
  readonly annotations: Readonly<Record<string, string>>;
  /** The app's command on a node. */
  readonly command: readonly string[];
  readonly shareProcessNamespace?: boolean;
  /** A signal reaches a process only on a node: the test kubelet runs no app container. */
  readonly nodeOnly: boolean;
}

/** Where the app of a {@link NotifyScenario} records the notifications it got, a line each. */
export const NOTIFIED_FILE = "/tmp/notified";

/**
 * The notification scenarios. The HTTP app is busybox `httpd` with a CGI
 * script that appends the POSTed body and a newline; the signal app is a
 * shell that traps SIGHUP (its `wait` returns at once on a trapped signal).
 * @param port the HTTP app's port (locally, a free port of this machine).
 */
export function notifyScenarios(ctx: ScenarioContext, port: number): NotifyScenario[] {
  const base = {
    serviceAccount: WORKLOAD.serviceAccount,
    "akv-injector.io/refresh-interval": "2s",
  };
  // Each line written as it is (printf's %s interprets nothing); CRLF in the CGI's header.
  const cgi = [
    "#!/bin/sh",
    `head -c "$CONTENT_LENGTH" >> ${NOTIFIED_FILE}; echo >> ${NOTIFIED_FILE}`,
    'printf "Content-Type: text/plain\\r\\n\\r\\nok\\n"',
  ]
    .map((line) => `'${line}'`)
    .join(" ");
  return [
    {
      name: "notify over HTTP: no POST for the first sync, exactly one for a rotation",
      pod: "notify-http",
      serviceAccount: base.serviceAccount,
      secret: "notify-http",
      annotations: {
        "akv-injector.io/vault": ctx.vaultUrl,
        "akv-injector.io/secrets": "notify-http",
        "akv-injector.io/refresh-interval": base["akv-injector.io/refresh-interval"],
        "akv-injector.io/notify-app": `http://127.0.0.1:${port}/cgi-bin/notify`,
      },
      command: [
        "sh",
        "-c",
        `mkdir -p /tmp/www/cgi-bin && printf '%s\n' ${cgi} > /tmp/www/cgi-bin/notify && chmod 755 /tmp/www/cgi-bin/notify && exec httpd -f -p ${port} -h /tmp/www`,
      ],
      nodeOnly: false,
    },
    {
      name: "notify by SIGHUP in a shared PID namespace: none for the first sync, exactly one for a rotation",
      pod: "notify-signal",
      serviceAccount: base.serviceAccount,
      secret: "notify-signal",
      annotations: {
        "akv-injector.io/vault": ctx.vaultUrl,
        "akv-injector.io/secrets": "notify-signal",
        "akv-injector.io/refresh-interval": base["akv-injector.io/refresh-interval"],
        "akv-injector.io/notify-app": "signal:SIGHUP",
      },
      shareProcessNamespace: true,
      command: [
        "sh",
        "-c",
        `trap 'echo hup >> ${NOTIFIED_FILE}' HUP; while true; do sleep 1 & wait $!; done`,
      ],
      nodeOnly: true,
    },
  ];
}

/** What {@link checkNotifiedOnce} needs of the place it runs. */
export interface NotifyAccess {
  /** Notifications the app got so far. */
  notifications(): Promise<number>;
  /** Puts a new value of the scenario's secret in the vault. */
  rotate(value: string): Promise<void>;
  readonly pod: PodAccess;
}

/**
 * After the pod is ready: no notification for the first sync (nor for the
 * refreshes that change nothing); after a rotation, the app sees the new
 * value and exactly one notification, and still one a few refreshes later.
 */
export async function checkNotifiedOnce(
  scenario: NotifyScenario,
  access: NotifyAccess,
): Promise<void> {
  const where = `${scenario.pod}/app`;
  // Two refreshes (2 s) that change nothing, and the 1 s debounce after them.
  await new Promise((r) => setTimeout(r, 5000));
  const before = await access.notifications();
  if (before !== 0) throw new Error(`${where} got ${before} notification(s) before any rotation`);
  const value = freshValue("notified");
  await access.rotate(value);
  await eventually(
    async () => {
      const content = await run(access.pod, "app", ["cat", `/mnt/secrets/${scenario.secret}`]);
      if (content !== value) throw new Error(`${where} does not see the rotated value yet`);
      const count = await access.notifications();
      if (count !== 1) throw new Error(`${where} got ${count} notifications, expected 1`);
    },
    30_000,
    500,
  );
  await new Promise((r) => setTimeout(r, 5000));
  const after = await access.notifications();
  if (after !== 1)
    throw new Error(`${where} got ${after} notifications for one rotation, expected 1`);
}

/** The pod manifest of a scenario, labelled for injection. */
export function buildPod(
  scenario: Pick<InjectionScenario, "pod" | "serviceAccount" | "annotations"> &
    Partial<
      Pick<
        InjectionScenario,
        "containers" | "initContainers" | "fsGroup" | "appUser" | "users" | "readOnlyRootFilesystem"
      > &
        Pick<NotifyScenario, "command" | "shareProcessNamespace">
    >,
  ctx: ScenarioContext,
  namespace = WORKLOAD.namespace,
): V1Pod {
  const container = (name: string) => {
    const user = scenario.users?.[name] ?? scenario.appUser ?? 1000;
    return {
      name,
      image: ctx.appImage,
      command: [...(scenario.command ?? ["sleep", "3600"])],
      securityContext: {
        runAsUser: user,
        runAsGroup: user,
        runAsNonRoot: user !== 0,
        ...(scenario.readOnlyRootFilesystem === true ? { readOnlyRootFilesystem: true } : {}),
      },
    };
  };
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
      ...(scenario.shareProcessNamespace === true ? { shareProcessNamespace: true } : {}),
      ...(scenario.fsGroup === undefined ? {} : { securityContext: { fsGroup: scenario.fsGroup } }),
      containers: (scenario.containers ?? ["app"]).map(container),
      ...(scenario.initContainers === undefined
        ? {}
        : { initContainers: scenario.initContainers.map(container) }),
    },
  };
}

/** The fields of the status file (`..status.json`) a check reads; docs/sidecar.md has them all. */
export interface StatusView {
  readonly schemaVersion: number;
  readonly lastSuccessTime: string;
  readonly files: readonly {
    readonly name: string;
    readonly secrets: readonly { readonly name: string; readonly version: string }[];
  }[];
  readonly lastError: {
    readonly code: string;
    readonly message: string;
    readonly time: string;
  } | null;
  readonly consecutiveFailures: number;
}

/** Reads and parses the status file in a mount path, as an app container's user sees it. */
export async function readStatusView(
  access: PodAccess,
  container: string,
  mountPath: string,
): Promise<StatusView> {
  const text = await run(access, container, ["cat", `${mountPath}/${Injected.statusFile}`]);
  return JSON.parse(text) as StatusView;
}

/**
 * The status file, read from each app container that has files: written with
 * the first sync (no failure since), each expected file listed with a Key
 * Vault version per secret, and no secret value anywhere in it.
 */
export async function checkStatusView(
  access: PodAccess,
  scenario: InjectionScenario,
): Promise<void> {
  const dirs = new Map<string, { container: string; dir: string; names: string[] }>();
  for (const file of scenario.expected) {
    const dir = file.path.slice(0, file.path.lastIndexOf("/"));
    const key = `${file.container}:${dir}`;
    const entry = dirs.get(key) ?? { container: file.container, dir, names: [] };
    entry.names.push(file.path.slice(dir.length + 1));
    dirs.set(key, entry);
  }
  for (const { container, dir, names } of dirs.values()) {
    const where = `${scenario.pod}/${container}: ${dir}/${Injected.statusFile}`;
    const text = await run(access, container, ["cat", `${dir}/${Injected.statusFile}`]);
    for (const secret of scenario.secrets) {
      if (text.includes(secret.value))
        throw new Error(`${where} holds the value of '${secret.name}'`);
    }
    const status = JSON.parse(text) as StatusView;
    if (
      status.schemaVersion !== 1 ||
      status.consecutiveFailures !== 0 ||
      Number.isNaN(Date.parse(status.lastSuccessTime))
    ) {
      throw new Error(`${where} is not a fresh status: ${text}`);
    }
    for (const name of names) {
      const entry = status.files.find((f) => f.name === name);
      if (
        entry === undefined ||
        entry.secrets.length === 0 ||
        !entry.secrets.every((s) => /^[0-9a-f]{32}$/.test(s.version))
      ) {
        throw new Error(`${where} does not list '${name}' with its versions: ${text}`);
      }
    }
  }
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
    const problem =
      typeof file.content === "string"
        ? content === file.content
          ? undefined
          : `holds ${content.length} bytes that are not the secret's value`
        : file.content(content);
    if (problem !== undefined) {
      throw new Error(`${scenario.pod}/${file.container}: ${file.path} ${problem}`);
    }
    const mode = (await run(access, file.container, ["stat", "-L", "-c", "%a", file.path])).trim();
    if (mode !== file.mode) {
      throw new Error(
        `${scenario.pod}/${file.container}: ${file.path} has mode ${mode}, expected ${file.mode}`,
      );
    }
    const dir = file.path.slice(0, file.path.lastIndexOf("/"));
    const listing = await run(access, file.container, ["ls", "-A", dir]);
    if (!listing.split(/\s+/).includes("..data")) {
      throw new Error(
        `${scenario.pod}/${file.container}: ${dir} has no ..data link (not published atomically)`,
      );
    }
  }
  await checkStatusView(access, scenario);
  for (const absent of scenario.withoutMount ?? []) {
    const result = await access.exec(absent.container, ["cat", absent.path]);
    if (result.code === 0) {
      throw new Error(
        `${scenario.pod}/${absent.container}: ${absent.path} is readable but must not be mounted there`,
      );
    }
  }
  // The token belongs to the sidecar alone.
  for (const container of scenario.containers) {
    const result = await access.exec(container, ["cat", Injected.tokenFile]);
    if (result.code === 0) {
      throw new Error(
        `${scenario.pod}/${container}: the federated token is readable in an app container`,
      );
    }
  }
}

/** Polls `check` until it passes or `timeoutMs` passes (then throws its last error). */
export async function eventually(
  check: () => unknown,
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
      if (value !== undefined)
        leaks.push(`${file}:${i + 1}: a secret value (${value.slice(0, 6)}…)`);
      if (JWT_PATTERN.test(line)) leaks.push(`${file}:${i + 1}: a JWT`);
    });
  }
  return leaks;
}
