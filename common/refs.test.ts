import { describe, expect, it } from "vitest";
import {
  findVaultSuffix,
  formatDuration,
  formatFileMode,
  formatSecretRef,
  isEntraAuthority,
  isRefreshIntervalMs,
  isVaultName,
  parseDuration,
  parseFileMode,
  parseFileName,
  parseRefreshInterval,
  parseSecretRef,
  parseTemplate,
  parseTenantId,
  TENANT_ID_EXPECTED,
  parseVaultSuffixes,
  resolveVaultUrl,
  type VaultSuffix,
} from "./refs.ts";

const VERSION = "0123456789abcdef0123456789ABCDEF";

function suffixes(text?: string): readonly VaultSuffix[] {
  const parsed = parseVaultSuffixes(text);
  if (!parsed.ok) throw new Error(parsed.expected);
  return parsed.value;
}

describe("parseSecretRef", () => {
  it.each([
    ["db-password", { name: "db-password" }],
    ["a", { name: "a" }],
    ["x".repeat(127), { name: "x".repeat(127) }],
    [`tls/${VERSION}`, { name: "tls", version: VERSION.toLowerCase() }],
    [" spaced ", { name: "spaced" }],
  ])("accepts %s", (text, value) => {
    expect(parseSecretRef(text)).toEqual({ ok: true, value });
  });

  it.each([
    ["", "secret name"],
    ["under_score", "secret name"],
    ["x".repeat(128), "secret name"],
    ["tls/123", "32 hex digits"],
    [`tls/${VERSION}/extra`, "NAME or NAME/VERSION"],
    ["tls/", "32 hex digits"],
  ])("refuses %j", (text, expected) => {
    const parsed = parseSecretRef(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.expected).toContain(expected);
  });

  it("formats refs back", () => {
    expect(formatSecretRef({ name: "a" })).toBe("a");
    expect(formatSecretRef({ name: "a", version: "b" })).toBe("a/b");
  });
});

describe("parseFileName", () => {
  it.each(["config.json", "a", ".x", ".env", "tls-cert_1.pem"])("accepts %s", (name) => {
    expect(parseFileName(name)).toEqual({ ok: true, value: name });
  });
  it.each([".", "..", "..x", "a/b", "", "sp ace", "ü"])("refuses %j", (name) => {
    expect(parseFileName(name).ok).toBe(false);
  });
});

