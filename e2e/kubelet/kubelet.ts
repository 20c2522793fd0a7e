/**
 * A test kubelet: runs a pod stored in the real apiserver on this machine,
 * closely enough that the injected sidecar cannot tell the difference.
 *
 * For a pod it mints each projected service-account token through the
 * TokenRequest API with the volume's audience and expiry (bound to the pod,
 * as the kubelet does), lays out the volumes (see `layout.ts`), runs the
 * containers whose image it knows as local processes with their command,
 * args, env, user and mounts, and runs each startup probe until it passes
 * before it starts the next container, as it does for native sidecars.
 * Containers of images it does not know (the app's) are given their mounts
 * and nothing else, so a test can look at what the app would see, through
 * {@link RunningPod.exec} (like `kubectl exec`) or {@link RunningPod.hostPath}.
 */
import {
  CoreV1Api,
  type KubeConfig,
  type V1Container,
  type V1Pod,
  type V1Probe,
  type V1Volume,
} from "@kubernetes/client-node";
import { spawn } from "node:child_process";
import { get as httpGet } from "node:http";
import { get as httpsGet } from "node:https";
import { connect } from "node:net";
import { existsSync, readlinkSync, realpathSync, statSync } from "node:fs";
import {
  chmod,
  chown,
  mkdir,
  mkdtemp,
  readdir,
  rename,
  rm,
  rmdir,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  markOwned,
  startProcess,
  sweepOrphans,
  withParentDeathSignal,
  type Exit,
  type ManagedProcess,
} from "../cluster/processes.ts";
import { REPO_ROOT } from "../cluster/control-plane.ts";
import {
  detectLayout,
  exposeCheckoutScript,
  parseQuantityBytes,
  shellQuote,
  type LayoutKind,
} from "./layout.ts";

/** What the kubelet knows about an image it can run. */
export interface ImageSpec {
  /** The image's ENTRYPOINT, as paths inside the image (mapped through {@link KubeletOptions.files}). */
  readonly entrypoint: readonly string[];
  /** The image's numeric USER, used when the pod names none. */
  readonly user?: number;
  /** The image's ENV. */
  readonly env?: Readonly<Record<string, string>>;
  /** The image's WORKDIR; default `/`. */
  readonly workingDir?: string;
}

export interface KubeletOptions {
  readonly kubeConfig: KubeConfig;
  /** Container logs go to `<logDir>/<namespace>.<pod>.<container>.log`. */
  readonly logDir: string;
  /** Images the kubelet can run, by reference. */
  readonly images: Readonly<Record<string, ImageSpec>>;
  /**
   * Image paths that are files of this machine: `/app/sidecar.mjs` →
   * `<repo>/dist/sidecar.mjs`. Applied to every word of a command.
   */
  readonly files: Readonly<Record<string, string>>;
  /** Default: what {@link detectLayout} finds. */
  readonly layout?: LayoutKind;
  /** Parent of each pod's scratch folder; default the system temp folder. */
  readonly baseDir?: string;
  /** Upper bound of the grace period on stop, whatever the pod says; default 10 s. */
  readonly maxGraceMs?: number;
  /** How long a readiness probe may take to pass; default 60 s. */
  readonly readyTimeoutMs?: number;
  /** The apiserver's URL, for `KUBERNETES_SERVICE_HOST`/`_PORT` in every container. */
  readonly apiserver?: string;
}

/** Per-pod options of {@link TestKubelet.runPod}. */
export interface RunOptions {
  /**
   * Give up on a startup probe after this long, whatever its failureThreshold
   * (the sidecar's allows minutes; a test that expects a failure does not wait).
   */
  readonly startupTimeoutMs?: number;
}

/** The result of {@link RunningPod.exec}. */
export interface ExecResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A pod the kubelet runs. Stop it with `stop()` or `await using`. */
export interface RunningPod extends AsyncDisposable {
  /** The pod as stored in the apiserver when the kubelet picked it up. */
  readonly pod: V1Pod;
  readonly layout: LayoutKind;
  /** Milliseconds from the first container's start until every startup probe passed and init containers finished. */
  readonly startMs: number;
  /** The process of a container the kubelet runs (its image is known). */
  process(container: string): ManagedProcess | undefined;
  /** Runs a command in a container, as its user, with its env and mounts (`kubectl exec`). */
  exec(container: string, argv: readonly string[]): Promise<ExecResult>;
  /** A path of this machine through which `path` is seen as `container` sees it. */
  hostPath(container: string, path: string): string;
  /** Mints every projected token anew and swaps it in atomically, as the kubelet does at 80% of its life. */
  refreshTokens(): Promise<void>;
  /** SIGTERM to running containers (a pod deletion), then the sandbox goes away; the exits by container. */
  stop(): Promise<ReadonlyMap<string, Exit>>;
}

/** The kubelet could not run a pod: which container, why, and its log's tail. */
export class KubeletError extends Error {
  override readonly name = "KubeletError";
}

interface MountPlan {
  readonly volume: string;
  readonly mountPath: string;
  readonly subPath: string | undefined;
  readonly readOnly: boolean;
}

interface ContainerPlan {
  readonly name: string;
  readonly spec: V1Container;
  readonly init: boolean;
  /** `restartPolicy: Always` init container: a native sidecar. */
  readonly sidecar: boolean;
  readonly image: ImageSpec | undefined;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  /** fsGroup and supplementalGroups: the container's extra groups. */
  readonly groups: readonly number[];
  readonly readOnlyRoot: boolean;
  readonly mounts: readonly MountPlan[];
  readonly env: Readonly<Record<string, string>>;
  readonly workingDir: string;
}

