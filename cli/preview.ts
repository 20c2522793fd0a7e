/**
 * `akv-injector preview`: what the webhook would do to a pod, offline. It
 * builds the AdmissionReview the apiserver would send, calls the same
 * `review()` as the webhook, and applies the patch as the apiserver would.
 * Pure: files are read and results printed by `main.ts`.
 */
import { parseArgs } from "node:util";
import fastJsonPatch, { type Operation } from "fast-json-patch";
import { parseAllDocuments, stringify } from "yaml";
import { AkvError, ErrorCode } from "../common/errors.ts";
import { WebhookEnv } from "../common/names.ts";
import {
  ADMISSION_API_VERSION,
  parseAdmissionReview,
  parsePod,
} from "../webhook/admission-review.ts";
import type { ServiceAccount } from "../webhook/injection-config.ts";
import { review, type Outcome } from "../webhook/review.ts";
import { parseInjectionSettings, withSidecarExtraCa, type EnvRecord } from "../webhook/settings.ts";

/** Placeholders for the two required settings, so a preview needs no chart values. */
export const PREVIEW_DEFAULTS = {
  tenantId: "00000000-0000-0000-0000-000000000000",
  sidecarImage: "akv-injector-sidecar:preview",
} as const;

/** Flags that set a webhook setting, and the variable each one stands for. */
const SETTING_FLAGS = {
  "tenant-id": WebhookEnv.tenantId,
  "sidecar-image": WebhookEnv.sidecarImage,
  "vault-suffixes": WebhookEnv.vaultSuffixes,
  "authority-host": WebhookEnv.authorityHost,
  "refresh-interval": WebhookEnv.refreshInterval,
  "tmpfs-size-limit": WebhookEnv.tmpfsSizeLimit,
  "file-mode": WebhookEnv.fileMode,
  "sidecar-resources": WebhookEnv.sidecarResources,
} as const;
type SettingFlag = keyof typeof SETTING_FLAGS;

/** `--help`. */
export const HELP = `Usage: akv-injector preview POD.yaml [options]

Shows what the akv-injector webhook does to a pod, offline: prints the mutated
pod as YAML, or the refusal. Warnings go to stderr, as kubectl shows them.
POD.yaml may be - for standard input.

Options:
  --service-account SA.yaml   the pod's service account (for its client id and
                              tenant annotations); without it, the account is
                              assumed to exist with no annotations
  --namespace NS              the pod's namespace; default: the pod's own, else
                              "default"
  --tenant-id ID              default: $${WebhookEnv.tenantId}, else ${PREVIEW_DEFAULTS.tenantId}
  --sidecar-image REF         default: $${WebhookEnv.sidecarImage}, else ${PREVIEW_DEFAULTS.sidecarImage}
  --vault-suffixes LIST       default: $${WebhookEnv.vaultSuffixes}, else the Azure clouds'
  --authority-host URL        default: $${WebhookEnv.authorityHost}, else https://login.microsoftonline.com/
  --refresh-interval DUR      default: $${WebhookEnv.refreshInterval}, else 5m
  --tmpfs-size-limit QTY      default: $${WebhookEnv.tmpfsSizeLimit}, else 4Mi
  --file-mode MODE            default: $${WebhookEnv.fileMode}, else 0644
  --sidecar-resources JSON    default: $${WebhookEnv.sidecarResources}, else small requests
                              and a memory limit
  --extra-ca-file FILE        default: $${WebhookEnv.sidecarExtraCaFile}; a PEM bundle the
                              sidecar trusts too
  -h, --help                  this text

Exit status: 0 admitted (mutated or left alone), 1 refused, 2 bad usage.
`;

/** A parsed command line. */
export type CliCommand =
  | { readonly command: "help" }
  | {
      readonly command: "preview";
      readonly podFile: string;
      readonly serviceAccountFile?: string;
      readonly namespace?: string;
      readonly extraCaFile?: string;
      /** Settings from flags, as environment variables. */
      readonly settingsEnv: Readonly<Record<string, string>>;
    };

