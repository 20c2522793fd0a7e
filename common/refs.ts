/**
 * Pure parsers for the small values of the public surface: secret refs, file
 * names, vault names and URLs, durations, file modes, templates. The webhook
 * uses them to refuse bad annotations; the sidecar uses them to check the spec
 * it was given. Each returns a typed value or a {@link Problem} that says what
 * was expected, never throws.
 */
import { AZURE_VAULT_SUFFIXES, Defaults, ENTRA_AUTHORITY_HOSTS } from "./names.ts";

/**
 * The Key Vault collections an object identifier may name, and the kind of
 * object each holds, as the portal shows them
 * (`https://<vault>/<collection>/<name>[/<version>]`).
 */
export const OBJECT_COLLECTIONS = {
  secrets: "secret",
  certificates: "certificate",
  keys: "key",
} as const;
/** A collection of {@link OBJECT_COLLECTIONS}. */
export type ObjectCollection = keyof typeof OBJECT_COLLECTIONS;
/**
 * What a ref reads: a secret's value, a certificate's public certificate
 * (the certificates API, no `secrets/get` needed) or a key's public part
 * (the keys API); absent on a ref means `secret`.
 */
export type ObjectKind = (typeof OBJECT_COLLECTIONS)[ObjectCollection];

/**
 * An object in Key Vault: its name and, optionally, one fixed version; for
 * an object identifier also its vault and kind. A ref without `vaultUrl`
 * reads from the pod's vault (the `vault` annotation, the spec's `vaultUrl`).
 */
export interface SecretRef {
  readonly name: string;
  readonly version?: string;
  /** `https://host[:port]` of the vault, checked against the allowed suffixes; absent: the pod's vault. */
  readonly vaultUrl?: string;
  /** Absent: `secret`. */
  readonly kind?: ObjectKind;
}

/** Why a value was refused: what is expected, in words a user can act on. */
export interface Problem {
  readonly expected: string;
}

/** The result of a parser: a value or a problem. */
export type Parsed<T> =
  { readonly ok: true; readonly value: T } | ({ readonly ok: false } & Problem);

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = (expected: string): { readonly ok: false; readonly expected: string } => ({
  ok: false,
  expected,
});