/** The node name the downward API reports. */
export const NODE_NAME = "akv-e2e-node";

const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The test kubelet. One per control plane; it runs pods on request. */
export class TestKubelet {
  readonly #options: KubeletOptions;
  readonly #core: CoreV1Api;
  /** Pods started or starting, so {@link stopAll} reaches one still in `runPod`. */
  readonly #pods = new Set<PodRunner>();

  constructor(options: KubeletOptions) {
    this.#options = options;
    this.#core = options.kubeConfig.makeApiClient(CoreV1Api);
  }

  /**
   * Runs a stored pod until it is ready: every init container finished, every
   * native sidecar's startup probe passed. Rejects (and cleans up) when a
   * container fails, with its log's tail.
   */
  async runPod(namespace: string, name: string, options: RunOptions = {}): Promise<RunningPod> {
    const pod = await this.#core.readNamespacedPod({ namespace, name });
    const plans = planContainers(pod, this.#options);
    const layout = this.#options.layout ?? (await detectLayout());
    const base = this.#options.baseDir ?? tmpdir();
    await mkdir(base, { recursive: true });
    sweepOrphans(base, "akv-kubelet-");
    const podDir = await mkdtemp(join(base, `akv-kubelet-${namespace}.${name}-`));
    markOwned(podDir);
    const sandbox =
      layout === "namespace"
        ? await NamespaceSandbox.create(podDir, `${namespace}.${name}`, this.#options)
        : new FolderSandbox(podDir, `${namespace}.${name}`, this.#options);
    const running = new PodRunner(pod, plans, sandbox, this.#core, {
      ...this.#options,
      ...options,
    });
    this.#pods.add(running);
    void running.stopped.then(() => this.#pods.delete(running));
    try {
      await running.start();
    } catch (error) {
      await running.stop();
      throw error;
    }
    return running;
  }

  /** Stops every pod this kubelet runs, including one whose `runPod` has not returned yet. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.#pods].map((pod) => pod.stop()));
  }
}

/** Where volumes live and how containers are started: one per layout. */
interface Sandbox {
  readonly kind: LayoutKind;
  readonly podDir: string;
  /** Creates the pod's volumes (tmpfs or folders). */
  createVolumes(volumes: readonly V1Volume[], fsGroup: number | undefined): Promise<void>;
  /** A path of this machine to write a volume's files through. */
  volumeHostPath(volume: string): string;
  /** Starts a container: its `argv` (already mapped), or a holder that only keeps its mounts. */
  startContainer(plan: ContainerPlan, argv: readonly string[] | undefined): Promise<ManagedProcess>;
  /** Runs a command in a started container; resolves when it exits or after `timeoutMs`. */
  exec(
    plan: ContainerPlan,
    process: ManagedProcess,
    argv: readonly string[],
    timeoutMs: number,
  ): Promise<ExecResult>;
  hostPath(plan: ContainerPlan, process: ManagedProcess, path: string): string;
  destroy(): Promise<void>;
}

class PodRunner implements RunningPod {
  readonly pod: V1Pod;
  readonly layout: LayoutKind;
  startMs = 0;
  readonly #sandbox: Sandbox;
  readonly #core: CoreV1Api;
  readonly #options: KubeletOptions & RunOptions;
  readonly #plans: ContainerPlan[];
  readonly #processes = new Map<string, ManagedProcess>();
  #stopped: Promise<ReadonlyMap<string, Exit>> | undefined;
  readonly #onStopped = Promise.withResolvers<undefined>();
  /** Settles once the pod has been stopped (by anyone). */
  readonly stopped = this.#onStopped.promise;

  constructor(
    pod: V1Pod,
    plans: ContainerPlan[],
    sandbox: Sandbox,
    core: CoreV1Api,
    options: KubeletOptions & RunOptions,
  ) {
    this.pod = pod;
    this.layout = sandbox.kind;
    this.#sandbox = sandbox;
    this.#core = core;
    this.#options = options;
    this.#plans = plans;
  }

  get #label(): string {
    return `${this.pod.metadata?.namespace ?? ""}/${this.pod.metadata?.name ?? ""}`;
  }

  async start(): Promise<void> {
    const volumes = this.pod.spec?.volumes ?? [];
    await this.#sandbox.createVolumes(volumes, this.pod.spec?.securityContext?.fsGroup);
    await this.#projectVolumes();
    const t0 = performance.now();
    for (const plan of this.#plans) {
      const argv = plan.image === undefined ? undefined : this.#commandOf(plan);
      const proc = await this.#sandbox.startContainer(plan, argv);
      this.#processes.set(plan.name, proc);
      if (argv === undefined) continue;
      if (plan.init && !plan.sidecar) {
        // A plain init container must finish, successfully, before the next one.
        const exit = await proc.exited;
        if (exit.code !== 0) {
          throw new KubeletError(
            `${this.#label}: init container ${plan.name} failed (${describeExit(exit)})\n${await tail(proc)}`,
          );
        }
      } else if (plan.spec.startupProbe !== undefined) {
        await this.#probeUntil(plan, proc, plan.spec.startupProbe, "startup");
      }
    }
    // Ready: every running container's readiness probe passes.
    await Promise.all(
      this.#plans.map(async (plan) => {
        const proc = this.#processes.get(plan.name);
        const probe = plan.spec.readinessProbe;
        if (plan.image === undefined || proc === undefined || probe === undefined) return;
        await this.#probeUntil(plan, proc, probe, "readiness");
      }),
    );
    this.startMs = Math.round(performance.now() - t0);
  }

  #commandOf(plan: ContainerPlan): string[] {
    const image = plan.image;
    if (image === undefined) throw new Error("no image");
    // Kubernetes: `command` replaces ENTRYPOINT; `args` replace CMD.
    const command = plan.spec.command ?? image.entrypoint;
    const args = plan.spec.args ?? [];
    return [...command, ...args].map((word) => this.#options.files[word] ?? word);
  }

  /**
   * Probes until one attempt passes. A startup probe that fails
   * `failureThreshold` times in a row fails the pod here (the kubelet would
   * restart the container; a test wants to know). A readiness probe is
   * retried until `readyTimeoutMs`.
   */
  async #probeUntil(
    plan: ContainerPlan,
    proc: ManagedProcess,
    probe: V1Probe,
    kind: "startup" | "readiness",
  ): Promise<void> {
    const period = (probe.periodSeconds ?? 10) * 1000;
    const cap = this.#options.startupTimeoutMs;
    const threshold =
      kind === "startup"
        ? Math.min(
            probe.failureThreshold ?? 3,
            cap === undefined ? Infinity : Math.ceil(cap / period),
          )
        : Math.ceil((this.#options.readyTimeoutMs ?? 60_000) / period);
    const timeout = (probe.timeoutSeconds ?? 1) * 1000;
    await Promise.race([sleep((probe.initialDelaySeconds ?? 0) * 1000), proc.exited]);
    let last = "";
    for (let failures = 0; failures < threshold; failures++) {
      if (proc.exit() !== undefined) break;
      const outcome = await this.#probeOnce(plan, proc, probe, timeout);
      if (outcome === true) return;
      last = outcome;
      await Promise.race([sleep(period), proc.exited]);
    }
    const exit = proc.exit();
    throw new KubeletError(
      `${this.#label}: ${plan.name} did not become ${kind === "startup" ? "started" : "ready"}: ` +
        (exit === undefined
          ? `${kind} probe failed ${threshold} times (last: ${last})`
          : `it exited (${describeExit(exit)})`) +
        `\n${await tail(proc)}`,
    );
  }

  /** One probe attempt: true, or why not. */
  async #probeOnce(
    plan: ContainerPlan,
    proc: ManagedProcess,
    probe: V1Probe,
    timeoutMs: number,
  ): Promise<true | string> {
    if (probe.exec?.command !== undefined) {
      const argv = probe.exec.command.map((word) => this.#options.files[word] ?? word);
      const result = await this.#sandbox.exec(plan, proc, argv, timeoutMs);
      return result.code === 0 ? true : `exit ${result.code ?? "?"} ${result.stderr.trim()}`;
    }
    const target = probe.httpGet ?? probe.tcpSocket;
    if (target === undefined) return "no exec, httpGet or tcpSocket handler";
    const port = resolvePort(plan.spec, target.port);
    if (port === undefined) return `unknown port ${String(target.port)}`;
    if (probe.tcpSocket !== undefined) {
      return new Promise((resolve) => {
        const socket = connect({ host: "127.0.0.1", port, timeout: timeoutMs });
        socket.once("connect", () => {
          socket.destroy();
          resolve(true);
        });
        socket.once("error", (error) => {
          resolve(error.message);
        });
        socket.once("timeout", () => {
          socket.destroy();
          resolve("timeout");
        });
      });
    }
    const scheme = probe.httpGet?.scheme === "HTTPS" ? "https" : "http";
    const url = `${scheme}://127.0.0.1:${port}${probe.httpGet?.path ?? "/"}`;
    // The kubelet does not verify an HTTPS probe's certificate.
    const status = await probeHttp(url, timeoutMs);
    return typeof status === "number" && status >= 200 && status < 400
      ? true
      : `GET ${url}: ${String(status)}`;
  }

  /** Mints tokens and writes projected/secret/configMap volumes, each atomically. */
  async #projectVolumes(): Promise<void> {
    for (const volume of this.pod.spec?.volumes ?? []) {
      const files = await this.#volumeFiles(volume);
      if (files === undefined) continue;
      const owner = this.#tokenOwner(volume.name);
      const fsGroup = this.pod.spec?.securityContext?.fsGroup;
      const mode =
        volume.projected?.defaultMode ??
        volume.secret?.defaultMode ??
        volume.configMap?.defaultMode ??
        0o644;
      await writeAtomically(
        this.#sandbox.volumeHostPath(volume.name),
        files.map((f) => {
          // A service-account token is private to the container's user when
          // all its containers run as one (the kubelet's rule since 1.19);
          // else, like every file, it belongs to the pod's fsGroup.
          if (f.token && owner !== undefined) return { ...f, mode: 0o600, uid: owner, gid: owner };
          const base = f.mode ?? mode;
          return fsGroup === undefined
            ? { ...f, mode: base }
            : { ...f, mode: base | 0o040, uid: 0, gid: fsGroup };
        }),
      );
    }
  }

  #tokenOwner(volume: string): number | undefined {
    const uids = new Set(
      this.#plans.filter((p) => p.mounts.some((m) => m.volume === volume)).map((p) => p.uid),
    );
    const [only] = uids;
    return uids.size === 1 && only !== undefined && only !== 0 ? only : undefined;
  }

