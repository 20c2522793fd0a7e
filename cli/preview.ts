/**
 * `akv-injector preview`: what the webhook would do to the pods of a
 * manifest file, offline. For each pod, or pod template of a workload, it
 * builds the AdmissionReview the apiserver would send, calls the same
 * `review()` as the webhook, and applies the patch as the apiserver would.
 * Pure: files are read and results printed by `main.ts`.
 */
import fastJsonPatch, { type Operation } from "fast-json-patch";
import { stringify } from "yaml";
import { INJECT_LABEL, STATUS_ANNOTATION, STATUS_INJECTED, WebhookEnv } from "../common/names.ts";
import {
  ADMISSION_API_VERSION,
  parseAdmissionReview,
  parsePod,
  type JsonObject,
} from "../webhook/admission-review.ts";
import type { ServiceAccount } from "../webhook/injection-config.ts";
import { review, type Outcome } from "../webhook/review.ts";
import {
  parseInjectionSettings,
  withSidecarExtraCa,
  type EnvRecord,
  type InjectionSettings,
} from "../webhook/settings.ts";
import { PREVIEW_DEFAULTS, type OutputFormat } from "./args.ts";
import { describeDocument, parseManifests, type ManifestDocument } from "./documents.ts";
import { findOptInLabelTraps } from "./opt-in-label.ts";
import { usage } from "./usage.ts";
import { isObject, podFromTemplate, withPodTemplate } from "./workloads.ts";

/** A file's text and its name for messages. */
export interface InputText {
  readonly text: string;
  readonly source: string;
}

/** What {@link preview} needs: file contents, not paths. */
export interface PreviewInput {
  /** The manifests: one or more documents, YAML or JSON. */
  readonly manifests: InputText;
  /** `--service-account`: the account of every pod. */
  readonly serviceAccount?: InputText;
  /** `--namespace`: the namespace of every document. */
  readonly namespace?: string;
  /** Default `yaml`. */
  readonly output?: OutputFormat;
  /** Settings: the environment, with flags already merged over it. */
  readonly env: EnvRecord;
  /** PEM text of `--extra-ca-file`, when given. */
  readonly extraCaPem?: string;
}

/** How one document fared: the review's outcome, or `passed` for a document that has no pod. */
export interface DocumentResult {
  /** The document as messages name it (file, index, kind and name). */
  readonly document: string;
  readonly outcome: Outcome | "passed";
}

/** What to print and how to exit. */
export interface PreviewResult {
  /** One per document, in the file's order. */
  readonly documents: readonly DocumentResult[];
  /** The documents, mutated where the webhook would mutate; refused ones left out; absent when nothing is left. */
  readonly stdout?: string;
  /** Lines for stderr: refusals, warnings, notes, each naming its document. */
  readonly stderr: readonly string[];
  /** 1 when any document was refused. */
  readonly exitCode: 0 | 1;
}

/** `object[key]` when it is a string. */
const stringOf = (object: unknown, key: string): string | undefined => {
  const value = isObject(object) ? object[key] : undefined;
  return typeof value === "string" ? value : undefined;
};

/** A value for a message: JSON, or `none`. */
const show = (v: unknown): string => (v === undefined ? "none" : JSON.stringify(v));

/** Where each pod's service account comes from. */
type AccountSource =
  | { readonly type: "flag"; readonly source: string; readonly account: ServiceAccount }
  | { readonly type: "file"; readonly accounts: ReadonlyMap<string, ServiceAccount> };

const accountKey = (namespace: string, name: string): string => `${namespace}/${name}`;

/**
 * A ServiceAccount document as the webhook's lookup returns it: name,
 * namespace (`undefined`: whichever asks), string annotations.
 */
function toServiceAccount(object: JsonObject, namespace: string | undefined): ServiceAccount {
  const metadata = isObject(object.metadata) ? object.metadata : {};
  const annotations = isObject(metadata.annotations)
    ? Object.fromEntries(
        Object.entries(metadata.annotations).filter(
          (e): e is [string, string] => typeof e[1] === "string",
        ),
      )
    : {};
  return {
    metadata: {
      name: typeof metadata.name === "string" ? metadata.name : undefined,
      namespace,
      annotations,
    },
  };
}

/** The `--service-account` file: exactly one ServiceAccount. */
function readServiceAccountFile(input: InputText): JsonObject {
  const docs = parseManifests(input.text, input.source);
  const [doc, ...more] = docs;
  if (doc === undefined || more.length > 0) {
    throw usage(
      `${input.source}: expected one ServiceAccount document, found ${String(docs.length)}`,
    );
  }
  if (doc.shape.type !== "serviceAccount") {
    throw usage(`${input.source}: expected kind: ServiceAccount, found ${show(doc.kind)}`);
  }
  return doc.object;
}