const SECRET_NAME = /^[0-9A-Za-z-]{1,127}$/;
const SECRET_VERSION = /^[0-9A-Fa-f]{32}$/;
const FILE_NAME = /^[A-Za-z0-9._-]+$/;
const VAULT_NAME = /^[A-Za-z][0-9A-Za-z-]{1,22}[0-9A-Za-z]$/;
const GUID = /^[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$/;
const DOMAIN_NAME = /^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$/;
/** The default allowed suffixes of identifiers: Azure's clouds. */
const DEFAULT_SUFFIXES: readonly VaultSuffix[] = AZURE_VAULT_SUFFIXES.map((value) => ({
  value,
  exactHost: false,
}));

/** What a tenant id must be, as refusals say it. */
export const TENANT_ID_EXPECTED = "the tenant's GUID";

/**
 * Parses a Microsoft Entra tenant id into the form Key Vault names it: a
 * lower-case GUID. Entra would take a verified domain name too, but a vault's
 * challenge names its tenant by GUID and the Azure SDK compares the two as
 * text, so with a domain name (or a GUID in capitals) every Key Vault read
 * fails with "The current credential is not configured to acquire tokens for
 * tenant …".
 * @example parseTenantId("72F988BF-86F1-41AF-91AB-2D7CD011DB47") // ok: "72f988bf-86f1-41af-91ab-2d7cd011db47"
 */
export function parseTenantId(text: string): Parsed<string> {
  const value = text.trim();
  if (GUID.test(value)) return ok(value.toLowerCase());
  return fail(
    DOMAIN_NAME.test(value)
      ? `${TENANT_ID_EXPECTED}, not a domain name (Key Vault names the tenant by GUID, and the Azure SDK compares the two as text)`
      : TENANT_ID_EXPECTED,
  );
}

/**
 * Parses `NAME[/VERSION]`.
 * @example parseSecretRef("db-password") // { name: "db-password" }
 * @example parseSecretRef("tls/0123456789abcdef0123456789abcdef") // with version
 */
export function parseSecretRef(text: string): Parsed<SecretRef> {
  const [name = "", version, ...rest] = text.trim().split("/");
  if (rest.length > 0) return fail("a secret ref NAME or NAME/VERSION");
  if (!SECRET_NAME.test(name)) return fail("a secret name of 1-127 characters [0-9A-Za-z-]");
  if (version === undefined) return ok({ name });
  if (!SECRET_VERSION.test(version)) return fail("a secret version of 32 hex digits");
  return ok({ name, version: version.toLowerCase() });
}

/**
 * Formats a ref back as `NAME[/VERSION]`, or as its object identifier
 * `https://host/<collection>/NAME[/VERSION]` when it names its vault (for
 * messages and cache keys: two refs to one object in one vault, spelled
 * alike, share a key).
 */
export function formatSecretRef(ref: SecretRef): string {
  const tail = ref.version === undefined ? ref.name : `${ref.name}/${ref.version}`;
  if (ref.vaultUrl === undefined) return tail;
  return `${ref.vaultUrl}/${collectionOf(ref.kind ?? "secret")}/${tail}`;
}

const COLLECTION_OF: Readonly<Record<ObjectKind, ObjectCollection>> = {
  secret: "secrets",
  certificate: "certificates",
  key: "keys",
};

/** The collection path segment of a kind (`secret` → `secrets`). */
export function collectionOf(kind: ObjectKind): ObjectCollection {
  return COLLECTION_OF[kind];
}

/** What an object identifier must look like, as refusals say it. */
export const OBJECT_IDENTIFIER_EXPECTED = `an object identifier https://<vault-host>/<${Object.keys(OBJECT_COLLECTIONS).join("|")}>/<name>[/<version>] with no query, fragment or credentials`;

/**
 * Parses a ref: `NAME[/VERSION]` (in the pod's vault, see
 * {@link parseSecretRef}) or an object identifier as the portal shows it,
 * `https://<vault>/<collection>/<name>[/<version>]`, whose host must be
 * allowed by `suffixes` (the `vault` annotation's rule: the sidecar sends
 * its token there).
 * @example parseObjectRef("https://kv2.vault.azure.net/secrets/db", suffixes) // { name: "db", vaultUrl: "https://kv2.vault.azure.net", kind: "secret" }
 * @example parseObjectRef("db/0123456789abcdef0123456789abcdef", suffixes) // { name: "db", version: "0123…" }
 */
export function parseObjectRef(
  text: string,
  suffixes: readonly VaultSuffix[] = DEFAULT_SUFFIXES,
): Parsed<SecretRef> {
  const value = text.trim();
  if (!/^[a-z][a-z0-9+.-]*:/i.test(value)) return parseSecretRef(value);
  // Checked on the text: the URL parser drops an empty '?' or '#'.
  if (value.includes("?") || value.includes("#"))
    return fail(`${OBJECT_IDENTIFIER_EXPECTED}; no query string or fragment`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail(OBJECT_IDENTIFIER_EXPECTED);
  }
  if (url.protocol !== "https:")
    return fail(`https://, not ${url.protocol}// (${OBJECT_IDENTIFIER_EXPECTED})`);
  if (url.username !== "" || url.password !== "") return fail(OBJECT_IDENTIFIER_EXPECTED);
  const vault = resolveVaultUrl(`https://${url.host}`, suffixes);
  if (!vault.ok) return fail(`${vault.expected} in the object identifier`);
  const [collection = "", name = "", version, ...rest] = url.pathname.split("/").slice(1);
  const kind = Object.hasOwn(OBJECT_COLLECTIONS, collection)
    ? OBJECT_COLLECTIONS[collection as ObjectCollection]
    : undefined;
  if (kind === undefined)
    return fail(
      `a collection of ${Object.keys(OBJECT_COLLECTIONS).join(", ")} after the host, not '${collection}' (${OBJECT_IDENTIFIER_EXPECTED})`,
    );
  if (rest.length > 0 || version === "")
    return fail(`nothing after the version (${OBJECT_IDENTIFIER_EXPECTED})`);
  const ref = parseSecretRef(version === undefined ? name : `${name}/${version}`);
  if (!ref.ok) return ref;
  return ok({ ...ref.value, vaultUrl: vault.value, kind });
}

/** Checks a target file name: one path segment of `[A-Za-z0-9._-]`, not `.` or `..`, not starting with `..`. */
export function parseFileName(text: string): Parsed<string> {
  if (!FILE_NAME.test(text) || text.startsWith("..")) {
    return fail("file name must be one path segment of [A-Za-z0-9._-], not starting with '..'");
  }
  if (text === ".") return fail("file name must not be '.'");
  return ok(text);
}

/** Checks Azure's vault-name rule: 3-24 of `[0-9A-Za-z-]`, a letter first, a letter or digit last, no `--`. */
export function isVaultName(text: string): boolean {
  return VAULT_NAME.test(text) && !text.includes("--");
}

/** One entry of the allowed vault suffixes: `.vault.azure.net` matches subdomains; `127.0.0.1` only that host. */
export interface VaultSuffix {
  readonly value: string;
  /** An exact host (no leading dot): a local emulator or mock, for which challenge resource verification is off. */
  readonly exactHost: boolean;
}

/**
 * Parses the comma list of `AKV_INJECTOR_VAULT_SUFFIXES`; empty or missing gives
 * the Azure clouds' suffixes.
 */
export function parseVaultSuffixes(text: string | undefined): Parsed<readonly VaultSuffix[]> {
  const items = (text ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "");
  const list = items.length > 0 ? items : [...AZURE_VAULT_SUFFIXES];
  const out: VaultSuffix[] = [];
  for (const item of list) {
    const host = item.startsWith(".") ? item.slice(1) : item;
    if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$/.test(host) || host.includes("..")) {
      return fail(
        `a comma list of DNS suffixes like .vault.azure.net or hosts like 127.0.0.1, not '${item}'`,
      );
    }
    out.push({ value: item, exactHost: !item.startsWith(".") });
  }
  return ok(Object.freeze(out));
}

