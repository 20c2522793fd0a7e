/**
 * The input of `preview`: one or more YAML (or JSON) documents → typed
 * {@link ManifestDocument}s, each classified as a pod, a workload, a
 * service account, or anything else. Pure.
 */
import { parseAllDocuments } from "yaml";
import type { JsonObject } from "../webhook/admission-review.ts";
import { usage } from "./usage.ts";
import {
  isObject,
  readPodTemplate,
  valueAt,
  workloadKindOf,
  type WorkloadKind,
} from "./workloads.ts";

/**
 * The most a manifest file may hold: far over any real one (a whole
 * chart's output is a few hundred kilobytes), and a bound on the memory
 * that parsing an odd file can take.
 */
export const MAX_INPUT_BYTES = 16 * 1024 * 1024;

/** What a document is, as far as `preview` cares. */
export type DocumentShape =
  | { readonly type: "pod" }
  | { readonly type: "workload"; readonly kind: WorkloadKind; readonly template: JsonObject }
  | { readonly type: "serviceAccount" }
  | { readonly type: "other" };

/** One document of the input file. */
export interface ManifestDocument {
  /** 1-based position in the file, counting every `---` document. */
  readonly index: number;
  readonly kind: string;
  /** `metadata.name`, else `generateName*`, else `(unnamed)`. */
  readonly name: string;
  /** `metadata.namespace`, when set. */
  readonly namespace: string | undefined;
  /** The document, as parsed. */
  readonly object: JsonObject;
  readonly shape: DocumentShape;
}

/** How messages name a document: `deploy.yaml, document 2 (Deployment web)`. */
export function describeDocument(
  source: string,
  doc: Pick<ManifestDocument, "index" | "kind" | "name">,
): string {
  return `${source}, document ${String(doc.index)} (${doc.kind} ${doc.name})`;
}

/** What a value is, for messages: `a list`, `a string`, … */
function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  return `a ${typeof value}`;
}

const stringAt = (object: JsonObject, path: readonly string[]): string | undefined => {
  const value = valueAt(object, path);
  return typeof value === "string" && value !== "" ? value : undefined;
};

/**
 * Reads every document of a manifest file; empty documents (a trailing
 * `---`, comments only) are skipped but counted, so indexes match the file.
 * @param source the file's name, for messages.
 * @throws {AkvError} `AKV_CLI_USAGE`: the file is too big, not YAML, holds no
 *   document, or a document that is not an object with a `kind`, a `List`, or
 *   a workload without a pod template; the message names the document.
 */
export function parseManifests(text: string, source: string): ManifestDocument[] {
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_INPUT_BYTES) {
    throw usage(`${source}: ${String(bytes)} bytes, over the limit of ${String(MAX_INPUT_BYTES)}`);
  }
  const documents: ManifestDocument[] = [];
  parseAllDocuments(text).forEach((doc, i) => {
    const at = `${source}, document ${String(i + 1)}`;
    const error = doc.errors[0];
    if (error !== undefined) {
      throw usage(`${at}: not valid YAML: ${error.message.split("\n")[0] ?? ""}`);
    }
    if (doc.contents === null) return;
    let value: unknown;
    try {
      // The library's alias bound (100) keeps a "billion laughs" from expanding.
      value = doc.toJS();
    } catch (error) {
      throw usage(`${at}: not valid YAML: ${(error as Error).message}`);
    }
    if (value === null || value === undefined) return;
    if (!isObject(value)) {
      throw usage(
        `${at}: expected a Kubernetes object (a map with apiVersion and kind), got ${describeValue(value)}`,
      );
    }
    documents.push(readDocument(value, i + 1, at));
  });
  if (documents.length === 0) throw usage(`${source}: no documents`);
  return documents;
}

function readDocument(object: JsonObject, index: number, at: string): ManifestDocument {
  const kind = object.kind;
  if (typeof kind !== "string" || kind === "") {
    throw usage(
      `${at}: kind: expected the object's kind, a string (got ${kind === undefined ? "nothing" : JSON.stringify(kind)})`,
    );
  }
  const generateName = stringAt(object, ["metadata", "generateName"]);
  const name =
    stringAt(object, ["metadata", "name"]) ??
    (generateName === undefined ? "(unnamed)" : `${generateName}*`);
  const named = `${at} (${kind} ${name})`;
  if (kind === "List" || (kind.endsWith("List") && Array.isArray(object.items))) {
    throw usage(
      `${named}: a ${kind} is not previewed; give its items as documents of their own, separated by ---`,
    );
  }
  const base = {
    index,
    kind,
    name,
    namespace: stringAt(object, ["metadata", "namespace"]),
    object,
  };
  const core = object.apiVersion === undefined || object.apiVersion === "v1";
  if (kind === "Pod" && core) return { ...base, shape: { type: "pod" } };
  if (kind === "ServiceAccount" && core) return { ...base, shape: { type: "serviceAccount" } };
  const workload = workloadKindOf(kind, object.apiVersion);
  if (workload === undefined) return { ...base, shape: { type: "other" } };
  const template = readPodTemplate(object, workload);
  if (!template.ok) throw usage(`${named}: ${template.problem}`);
  return { ...base, shape: { type: "workload", kind: workload, template: template.template } };
}