  async #volumeFiles(volume: V1Volume): Promise<ProjectedFile[] | undefined> {
    const namespace = this.pod.metadata?.namespace ?? "default";
    if (volume.emptyDir !== undefined) return undefined;
    const out: ProjectedFile[] = [];
    const sources = [...(volume.projected?.sources ?? [])];
    if (volume.secret !== undefined)
      sources.push({ secret: { name: volume.secret.secretName ?? "" } });
    if (volume.configMap !== undefined) sources.push({ configMap: volume.configMap });
    if (sources.length === 0) {
      throw new KubeletError(
        `${this.#label}: volume ${volume.name}: the test kubelet supports emptyDir, projected, secret and configMap volumes`,
      );
    }
    for (const source of sources) {
      if (source.serviceAccountToken !== undefined) {
        const token = await this.#mintToken(
          source.serviceAccountToken.audience,
          source.serviceAccountToken.expirationSeconds ?? 3600,
        );
        out.push({ path: source.serviceAccountToken.path, content: token, token: true });
      } else if (source.secret !== undefined) {
        const secret = await this.#core.readNamespacedSecret({
          namespace,
          name: source.secret.name ?? "",
        });
        const data = Object.fromEntries(
          Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64")]),
        );
        out.push(...selectItems(data, source.secret.items));
      } else if (source.downwardAPI !== undefined) {
        for (const item of source.downwardAPI.items ?? []) {
          const value = podFields(this.pod)[item.fieldRef?.fieldPath ?? ""];
          if (value === undefined) {
            throw new KubeletError(
              `${this.#label}: volume ${volume.name}: unsupported downward API field ${item.fieldRef?.fieldPath ?? "(resourceFieldRef)"}`,
            );
          }
          out.push({ path: item.path, content: value, token: false });
        }
      } else if (source.configMap !== undefined) {
        const cm = await this.#core.readNamespacedConfigMap({
          namespace,
          name: source.configMap.name ?? "",
        });
        out.push(...selectItems(cm.data ?? {}, source.configMap.items));
      } else {
        throw new KubeletError(
          `${this.#label}: volume ${volume.name}: unsupported projected source ${Object.keys(source).join(",")}`,
        );
      }
    }
    return out;
  }

  async #mintToken(audience: string | undefined, expirationSeconds: number): Promise<string> {
    const meta = this.pod.metadata ?? {};
    const serviceAccount = this.pod.spec?.serviceAccountName ?? "default";
    const request = await this.#core.createNamespacedServiceAccountToken({
      name: serviceAccount,
      namespace: meta.namespace ?? "default",
      body: {
        spec: {
          audiences: audience === undefined ? [] : [audience],
          expirationSeconds,
          boundObjectRef: {
            apiVersion: "v1",
            kind: "Pod",
            name: meta.name ?? "",
            uid: meta.uid ?? "",
          },
        },
      },
    });
    const token = request.status?.token;
    if (token === undefined || token === "") {
      throw new KubeletError(
        `${this.#label}: TokenRequest for ${serviceAccount} returned no token`,
      );
    }
    return token;
  }

  refreshTokens(): Promise<void> {
    return this.#projectVolumes();
  }

  process(container: string): ManagedProcess | undefined {
    const plan = this.#plans.find((p) => p.name === container);
    return plan?.image === undefined ? undefined : this.#processes.get(container);
  }

  #plan(container: string): { plan: ContainerPlan; proc: ManagedProcess } {
    const plan = this.#plans.find((p) => p.name === container);
    const proc = this.#processes.get(container);
    if (plan === undefined || proc === undefined) {
      throw new KubeletError(`${this.#label}: no running container ${container}`);
    }
    return { plan, proc };
  }

  exec(container: string, argv: readonly string[]): Promise<ExecResult> {
    const { plan, proc } = this.#plan(container);
    return this.#sandbox.exec(
      plan,
      proc,
      argv.map((w) => this.#options.files[w] ?? w),
      30_000,
    );
  }

  hostPath(container: string, path: string): string {
    const { plan, proc } = this.#plan(container);
    return this.#sandbox.hostPath(plan, proc, path);
  }

  stop(): Promise<ReadonlyMap<string, Exit>> {
    this.#stopped ??= (async () => {
      const grace = Math.min(
        (this.pod.spec?.terminationGracePeriodSeconds ?? 30) * 1000,
        this.#options.maxGraceMs ?? 10_000,
      );
      const exits = new Map<string, Exit>();
      // App containers first, then sidecars in reverse order, as the kubelet
      // terminates native sidecars after the main containers.
      for (const plan of [...this.#plans].reverse()) {
        const proc = this.#processes.get(plan.name);
        if (proc === undefined) continue;
        exits.set(plan.name, await proc.stop(grace));
      }
      await this.#sandbox.destroy();
      this.#onStopped.resolve(undefined);
      return exits;
    })();
    return this.#stopped;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

