/**
 * The namespace layout (see `layout.ts`), for root: the pod is a process
 * holding a private mount namespace, as the pause container does, so its
 * volumes are real tmpfs mounts that vanish with it; each container gets a
 * nested namespace with its volumes bind-mounted at its real paths, its
 * read-only flags and its user. This is the layout that can tell the sidecar
 * apart from a real node's behaviour (permissions, sticky roots, `subPath`),
 * so the volume scripts follow what kubelet v1.36.3 does, checked on kind.
 */
import type { V1Volume } from "@kubernetes/client-node";
import { existsSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { rm, rmdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  describeExit,
  logTail,
  runToCompletion,
  startProcess,
  type ManagedProcess,
} from "../host/processes.ts";
import { REPO_ROOT } from "../host/repo.ts";
import { KubeletError, type ExecResult, type KubeletOptions } from "./api.ts";
import { exposeCheckoutScript, parseQuantityBytes, shellQuote } from "./layout.ts";
import { DEFAULT_PATH, type ContainerPlan } from "./plan.ts";
import type { Sandbox } from "./sandbox.ts";

/** The namespace layout: see `layout.ts`. */
export class NamespaceSandbox implements Sandbox {
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
    await waitForOwnNamespace(holder, label);
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
    await this.#waitUntilStarted(plan, proc, argv !== undefined, command);
    return proc;
  }

  /**
   * The container is up once its process runs the command in its own
   * namespace (the mount script has finished by then). A plain init
   * container may already have exited, successfully or not: the pod runner
   * judges its exit.
   */
  async #waitUntilStarted(
    plan: ContainerPlan,
    proc: ManagedProcess,
    runsImage: boolean,
    command: readonly string[],
  ): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (proc.exit() !== undefined) {
        if (runsImage && !plan.sidecar && plan.init) return;
        throw new KubeletError(
          `${this.#label}: container ${plan.name} did not start (${describeExit(proc.exit() ?? { code: null, signal: null })})\n${await logTail(proc)}`,
        );
      }
      if (isRunningCommand(proc.pid, command)) return;
      if (Date.now() > deadline) {
        await proc.stop();
        throw new KubeletError(
          `${this.#label}: container ${plan.name} did not start\n${await logTail(proc)}`,
        );
      }
      await sleep(5);
    }
  }

  /** The commands that give a container its mounts, in its own namespace. */
  #mountScript(plan: ContainerPlan): string[] {
    const script: string[] = [];
    const q = shellQuote;
    const points: MountPoints = { created: new Set(), overlays: [] };
    const sorted = [...plan.mounts].sort((a, b) => a.mountPath.length - b.mountPath.length);
    for (const [i, mount] of sorted.entries()) {
      script.push(...this.#mountPointScript(plan, i, mount.mountPath, points));
      const source = join(this.podDir, "volumes", mount.volume, mount.subPath ?? "");
      if (mount.subPath !== undefined) script.push(subPathScript(source));
      script.push(`mount --bind ${q(source)} ${q(mount.mountPath)}`);
    }
    if (plan.readOnlyRoot) {
      // Per-mount read-only flags: they change this namespace's view only.
      script.push("mount -o remount,bind,ro /");
      for (const o of points.overlays) script.push(`mount -o remount,bind,ro ${q(o)}`);
    }
    for (const mount of sorted) {
      if (mount.readOnly) script.push(`mount -o remount,bind,ro ${q(mount.mountPath)}`);
    }
    return script;
  }

  /**
   * The commands that make a missing mount point `target` (the `i`th mount)
   * without changing the machine's folders, recording in `points` what they
   * made; none when it exists.
   */
  #mountPointScript(plan: ContainerPlan, i: number, target: string, points: MountPoints): string[] {
    const q = shellQuote;
    const { created, overlays } = points;
    const exists = (p: string): boolean => created.has(p) || existsSync(p);
    if (exists(target)) return [];
    const script: string[] = [];
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

/** Mount points a container's mount script has made so far: folders, and the overlays that hold them. */
interface MountPoints {
  readonly created: Set<string>;
  readonly overlays: string[];
}

/** Waits until the sandbox's holder runs in a mount namespace of its own; stops it when it does not. */
async function waitForOwnNamespace(holder: ManagedProcess, label: string): Promise<void> {
  const ours = readlinkSync("/proc/self/ns/mnt");
  const deadline = Date.now() + 10_000;
  for (;;) {
    let theirs: string | undefined;
    try {
      theirs = readlinkSync(`/proc/${holder.pid}/ns/mnt`);
    } catch {
      theirs = undefined;
    }
    if (theirs !== undefined && theirs !== ours) return;
    if (holder.exit() !== undefined || Date.now() > deadline) {
      await holder.stop();
      throw new KubeletError(`${label}: the pod sandbox did not start\n${await logTail(holder)}`);
    }
    await sleep(5);
  }
}

/** True once `pid` has exec'd the container's command (the last exec of the chain). */
function isRunningCommand(pid: number, command: readonly string[]): boolean {
  try {
    const exe = readlinkSync(`/proc/${pid}/exe`);
    const first = command[0] ?? "";
    const wanted = first.includes("/") ? realpathSync(first) : undefined;
    return wanted === undefined ? exe.endsWith(`/${first}`) : exe === wanted;
  } catch {
    return false;
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
