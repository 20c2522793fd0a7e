/**
 * The contents of a pod's projected, secret and configMap volumes, written as
 * the kubelet writes them: service-account tokens minted through TokenRequest
 * with the volume's audience and expiry and bound to the pod (what the mock
 * Entra ID verifies), file modes and owners by the kubelet's rules, and each
 * volume published at once through a `..data` link, because the sidecar reads
 * its token through that link and must never see half a swap.
 */
import type { CoreV1Api, V1Pod, V1Volume, V1VolumeProjection } from "@kubernetes/client-node";
import { existsSync, readlinkSync } from "node:fs";
import { chmod, chown, mkdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { KubeletError } from "./api.ts";
import { podFields, type ContainerPlan } from "./plan.ts";

/** The pod whose volumes are written, and where they live on this machine. */
export interface VolumeContext {
  readonly pod: V1Pod;
  readonly plans: readonly ContainerPlan[];
  readonly core: CoreV1Api;
  /** `<namespace>/<name>`, for messages. */
  readonly label: string;
  /** A path of this machine to write a volume's files through. */
  volumeHostPath(volume: string): string;
}

interface ProjectedFile {
  readonly path: string;
  readonly content: string | Buffer;
  readonly token: boolean;
  readonly mode?: number;
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
}

/** Mints tokens and writes projected/secret/configMap volumes, each atomically. */
export async function projectVolumes(context: VolumeContext): Promise<void> {
  const { pod } = context;
  for (const volume of pod.spec?.volumes ?? []) {
    const files = await volumeFiles(context, volume);
    if (files === undefined) continue;
    const owner = tokenOwner(context.plans, volume.name);
    const fsGroup = pod.spec?.securityContext?.fsGroup;
    const mode =
      volume.projected?.defaultMode ??
      volume.secret?.defaultMode ??
      volume.configMap?.defaultMode ??
      0o644;
    await writeAtomically(
      context.volumeHostPath(volume.name),
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

/** The one non-root user of every container that mounts `volume`, if there is one. */
function tokenOwner(plans: readonly ContainerPlan[], volume: string): number | undefined {
  const uids = new Set(
    plans.filter((p) => p.mounts.some((m) => m.volume === volume)).map((p) => p.uid),
  );
  const [only] = uids;
  return uids.size === 1 && only !== undefined && only !== 0 ? only : undefined;
}

/** The files of a volume, or undefined for an emptyDir (nothing to write). */
async function volumeFiles(
  context: VolumeContext,
  volume: V1Volume,
): Promise<ProjectedFile[] | undefined> {
  if (volume.emptyDir !== undefined) return undefined;
  const sources: V1VolumeProjection[] = [...(volume.projected?.sources ?? [])];
  if (volume.secret !== undefined)
    sources.push({ secret: { name: volume.secret.secretName ?? "" } });
  if (volume.configMap !== undefined) sources.push({ configMap: volume.configMap });
  if (sources.length === 0) {
    throw new KubeletError(
      `${context.label}: volume ${volume.name}: the test kubelet supports emptyDir, projected, secret and configMap volumes`,
    );
  }
  const out: ProjectedFile[] = [];
  for (const source of sources) out.push(...(await sourceFiles(context, volume.name, source)));
  return out;
}

/** The files one projected source contributes to `volume`. */
async function sourceFiles(
  context: VolumeContext,
  volume: string,
  source: V1VolumeProjection,
): Promise<ProjectedFile[]> {
  const namespace = context.pod.metadata?.namespace ?? "default";
  if (source.serviceAccountToken !== undefined) {
    const token = await mintToken(
      context,
      source.serviceAccountToken.audience,
      source.serviceAccountToken.expirationSeconds ?? 3600,
    );
    return [{ path: source.serviceAccountToken.path, content: token, token: true }];
  }
  if (source.secret !== undefined) {
    const secret = await context.core.readNamespacedSecret({
      namespace,
      name: source.secret.name ?? "",
    });
    const data = Object.fromEntries(
      Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64")]),
    );
    return selectItems(data, source.secret.items);
  }
  if (source.downwardAPI !== undefined) {
    return (source.downwardAPI.items ?? []).map((item) => {
      const value = podFields(context.pod)[item.fieldRef?.fieldPath ?? ""];
      if (value === undefined) {
        throw new KubeletError(
          `${context.label}: volume ${volume}: unsupported downward API field ${item.fieldRef?.fieldPath ?? "(resourceFieldRef)"}`,
        );
      }
      return { path: item.path, content: value, token: false };
    });
  }
  if (source.configMap !== undefined) {
    const cm = await context.core.readNamespacedConfigMap({
      namespace,
      name: source.configMap.name ?? "",
    });
    return selectItems(cm.data ?? {}, source.configMap.items);
  }
  throw new KubeletError(
    `${context.label}: volume ${volume}: unsupported projected source ${Object.keys(source).join(",")}`,
  );
}

/** A token for the pod's service account, bound to the pod, as the kubelet asks for one. */
async function mintToken(
  context: VolumeContext,
  audience: string | undefined,
  expirationSeconds: number,
): Promise<string> {
  const meta = context.pod.metadata ?? {};
  const serviceAccount = context.pod.spec?.serviceAccountName ?? "default";
  const request = await context.core.createNamespacedServiceAccountToken({
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
      `${context.label}: TokenRequest for ${serviceAccount} returned no token`,
    );
  }
  return token;
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