const usage = (message: string): AkvError =>
  new AkvError(ErrorCode.CLI_USAGE, `${message}\nRun 'akv-injector --help' for usage.`);

/**
 * Parses the CLI's arguments.
 * @throws {AkvError} `AKV_CLI_USAGE`, saying what is wrong.
 */
export function parseCliArgs(argv: readonly string[]): CliCommand {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        help: { type: "boolean", short: "h" },
        "service-account": { type: "string" },
        namespace: { type: "string" },
        "extra-ca-file": { type: "string" },
        ...Object.fromEntries(
          Object.keys(SETTING_FLAGS).map((f) => [f, { type: "string" as const }]),
        ),
      },
    });
  } catch (error) {
    throw usage((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help === true) return { command: "help" };
  const [command, ...rest] = positionals;
  if (command === undefined) throw usage("missing command: akv-injector preview POD.yaml");
  if (command !== "preview")
    throw usage(`unknown command '${command}'; the one command is preview`);
  const [podFile, ...extra] = rest;
  if (podFile === undefined) throw usage("missing POD.yaml: akv-injector preview POD.yaml");
  if (extra.length > 0) throw usage(`unexpected arguments: ${extra.join(" ")}`);
  const settingsEnv: Record<string, string> = {};
  for (const [flag, variable] of Object.entries(SETTING_FLAGS) as [SettingFlag, string][]) {
    const value = (values as Record<string, unknown>)[flag];
    if (typeof value === "string") settingsEnv[variable] = value;
  }
  const string = (key: string): string | undefined => {
    const value = (values as Record<string, unknown>)[key];
    return typeof value === "string" ? value : undefined;
  };
  const serviceAccountFile = string("service-account");
  const namespace = string("namespace");
  const extraCaFile = string("extra-ca-file");
  return {
    command: "preview",
    podFile,
    ...(serviceAccountFile === undefined ? {} : { serviceAccountFile }),
    ...(namespace === undefined ? {} : { namespace }),
    ...(extraCaFile === undefined ? {} : { extraCaFile }),
    settingsEnv,
  };
}

/** What {@link preview} needs: file contents, not paths. */
export interface PreviewInput {
  /** The pod, YAML or JSON, and its file name for messages. */
  readonly pod: { readonly text: string; readonly source: string };
  readonly serviceAccount?: { readonly text: string; readonly source: string };
  readonly namespace?: string;
  /** Settings: the environment, with flags already merged over it. */
  readonly env: EnvRecord;
  /** PEM text of `--extra-ca-file`, when given. */
  readonly extraCaPem?: string;
}

/** What to print and how to exit. */
export interface PreviewResult {
  readonly outcome: Outcome;
  /** The (possibly mutated) pod as YAML; absent when refused. */
  readonly stdout?: string;
  /** Lines for stderr: the refusal, warnings, notes. */
  readonly stderr: readonly string[];
  readonly exitCode: 0 | 1;
}

type JsonObject = Record<string, unknown>;
/** A value for a message: JSON, or `none`. */
const show = (v: unknown): string => (v === undefined ? "none" : JSON.stringify(v));
const isObject = (v: unknown): v is JsonObject =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Reads one YAML or JSON document of the expected kind. */
function readObject(text: string, source: string, kind: string): JsonObject {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw usage(`${source}: not YAML`);
  const nonEmpty = docs.filter((d) => d.contents !== null);
  for (const doc of nonEmpty) {
    const error = doc.errors[0];
    if (error !== undefined)
      throw usage(`${source}: not valid YAML: ${error.message.split("\n")[0] ?? ""}`);
  }
  if (nonEmpty.length !== 1) {
    throw usage(`${source}: expected one ${kind} document, found ${nonEmpty.length}`);
  }
  const value: unknown = nonEmpty[0]?.toJS();
  if (!isObject(value)) throw usage(`${source}: expected a ${kind} object`);
  if (value.kind !== kind) {
    const hint =
      kind === "Pod" && isObject(value.spec) && isObject(value.spec.template)
        ? `; for a ${String(value.kind)}, preview its spec.template as a Pod`
        : "";
    throw usage(`${source}: expected kind: ${kind}, found ${show(value.kind)}${hint}`);
  }
  return value;
}

/**
 * Previews one pod.
 * @throws {AkvError} `AKV_CLI_USAGE` for unreadable input, `AKV_SETTINGS_INVALID` for bad settings flags.
 */
export async function preview(input: PreviewInput): Promise<PreviewResult> {
  const env: Record<string, string | undefined> = { ...input.env };
  env[WebhookEnv.tenantId] ??= PREVIEW_DEFAULTS.tenantId;
  env[WebhookEnv.sidecarImage] ??= PREVIEW_DEFAULTS.sidecarImage;
  let settings = parseInjectionSettings(env);
  if (input.extraCaPem !== undefined) settings = withSidecarExtraCa(settings, input.extraCaPem);

  const pod = readObject(input.pod.text, input.pod.source, "Pod");
  const metadata = isObject(pod.metadata) ? pod.metadata : {};
  // The namespace and service account as the webhook reads them; a pod it
  // cannot read is refused by review() below, before any lookup.
  const parsed = parsePod(pod, input.namespace ?? "");
  const namespace = parsed.ok ? parsed.pod.namespace : (input.namespace ?? "default");
  const saName = parsed.ok ? parsed.pod.serviceAccountName : "default";

  const notes: string[] = [];
  let serviceAccount: ServiceAccount;
  if (input.serviceAccount === undefined) {
    serviceAccount = { metadata: { name: saName, namespace } };
    notes.push(
      `note: no --service-account given; assuming service account ${namespace}/${saName} exists with no annotations`,
    );
  } else {
    const sa = readObject(input.serviceAccount.text, input.serviceAccount.source, "ServiceAccount");
    const saMeta = isObject(sa.metadata) ? sa.metadata : {};
    if (saMeta.name !== saName) {
      throw usage(
        `${input.serviceAccount.source} is service account ${show(saMeta.name)}, but the pod uses ${JSON.stringify(saName)}`,
      );
    }
    if (saMeta.namespace !== undefined && saMeta.namespace !== namespace) {
      throw usage(
        `${input.serviceAccount.source} is in namespace ${JSON.stringify(saMeta.namespace)}, but the pod is in ${JSON.stringify(namespace)}`,
      );
    }
    const annotations = isObject(saMeta.annotations)
      ? Object.fromEntries(
          Object.entries(saMeta.annotations).filter(
            (e): e is [string, string] => typeof e[1] === "string",
          ),
        )
      : {};
    serviceAccount = { metadata: { name: saName, namespace, annotations } };
  }

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
    settings,
    lookupServiceAccount: (ns, name) =>
      Promise.resolve(ns === namespace && name === saName ? serviceAccount : undefined),
  });
  const warnings = result.warnings.map((w) => `Warning: ${w}`);
  if (result.response.response.allowed) {
    const mutated =
      result.patch === undefined
        ? pod
        : fastJsonPatch.applyPatch(structuredClone(pod), result.patch as Operation[], true, true)
            .newDocument;
    if (result.outcome === "skipped") {
      notes.push(
        `note: the pod lacks the label akv-injector.io/inject: "true"; the webhook leaves it unchanged`,
      );
    } else if (result.outcome === "unchanged") {
      notes.push(
        "note: the pod is already injected (akv-injector.io/status: injected); the webhook leaves it unchanged",
      );
    }
    return {
      outcome: result.outcome,
      stdout: stringify(mutated, { lineWidth: 0 }),
      stderr: [...warnings, ...notes],
      exitCode: 0,
    };
  }
  return {
    outcome: result.outcome,
    stderr: [
      `Error: admission webhook would deny the request: ${result.message ?? "refused"}`,
      ...warnings,
      ...notes,
    ],
    exitCode: 1,
  };
}
