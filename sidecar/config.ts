/**
 * The sidecar's configuration: its environment (as the webhook set it) turned
 * into one checked, frozen {@link SidecarConfig}, or an error that names every
 * variable that is missing or malformed. Pure: it takes an env record, so
 * tests need no process.
 *
 * The two SDK safety checks that a non-Azure host needs off are decided here,
 * from the webhook's own settings alone (never from the pod): instance
 * discovery follows `AZURE_AUTHORITY_HOST`, challenge resource verification
 * follows the exact-host entries of `AKV_INJECTOR_VAULT_SUFFIXES`, per vault:
 * every vault the spec names (the pod's and those of object identifiers) is
 * held to the allowed suffixes here again.
 */
import { AkvError, ErrorCode } from "../common/errors.ts";
import { AZURE_VAULT_SUFFIXES, DEFAULT_AUTHORITY_HOST, SidecarEnv } from "../common/names.ts";
import {
  findVaultSuffix,
  isEntraAuthority,
  parseAuthorityHost,
  parseTenantId,
  parseVaultSuffixes,
} from "../common/refs.ts";
import { parseNotifyTargets, type NotifyTarget } from "../common/notify.ts";
import { listVaults, parseSpec, SpecError, type SyncSpec } from "../common/spec.ts";

/** Everything the sidecar needs to run, checked. */
export interface SidecarConfig {
  readonly spec: SyncSpec;
  /** The managed identity's client id (a GUID). */
  readonly clientId: string;
  /** The Entra tenant's GUID, in lower case (see `parseTenantId`). */
  readonly tenantId: string;
  /** The projected service-account token, read afresh for every exchange. */
  readonly tokenFile: string;
  /** `https://host[:port]/` of the Entra authority. */
  readonly authorityHost: string;
  /** True when the authority is not Microsoft Entra's: MSAL would ask login.microsoftonline.com about it. */
  readonly disableInstanceDiscovery: boolean;
  /**
   * The spec's vaults whose challenge resource verification is off: those
   * allowed only by an exact-host suffix entry (a local emulator or mock).
   */
  readonly unverifiedVaults: ReadonlySet<string>;
  /** PEM certificates to trust besides Node's defaults; empty when none. */
  readonly extraCaCerts: readonly string[];
  /** pino level. */
  readonly logLevel: string;
  /** Where to serve Prometheus metrics; undefined: no metrics. */
  readonly metricsPort: number | undefined;
  /** The containers to notify after a sync that changed the set; empty: none. */
  readonly notify: readonly NotifyTarget[];
}