describe("vault names and URLs", () => {
  it.each(["abc", "my-vault-1", "A".repeat(24)])("accepts the vault name %s", (name) => {
    expect(isVaultName(name)).toBe(true);
  });
  it.each(["ab", "1abc", "abc-", "a--b", "A".repeat(25), "a_b"])(
    "refuses the vault name %s",
    (name) => {
      expect(isVaultName(name)).toBe(false);
    },
  );

  it("resolves a bare name with the first dotted suffix", () => {
    expect(resolveVaultUrl("MyVault", suffixes())).toEqual({
      ok: true,
      value: "https://myvault.vault.azure.net",
    });
    expect(resolveVaultUrl("myvault", suffixes("127.0.0.1,.vault.azure.cn"))).toEqual({
      ok: true,
      value: "https://myvault.vault.azure.cn",
    });
  });

  it("accepts URLs under an allowed suffix or exact host", () => {
    expect(resolveVaultUrl("https://kv.vault.azure.net/", suffixes())).toEqual({
      ok: true,
      value: "https://kv.vault.azure.net",
    });
    expect(resolveVaultUrl("https://127.0.0.1:8443", suffixes("127.0.0.1"))).toEqual({
      ok: true,
      value: "https://127.0.0.1:8443",
    });
  });

  it.each([
    ["http://kv.vault.azure.net", "https://"],
    ["https://evil.example.com", "allowed suffixes"],
    ["https://vault.azure.net", "allowed suffixes"],
    ["https://kv.vault.azure.net.evil.com", "allowed suffixes"],
    ["https://kv.vault.azure.net/secrets", "no path"],
    ["https://a..vault.azure.net", "no empty labels"],
    ["https://evil.com%2e.vault.azure.net", "no empty labels"],
    ["https://user@kv.vault.azure.net", "no path, query or credentials"],
    ["a--b", "vault name"],
  ])("refuses %s", (text, expected) => {
    const parsed = resolveVaultUrl(text, suffixes());
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.expected).toContain(expected);
  });

  it("needs a dotted suffix for bare names", () => {
    const parsed = resolveVaultUrl("myvault", suffixes("127.0.0.1"));
    expect(parsed.ok).toBe(false);
  });

  it("marks exact hosts, which alone turn challenge verification off", () => {
    const list = suffixes(".vault.azure.net, 127.0.0.1");
    expect(findVaultSuffix(new URL("https://127.0.0.1:9443"), list)?.exactHost).toBe(true);
    expect(findVaultSuffix(new URL("https://kv.vault.azure.net"), list)?.exactHost).toBe(false);
    expect(findVaultSuffix(new URL("https://127.0.0.2"), list)).toBeUndefined();
  });

  it("allows no host with an empty label, however spelled", () => {
    const list = suffixes(".vault.azure.net, 127.0.0.1");
    for (const url of [
      "https://a..vault.azure.net",
      "https://evil.com%2e.vault.azure.net",
      "https://kv.vault.azure.net.",
    ])
      expect(findVaultSuffix(new URL(url), list), url).toBeUndefined();
  });

  it("defaults to the Azure clouds and refuses junk suffixes", () => {
    expect(suffixes("").map((s) => s.value)).toEqual([
      ".vault.azure.net",
      ".vault.azure.cn",
      ".vault.usgovcloudapi.net",
    ]);
    expect(parseVaultSuffixes("https://x").ok).toBe(false);
    expect(parseVaultSuffixes("..x").ok).toBe(false);
  });
});

describe("parseTenantId: the tenant's GUID, as Key Vault's challenge names it", () => {
  const GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47";
  const DOMAIN = `${TENANT_ID_EXPECTED}, not a domain name (Key Vault names the tenant by GUID, and the Azure SDK compares the two as text)`;
  it.each([
    [GUID, GUID],
    [GUID.toUpperCase(), GUID],
    [` ${GUID} `, GUID],
    ["72F988bf-86f1-41AF-91ab-2D7CD011DB47", GUID],
  ])("takes %j as %j", (text, value) => {
    expect(parseTenantId(text)).toEqual({ ok: true, value });
  });

  it.each([
    ["contoso.onmicrosoft.com", DOMAIN],
    ["contoso.com", DOMAIN],
    ["contoso", TENANT_ID_EXPECTED],
    ["", TENANT_ID_EXPECTED],
    ["72f988bf86f141af91ab2d7cd011db47", TENANT_ID_EXPECTED],
    [`${GUID}x`, TENANT_ID_EXPECTED],
    [`x${GUID}`, TENANT_ID_EXPECTED],
    ["72f988bf-86f1-41af-91ab-2d7cd011db4g", TENANT_ID_EXPECTED],
    ["a/b.com", TENANT_ID_EXPECTED],
  ])("refuses %j: expected %s", (text, expected) => {
    expect(parseTenantId(text)).toEqual({ ok: false, expected });
  });
});

describe("isEntraAuthority", () => {
  it.each([
    ["https://login.microsoftonline.com/", true],
    ["https://LOGIN.microsoftonline.us", true],
    ["https://login.chinacloudapi.cn/", true],
    ["https://login.partner.microsoftonline.cn/", true],
    ["https://127.0.0.1:8443/", false],
    ["https://login.microsoftonline.com.evil.com/", false],
    ["not a url", false],
  ])("%s → %s", (host, expected) => {
    expect(isEntraAuthority(host)).toBe(expected);
  });
});