interface Context {
  readonly settings: InjectionSettings;
  readonly namespace: string | undefined;
  readonly accounts: AccountSource;
}

/** One pod's review, and the pod as the apiserver would store it. */
interface PodReview {
  readonly outcome: Outcome;
  /** The mutated pod; absent when refused. */
  readonly pod?: JsonObject;
  readonly patched: boolean;
  readonly message?: string;
  readonly warnings: readonly string[];
  readonly notes: readonly string[];
}

/**
 * Reviews one pod (a Pod document, or the pod a workload creates).
 * @param what `the pod` or `the pod template`, for notes.
 */
async function reviewPod(
  pod: JsonObject,
  named: string,
  what: string,
  ctx: Context,
): Promise<PodReview> {
  // The namespace and service account as the webhook reads them; a pod it
  // cannot read is refused by review() below, before any lookup.
  const parsed = parsePod(pod, ctx.namespace ?? "");
  const namespace = parsed.ok ? parsed.pod.namespace : (ctx.namespace ?? "default");
  const saName = parsed.ok ? parsed.pod.serviceAccountName : "default";

  const notes: string[] = [];
  let assumed: string | undefined;
  let serviceAccount: ServiceAccount | undefined;
  if (ctx.accounts.type === "flag") {
    const { account, source } = ctx.accounts;
    if (account.metadata?.name !== saName) {
      throw usage(
        `${source} is service account ${show(account.metadata?.name)}, but ${named} uses ${JSON.stringify(saName)}`,
      );
    }
    const accountNamespace = account.metadata.namespace;
    if (accountNamespace !== undefined && accountNamespace !== namespace) {
      throw usage(
        `${source} is in namespace ${JSON.stringify(accountNamespace)}, but ${named} is in ${JSON.stringify(namespace)}`,
      );
    }
    serviceAccount = { metadata: { ...account.metadata, namespace } };
  } else {
    serviceAccount = ctx.accounts.accounts.get(accountKey(namespace, saName));
    if (serviceAccount === undefined && parsed.ok) {
      serviceAccount = { metadata: { name: saName, namespace } };
      assumed = `note: ${named}: no --service-account given and no ServiceAccount ${namespace}/${saName} in the file; assuming it exists with no annotations`;
    }
  }

  const metadata = isObject(pod.metadata) ? pod.metadata : {};
  // The body the apiserver would send, through the same envelope check as the server's.
  const admissionReview = parseAdmissionReview({
    apiVersion: ADMISSION_API_VERSION,
    kind: "AdmissionReview",
    request: {
      uid: "preview",
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      operation: "CREATE",
      namespace,
      name: typeof metadata.name === "string" ? metadata.name : "",
      dryRun: true,
      object: pod,
    },
  });
  const result = await review(admissionReview, {
    settings: ctx.settings,
    lookupServiceAccount: (ns, name) => {
      // Said only when the webhook would read the account.
      if (assumed !== undefined) notes.push(assumed);
      return Promise.resolve(ns === namespace && name === saName ? serviceAccount : undefined);
    },
  });
  if (!result.response.response.allowed) {
    return {
      outcome: result.outcome,
      patched: false,
      message: result.message ?? "refused",
      warnings: result.warnings,
      notes,
    };
  }
  if (result.outcome === "skipped") {
    notes.push(
      `note: ${named}: ${what} lacks the label ${INJECT_LABEL}: "true"; the webhook leaves it unchanged`,
    );
  } else if (result.outcome === "unchanged") {
    notes.push(
      `note: ${named}: ${what} is already injected (${STATUS_ANNOTATION}: ${STATUS_INJECTED}); the webhook leaves it unchanged`,
    );
  }
  const patched = result.patch !== undefined && result.patch.length > 0;
  return {
    outcome: result.outcome,
    pod:
      result.patch === undefined
        ? pod
        : fastJsonPatch.applyPatch(structuredClone(pod), result.patch as Operation[], true, true)
            .newDocument,
    patched,
    warnings: result.warnings,
    notes,
  };
}

/** One document's preview: what to print of it, and what to say. */
interface DocumentPreview {
  readonly outcome: Outcome | "passed";
  /** Absent when refused. */
  readonly output?: JsonObject;
  readonly stderr: readonly string[];
}

