/**
 * The folder layout (see `layout.ts`), for machines without mount
 * namespaces: volumes are plain folders, and a container is an ordinary
 * process whose env, args and working directory are rewritten to point into
 * them. It cannot show users, modes or read-only mounts; it keeps the suite
 * runnable anywhere.
 */
import type { V1Volume } from "@kubernetes/client-node";
import { chmod, mkdir, rm } from "node:fs/promises";
import { join, relative } from "node:path";
import { runToCompletion, startProcess, type ManagedProcess } from "../host/processes.ts";
import { KubeletError, type ExecResult, type KubeletOptions } from "./api.ts";
import type { ContainerPlan } from "./plan.ts";
import type { Sandbox } from "./sandbox.ts";

/** The folder layout: see `layout.ts`. */
export class FolderSandbox implements Sandbox {
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
