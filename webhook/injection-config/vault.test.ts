import { describe, expect, it } from "vitest";
import { parseVaultSuffixes, type VaultSuffix } from "../../common/refs.ts";
import { collectProblems } from "../../testing/webhook.ts";
import { parseVaultAnnotation } from "./vault.ts";

function suffixes(text: string): readonly VaultSuffix[] {
  const parsed = parseVaultSuffixes(text);
  if (!parsed.ok) throw new Error(parsed.expected);
  return parsed.value;
}
const AZURE = ".vault.azure.net,.vault.azure.cn";
const ALLOWED = "a vault host under one of the allowed suffixes: .vault.azure.net, .vault.azure.cn";

describe("parseVaultAnnotation", () => {
  // [case, annotation, allowed suffixes, the vault URL, the problems]
  it.each<[string, string | undefined, string, string | undefined, string[]]>([
    ["a name takes the first suffix", "myvault", AZURE, "https://myvault.vault.azure.net", []],
    [
      "a name, the first dotted suffix after an exact host",
      "myvault",
      "127.0.0.1:8444,.vault.azure.cn",
      "https://myvault.vault.azure.cn",
      [],
    ],
    [
      "a URL under the second suffix",
      "https://myvault.vault.azure.cn/",
      AZURE,
      "https://myvault.vault.azure.cn",
      [],
    ],
    [
      "a URL on an exact host (a local emulator)",
      "https://127.0.0.1:8444",
      "127.0.0.1:8444",
      "https://127.0.0.1:8444",
      [],
    ],
    // Whether it is needed is files.ts's to say: every ref may name its vault.
    ["missing", undefined, AZURE, undefined, []],
    [
      "not https",
      "http://myvault.vault.azure.net",
      AZURE,
      undefined,
      [
        'akv-injector.io/vault: expected an https:// vault URL (got "http://myvault.vault.azure.net")',
      ],
    ],
    [
      "outside the allowed suffixes",
      "https://evil.example.com",
      AZURE,
      undefined,
      [`akv-injector.io/vault: expected ${ALLOWED} (got "https://evil.example.com")`],
    ],
    [
      "an empty value",
      "",
      AZURE,
      undefined,
      [
        `akv-injector.io/vault: expected a vault name of 3-24 characters [0-9A-Za-z-], starting with a letter, ending with a letter or digit, without '--', or an https:// vault URL (got "")`,
      ],
    ],
  ])("%s", (_case, text, allowed, url, problems) => {
    const result = collectProblems((list) => parseVaultAnnotation(text, suffixes(allowed), list));
    expect(result.value).toBe(url);
    expect(result.problems).toEqual(problems);
  });
});
