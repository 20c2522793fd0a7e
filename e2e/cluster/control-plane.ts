/**
 * A real Kubernetes control plane for the e2e suite and the demo, started the
 * way controller-runtime's envtest starts one: etcd and kube-apiserver built
 * from source (`build.sh`), on free loopback ports, with RBAC, a client
 * certificate admin user, and an `https` service-account issuer that is the
 * apiserver's own URL, so TokenRequest works and OIDC discovery
 * (`/.well-known/openid-configuration`, `/openid/v1/jwks`) is served where the
 * issuer says. Those two paths, and the health checks, are the only ones an
 * anonymous client may use (structured authentication config), and
 * `system:service-account-issuer-discovery` is bound to
 * `system:unauthenticated`, because Entra ID (here the mock) reads an AKS
 * issuer anonymously. There is no controller-manager, scheduler or kubelet:
 * tests create service accounts themselves and the test kubelet
 * (`e2e/kubelet/`) runs pods.
 *
 * @example
 *   await using cp = await startControlPlane({ onProgress: console.log });
 *   const kc = cp.kubeConfig();
 */
import { KubeConfig, RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { stringify } from "yaml";
import { freePort, httpGet } from "../host/network.ts";
import {
  markOwned,
  releaseOwned,
  runStreaming,
  startProcess,
  sweepOrphans,
  type ManagedProcess,
} from "../host/processes.ts";
import { REPO_ROOT } from "../host/repo.ts";
import { createControlPlanePki, type ControlPlanePki } from "./pki.ts";

/** Paths of the binaries `build.sh` makes. */
export interface Binaries {
  readonly kubeApiserver: string;
  readonly etcd: string;
  readonly helm: string;
}

/** Where `build.sh` puts the binaries (`AKV_INJECTOR_CACHE` moves the cache). */
export function binDir(): string {
  return join(process.env.AKV_INJECTOR_CACHE ?? join(REPO_ROOT, ".cache"), "bin");
}

/**
 * Runs `build.sh`, which is a no-op when the pinned binaries are cached, and
 * streams its progress lines (the first build takes minutes).
 */
export async function ensureBinaries(
  options: { onProgress?: (line: string) => void } = {},
): Promise<Binaries> {
  const script = join(REPO_ROOT, "e2e/cluster/build.sh");
  const out = await runStreaming("bash", [script], {
    ...(options.onProgress === undefined ? {} : { onLine: options.onProgress }),
  });
  const dir = out.trim().split("\n").at(-1) ?? binDir();
  const binaries = {
    kubeApiserver: join(dir, "kube-apiserver"),
    etcd: join(dir, "etcd"),
    helm: join(dir, "helm"),
  };
  for (const path of Object.values(binaries)) {
    if (!existsSync(path)) throw new Error(`build.sh did not produce ${path}`);
  }
  return binaries;
}

export interface ControlPlaneOptions {
  /** Progress of long steps (the build, the start), for people watching. */
  readonly onProgress?: (line: string) => void;
  /** Parent of the run folder; default the system temp folder. */
  readonly baseDir?: string;
  /** Keep the run folder (certificates, logs, etcd data) after stop; default `AKV_E2E_KEEP=1`. */
  readonly keepDir?: boolean;
  /** Binaries to use instead of running `build.sh`. */
  readonly binaries?: Binaries;
}

/** Time spent in each part of the start, in milliseconds. */
export interface StartTimings {
  readonly build: number;
  readonly pki: number;
  readonly etcd: number;
  readonly apiserver: number;
  readonly total: number;
}

/** A running control plane. Stop it with `stop()` or `await using`. */
export interface ControlPlane extends AsyncDisposable {
  /** `https://127.0.0.1:<port>`, also the service-account issuer. */
  readonly server: string;
  /** The service-account issuer (`iss` of every token). */
  readonly issuer: string;
  /** A kubeconfig for the admin user (client certificate in `system:masters`). */
  readonly kubeconfigPath: string;
  /** PEM of the CA that issued the apiserver's serving certificate. */
  readonly caPem: string;
  /** The admin client certificate and key (for raw HTTPS clients). */
  readonly adminCertPem: string;
  readonly adminKeyPem: string;
  /** The run folder: PKI, kubeconfig, etcd data, `logs/`. */
  readonly dir: string;
  /** Every process log of this run (etcd, kube-apiserver, and what callers start with `logDir`). */
  readonly logDir: string;
  readonly binaries: Binaries;
  readonly timings: StartTimings;
  readonly etcd: ManagedProcess;
  readonly apiserver: ManagedProcess;
  /** A fresh client-node config for the admin user. */
  kubeConfig(): KubeConfig;
  /** Stops kube-apiserver, then etcd, and removes the run folder unless kept. */
  stop(): Promise<void>;
}

/** Anonymous requests may reach only these paths; RBAC decides what they may read there. */
export const ANONYMOUS_PATHS = [
  "/.well-known/openid-configuration",
  "/openid/v1/jwks",
  "/livez",
  "/readyz",
  "/healthz",
] as const;

/** The service-account issuer discovery role bound to anonymous users. */
export const DISCOVERY_BINDING = "akv-e2e-service-account-issuer-discovery-anonymous";

/**
 * Builds (if needed) and starts etcd and kube-apiserver, waits for `/readyz`,
 * opens issuer discovery to anonymous readers, and writes a kubeconfig.
 * Everything is stopped again if any step fails.
 */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const progress = options.onProgress ?? (() => undefined);
  const t0 = performance.now();
  const binaries = options.binaries ?? (await ensureBinaries({ onProgress: progress }));
  const tBuild = performance.now();

  const base = options.baseDir ?? tmpdir();
  await mkdir(base, { recursive: true });
  sweepOrphans(base, "akv-e2e-cp-");
  const dir = await mkdtemp(join(base, "akv-e2e-cp-"));
  markOwned(dir);
  const logDir = join(dir, "logs");
  await mkdir(logDir);
  const pki = await createControlPlanePki(dir);
  const tPki = performance.now();

  const started: ManagedProcess[] = [];
  const cleanup = async (): Promise<void> => {
    for (const p of started.reverse()) await p.stop();
    const keep = options.keepDir ?? process.env.AKV_E2E_KEEP === "1";
    if (keep) {
      releaseOwned(dir);
      progress(`control plane: run folder kept: ${dir}`);
    } else await rm(dir, { recursive: true, force: true });
  };
  try {
    progress("control plane: starting etcd");
    const etcd = await startEtcd(binaries.etcd, dir, logDir);
    started.push(etcd.process);
    const tEtcd = performance.now();

    progress("control plane: starting kube-apiserver");
    const api = await startApiserver(binaries.kubeApiserver, dir, logDir, pki, etcd.url);
    started.push(api.process);
    const server = `https://127.0.0.1:${api.port}`;
    const kubeconfigPath = join(dir, "kubeconfig");
    await writeFile(kubeconfigPath, buildKubeconfig(server, pki), { mode: 0o600 });
    const kubeConfig = (): KubeConfig => {
      const kc = new KubeConfig();
      kc.loadFromFile(kubeconfigPath);
      return kc;
    };
    await openIssuerDiscovery(kubeConfig());
    const tApi = performance.now();
    const timings: StartTimings = {
      build: Math.round(tBuild - t0),
      pki: Math.round(tPki - tBuild),
      etcd: Math.round(tEtcd - tPki),
      apiserver: Math.round(tApi - tEtcd),
      total: Math.round(tApi - t0),
    };
    progress(
      `control plane: ready at ${server} in ${(timings.total / 1000).toFixed(1)} s ` +
        `(apiserver ${(timings.apiserver / 1000).toFixed(1)} s)`,
    );
    let stopped: Promise<void> | undefined;
    const stop = (): Promise<void> => (stopped ??= cleanup());
    return {
      server,
      issuer: server,
      kubeconfigPath,
      caPem: pki.servingCa.certPem,
      adminCertPem: pki.admin.certPem,
      adminKeyPem: pki.admin.keyPem,
      dir,
      logDir,
      binaries,
      timings,
      etcd: etcd.process,
      apiserver: api.process,
      kubeConfig,
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

async function startEtcd(
  etcdBin: string,
  dir: string,
  logDir: string,
): Promise<{ process: ManagedProcess; url: string }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const proc = startProcess({
      name: "etcd",
      command: etcdBin,
      args: [
        `--data-dir=${join(dir, `etcd-${attempt}`)}`,
        `--listen-client-urls=${url}`,
        `--advertise-client-urls=${url}`,
        // A single member never talks to peers; port 0 avoids a second race.
        "--listen-peer-urls=http://127.0.0.1:0",
        // A throwaway store: fsync only slows every write of the suite down.
        "--unsafe-no-fsync",
        "--log-level=warn",
      ],
      logDir,
    });
    const ready = await waitFor(
      async () => (await httpGet(`${url}/health`)).status === 200,
      proc,
      30_000,
    );
    if (ready) return { process: proc, url };
    await proc.stop();
    if (attempt >= 3) throw new Error(`etcd did not start; see ${proc.logFile}`);
  }
}

async function startApiserver(
  apiserverBin: string,
  dir: string,
  logDir: string,
  pki: ControlPlanePki,
  etcdUrl: string,
): Promise<{ process: ManagedProcess; port: number }> {
  const authnConfig = join(dir, "authentication-config.yaml");
  await writeFile(
    authnConfig,
    stringify({
      apiVersion: "apiserver.config.k8s.io/v1",
      kind: "AuthenticationConfiguration",
      anonymous: { enabled: true, conditions: ANONYMOUS_PATHS.map((path) => ({ path })) },
    }),
  );
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const issuer = `https://127.0.0.1:${port}`;
    const proc = startProcess({
      name: "kube-apiserver",
      command: apiserverBin,
      args: [
        `--etcd-servers=${etcdUrl}`,
        // A fresh prefix per attempt: a half-started earlier attempt wrote nothing we want.
        `--etcd-prefix=/registry-${attempt}`,
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        `--secure-port=${port}`,
        `--cert-dir=${join(dir, "apiserver-certs")}`,
        `--tls-cert-file=${pki.serving.certFile}`,
        `--tls-private-key-file=${pki.serving.keyFile}`,
        `--client-ca-file=${pki.clientCa.certFile}`,
        "--authorization-mode=RBAC",
        `--authentication-config=${authnConfig}`,
        `--service-account-issuer=${issuer}`,
        `--service-account-jwks-uri=${issuer}/openid/v1/jwks`,
        `--service-account-key-file=${pki.serviceAccountPublicKeyFile}`,
        `--service-account-signing-key-file=${pki.serviceAccountKeyFile}`,
        "--service-cluster-ip-range=10.96.0.0/24",
        "--allow-privileged=true",
        // No controller-manager runs to create the default service accounts
        // the ServiceAccount plugin would insist on.
        "--disable-admission-plugins=ServiceAccount",
        // Nothing runs Endpoints for the kubernetes Service.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
        "--v=0",
      ],
      logDir,
    });
    const ready = await waitFor(
      async () =>
        (
          await httpGet(`${issuer}/readyz`, {
            ca: pki.servingCa.certPem,
            cert: pki.admin.certPem,
            key: pki.admin.keyPem,
          })
        ).status === 200,
      proc,
      90_000,
    );
    if (ready) return { process: proc, port };
    await proc.stop();
    const log = await proc.readLog();
    if (attempt >= 3 || !/address already in use/.test(log)) {
      throw new Error(
        `kube-apiserver did not become ready; see ${proc.logFile}:\n${log.split("\n").slice(-30).join("\n")}`,
      );
    }
  }
}

