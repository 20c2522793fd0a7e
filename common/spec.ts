/**
 * The sync spec: what the webhook tells the sidecar to do, carried as JSON in
 * the sidecar's `AKV_INJECTOR_SPEC` env var. The webhook builds it from the
 * annotations it validated; the sidecar checks it again at its own boundary
 * with {@link parseSpec}, using the same rules, so a hand-edited pod cannot
 * smuggle in a bad file name or template.
 */
import { AkvError, ErrorCode } from "./errors.ts";
import { Defaults, FORMATS, MODES, type Format, type Mode } from "./names.ts";
import { ProblemList, UNBOUNDED_PROBLEM_LIMITS } from "./problems.ts";
import {
  formatSecretRef,
  isRefreshIntervalMs,
  OBJECT_COLLECTIONS,
  type ObjectKind,
  parseFileName,
  parseSecretRef,
  type SecretRef,
  type TemplatePart,
} from "./refs.ts";

/** Where one file's content comes from. */
export type FileSource =
  | { readonly kind: "secret"; readonly ref: SecretRef }
  | { readonly kind: "template"; readonly parts: readonly TemplatePart[] };

/** One file the sidecar writes. */
export interface FileSpec {
  /** File name inside the output directory (one path segment). */
  readonly file: string;
  readonly source: FileSource;
  /** How a secret's value becomes the content; templates are always `raw`. */
  readonly format: Format;
}

/** Everything one sidecar needs besides its credentials. */
export interface SyncSpec {
  /**
   * The pod's vault, `https://host[:port]`, already checked against the
   * allowed suffixes: where refs without a `vaultUrl` of their own read.
   * Absent when every ref is an object identifier (which names its vault).
   */
  readonly vaultUrl?: string;
  readonly files: readonly FileSpec[];
  readonly mode: Mode;
  /** Milliseconds between refreshes in `sidecar` mode. */
  readonly refreshIntervalMs: number;
  /** Permission bits of written files. */
  readonly fileMode: number;
  /** The directory the sidecar publishes into (its mount of the tmpfs). */
  readonly outputDir: string;
}

/** Every secret ref a spec needs, each once, in first-use order. */
export function listSecretRefs(spec: Pick<SyncSpec, "files">): readonly SecretRef[] {
  const seen = new Map<string, SecretRef>();
  const add = (ref: SecretRef): void => {
    const key = formatSecretRef(ref);
    if (!seen.has(key)) seen.set(key, ref);
  };
  for (const f of spec.files) {
    if (f.source.kind === "secret") add(f.source.ref);
    else for (const p of f.source.parts) if ("secret" in p) add(p.secret);
  }
  return [...seen.values()];
}

/**
 * Every vault a spec reads from, each once: the pod's vault if a ref uses
 * it, then the vaults object identifiers name, in first-use order.
 */
export function listVaults(spec: Pick<SyncSpec, "files" | "vaultUrl">): readonly string[] {
  const vaults = new Set<string>();
  for (const ref of listSecretRefs(spec)) {
    const vault = ref.vaultUrl ?? spec.vaultUrl;
    if (vault !== undefined) vaults.add(vault);
  }
  return [...vaults];
}

/** Serializes a spec for the `AKV_INJECTOR_SPEC` env var. */
export function encodeSpec(spec: SyncSpec): string {
  return JSON.stringify(spec);
}

/** A spec that does not parse: every problem, each with the JSON path it concerns. */
export class SpecError extends AkvError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(ErrorCode.SPEC_INVALID, `invalid AKV_INJECTOR_SPEC: ${problems.join("; ")}`);
    this.problems = problems;
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Parses and checks the JSON of `AKV_INJECTOR_SPEC` into a frozen spec.
 * @throws {SpecError} naming every bad field.
 */
