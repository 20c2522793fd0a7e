/**
 * Runs Helm against this repository's chart, for the chart tests and the e2e
 * suite. Helm is built from Go modules by `e2e/cluster/build.sh helm` into the
 * git-ignored cache (no package manager or network install at test time); if
 * it is missing, {@link ensureHelm} builds it once, which takes minutes.
 *
 * Helm wants writable cache, config and data homes; they go under the cache
 * folder too, so a read-only `$HOME` (CI, sandboxes) does not matter and no
 * user's Helm repositories leak into a test.
 *
 * @example
 *   const docs = await renderChart({ values: { tenantId: "…" }, namespace: "akv" });
 *   const webhook = docs.find((d) => d.kind === "MutatingWebhookConfiguration");
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments, stringify } from "yaml";
import { REPO_ROOT } from "../e2e/host/repo.ts";

/** The chart's folder. */
export const CHART_DIR = join(REPO_ROOT, "charts", "akv-injector");

/** The cache folder `build.sh` uses (`AKV_INJECTOR_CACHE` moves it). */
function cacheDir(): string {
  return process.env.AKV_INJECTOR_CACHE ?? join(REPO_ROOT, ".cache");
}

/** Where `build.sh` puts helm. */
export function helmPath(): string {
  return join(cacheDir(), "bin", "helm");
}

/** A Kubernetes object as Helm renders it. */
export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string } & Record<
    string,
    unknown
  >;
  readonly [key: string]: unknown;
}

/** What a Helm command printed and how it ended. */
export interface HelmResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options of {@link renderChart} and {@link lintChart}. */
export interface ChartOptions {
  /** Values, as a values file would hold them. */
  readonly values?: Record<string, unknown>;
  /** Default `akv-injector`. */
  readonly releaseName?: string;
  /** Default `akv-injector`. */
  readonly namespace?: string;
  /** Extra arguments, e.g. `["--show-only", "templates/rbac.yaml"]`. */
  readonly args?: readonly string[];
}

let building: Promise<string> | undefined;

/**
 * Returns the helm binary's path, building it with `e2e/cluster/build.sh helm`
 * first when it is missing (give the caller's timeout minutes for that).
 */
export function ensureHelm(): Promise<string> {
  const path = helmPath();
  if (existsSync(path)) return Promise.resolve(path);
  building ??= run("bash", [join(REPO_ROOT, "e2e", "cluster", "build.sh"), "helm"], {
    timeoutMs: 30 * 60_000,
  }).then((result) => {
    if (result.code !== 0 || !existsSync(path)) {
      throw new Error(`building helm failed (exit ${result.code}):\n${result.stderr}`);
    }
    return path;
  });
  return building;
}

/** Runs `helm ARGS` with private Helm homes; never throws on a non-zero exit. */
export async function runHelm(args: readonly string[]): Promise<HelmResult> {
  const helm = await ensureHelm();
  const home = join(cacheDir(), "helm-home");
  await mkdir(home, { recursive: true });
  return run(helm, args, {
    env: {
      HELM_CACHE_HOME: join(home, "cache"),
      HELM_CONFIG_HOME: join(home, "config"),
      HELM_DATA_HOME: join(home, "data"),
    },
    timeoutMs: 120_000,
  });
}

/**
 * `helm template` the chart with the given values and parse the manifests.
 * @throws Error with Helm's message when rendering fails (e.g. the schema refuses a value).
 */
export async function renderChart(options: ChartOptions = {}): Promise<KubeObject[]> {
  const result = await helmWithValues("template", options);
  if (result.code !== 0)
    throw new Error(result.stderr.trim() || `helm template exited ${result.code}`);
  return parseManifests(result.stdout);
}

/** `helm lint --strict` the chart with the given values. */
export function lintChart(options: ChartOptions = {}): Promise<HelmResult> {
  return helmWithValues("lint", options);
}

/** `helm install --dry-run=client` (no cluster needed) and return the rendered NOTES.txt. */
export async function renderNotes(options: ChartOptions = {}): Promise<string> {
  const result = await helmWithValues("install", {
    ...options,
    args: ["--dry-run=client", ...(options.args ?? [])],
  });
  if (result.code !== 0) throw new Error(result.stderr.trim());
  return result.stdout.split(/^NOTES:$/m)[1]?.trim() ?? "";
}

/** Parses a multi-document manifest stream, skipping empty documents. */
export function parseManifests(text: string): KubeObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0)
        throw new Error(`rendered YAML does not parse: ${doc.errors[0]?.message ?? ""}`);
      return doc.toJS() as unknown;
    })
    .filter((doc): doc is KubeObject => typeof doc === "object" && doc !== null);
}

async function helmWithValues(
  command: "template" | "lint" | "install",
  options: ChartOptions,
): Promise<HelmResult> {
  const dir = await mkdtemp(join(tmpdir(), "akv-helm-values-"));
  try {
    const valuesFile = join(dir, "values.yaml");
    await writeFile(valuesFile, stringify(options.values ?? {}));
    const release = options.releaseName ?? "akv-injector";
    const namespace = options.namespace ?? "akv-injector";
    const args =
      command === "lint"
        ? ["lint", "--strict", CHART_DIR, "--namespace", namespace]
        : [command, release, CHART_DIR, "--namespace", namespace];
    return await runHelm([...args, "--values", valuesFile, ...(options.args ?? [])]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function run(
  file: string,
  args: readonly string[],
  options: { env?: Record<string, string>; timeoutMs: number },
): Promise<HelmResult> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      file,
      args,
      {
        env: { ...process.env, ...options.env },
        timeout: options.timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        // A number is the exit code; anything else (ENOENT, a timeout kill) means it did not run to the end.
        if (error !== null && typeof error.code !== "number") {
          reject(new Error(`cannot run ${file}: ${error.message}`, { cause: error }));
          return;
        }
        resolvePromise({ code: typeof error?.code === "number" ? error.code : 0, stdout, stderr });
      },
    );
  });
}
