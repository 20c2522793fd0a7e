/**
 * The command line of `akv-injector`: flags → a typed {@link CliCommand},
 * and the `--help` text. Pure.
 */
import { parseArgs } from "node:util";
import { INJECT_LABEL, WebhookEnv } from "../common/names.ts";
import { MAX_INPUT_BYTES } from "./documents.ts";
import { usage } from "./usage.ts";
import { WORKLOAD_KINDS } from "./workloads.ts";

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

/** The `-o` formats. */
export const OUTPUT_FORMATS = ["yaml", "json"] as const;
/** One of {@link OUTPUT_FORMATS}. */
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** `--help`. */
export const HELP = `Usage: akv-injector preview FILE.yaml [options]

Shows what the akv-injector webhook does, offline: prints FILE with each pod
mutated as the webhook would mutate it, or the refusal. Warnings go to stderr,
as kubectl shows them. FILE may be - for standard input (at most ${String(MAX_INPUT_BYTES / 1024 / 1024)} MiB).

FILE holds one or more documents (YAML separated by ---, or JSON):
  Pod                         previewed as is
  ${WORKLOAD_KINDS.join(", ")}
                              the pod template (a CronJob's
                              spec.jobTemplate.spec.template) is previewed as
                              the pod its controller creates; the output is
                              the workload with the mutated template, ready to
                              apply
  ServiceAccount              passed through; serves the pods of its namespace
                              when --service-account is not given
  any other kind              passed through unchanged
A pod or template without the label ${INJECT_LABEL}: "true" is left
unchanged, as the webhook leaves it. A workload whose selector or own labels
carry that label gets a warning: only the pod template's label opts pods in.

Options:
  -o, --output yaml|json      output format; default yaml (documents separated
                              by ---); json prints one object, or a v1 List
                              when FILE holds several documents
  --service-account SA.yaml   the service account of every pod (for its client
                              id and tenant annotations); without it, a
                              ServiceAccount in FILE of the pod's namespace and
                              name, else the account is assumed to exist with
                              no annotations
  --namespace NS              the namespace of every document; default: each
                              one's own, else "default"
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
  --version                   the version of akv-injector

Exit status: 0 every document admitted (mutated or left alone), 1 any refused
(every document is still shown: refused ones on stderr, not in the output),
2 bad usage or an unreadable FILE.
`;

/** A parsed command line. */
export type CliCommand =
  | { readonly command: "help" }
  | { readonly command: "version" }
  | {
      readonly command: "preview";
      /** The manifest file, or `-` for standard input. */
      readonly file: string;
      readonly output: OutputFormat;
      readonly serviceAccountFile?: string;
      readonly namespace?: string;
      readonly extraCaFile?: string;
      /** Settings from flags, as environment variables. */
      readonly settingsEnv: Readonly<Record<string, string>>;
    };

const isOutputFormat = (value: string): value is OutputFormat =>
  (OUTPUT_FORMATS as readonly string[]).includes(value);

/**
 * Parses the CLI's arguments. `--help`, then `--version`, win over anything else.
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
        version: { type: "boolean" },
        output: { type: "string", short: "o" },
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
  if (values.version === true) return { command: "version" };
  const [command, ...rest] = positionals;
  if (command === undefined) throw usage("missing command: akv-injector preview FILE.yaml");
  if (command !== "preview")
    throw usage(`unknown command '${command}'; the one command is preview`);
  const [file, ...extra] = rest;
  if (file === undefined) throw usage("missing FILE.yaml: akv-injector preview FILE.yaml");
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
  const output = string("output") ?? "yaml";
  if (!isOutputFormat(output)) {
    throw usage(`-o ${output}: expected one of ${OUTPUT_FORMATS.join(", ")}`);
  }
  const serviceAccountFile = string("service-account");
  const namespace = string("namespace");
  const extraCaFile = string("extra-ca-file");
  return {
    command: "preview",
    file,
    output,
    ...(serviceAccountFile === undefined ? {} : { serviceAccountFile }),
    ...(namespace === undefined ? {} : { namespace }),
    ...(extraCaFile === undefined ? {} : { extraCaFile }),
    settingsEnv,
  };
}
