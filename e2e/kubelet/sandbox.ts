/**
 * The seam between the two layouts (`layout.ts`): the pod runner decides what
 * runs and in which order, a sandbox decides where volumes live and how a
 * container is started, entered and seen from this machine. One
 * implementation per layout: `namespace-sandbox.ts`, `folder-sandbox.ts`.
 */
import type { V1Volume } from "@kubernetes/client-node";
import type { ManagedProcess } from "../host/processes.ts";
import type { ExecResult } from "./api.ts";
import type { LayoutKind } from "./layout.ts";
import type { ContainerPlan } from "./plan.ts";

/** Where volumes live and how containers are started: one per layout. */
export interface Sandbox {
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