/**
 * Polls `check` until it returns true (ready), the process exits (false), or
 * the timeout passes (false).
 */
async function waitFor(
  check: () => Promise<boolean>,
  proc: ManagedProcess,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exit() !== undefined) return false;
    try {
      if (await check()) return true;
    } catch {
      // Not listening yet.
    }
    await sleep(100);
  }
  return false;
}

async function openIssuerDiscovery(kc: KubeConfig): Promise<void> {
  const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: DISCOVERY_BINDING },
      roleRef: {
        apiGroup: "rbac.authorization.k8s.io",
        kind: "ClusterRole",
        name: "system:service-account-issuer-discovery",
      },
      subjects: [
        { apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "system:unauthenticated" },
      ],
    },
  });
}

function buildKubeconfig(server: string, pki: ControlPlanePki): string {
  const b64 = (pem: string): string => Buffer.from(pem).toString("base64");
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: "akv-e2e",
        cluster: { server, "certificate-authority-data": b64(pki.servingCa.certPem) },
      },
    ],
    users: [
      {
        name: "akv-e2e-admin",
        user: {
          "client-certificate-data": b64(pki.admin.certPem),
          "client-key-data": b64(pki.admin.keyPem),
        },
      },
    ],
    contexts: [
      {
        name: "akv-e2e",
        context: { cluster: "akv-e2e", user: "akv-e2e-admin", namespace: "default" },
      },
    ],
    "current-context": "akv-e2e",
  });
}