async function previewDocument(
  doc: ManifestDocument,
  source: string,
  ctx: Context,
): Promise<DocumentPreview> {
  const named = describeDocument(source, doc);
  const { shape } = doc;
  if (shape.type === "serviceAccount" || shape.type === "other") {
    return { outcome: "passed", output: doc.object, stderr: [] };
  }
  const traps =
    shape.type === "workload"
      ? findOptInLabelTraps(doc.object, shape.kind).map((w) => `Warning: ${named}: ${w}`)
      : [];
  const pod =
    shape.type === "pod"
      ? doc.object
      : podFromTemplate(shape.template, {
          name: stringOf(doc.object.metadata, "name"),
          generateName: stringOf(doc.object.metadata, "generateName"),
          namespace: doc.namespace,
        });
  const reviewed = await reviewPod(
    pod,
    named,
    shape.type === "pod" ? "the pod" : "its pod template",
    ctx,
  );
  const warnings = [...traps, ...reviewed.warnings.map((w) => `Warning: ${named}: ${w}`)];
  if (reviewed.pod === undefined) {
    return {
      outcome: reviewed.outcome,
      stderr: [
        `Error: ${named}: admission webhook would deny the request: ${reviewed.message ?? "refused"}`,
        ...warnings,
        ...reviewed.notes,
      ],
    };
  }
  let output = reviewed.pod;
  if (shape.type === "workload") {
    output = reviewed.patched ? withPodTemplate(doc.object, shape.kind, reviewed.pod) : doc.object;
  }
  return { outcome: reviewed.outcome, output, stderr: [...warnings, ...reviewed.notes] };
}

/**
 * The output: YAML documents separated by `---`, or JSON: the one object
 * when the file held one document, else a v1 List (also when refusals left
 * one, so that a script sees one shape per input). Nothing when nothing is
 * left.
 */
export function formatOutput(
  objects: readonly JsonObject[],
  format: OutputFormat,
  several: boolean,
): string | undefined {
  if (objects.length === 0) return undefined;
  switch (format) {
    case "yaml":
      return objects.map((o) => stringify(o, { lineWidth: 0 })).join("---\n");
    case "json": {
      const value =
        several || objects.length > 1
          ? { apiVersion: "v1", kind: "List", items: objects }
          : objects[0];
      return `${JSON.stringify(value, null, 2)}\n`;
    }
  }
}

/**
 * Previews every document of a manifest file.
 * @throws {AkvError} `AKV_CLI_USAGE` for unreadable input (naming the document), `AKV_SETTINGS_INVALID` for bad settings flags.
 */
export async function preview(input: PreviewInput): Promise<PreviewResult> {
  const env: Record<string, string | undefined> = { ...input.env };
  env[WebhookEnv.tenantId] ??= PREVIEW_DEFAULTS.tenantId;
  env[WebhookEnv.sidecarImage] ??= PREVIEW_DEFAULTS.sidecarImage;
  let settings = parseInjectionSettings(env);
  if (input.extraCaPem !== undefined) settings = withSidecarExtraCa(settings, input.extraCaPem);

  const { source } = input.manifests;
  const docs = parseManifests(input.manifests.text, source);
  const namespaceOf = (own: string | undefined): string => input.namespace ?? own ?? "default";
  let accounts: AccountSource;
  if (input.serviceAccount === undefined) {
    const map = new Map<string, ServiceAccount>();
    for (const doc of docs) {
      if (doc.shape.type !== "serviceAccount") continue;
      const namespace = namespaceOf(doc.namespace);
      map.set(accountKey(namespace, doc.name), toServiceAccount(doc.object, namespace));
    }
    accounts = { type: "file", accounts: map };
  } else {
    const object = readServiceAccountFile(input.serviceAccount);
    const metadata = isObject(object.metadata) ? object.metadata : {};
    // An account without a namespace takes the pod's, as `kubectl apply` would give it.
    const namespace = typeof metadata.namespace === "string" ? metadata.namespace : undefined;
    accounts = {
      type: "flag",
      source: input.serviceAccount.source,
      account: toServiceAccount(object, namespace),
    };
  }
  const ctx: Context = { settings, namespace: input.namespace, accounts };

  const documents: DocumentResult[] = [];
  const outputs: JsonObject[] = [];
  const stderr: string[] = [];
  for (const doc of docs) {
    const result = await previewDocument(doc, source, ctx);
    documents.push({ document: describeDocument(source, doc), outcome: result.outcome });
    if (result.output !== undefined) outputs.push(result.output);
    stderr.push(...result.stderr);
  }
  const stdout = formatOutput(outputs, input.output ?? "yaml", docs.length > 1);
  const refused = documents.some((d) => d.outcome === "refused" || d.outcome === "error");
  return {
    documents,
    ...(stdout === undefined ? {} : { stdout }),
    stderr,
    exitCode: refused ? 1 : 0,
  };
}