/** The environment the sidecar reads: {@link SidecarEnv}'s variables. */
export type SidecarEnvRecord = Readonly<Record<string, string | undefined>>;

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Parses the sidecar's environment.
 * @throws {AkvError} `SIDECAR_CONFIG_INVALID`, naming each bad variable and
 *   what it should be (the spec's own problems included, with their JSON paths).
 */
export function parseSidecarConfig(env: SidecarEnvRecord): SidecarConfig {
  const problems: string[] = [];
  const bad = (name: string, expected: string): void => {
    problems.push(`${name}: expected ${expected}`);
  };
  const get = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === "" ? undefined : value;
  };

  const clientId = get(SidecarEnv.clientId);
  if (clientId === undefined || !GUID.test(clientId))
    bad(SidecarEnv.clientId, "the managed identity's client id, a GUID");

  const tenant = parseTenantId(get(SidecarEnv.tenantId) ?? "");
  if (!tenant.ok) bad(SidecarEnv.tenantId, `the Entra tenant id, ${tenant.expected}`);
  const tenantId = tenant.ok ? tenant.value : undefined;

  const tokenFile = get(SidecarEnv.federatedTokenFile);
  if (tokenFile === undefined || !tokenFile.startsWith("/"))
    bad(SidecarEnv.federatedTokenFile, "the absolute path of the projected service-account token");

  const authorityHost = parseAuthorityHost(get(SidecarEnv.authorityHost) ?? DEFAULT_AUTHORITY_HOST);
  if (authorityHost === undefined)
    bad(
      SidecarEnv.authorityHost,
      "an https:// URL with no path, query or credentials, like https://login.microsoftonline.com/",
    );

  const suffixes = parseVaultSuffixes(get(SidecarEnv.vaultSuffixes));
  if (!suffixes.ok) bad(SidecarEnv.vaultSuffixes, suffixes.expected);

  let spec: SyncSpec | undefined;
  const specJson = get(SidecarEnv.spec);
  if (specJson === undefined) bad(SidecarEnv.spec, "the sync spec as JSON (set by the webhook)");
  else {
    try {
      spec = parseSpec(specJson);
    } catch (error) {
      if (!(error instanceof SpecError)) throw error;
      for (const p of error.problems) problems.push(`${SidecarEnv.spec}: ${p}`);
    }
  }

  // Defence in depth: the webhook only writes an allowed vault, but a pod
  // spec can be edited; a vault outside the allowed suffixes would get the
  // pod's Entra token, so it is refused here too.
  const unverifiedVaults = new Set<string>();
  if (spec !== undefined && suffixes.ok) {
    const dotted = [
      ...AZURE_VAULT_SUFFIXES.map((value) => ({ value, exactHost: false })),
      ...suffixes.value.filter((s) => !s.exactHost),
    ];
    for (const vaultUrl of listVaults(spec)) {
      const url = new URL(vaultUrl);
      const entry = findVaultSuffix(url, suffixes.value);
      if (entry === undefined) {
        bad(
          `${SidecarEnv.spec}: vaultUrl`,
          `a vault under the allowed suffixes (${suffixes.value.map((s) => s.value).join(", ")}), not ${vaultUrl}`,
        );
      } else if (entry.exactHost && findVaultSuffix(url, dotted) === undefined) {
        // An exact-host entry may name a real vault too (`kv.vault.azure.net`);
        // for a host under any Key Vault DNS suffix (Azure's or a dotted
        // entry) the check stays on, whatever the order of the list.
        unverifiedVaults.add(vaultUrl);
      }
    }
  }

  const caText = get(SidecarEnv.extraCaCerts);
  const extraCaCerts =
    caText === undefined ? [] : [...caText.matchAll(PEM_CERTIFICATE)].map((m) => m[0]);
  if (caText !== undefined && extraCaCerts.length === 0)
    bad(SidecarEnv.extraCaCerts, "PEM text with one or more BEGIN CERTIFICATE blocks");

  const logLevel = get(SidecarEnv.logLevel) ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
    bad(SidecarEnv.logLevel, LOG_LEVELS.join(", "));

  const metricsText = get(SidecarEnv.metricsPort);
  const metricsPort = metricsText === undefined ? undefined : Number(metricsText);
  if (
    metricsPort !== undefined &&
    !(/^[0-9]{4,5}$/.test(metricsText ?? "") && metricsPort >= 1024 && metricsPort <= 65_535)
  )
    bad(SidecarEnv.metricsPort, "a port number from 1024 to 65535");

  const notifyText = get(SidecarEnv.notify);
  let notify: readonly NotifyTarget[] = Object.freeze([]);
  if (notifyText !== undefined) {
    const parsed = parseNotifyTargets(notifyText);
    if (!parsed.ok) for (const p of parsed.problems) problems.push(`${SidecarEnv.notify}: ${p}`);
    else if (spec?.mode === "init" && parsed.value.length > 0)
      bad(SidecarEnv.notify, "no notification in init mode (nothing runs after the app starts)");
    else notify = parsed.value;
  }

  if (problems.length > 0) {
    throw new AkvError(
      ErrorCode.SIDECAR_CONFIG_INVALID,
      `invalid sidecar configuration: ${problems.join("; ")}`,
    );
  }
  return Object.freeze({
    spec: spec as SyncSpec,
    clientId: clientId as string,
    tenantId: tenantId as string,
    tokenFile: tokenFile as string,
    authorityHost: authorityHost as string,
    disableInstanceDiscovery: !isEntraAuthority(authorityHost as string),
    unverifiedVaults: Object.freeze(unverifiedVaults),
    extraCaCerts: Object.freeze(extraCaCerts),
    logLevel,
    metricsPort,
    notify,
  });
}
