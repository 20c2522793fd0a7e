/**
 * The files the sidecar writes, from `secrets`, `secret-<file>`,
 * `template-<file>` and `format-<file>`.
 *
 * Precedence: none; every annotation adds its files, and two that write the
 * same file are refused (which one wins would be a guess). `secrets` writes
 * each secret to a file of its name; `secret-<file>` and `template-<file>`
 * name their file; at least one of the three is required. `format-<file>`
 * changes the format of a file one of them writes (default `raw`); a
 * template is always written raw. Files keep the order of the annotation
 * keys as `sortAnnotationKeys` sorted them.
 *
 * A ref is `NAME[/VERSION]` in the pod's vault or an object identifier
 * `https://<vault>/<secrets|certificates|keys>/NAME[/VERSION]`
 * (`parseObjectRef`; certificates and keys as files only), held to the
 * allowed suffixes like `vault`; `vault` is required only when some ref
 * names no vault of its own. An identifier of the pod's vault is written as
 * a plain ref, so the sidecar reads that secret once however it is spelled.
 */
import { Annotation, FORMATS, FileAnnotationPrefix } from "../../common/names.ts";
import type { ProblemList } from "../../common/problems.ts";
import {
  formatSecretRef,
  parseFileName,
  parseObjectRef,
  parseTemplate,
  type SecretRef,
  type TemplatePart,
  type VaultSuffix,
} from "../../common/refs.ts";
import type { FileSpec } from "../../common/spec.ts";
import { splitList, type FileAnnotationKeys } from "./annotations.ts";

/** A file being written, and the annotation that asked for it (for duplicate messages). */
interface FileEntry {
  readonly key: string;
  readonly spec: FileSpec;
  /** The ref as written, when one item of a list wrote the file. */
  readonly item?: string;
}

/** The pod's vault as `vault` gave it, and the suffixes identifiers are held to. */
export interface VaultContext {
  readonly suffixes: readonly VaultSuffix[];
  /** The resolved `vault`; undefined when missing or refused. */
  readonly vaultUrl: string | undefined;
  /** Whether the pod has a `vault` annotation at all (a refused one is its own problem). */
  readonly vaultGiven: boolean;
}

/** What the steps below share: the annotations read, the problems found, the files so far by name. */
interface FileContext {
  readonly annotations: Readonly<Record<string, string>>;
  readonly vault: VaultContext;
  readonly problems: ProblemList;
  readonly files: Map<string, FileEntry>;
}

/**
 * The files, in order: `secrets`, then `secret-<file>`, then `template-<file>`
 * keys; `format-<file>` applied last.
 * @param keys the pod's per-file keys, sorted by `sortAnnotationKeys`.
 */
export function parseFileAnnotations(
  annotations: Readonly<Record<string, string>>,
  keys: FileAnnotationKeys,
  problems: ProblemList,
  vault: VaultContext,
): FileSpec[] {
  const context: FileContext = { annotations, vault, problems, files: new Map() };
  const secretsText = annotations[Annotation.secrets];
  if (secretsText !== undefined) parseSecretsList(context, secretsText);
  for (const key of keys.secret) parseSecretFile(context, key);
  for (const key of keys.template) parseTemplateFile(context, key);
  if (secretsText === undefined && keys.secret.length === 0 && keys.template.length === 0) {
    problems.addFor(
      Annotation.secrets,
      `at least one of ${Annotation.secrets}, ${FileAnnotationPrefix.secret}<file> or ${FileAnnotationPrefix.template}<file> is required`,
    );
  }
  for (const key of keys.format) applyFormat(context, key);
  if (!vault.vaultGiven) requireVaultFor(context);
  return [...context.files.values()].map((entry) => entry.spec);
}

/** Without `vault`, the first ref that names no vault of its own is refused, with where it is. */
function requireVaultFor(context: FileContext): void {
  for (const { key, spec } of context.files.values()) {
    const refs =
      spec.source.kind === "secret"
        ? [spec.source.ref]
        : spec.source.parts.flatMap((p) => ("secret" in p ? [p.secret] : []));
    const plain = refs.find((r) => r.vaultUrl === undefined);
    if (plain !== undefined) {
      context.problems.addFor(
        Annotation.vault,
        `is required for '${formatSecretRef(plain)}' in ${key}: a vault name like myvault or an https:// vault URL (or write that ref as an object identifier https://<vault>/secrets/<name>)`,
      );
      return;
    }
  }
}

/** Parses a ref; an identifier of the pod's own vault becomes a plain ref. */
function parseRef(context: FileContext, text: string) {
  const ref = parseObjectRef(text, context.vault.suffixes);
  return ref.ok ? { ...ref, value: normalizeRef(context, ref.value) } : ref;
}