function planContainers(pod: V1Pod, options: KubeletOptions): ContainerPlan[] {
  const spec = pod.spec;
  if (spec === undefined) throw new KubeletError("pod has no spec");
  const podSecurity = spec.securityContext ?? {};
  const plan = (container: V1Container, init: boolean): ContainerPlan => {
    const image = options.images[container.image ?? ""];
    const security = container.securityContext ?? {};
    const uid = security.runAsUser ?? podSecurity.runAsUser ?? image?.user;
    const gid = security.runAsGroup ?? podSecurity.runAsGroup ?? uid;
    const runAsNonRoot = security.runAsNonRoot ?? podSecurity.runAsNonRoot ?? false;
    if (image !== undefined && runAsNonRoot && (uid === undefined || uid === 0)) {
      // The kubelet's own check: CreateContainerConfigError.
      throw new KubeletError(
        `container ${container.name} has runAsNonRoot and its image will run as root`,
      );
    }
    return {
      name: container.name,
      spec: container,
      init,
      sidecar: init && container.restartPolicy === "Always",
      image,
      uid,
      gid,
      groups: [
        ...(podSecurity.fsGroup === undefined ? [] : [podSecurity.fsGroup]),
        ...(podSecurity.supplementalGroups ?? []),
      ],
      readOnlyRoot: security.readOnlyRootFilesystem ?? false,
      mounts: (container.volumeMounts ?? []).map((m) => ({
        volume: m.name,
        mountPath: m.mountPath,
        subPath: m.subPath,
        readOnly: m.readOnly ?? false,
      })),
      env: containerEnv(pod, container, image, options.apiserver),
      workingDir: container.workingDir ?? image?.workingDir ?? "/",
    };
  };
  return [
    ...(spec.initContainers ?? []).map((c) => plan(c, true)),
    ...spec.containers.map((c) => plan(c, false)),
  ];
}

