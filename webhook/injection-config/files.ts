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
 */
import { Annotation, FORMATS, FileAnnotationPrefix } from "../../common/names.ts";
import type { ProblemList } from "../../common/problems.ts";
import { parseFileName, parseSecretRef, parseTemplate } from "../../common/refs.ts";
import type { FileSpec } from "../../common/spec.ts";
import { splitList, type FileAnnotationKeys } from "./annotations.ts";

/** A file being written, and the annotation that asked for it (for duplicate messages). */
interface FileEntry {
  readonly key: string;
  readonly spec: FileSpec;
}

/** What the steps below share: the annotations read, the problems found, the files so far by name. */
interface FileContext {
  readonly annotations: Readonly<Record<string, string>>;
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
): FileSpec[] {
  const context: FileContext = { annotations, problems, files: new Map() };
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
  return [...context.files.values()].map((entry) => entry.spec);
}

/** `secrets: a,b/VERSION`: each secret to a file of its name. */
function parseSecretsList(context: FileContext, text: string): void {
  const items = splitList(text);
  if (items.length === 0) {
    context.problems.addExpected(
      Annotation.secrets,
      "a comma-separated list of NAME[/VERSION]",
      text,
    );
  }
  for (const item of items) {
    const ref = parseSecretRef(item);
    if (!ref.ok) context.problems.addExpected(Annotation.secrets, ref.expected, item);
    else {
      addFile(context, Annotation.secrets, {
        file: ref.value.name,
        format: "raw",
        source: { kind: "secret", ref: ref.value },
      });
    }
  }
}

/** `secret-<file>: NAME[/VERSION]`. */
function parseSecretFile(context: FileContext, key: string): void {
  const file = readFileName(context, key, FileAnnotationPrefix.secret);
  const value = context.annotations[key] ?? "";
  const ref = parseSecretRef(value);
  if (!ref.ok) context.problems.addExpected(key, ref.expected, value);
  if (file !== undefined && ref.ok) {
    addFile(context, key, { file, format: "raw", source: { kind: "secret", ref: ref.value } });
  }
}

/** `template-<file>: text with {{ secret "NAME" }} actions`. */
function parseTemplateFile(context: FileContext, key: string): void {
  const file = readFileName(context, key, FileAnnotationPrefix.template);
  const template = parseTemplate(context.annotations[key] ?? "");
  // The parser's message already quotes the offending action; the whole template may be long.
  if (!template.ok) context.problems.addExpected(key, template.expected);
  if (file !== undefined && template.ok) {
    addFile(context, key, {
      file,
      format: "raw",
      source: { kind: "template", parts: template.value },
    });
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
  } else {
    context.files.set(file, { key: entry.key, spec: { ...entry.spec, format } });
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

/** Adds a file, refusing a second writer of the same file. */
function addFile(context: FileContext, key: string, spec: FileSpec): void {
  const other = context.files.get(spec.file);
  const value = context.annotations[key];
  if (other === undefined) context.files.set(spec.file, { key, spec });
  else if (other.key === key) {
    context.problems.addFor(key, `file "${spec.file}" is named twice`, value);
  } else {
    context.problems.addFor(key, `file "${spec.file}" is also written by ${other.key}`, value);
  }
}