function normalizeRef(context: FileContext, ref: SecretRef): SecretRef {
  if (ref.vaultUrl === undefined || ref.vaultUrl !== context.vault.vaultUrl) return ref;
  if (ref.kind !== "secret") return ref;
  return ref.version === undefined ? { name: ref.name } : { name: ref.name, version: ref.version };
}

/** `secrets: a,b/VERSION`: each secret to a file of its name. */
function parseSecretsList(context: FileContext, text: string): void {
  const items = splitList(text);
  if (items.length === 0) {
    context.problems.addExpected(
      Annotation.secrets,
      "a comma-separated list of NAME[/VERSION] or https://<vault>/secrets/NAME[/VERSION]",
      text,
    );
  }
  for (const item of items) {
    const ref = parseRef(context, item);
    if (!ref.ok) context.problems.addExpected(Annotation.secrets, ref.expected, item);
    else {
      addFile(
        context,
        Annotation.secrets,
        { file: ref.value.name, format: "raw", source: { kind: "secret", ref: ref.value } },
        item,
      );
    }
  }
}

/** `secret-<file>: NAME[/VERSION]` or an object identifier. */
function parseSecretFile(context: FileContext, key: string): void {
  const file = readFileName(context, key, FileAnnotationPrefix.secret);
  const value = context.annotations[key] ?? "";
  const ref = parseRef(context, value);
  if (!ref.ok) context.problems.addExpected(key, ref.expected, value);
  if (file !== undefined && ref.ok) {
    addFile(context, key, { file, format: "raw", source: { kind: "secret", ref: ref.value } });
  }
}

/** `template-<file>: text with {{ secret "NAME" }} actions`. */
function parseTemplateFile(context: FileContext, key: string): void {
  const file = readFileName(context, key, FileAnnotationPrefix.template);
  const template = parseTemplate(context.annotations[key] ?? "", context.vault.suffixes);
  // The parser's message already quotes the offending action; the whole template may be long.
  if (!template.ok) context.problems.addExpected(key, template.expected);
  if (file !== undefined && template.ok) {
    const parts: TemplatePart[] = template.value.map((p) =>
      "secret" in p ? { secret: normalizeRef(context, p.secret) } : p,
    );
    addFile(context, key, { file, format: "raw", source: { kind: "template", parts } });
  }
}

/** `format-<file>: FORMAT`, for a file written by another annotation. */
function applyFormat(context: FileContext, key: string): void {
  const file = readFileName(context, key, FileAnnotationPrefix.format);
  const value = context.annotations[key] ?? "";
  const format = FORMATS.find((x) => x === value);
  if (format === undefined) {
    context.problems.addExpected(key, `one of ${FORMATS.join(", ")}`, value);
    return;
  }
  if (file === undefined) return;
  const entry = context.files.get(file);
  if (entry === undefined) {
    context.problems.addFor(
      key,
      `no file "${file}" is written by ${Annotation.secrets}, ${FileAnnotationPrefix.secret}${file} or ${FileAnnotationPrefix.template}${file}`,
    );
  } else if (entry.spec.source.kind === "template" && format !== "raw") {
    context.problems.addFor(key, "a template is always written raw", value);
  } else if (
    entry.spec.source.kind === "secret" &&
    entry.spec.source.ref.kind !== undefined &&
    entry.spec.source.ref.kind !== "secret" &&
    format !== "raw"
  ) {
    context.problems.addExpected(
      key,
      `raw for a ${entry.spec.source.ref.kind} identifier: it is written as PEM (a certificate's leaf, a key's public part); for a certificate's chain or private key, name its secret (https://<vault>/secrets/<name>) with format cert, pem or key`,
      value,
    );
  } else {
    context.files.set(file, { ...entry, spec: { ...entry.spec, format } });
  }
}

/** The file name after a key's prefix, or undefined after adding the problem. */
function readFileName(context: FileContext, key: string, prefix: string): string | undefined {
  const name = key.slice(prefix.length);
  const parsed = parseFileName(name);
  if (parsed.ok) return parsed.value;
  context.problems.addFor(key, parsed.expected, name);
  return undefined;
}

/**
 * Adds a file, refusing a second writer of the same file.
 * @param item the list item that writes it (for `secrets`), named in the refusal.
 */
function addFile(context: FileContext, key: string, spec: FileSpec, item?: string): void {
  const other = context.files.get(spec.file);
  const value = context.annotations[key];
  if (other === undefined)
    context.files.set(spec.file, { key, spec, ...(item === undefined ? {} : { item }) });
  else if (other.key === key) {
    context.problems.addFor(
      key,
      other.item === undefined || item === undefined
        ? `file "${spec.file}" is named twice`
        : `file "${spec.file}" is written by both '${other.item}' and '${item}'`,
      value,
    );
  } else {
    context.problems.addFor(key, `file "${spec.file}" is also written by ${other.key}`, value);
  }
}