/**
 * The suffix entry that allows a vault URL's host (with port, if any), or
 * undefined. A host with an empty label ("a..vault.azure.net", also spelled
 * "a%2e.vault.azure.net") ends with a suffix but is no host: none allows it.
 */
export function findVaultSuffix(
  url: URL,
  suffixes: readonly VaultSuffix[],
): VaultSuffix | undefined {
  const host = url.host.toLowerCase();
  const hostname = url.hostname.toLowerCase();
  if (hostname.split(".").includes("")) return undefined;
  return suffixes.find((s) =>
    s.exactHost
      ? s.value === host || s.value === hostname
      : hostname.endsWith(s.value) && hostname.length > s.value.length,
  );
}

/**
 * Resolves the `vault` annotation to a vault URL with no trailing slash: a
 * bare name takes the first dotted suffix; a URL must be https, have no path,
 * query or credentials, and be allowed by a suffix.
 * @example resolveVaultUrl("myvault", parseVaultSuffixes(undefined)) // https://myvault.vault.azure.net
 */
export function resolveVaultUrl(text: string, suffixes: readonly VaultSuffix[]): Parsed<string> {
  const value = text.trim();
  const allowed = suffixes.map((s) => s.value).join(", ");
  if (!value.includes("/") && !value.includes(":")) {
    if (!isVaultName(value)) {
      return fail(
        "a vault name of 3-24 characters [0-9A-Za-z-], starting with a letter, ending with a letter or digit, without '--', or an https:// vault URL",
      );
    }
    const dotted = suffixes.find((s) => !s.exactHost);
    if (dotted === undefined)
      return fail(
        `a full https:// vault URL (no DNS suffix is allowed for bare names; allowed: ${allowed})`,
      );
    return ok(`https://${value.toLowerCase()}${dotted.value}`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return fail("a vault name or an https:// vault URL");
  }
  if (url.protocol !== "https:") return fail("an https:// vault URL");
  if (
    url.username !== "" ||
    url.password !== "" ||
    url.search !== "" ||
    url.hash !== "" ||
    (url.pathname !== "/" && url.pathname !== "")
  ) {
    return fail(
      "a vault URL with no path, query or credentials, like https://myvault.vault.azure.net",
    );
  }
  // Said before the suffix check, which refuses these too, for a clearer message.
  if (url.hostname.split(".").includes(""))
    return fail("a vault URL whose host has no empty labels");
  if (findVaultSuffix(url, suffixes) === undefined)
    return fail(`a vault host under one of the allowed suffixes: ${allowed}`);
  return ok(`https://${url.host.toLowerCase()}`);
}

/**
 * An Entra authority host as MSAL takes it, `https://host[:port]/`, or
 * undefined unless the text is an https URL with no path, query or
 * credentials. The webhook parses its setting with it, and the sidecar the
 * value the webhook passed on.
 */
export function parseAuthorityHost(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  const clean =
    url.protocol === "https:" &&
    url.username === "" &&
    url.password === "" &&
    url.search === "" &&
    url.hash === "" &&
    (url.pathname === "/" || url.pathname === "");
  return clean ? `https://${url.host}/` : undefined;
}

/** True when an authority host is one of Microsoft Entra's (instance discovery stays on only for these). */
export function isEntraAuthority(authorityHost: string): boolean {
  try {
    const host = new URL(authorityHost).hostname.toLowerCase();
    return (ENTRA_AUTHORITY_HOSTS as readonly string[]).includes(host);
  } catch {
    return false;
  }
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go-style duration of positive parts in `ms`, `s`, `m`, `h`.
 * @example parseDuration("1h30m") // 5_400_000 (milliseconds)
 */
export function parseDuration(text: string): Parsed<number> {
  const value = text.trim();
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let end = 0;
  for (const match of value.matchAll(part)) {
    total += Number(match[1]) * (DURATION_UNITS[match[2] ?? ""] ?? Number.NaN);
    end = match.index + match[0].length;
  }
  const ms = Math.round(total);
  // Checked after rounding: "0.1ms" would otherwise pass as a positive 0.
  if (value === "" || end !== value.length || !Number.isFinite(ms) || ms <= 0) {
    return fail("a positive Go-style duration like 90s, 5m or 1h");
  }
  return ok(ms);
}

/**
 * Whether `ms` is a refresh interval the product takes: a whole number of
 * milliseconds within `Defaults`' bounds. The one rule behind the webhook's
 * setting, the annotation ({@link parseRefreshInterval}) and the sidecar's spec.
 */
export function isRefreshIntervalMs(ms: unknown): ms is number {
  return (
    typeof ms === "number" &&
    Number.isInteger(ms) &&
    ms >= Defaults.minRefreshIntervalMs &&
    ms <= Defaults.maxRefreshIntervalMs
  );
}

/**
 * Parses a refresh interval: a duration ({@link parseDuration}) that
 * {@link isRefreshIntervalMs} takes.
 * @example parseRefreshInterval("5m") // 300_000; "500ms" and "500h" fail with the range
 */
export function parseRefreshInterval(text: string): Parsed<number> {
  const duration = parseDuration(text);
  if (!duration.ok || isRefreshIntervalMs(duration.value)) return duration;
  return fail(
    `a duration from ${formatDuration(Defaults.minRefreshIntervalMs)} to ${formatDuration(Defaults.maxRefreshIntervalMs)}`,
  );
}

/** Formats milliseconds as a short Go-style duration (`5m`, `90s`, `1h30m`). */
export function formatDuration(ms: number): string {
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0 || parts.length === 0) parts.push(`${rest}ms`);
  return parts.join("");
}

/** Parses an octal file mode like `0644` or `640` (permission bits only). */
export function parseFileMode(text: string): Parsed<number> {
  const value = text.trim();
  if (!/^0?[0-7]{3}$/.test(value)) return fail("an octal file mode like 0644 or 0440");
  return ok(Number.parseInt(value, 8));
}

/** Formats a file mode as four octal digits (`0644`). */
export function formatFileMode(mode: number): string {
  return `0${mode.toString(8).padStart(3, "0")}`;
}

/** A piece of a parsed template: literal text or a secret's value. */
export type TemplatePart = { readonly text: string } | { readonly secret: SecretRef };

/** Go's template white space; `{{- ` and ` -}}` (the space is part of the marker) trim it. */
const GO_SPACE = "[ \\t\\r\\n]";
const TEMPLATE_ACTION = new RegExp(
  `\\{\\{(-${GO_SPACE})?${GO_SPACE}*(.*?)${GO_SPACE}*(${GO_SPACE}-)?\\}\\}`,
  "gs",
);
const LEADING_SPACE = new RegExp(`^${GO_SPACE}+`);
const TRAILING_SPACE = new RegExp(`${GO_SPACE}+$`);
const SECRET_CALL = /^secret\s+"([^"]*)"$/;