/** The keys of a Secret or ConfigMap as files: all, or the listed `items` at their paths. */
function selectItems(
  data: Readonly<Record<string, string | Buffer>>,
  items: readonly { key: string; path: string; mode?: number }[] | undefined,
): ProjectedFile[] {
  if (items === undefined) {
    return Object.entries(data).map(([path, content]) => ({ path, content, token: false }));
  }
  return items.map((item) => {
    const content = data[item.key];
    if (content === undefined) throw new KubeletError(`volume item: no key ${item.key}`);
    return {
      path: item.path,
      content,
      token: false,
      ...(item.mode === undefined ? {} : { mode: item.mode }),
    };
  });
}

/** The pod fields the downward API (env and volumes) can expose here. */
function podFields(pod: V1Pod): Record<string, string | undefined> {
  return {
    "metadata.name": pod.metadata?.name,
    "metadata.namespace": pod.metadata?.namespace,
    "metadata.uid": pod.metadata?.uid,
    "spec.serviceAccountName": pod.spec?.serviceAccountName,
    "spec.nodeName": NODE_NAME,
    "status.podIP": "127.0.0.1",
    "status.hostIP": "127.0.0.1",
  };
}

/** A container port by number or by name. */
function resolvePort(container: V1Container, port: number | string): number | undefined {
  if (typeof port === "number") return port;
  if (/^[0-9]+$/.test(port)) return Number(port);
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

/** GET for an httpGet probe: the status, or why there is none. */
function probeHttp(url: string, timeoutMs: number): Promise<number | string> {
  return new Promise((resolve) => {
    const get = url.startsWith("https:") ? httpsGet : httpGet;
    const req = get(url, { timeout: timeoutMs, rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once("timeout", () => req.destroy(new Error("timeout")));
    req.once("error", (error) => {
      resolve(error.message);
    });
  });
}

function containerEnv(
  pod: V1Pod,
  container: V1Container,
  image: ImageSpec | undefined,
  apiserver: string | undefined,
): Record<string, string> {
  const env: Record<string, string> = {
    PATH: DEFAULT_PATH,
    ...image?.env,
    HOSTNAME: pod.metadata?.name ?? "",
  };
  if (apiserver !== undefined) {
    // What the kubelet sets for the `kubernetes` Service in every container.
    const url = new URL(apiserver);
    env.KUBERNETES_SERVICE_HOST = url.hostname;
    env.KUBERNETES_SERVICE_PORT = url.port || "443";
    env.KUBERNETES_SERVICE_PORT_HTTPS = env.KUBERNETES_SERVICE_PORT;
  }
  const fields = podFields(pod);
  for (const variable of container.env ?? []) {
    if (variable.valueFrom === undefined) {
      env[variable.name] = variable.value ?? "";
      continue;
    }
    const path = variable.valueFrom.fieldRef?.fieldPath;
    const value = path === undefined ? undefined : fields[path];
    if (value === undefined) {
      throw new KubeletError(
        `container ${container.name}: env ${variable.name}: the test kubelet supports values and fieldRef (${Object.keys(fields).join(", ")})`,
      );
    }
    env[variable.name] = value;
  }
  return env;
}

interface ProjectedFile {
  readonly path: string;
  readonly content: string | Buffer;
  readonly token: boolean;
  readonly mode?: number;
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
}

/**
 * Publishes files the way the kubelet's AtomicWriter does: a fresh
 * `..<timestamp>` folder, a `..data` symlink swapped by one rename, and the
 * visible names as links through `..data`; then the previous folder goes.
 */
async function writeAtomically(
  dir: string,
  files: readonly (ProjectedFile & { mode: number })[],
): Promise<void> {
  const stamp = `..${new Date().toISOString().replace(/[-:.TZ]/g, "_")}${Math.random().toString(36).slice(2, 8)}`;
  const fresh = join(dir, stamp);
  await mkdir(fresh, { mode: 0o755 });
  await chmod(fresh, 0o755);
  for (const file of files) {
    const target = join(fresh, file.path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, file.content, { mode: file.mode });
    await chmod(target, file.mode);
    if (file.uid !== undefined && process.getuid?.() === 0) {
      await chown(target, file.uid, file.gid ?? file.uid);
    }
  }
  let previous: string | undefined;
  try {
    previous = readlinkSync(join(dir, "..data"));
  } catch {
    previous = undefined;
  }
  await symlink(stamp, join(dir, "..data_tmp"));
  await rename(join(dir, "..data_tmp"), join(dir, "..data"));
  for (const file of files) {
    const top = file.path.split("/")[0] ?? file.path;
    const link = join(dir, top);
    if (!existsSync(link)) await symlink(join("..data", top), link);
  }
  if (previous !== undefined && previous !== stamp) {
    await rm(join(dir, previous), { recursive: true, force: true });
  }
}

function describeExit(exit: Exit): string {
  return exit.signal === null ? `exit code ${exit.code ?? "?"}` : `signal ${exit.signal}`;
}

async function tail(proc: ManagedProcess, lines = 30): Promise<string> {
  try {
    const log = await proc.readLog();
    return `--- last lines of ${proc.logFile} ---\n${log.trimEnd().split("\n").slice(-lines).join("\n")}`;
  } catch {
    return `(no log at ${proc.logFile})`;
  }
}

/** Runs a short command to completion with a timeout, collecting its output. */
function runToCompletion(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
  cwd?: string,
): Promise<ExecResult> {
  const line = withParentDeathSignal(command, args);
  return new Promise((resolve) => {
    const child = spawn(line.command, line.args, {
      env,
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
      killSignal: "SIGKILL",
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.once("error", (error) => {
      resolve({ code: null, stdout, stderr: stderr + String(error) });
    });
    child.once("close", (code) => {
      resolve({ code, stdout, stderr });
    });
  });
}

/** Which uid/gid to drop to before running a container's command. */
function dropPrivileges(plan: ContainerPlan): string[] {
  if (plan.uid === undefined || plan.uid === 0) return [];
  // The drop clears the parent-death signal (the kernel does on a credential
  // change), so it is set again here.
  return [
    "setpriv",
    `--reuid=${plan.uid}`,
    `--regid=${plan.gid ?? plan.uid}`,
    plan.groups.length === 0 ? "--clear-groups" : `--groups=${plan.groups.join(",")}`,
    "--no-new-privs",
    "--pdeathsig=SIGKILL",
    "--",
  ];
}

/** The namespace layout: see `layout.ts`. */
class NamespaceSandbox implements Sandbox {
  readonly kind = "namespace" as const;
  readonly podDir: string;
  readonly #holder: ManagedProcess;
  readonly #options: KubeletOptions;
  readonly #label: string;
  /** Top-level folders made on the machine for mount points under `/`; removed at the end. */
  readonly #madeOnHost: string[] = [];

  private constructor(
    podDir: string,
    holder: ManagedProcess,
    label: string,
    options: KubeletOptions,
  ) {
    this.podDir = podDir;
    this.#holder = holder;
    this.#label = label;
    this.#options = options;
  }

  static async create(
    podDir: string,
    label: string,
    options: KubeletOptions,
  ): Promise<NamespaceSandbox> {
    // The pod's "pause" process holds the namespace in which its volumes live.
    const holder = startProcess({
      name: `${label}.sandbox`,
      command: "unshare",
      args: ["-m", "--propagation", "private", "--", "sleep", "infinity"],
      logDir: options.logDir,
    });
    const ours = readlinkSync("/proc/self/ns/mnt");
    const deadline = Date.now() + 10_000;
    for (;;) {
      let theirs: string | undefined;
      try {
        theirs = readlinkSync(`/proc/${holder.pid}/ns/mnt`);
      } catch {
        theirs = undefined;
      }
      if (theirs !== undefined && theirs !== ours) break;
      if (holder.exit() !== undefined || Date.now() > deadline) {
        await holder.stop();
        throw new KubeletError(`${label}: the pod sandbox did not start\n${await tail(holder)}`);
      }
      await sleep(5);
    }
    const sandbox = new NamespaceSandbox(podDir, holder, label, options);
    // Scratch space of the pod (overlay layers for mount points) lives in a
    // tmpfs of its own, so nothing of it touches the machine's disk.
    await sandbox.#run([
      `mount -t tmpfs -o mode=0755,size=64m tmpfs ${shellQuote(podDir)}`,
      ...exposeCheckoutScript(REPO_ROOT, podDir, (dir) => (statSync(dir).mode & 0o001) !== 0),
    ]);
    return sandbox;
  }

  async #run(script: readonly string[]): Promise<void> {
    const result = await runToCompletion(
      "nsenter",
      [`--target=${this.#holder.pid}`, "--mount", "--", "sh", "-ec", script.join("\n")],
      { PATH: DEFAULT_PATH },
      30_000,
    );
    if (result.code !== 0) {
      throw new KubeletError(
        `${this.#label}: sandbox setup failed: ${result.stderr.trim()}\n${script.join("\n")}`,
      );
    }
  }

  async createVolumes(volumes: readonly V1Volume[], fsGroup: number | undefined): Promise<void> {
    const script = [`mkdir -p ${shellQuote(join(this.podDir, "volumes"))}`];
    for (const volume of volumes) {
      const dir = shellQuote(join(this.podDir, "volumes", volume.name));
      script.push(`mkdir ${dir}`);
      if (volume.emptyDir !== undefined && volume.emptyDir.medium !== "Memory") {
        script.push(`chmod 0777 ${dir}`);
        continue;
      }
      // emptyDir with medium Memory, and every projected/secret volume, is a tmpfs.
      script.push(...memoryVolumeScript(dir, volume, fsGroup));
    }
    await this.#run(script);
  }

  volumeHostPath(volume: string): string {
    return `/proc/${this.#holder.pid}/root${join(this.podDir, "volumes", volume)}`;
  }

  async startContainer(
    plan: ContainerPlan,
    argv: readonly string[] | undefined,
  ): Promise<ManagedProcess> {
    const script = ["set -e", ...this.#mountScript(plan), `cd ${shellQuote(plan.workingDir)}`];
    script.push(`exec ${[...dropPrivileges(plan)].map(shellQuote).join(" ")} "$@"`);
    const command = argv ?? ["sleep", "infinity"];
    const proc = startProcess({
      name: `${this.#label}.${plan.name}`,
      command: "nsenter",
      args: [
        `--target=${this.#holder.pid}`,
        "--mount",
        "--",
        "unshare",
        "-m",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        script.join("\n"),
        "sh",
        ...command,
      ],
      env: argv === undefined ? { PATH: DEFAULT_PATH } : { ...plan.env },
      logDir: this.#options.logDir,
    });
    // The container is up once its process runs the command in its own
    // namespace (the mount script has finished by then).
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (proc.exit() !== undefined) {
        if (argv !== undefined && !plan.sidecar && plan.init) return proc;
        throw new KubeletError(
          `${this.#label}: container ${plan.name} did not start (${describeExit(proc.exit() ?? { code: null, signal: null })})\n${await tail(proc)}`,
        );
      }
      if (this.#isRunningCommand(proc.pid, command)) return proc;
      if (Date.now() > deadline) {
        await proc.stop();
        throw new KubeletError(
          `${this.#label}: container ${plan.name} did not start\n${await tail(proc)}`,
        );
      }
      await sleep(5);
    }
  }

  /** True once `pid` has exec'd the container's command (the last exec of the chain). */
  #isRunningCommand(pid: number, command: readonly string[]): boolean {
    try {
      const exe = readlinkSync(`/proc/${pid}/exe`);
      const first = command[0] ?? "";
      const wanted = first.includes("/") ? realpathSync(first) : undefined;
      return wanted === undefined ? exe.endsWith(`/${first}`) : exe === wanted;
    } catch {
      return false;
    }
  }

  /** The commands that give a container its mounts, in its own namespace. */
  #mountScript(plan: ContainerPlan): string[] {
    const script: string[] = [];
    const q = shellQuote;
    const created = new Set<string>();
    const overlays: string[] = [];
    const exists = (p: string): boolean => created.has(p) || existsSync(p);
    const sorted = [...plan.mounts].sort((a, b) => a.mountPath.length - b.mountPath.length);
    for (const [i, mount] of sorted.entries()) {
      const target = mount.mountPath;
      if (!exists(target)) {
        let ancestor = dirname(target);
        while (!exists(ancestor)) ancestor = dirname(ancestor);
        const real = created.has(ancestor) ? ancestor : realpathSync(ancestor);
        const covered =
          created.has(ancestor) || overlays.some((o) => real === o || real.startsWith(`${o}/`));
        if (!covered) {
          if (real === "/") {
            // An overlay on / would hide every other mount: make the one
            // missing top-level folder on the machine and remove it at the end.
            const top = `/${target.split("/")[1] ?? ""}`;
            if (!existsSync(top)) this.#madeOnHost.push(top);
            script.push(`mkdir -p ${q(top)}`);
          } else {
            // A missing mount point is made in an overlay whose writable
            // layer is the pod's tmpfs: the machine's folder stays untouched.
            const layer = join(this.podDir, "layers", plan.name, String(i));
            script.push(
              `mkdir -p ${q(`${layer}/upper`)} ${q(`${layer}/work`)}`,
              `mount -t overlay overlay -o ${q(`lowerdir=${real},upperdir=${layer}/upper,workdir=${layer}/work`)} ${q(real)}`,
            );
            overlays.push(real);
          }
        }
        script.push(`mkdir -p ${q(target)}`);
        for (let p = target; p !== dirname(p) && !existsSync(p); p = dirname(p)) created.add(p);
        created.add(target);
      }
      const source = join(this.podDir, "volumes", mount.volume, mount.subPath ?? "");
      if (mount.subPath !== undefined) script.push(subPathScript(source));
      script.push(`mount --bind ${q(source)} ${q(target)}`);
    }
    if (plan.readOnlyRoot) {
      // Per-mount read-only flags: they change this namespace's view only.
      script.push("mount -o remount,bind,ro /");
      for (const o of overlays) script.push(`mount -o remount,bind,ro ${q(o)}`);
    }
    for (const mount of sorted) {
      if (mount.readOnly) script.push(`mount -o remount,bind,ro ${q(mount.mountPath)}`);
    }
    return script;
  }

  exec(
    plan: ContainerPlan,
    proc: ManagedProcess,
    argv: readonly string[],
    timeoutMs: number,
  ): Promise<ExecResult> {
    return runToCompletion(
      "nsenter",
      [
        `--target=${proc.pid}`,
        "--mount",
        `--wd=${plan.workingDir}`,
        "--",
        ...dropPrivileges(plan),
        ...argv,
      ],
      { ...plan.env },
      timeoutMs,
    );
  }

  hostPath(_plan: ContainerPlan, proc: ManagedProcess, path: string): string {
    return `/proc/${proc.pid}/root${path}`;
  }

  async destroy(): Promise<void> {
    // The mounts go with the last process of the namespace.
    await this.#holder.stop();
    await rm(this.podDir, { recursive: true, force: true });
    for (const dir of this.#madeOnHost) await rmdir(dir).catch(() => undefined);
  }
}

/**
 * A tmpfs volume as the kubelet mounts it. A Memory emptyDir gets no `mode=`
 * option, so its root is the tmpfs default, sticky and world-writable (1777,
 * root's); with an fsGroup the kubelet gives it to that group and adds setgid
 * (3777). Projected and secret volumes are 0755. (Checked on a kind node,
 * kubelet v1.36.3: docs/e2e.md.)
 */
function memoryVolumeScript(dir: string, volume: V1Volume, fsGroup: number | undefined): string[] {
  const size =
    volume.emptyDir?.sizeLimit === undefined
      ? ""
      : `size=${parseQuantityBytes(volume.emptyDir.sizeLimit)}`;
  if (volume.emptyDir === undefined) {
    return [`mount -t tmpfs -o ${["mode=0755", size].filter(Boolean).join(",")} tmpfs ${dir}`];
  }
  return [
    `mount -t tmpfs ${size === "" ? "" : `-o ${size} `}tmpfs ${dir}`,
    ...(fsGroup === undefined ? [] : [`chgrp ${fsGroup} ${dir}`, `chmod g+s ${dir}`]),
  ];
}

/**
 * A `subPath` folder that does not exist yet is made by the kubelet when the
 * container starts: root's, with the volume root's mode, sticky bit included
 * (`SafeMakeDir`, kubelet v1.36.3). One that exists is mounted as it is.
 */
function subPathScript(source: string): string {
  const q = shellQuote(source);
  return `[ -e ${q} ] || { mkdir -p ${q}; chmod "$(stat -c %a ${shellQuote(dirname(source))})" ${q}; }`;
}

/** The folder layout: see `layout.ts`. */
class FolderSandbox implements Sandbox {
  readonly kind = "folders" as const;
  readonly podDir: string;
  readonly #label: string;
  readonly #options: KubeletOptions;

  constructor(podDir: string, label: string, options: KubeletOptions) {
    this.podDir = podDir;
    this.#label = label;
    this.#options = options;
  }

  async createVolumes(volumes: readonly V1Volume[]): Promise<void> {
    // No ownership changes here: this layout runs as whoever runs the tests.
    for (const volume of volumes) {
      const dir = join(this.podDir, "volumes", volume.name);
      await mkdir(dir, { recursive: true });
      await chmod(dir, 0o777);
    }
  }

  volumeHostPath(volume: string): string {
    return join(this.podDir, "volumes", volume);
  }

  /** The folder that stands for `path` in `plan`'s view, or undefined when no mount covers it. */
  #map(plan: ContainerPlan, path: string): string | undefined {
    const mounts = [...plan.mounts].sort((a, b) => b.mountPath.length - a.mountPath.length);
    for (const m of mounts) {
      if (path === m.mountPath || path.startsWith(`${m.mountPath}/`)) {
        return join(this.volumeHostPath(m.volume), m.subPath ?? "", relative(m.mountPath, path));
      }
    }
    return undefined;
  }

  /** Rewrites container paths in a word: a path, or JSON holding paths (the sidecar's spec). */
  #rewrite(plan: ContainerPlan, word: string): string {
    const direct = word.startsWith("/") ? this.#map(plan, word) : undefined;
    if (direct !== undefined) return direct;
    if (!/^[[{]/.test(word.trim())) return word;
    try {
      return JSON.stringify(
        JSON.parse(word, (_key, value: unknown) =>
          typeof value === "string" && value.startsWith("/")
            ? (this.#map(plan, value) ?? value)
            : value,
        ),
      );
    } catch {
      return word;
    }
  }

  startContainer(
    plan: ContainerPlan,
    argv: readonly string[] | undefined,
  ): Promise<ManagedProcess> {
    const env = Object.fromEntries(
      Object.entries(plan.env).map(([k, v]) => [k, this.#rewrite(plan, v)]),
    );
    const command = (argv ?? ["sleep", "infinity"]).map((w) => this.#rewrite(plan, w));
    return Promise.resolve(
      startProcess({
        name: `${this.#label}.${plan.name}`,
        command: command[0] ?? "true",
        args: command.slice(1),
        env,
        cwd: this.#map(plan, plan.workingDir) ?? this.podDir,
        logDir: this.#options.logDir,
      }),
    );
  }

  exec(
    plan: ContainerPlan,
    _proc: ManagedProcess,
    argv: readonly string[],
    timeoutMs: number,
  ): Promise<ExecResult> {
    const env = Object.fromEntries(
      Object.entries(plan.env).map(([k, v]) => [k, this.#rewrite(plan, v)]),
    );
    const command = argv.map((w) => this.#rewrite(plan, w));
    return runToCompletion(command[0] ?? "true", command.slice(1), env, timeoutMs, this.podDir);
  }

  hostPath(plan: ContainerPlan, _proc: ManagedProcess, path: string): string {
    const mapped = this.#map(plan, path);
    if (mapped === undefined) {
      throw new KubeletError(
        `${plan.name}: ${path} is on no volume (the folder layout has only volumes)`,
      );
    }
    return mapped;
  }

  async destroy(): Promise<void> {
    await rm(this.podDir, { recursive: true, force: true });
  }
}

/** Lists a folder, for messages. */
export async function listFolder(path: string): Promise<string[]> {
  try {
    return (await readdir(path)).sort();
  } catch {
    return [];
  }
}
