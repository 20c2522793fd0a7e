/**
 * One pod's life, in the kubelet's order: volumes first, then each container
 * in turn (a plain init container must exit 0, a native sidecar or app
 * container must pass its startup probe before the next starts), readiness,
 * and on stop SIGTERM to app containers before sidecars. The order is the
 * point: it is what makes "the app never starts before the first sync" a
 * claim this suite can check. Where things live is the sandbox's business.
 */
import type { CoreV1Api, V1Pod, V1Probe } from "@kubernetes/client-node";
import { describeExit, logTail, type Exit, type ManagedProcess } from "../host/processes.ts";
import {
  KubeletError,
  type ExecResult,
  type KubeletOptions,
  type RunningPod,
  type RunOptions,
} from "./api.ts";
import type { LayoutKind } from "./layout.ts";
import { containerCommand, mapImageFiles, type ContainerPlan } from "./plan.ts";
import { probeUntilPassed, type ProbedContainer, type ProbeKind } from "./probes.ts";
import type { Sandbox } from "./sandbox.ts";
import { projectVolumes } from "./volumes.ts";

/** A pod the kubelet runs: {@link RunningPod}, plus how the kubelet starts it and learns it stopped. */
export class PodRunner implements RunningPod {
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

  /** Lays out the volumes and starts every container in order, until the pod is ready. */
  async start(): Promise<void> {
    const volumes = this.pod.spec?.volumes ?? [];
    await this.#sandbox.createVolumes(volumes, this.pod.spec?.securityContext?.fsGroup);
    await this.#projectVolumes();
    const t0 = performance.now();
    for (const plan of this.#plans) await this.#startContainer(plan);
    await this.#waitUntilReady();
    this.startMs = Math.round(performance.now() - t0);
  }

  /** Starts one container and holds the next back as the kubelet does. */
  async #startContainer(plan: ContainerPlan): Promise<void> {
    const argv = plan.image === undefined ? undefined : containerCommand(plan, this.#options.files);
    const proc = await this.#sandbox.startContainer(plan, argv);
    this.#processes.set(plan.name, proc);
    if (argv === undefined) return;
    if (plan.init && !plan.sidecar) {
      // A plain init container must finish, successfully, before the next one.
      const exit = await proc.exited;
      if (exit.code !== 0) {
        throw new KubeletError(
          `${this.#label}: init container ${plan.name} failed (${describeExit(exit)})\n${await logTail(proc)}`,
        );
      }
    } else if (plan.spec.startupProbe !== undefined) {
      await this.#probe(plan, proc, plan.spec.startupProbe, "startup");
    }
  }

  /** Ready: every running container's readiness probe passes. */
  async #waitUntilReady(): Promise<void> {
    await Promise.all(
      this.#plans.map(async (plan) => {
        const proc = this.#processes.get(plan.name);
        const probe = plan.spec.readinessProbe;
        if (plan.image === undefined || proc === undefined || probe === undefined) return;
        await this.#probe(plan, proc, probe, "readiness");
      }),
    );
  }

  #probe(
    plan: ContainerPlan,
    proc: ManagedProcess,
    probe: V1Probe,
    kind: ProbeKind,
  ): Promise<void> {
    const container: ProbedContainer = {
      pod: this.#label,
      spec: plan.spec,
      process: proc,
      exec: (argv, timeoutMs) =>
        this.#sandbox.exec(plan, proc, mapImageFiles(argv, this.#options.files), timeoutMs),
    };
    return probeUntilPassed(container, probe, kind, this.#options);
  }

  #projectVolumes(): Promise<void> {
    return projectVolumes({
      pod: this.pod,
      plans: this.#plans,
      core: this.#core,
      label: this.#label,
      volumeHostPath: (volume) => this.#sandbox.volumeHostPath(volume),
    });
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
    return this.#sandbox.exec(plan, proc, mapImageFiles(argv, this.#options.files), 30_000);
  }

  hostPath(container: string, path: string): string {
    const { plan, proc } = this.#plan(container);
    return this.#sandbox.hostPath(plan, proc, path);
  }

  stop(): Promise<ReadonlyMap<string, Exit>> {
    this.#stopped ??= this.#stopContainers();
    return this.#stopped;
  }

  /** App containers first, then sidecars in reverse order, as the kubelet terminates native sidecars after the main containers. */
  async #stopContainers(): Promise<ReadonlyMap<string, Exit>> {
    const grace = Math.min(
      (this.pod.spec?.terminationGracePeriodSeconds ?? 30) * 1000,
      this.#options.maxGraceMs ?? 10_000,
    );
    const exits = new Map<string, Exit>();
    for (const plan of [...this.#plans].reverse()) {
      const proc = this.#processes.get(plan.name);
      if (proc === undefined) continue;
      exits.set(plan.name, await proc.stop(grace));
    }
    await this.#sandbox.destroy();
    this.#onStopped.resolve(undefined);
    return exits;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