/**
 * Parses a template: `{{ secret "NAME[/VERSION]" }}` substitutes a secret's
 * value (an object identifier `https://<vault>/secrets/NAME[/VERSION]` too); any other `{{ … }}` is refused, so nothing else is ever evaluated.
 * `{{- ` trims the white space before the action and ` -}}` the white space
 * after it, as Go's text/template does (Helm and Vault users write them).
 * @example parseTemplate('user=app\npass={{ secret "db-password" }}\n')
 * @example parseTemplate('a = {{- secret "x" -}} ;') // "a =", x, ";"
 */
export function parseTemplate(
  text: string,
  suffixes: readonly VaultSuffix[] = DEFAULT_SUFFIXES,
): Parsed<readonly TemplatePart[]> {
  const parts: TemplatePart[] = [];
  let last = 0;
  let trimNext = false;
  const pushText = (piece: string, trimEnd: boolean): void => {
    let t = trimNext ? piece.replace(LEADING_SPACE, "") : piece;
    if (trimEnd) t = t.replace(TRAILING_SPACE, "");
    if (t !== "") parts.push({ text: t });
  };
  for (const match of text.matchAll(TEMPLATE_ACTION)) {
    const call = SECRET_CALL.exec(match[2] ?? "");
    if (call === null)
      return fail(`only {{ secret "NAME[/VERSION]" }} in templates, not '${match[0]}'`);
    const ref = parseObjectRef(call[1] ?? "", suffixes);
    if (!ref.ok) return fail(`${ref.expected} in '${match[0]}'`);
    if ((ref.value.kind ?? "secret") !== "secret")
      return fail(
        `a secret in '${match[0]}': a certificate or key is written whole to a file of its own (secrets or secret-<file>), not into a template`,
      );
    pushText(text.slice(last, match.index), match[1] !== undefined);
    parts.push({ secret: ref.value });
    trimNext = match[3] !== undefined;
    last = match.index + match[0].length;
  }
  pushText(text.slice(last), false);
  const stray = parts.find((p) => "text" in p && (p.text.includes("{{") || p.text.includes("}}")));
  if (stray !== undefined) return fail('balanced {{ secret "NAME" }} actions in templates');
  return ok(Object.freeze(parts));
}