describe("durations and file modes", () => {
  it.each([
    ["90s", 90_000],
    ["5m", 300_000],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
    ["250ms", 250],
  ])("parses %s", (text, ms) => {
    expect(parseDuration(text)).toEqual({ ok: true, value: ms });
  });
  it.each(["", "5", "5d", "-5m", "0s", "0.1ms", "5 m", "m5", "5m junk"])("refuses %j", (text) => {
    expect(parseDuration(text).ok).toBe(false);
  });
  it("formats durations", () => {
    expect(formatDuration(300_000)).toBe("5m");
    expect(formatDuration(5_400_000)).toBe("1h30m");
    expect(formatDuration(250)).toBe("250ms");
  });
  it("parses and formats octal modes", () => {
    expect(parseFileMode("0640")).toEqual({ ok: true, value: 0o640 });
    expect(parseFileMode("600")).toEqual({ ok: true, value: 0o600 });
    expect(parseFileMode("0999").ok).toBe(false);
    expect(parseFileMode("rw-r--r--").ok).toBe(false);
    expect(formatFileMode(0o644)).toBe("0644");
    expect(formatFileMode(0o40)).toBe("0040");
  });
});

describe("refresh intervals: one rule for the setting, the annotation and the spec", () => {
  it.each([
    ["1s", 1000],
    ["5m", 300_000],
    ["480h", 480 * 3_600_000],
  ])("takes %s", (text, ms) => {
    expect(parseRefreshInterval(text)).toEqual({ ok: true, value: ms });
    expect(isRefreshIntervalMs(ms)).toBe(true);
  });

  it.each(["999ms", "480h1ms", "481h"])("refuses %s, naming the range", (text) => {
    expect(parseRefreshInterval(text)).toEqual({
      ok: false,
      expected: "a duration from 1s to 480h",
    });
  });

  it("refuses what is not a duration as parseDuration does", () => {
    expect(parseRefreshInterval("soon")).toEqual(parseDuration("soon"));
  });

  it.each([999, 480 * 3_600_000 + 1, 1000.5, "1000", undefined, Number.NaN])(
    "isRefreshIntervalMs(%s) is false",
    (ms) => {
      expect(isRefreshIntervalMs(ms)).toBe(false);
    },
  );
});

describe("parseTemplate", () => {
  it("splits text and secret actions", () => {
    expect(
      parseTemplate(`user=app\npass={{ secret "db" }}\nv={{secret "tls/${VERSION}"}}`),
    ).toEqual({
      ok: true,
      value: [
        { text: "user=app\npass=" },
        { secret: { name: "db" } },
        { text: "\nv=" },
        { secret: { name: "tls", version: VERSION.toLowerCase() } },
      ],
    });
  });
  it("keeps plain text", () => {
    expect(parseTemplate("no actions")).toEqual({ ok: true, value: [{ text: "no actions" }] });
  });
  it.each([
    ['a = {{- secret "x" }} ;', [{ text: "a =" }, { secret: { name: "x" } }, { text: " ;" }]],
    ['a = {{ secret "x" -}} ;', [{ text: "a = " }, { secret: { name: "x" } }, { text: ";" }]],
    ['a \t\r\n{{- secret "x" -}}\n\n b', [{ text: "a" }, { secret: { name: "x" } }, { text: "b" }]],
    ['{{- secret "x" -}}\n', [{ secret: { name: "x" } }]],
    [
      '{{ secret "x" -}} \n {{- secret "y" }}',
      [{ secret: { name: "x" } }, { secret: { name: "y" } }],
    ],
    ['a{{-\nsecret "x"\n-}}b', [{ text: "a" }, { secret: { name: "x" } }, { text: "b" }]],
  ])("trims white space as Go does: %j", (text, value) => {
    expect(parseTemplate(text)).toEqual({ ok: true, value });
  });
  it.each(['{{-secret "x" }}', '{{ secret "x"-}}'])(
    "refuses a trim marker without its space, as Go does: %s",
    (text) => {
      expect(parseTemplate(text).ok).toBe(false);
    },
  );
  it.each([
    ['{{ env "HOME" }}', "only {{ secret"],
    ["{{ .Values }}", "only {{ secret"],
    ['{{ secret "bad_name" }}', "secret name"],
    ['{{ secret "a" }', "balanced"],
    ["}} stray", "balanced"],
  ])("refuses %s", (text, expected) => {
    const parsed = parseTemplate(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.expected).toContain(expected);
  });
});
