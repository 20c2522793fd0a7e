/**
 * What a test sees of the test kubelet: its options, a running pod, and its
 * error. In a file of its own so that the parts of the kubelet (sandboxes,
 * volumes, probes, the pod runner) share these types without importing the
 * kubelet itself; tests import them through `kubelet.ts`.
 */
import type { KubeConfig, V1Pod } from "@kubernetes/client-node";
import type { CommandOutput, Exit, ManagedProcess } from "../host/processes.ts";
import type { LayoutKind } from "./layout.ts";

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
  /** Default: what `detectLayout` finds. */
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

/** Per-pod options of `TestKubelet.runPod`. */
export interface RunOptions {
  /**
   * Give up on a startup probe after this long, whatever its failureThreshold
   * (the sidecar's allows minutes; a test that expects a failure does not wait).
   */
  readonly startupTimeoutMs?: number;
}

/** The result of {@link RunningPod.exec}. */
export type ExecResult = CommandOutput;

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
