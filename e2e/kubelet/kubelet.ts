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
 *
 * This file is the entry point tests import; the work is done by its parts:
 * `plan.ts` (the pod spec read once), `sandbox.ts` and its two layouts
 * (`namespace-sandbox.ts`, `folder-sandbox.ts`), `volumes.ts` (tokens and
 * projected files), `probes.ts`, and `pod-runner.ts` (the order of it all).
 */
import { CoreV1Api } from "@kubernetes/client-node";
import { mkdir, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { markOwned, sweepOrphans } from "../host/processes.ts";
import type { KubeletOptions, RunningPod, RunOptions } from "./api.ts";
import { FolderSandbox } from "./folder-sandbox.ts";
import { detectLayout, type LayoutKind } from "./layout.ts";
import { NamespaceSandbox } from "./namespace-sandbox.ts";
import { planContainers } from "./plan.ts";
import { PodRunner } from "./pod-runner.ts";
import type { Sandbox } from "./sandbox.ts";

export {
  KubeletError,
  type ExecResult,
  type ImageSpec,
  type KubeletOptions,
  type RunningPod,
  type RunOptions,
} from "./api.ts";

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
    const sandbox = await this.#createSandbox(layout, `${namespace}.${name}`);
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

  /** The pod's scratch folder (swept when a killed run left it) and the sandbox of the layout. */
  async #createSandbox(layout: LayoutKind, label: string): Promise<Sandbox> {
    const base = this.#options.baseDir ?? tmpdir();
    await mkdir(base, { recursive: true });
    sweepOrphans(base, "akv-kubelet-");
    const podDir = await mkdtemp(join(base, `akv-kubelet-${label}-`));
    markOwned(podDir);
    return layout === "namespace"
      ? await NamespaceSandbox.create(podDir, label, this.#options)
      : new FolderSandbox(podDir, label, this.#options);
  }
}
