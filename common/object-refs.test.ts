import { describe, expect, it } from "vitest";
import {
  formatSecretRef,
  OBJECT_IDENTIFIER_EXPECTED,
  parseObjectRef,
  parseTemplate,
  parseVaultSuffixes,
  type VaultSuffix,
} from "./refs.ts";

const VERSION = "0123456789abcdef0123456789abcdef";
const parsedSuffixes = parseVaultSuffixes(".vault.azure.net,127.0.0.1:9443");
if (!parsedSuffixes.ok) throw new Error(parsedSuffixes.expected);
const SUFFIXES: readonly VaultSuffix[] = parsedSuffixes.value;

describe("parseObjectRef", () => {
  it.each([
    ["db", { name: "db" }],
    [`db/${VERSION}`, { name: "db", version: VERSION }],
    [
      "https://kv2.vault.azure.net/secrets/db",
      { name: "db", vaultUrl: "https://kv2.vault.azure.net", kind: "secret" },
    ],
    [
      ` https://KV2.vault.azure.net/secrets/db/${VERSION.toUpperCase()} `,
      { name: "db", version: VERSION, vaultUrl: "https://kv2.vault.azure.net", kind: "secret" },
    ],
    [
      "https://kv2.vault.azure.net:443/secrets/db",
      { name: "db", vaultUrl: "https://kv2.vault.azure.net", kind: "secret" },
    ],
    [
      "https://127.0.0.1:9443/secrets/db",
      { name: "db", vaultUrl: "https://127.0.0.1:9443", kind: "secret" },
    ],
    [
      "https://kv2.vault.azure.net/certificates/web",
      { name: "web", vaultUrl: "https://kv2.vault.azure.net", kind: "certificate" },
    ],
    [
      `https://kv2.vault.azure.net/keys/signing/${VERSION}`,
      { name: "signing", version: VERSION, vaultUrl: "https://kv2.vault.azure.net", kind: "key" },
    ],
  ])("accepts %j", (text, value) => {
    expect(parseObjectRef(text, SUFFIXES)).toEqual({ ok: true, value });
  });

  it.each([
    [
      "https://evil.example.com/secrets/db",
      "a vault host under one of the allowed suffixes: .vault.azure.net, 127.0.0.1:9443 in the object identifier",
    ],
    ["https://127.0.0.1:9444/secrets/db", "allowed suffixes"],
    ["https://a..vault.azure.net/secrets/db", "no empty labels"],
    ["https://kv2.vault.azure.net/secrets/db?api-version=7.4", "no query string or fragment"],
    ["https://kv2.vault.azure.net/secrets/db?", "no query string or fragment"],
    ["https://kv2.vault.azure.net/secrets/db#v", "no query string or fragment"],
    [`https://kv2.vault.azure.net/secrets/db/${VERSION}/x`, "nothing after the version"],
    ["https://kv2.vault.azure.net/secrets/db/", "nothing after the version"],
    ["https://kv2.vault.azure.net/secrets", "a secret name"],
    [
      "https://kv2.vault.azure.net/",
      "a collection of secrets, certificates, keys after the host, not ''",
    ],
    ["https://kv2.vault.azure.net/deletedsecrets/db", "not 'deletedsecrets'"],
    ["https://kv2.vault.azure.net/secrets/db/123", "32 hex digits"],
    ["https://kv2.vault.azure.net/secrets/d%62", "a secret name"],
    ["http://kv2.vault.azure.net/secrets/db", "https://, not http://"],
    ["https://u:p@kv2.vault.azure.net/secrets/db", OBJECT_IDENTIFIER_EXPECTED],
    ["https://", OBJECT_IDENTIFIER_EXPECTED],
  ])("refuses %j, saying what is expected", (text, expected) => {
    const parsed = parseObjectRef(text, SUFFIXES);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.expected).toContain(expected);
  });

  it("allows the ports the vault annotation allows (a dotted suffix: any; an exact host: its own)", () => {
    expect(parseObjectRef("https://kv2.vault.azure.net:8443/secrets/db", SUFFIXES)).toMatchObject({
      ok: true,
      value: { vaultUrl: "https://kv2.vault.azure.net:8443" },
    });
  });

  it("holds identifiers to Azure's suffixes when given none", () => {
    expect(parseObjectRef("https://kv.vault.azure.cn/secrets/a").ok).toBe(true);
    expect(parseObjectRef("https://127.0.0.1:9443/secrets/a").ok).toBe(false);
  });

  it("formats an identifier back as the identifier (its cache key)", () => {
    const parsed = parseObjectRef(`https://kv2.vault.azure.net/secrets/db/${VERSION}`, SUFFIXES);
    expect(parsed.ok && formatSecretRef(parsed.value)).toBe(
      `https://kv2.vault.azure.net/secrets/db/${VERSION}`,
    );
  });

  it("takes identifiers in templates, held to the same suffixes", () => {
    const t = parseTemplate('{{ secret "https://kv2.vault.azure.net/secrets/db" }}', SUFFIXES);
    expect(t).toEqual({
      ok: true,
      value: [{ secret: { name: "db", vaultUrl: "https://kv2.vault.azure.net", kind: "secret" } }],
    });
    const bad = parseTemplate('{{ secret "https://evil.example.com/secrets/db" }}', SUFFIXES);
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.expected).toContain("allowed suffixes");
  });
});