export function parseSpec(json: string): SyncSpec {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (cause) {
    throw new SpecError([`not JSON (${(cause as Error).message})`]);
  }
  if (!isRecord(raw)) throw new SpecError(["expected a JSON object"]);
  // Every problem, whole: the webhook wrote this spec, so any problem is a bug or a hand edit.
  const problems = new ProblemList(UNBOUNDED_PROBLEM_LIMITS);

  const { vaultUrl, files, mode, refreshIntervalMs, fileMode, outputDir } = raw;
  if (vaultUrl !== undefined && !isVaultUrl(vaultUrl))
    problems.addExpected("vaultUrl", "https://host");
  if (typeof mode !== "string" || !(MODES as readonly string[]).includes(mode))
    problems.addExpected("mode", MODES.join(" or "));
  if (!isRefreshIntervalMs(refreshIntervalMs)) {
    problems.addExpected(
      "refreshIntervalMs",
      `an integer from ${Defaults.minRefreshIntervalMs} to ${Defaults.maxRefreshIntervalMs}`,
    );
  }
  if (
    typeof fileMode !== "number" ||
    !Number.isInteger(fileMode) ||
    fileMode < 0 ||
    fileMode > 0o777
  ) {
    problems.addExpected("fileMode", "permission bits 0-0o777");
  }
  if (typeof outputDir !== "string" || !outputDir.startsWith("/"))
    problems.addExpected("outputDir", "an absolute path");

  const parsedFiles: FileSpec[] = [];
  if (!Array.isArray(files) || files.length === 0)
    problems.addExpected("files", "a non-empty array");
  else {
    const names = new Set<string>();
    files.forEach((f: unknown, i) => {
      const file = parseFileSpec(f, `files[${i}]`);
      if ("expected" in file) {
        problems.addExpected(file.path, file.expected);
        return;
      }
      if (names.has(file.file))
        problems.addExpected(`files[${i}].file`, `a unique file name, '${file.file}' is repeated`);
      names.add(file.file);
      parsedFiles.push(file);
    });
  }
  if (vaultUrl === undefined) {
    const plain = listSecretRefs({ files: parsedFiles }).find((r) => r.vaultUrl === undefined);
    if (plain !== undefined)
      problems.addExpected(
        "vaultUrl",
        `https://host: ref '${formatSecretRef(plain)}' names no vault of its own`,
      );
  }
  if (problems.count > 0) throw new SpecError(problems.list());
  return deepFreeze({
    ...(vaultUrl === undefined ? {} : { vaultUrl: vaultUrl as string }),
    files: parsedFiles,
    mode: mode as Mode,
    refreshIntervalMs: refreshIntervalMs as number,
    fileMode: fileMode as number,
    outputDir: outputDir as string,
  });
}

function parseFileSpec(
  raw: unknown,
  path: string,
): FileSpec | { readonly path: string; readonly expected: string } {
  const bad = (where: string, expected: string) => ({ path: where, expected });
  if (!isRecord(raw)) return bad(path, "an object");
  const file = typeof raw.file === "string" ? parseFileName(raw.file) : undefined;
  if (file === undefined || !file.ok) return bad(`${path}.file`, file?.expected ?? "a file name");
  const format = raw.format;
  if (typeof format !== "string" || !(FORMATS as readonly string[]).includes(format)) {
    return bad(`${path}.format`, FORMATS.join(", "));
  }
  const source = isRecord(raw.source) ? raw.source : {};
  if (source.kind === "secret") {
    const ref = parseRef(source.ref);
    if (ref === undefined) return bad(`${path}.source.ref`, `{ ${REF_FIELDS} } of a valid ref`);
    if ((ref.kind ?? "secret") !== "secret" && format !== "raw")
      return bad(`${path}.format`, `raw for a ${ref.kind ?? ""} (written as PEM)`);
    return { file: file.value, format: format as Format, source: { kind: "secret", ref } };
  }
  if (source.kind === "template" && Array.isArray(source.parts)) {
    const parts: TemplatePart[] = [];
    for (const p of source.parts as unknown[]) {
      const ref = isRecord(p) ? parseRef(p.secret) : undefined;
      if (isRecord(p) && typeof p.text === "string") parts.push({ text: p.text });
      // A certificate or key is a file of its own, never part of a template.
      else if (ref !== undefined && (ref.kind ?? "secret") === "secret")
        parts.push({ secret: ref });
      else return bad(`${path}.source.parts`, `items of { text } or { secret: { ${REF_FIELDS} } }`);
    }
    if (format !== "raw") return bad(`${path}.format`, "raw for a template");
    return { file: file.value, format: "raw", source: { kind: "template", parts } };
  }
  return bad(`${path}.source`, "{ kind: 'secret', ref } or { kind: 'template', parts }");
}

const REF_FIELDS = `name, version?, vaultUrl?, kind? (${Object.values(OBJECT_COLLECTIONS).join(", ")})`;

const isVaultUrl = (v: unknown): v is string =>
  typeof v === "string" && /^https:\/\/[^/?#@A-Z]+$/.test(v);

/**
 * A ref as the webhook wrote it: `{ name, version? }`, with `vaultUrl` and
 * `kind` for an object identifier. The vault's suffix is the sidecar
 * config's to check (it has the allowed suffixes).
 */
function parseRef(raw: unknown): SecretRef | undefined {
  if (!isRecord(raw) || typeof raw.name !== "string") return undefined;
  if (raw.version !== undefined && typeof raw.version !== "string") return undefined;
  if (raw.vaultUrl !== undefined && !isVaultUrl(raw.vaultUrl)) return undefined;
  const kinds: readonly unknown[] = Object.values(OBJECT_COLLECTIONS);
  if (raw.kind !== undefined && !kinds.includes(raw.kind)) return undefined;
  const text = raw.version === undefined ? raw.name : `${raw.name}/${raw.version}`;
  const ref = parseSecretRef(text);
  if (!ref.ok || text !== formatSecretRef(ref.value)) return undefined;
  return {
    ...ref.value,
    ...(raw.vaultUrl === undefined ? {} : { vaultUrl: raw.vaultUrl }),
    ...(raw.kind === undefined ? {} : { kind: raw.kind as ObjectKind }),
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
