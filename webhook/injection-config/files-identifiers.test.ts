import { describe, expect, it } from "vitest";
import { ProblemList } from "../../common/problems.ts";
import { parseVaultSuffixes, type VaultSuffix } from "../../common/refs.ts";
import type { FileSpec } from "../../common/spec.ts";
import { collectProblems } from "../../testing/webhook.ts";
import { sortAnnotationKeys } from "./annotations.ts";
import { parseFileAnnotations } from "./files.ts";

const VERSION = "0123456789abcdef0123456789abcdef";
const SUFFIXES = parseVaultSuffixes(".vault.azure.net,127.0.0.1:9443");
if (!SUFFIXES.ok) throw new Error(SUFFIXES.expected);
const ALLOWED: readonly VaultSuffix[] = SUFFIXES.value;
const POD = "https://pod.vault.azure.net";

/** Parses with the pod's vault `POD`, or with no `vault` annotation when `vaultUrl` is null. */
function parse(annotations: Record<string, string>, vaultUrl: string | null = POD) {
  const keys = sortAnnotationKeys(annotations, new ProblemList());
  return collectProblems((list) =>
    parseFileAnnotations(annotations, keys, list, {
      suffixes: ALLOWED,
      vaultUrl: vaultUrl ?? undefined,
      vaultGiven: vaultUrl !== null,
    }),
  );
}

const refsOf = (f: FileSpec) =>
  f.source.kind === "secret"
    ? [f.source.ref]
    : f.source.parts.flatMap((p) => ("secret" in p ? [p.secret] : []));

describe("object identifiers as refs", () => {
  it("reads an identifier in secrets to a file of its name, with its vault", () => {
    const r = parse({
      "akv-injector.io/secrets": `db, https://kv2.vault.azure.net/secrets/api-key/${VERSION}`,
    });
    expect(r.problems).toEqual([]);
    expect(r.value.map((f) => [f.file, refsOf(f)])).toEqual([
      ["db", [{ name: "db" }]],
      [
        "api-key",
        [
          {
            name: "api-key",
            version: VERSION,
            vaultUrl: "https://kv2.vault.azure.net",
            kind: "secret",
          },
        ],
      ],
    ]);
  });

  it("takes identifiers in secret-<file> and templates", () => {
    const r = parse({
      "akv-injector.io/secret-a.txt": "https://kv2.vault.azure.net/secrets/a",
      "akv-injector.io/template-t": 'x={{ secret "https://KV3.vault.azure.net/secrets/b" }}',
    });
    expect(r.problems).toEqual([]);
    expect(r.value.flatMap(refsOf)).toEqual([
      { name: "a", vaultUrl: "https://kv2.vault.azure.net", kind: "secret" },
      { name: "b", vaultUrl: "https://kv3.vault.azure.net", kind: "secret" },
    ]);
  });

  it("writes an identifier of the pod's own vault as a plain ref (one read, one cache key)", () => {
    const r = parse({
      "akv-injector.io/secret-x": `${POD}/secrets/db`,
      "akv-injector.io/template-t": `{{ secret "${POD}/secrets/db" }}`,
    });
    expect(r.value.flatMap(refsOf)).toEqual([{ name: "db" }, { name: "db" }]);
  });

  it("needs no vault when every ref is an identifier", () => {
    const r = parse(
      {
        "akv-injector.io/secrets": "https://kv2.vault.azure.net/secrets/a",
        "akv-injector.io/template-t": '{{ secret "https://127.0.0.1:9443/secrets/b" }}',
      },
      null,
    );
    expect(r.problems).toEqual([]);
    expect(r.value).toHaveLength(2);
  });

  it("without vault, says which ref needs it and where", () => {
    const r = parse(
      {
        "akv-injector.io/secrets": "https://kv2.vault.azure.net/secrets/a",
        "akv-injector.io/template-t":
          '{{ secret "https://kv2.vault.azure.net/secrets/b" }}{{ secret "c" }}',
      },
      null,
    );
    expect(r.problems).toEqual([
      "akv-injector.io/vault: is required for 'c' in akv-injector.io/template-t: a vault name like myvault or an https:// vault URL (or write that ref as an object identifier https://<vault>/secrets/<name>)",
    ]);
  });

  it("refuses two refs that give one file, naming both", () => {
    const r = parse({
      "akv-injector.io/secrets": "db,https://kv2.vault.azure.net/secrets/db",
    });
    expect(r.problems).toEqual([
      `akv-injector.io/secrets: file "db" is written by both 'db' and 'https://kv2.vault.azure.net/secrets/db' (got "db,https://kv2.vault.azure.net/secrets/db")`,
    ]);
  });

  it.each([
    [
      "a host outside the allowed suffixes",
      "https://evil.example.com/secrets/a",
      "a vault host under one of the allowed suffixes: .vault.azure.net, 127.0.0.1:9443 in the object identifier",
    ],
    ["a port the rule does not allow", "https://127.0.0.1:9444/secrets/a", "allowed suffixes"],
    [
      "a query string",
      "https://kv2.vault.azure.net/secrets/a?api-version=7.4",
      "no query string or fragment",
    ],
    ["a fragment", "https://kv2.vault.azure.net/secrets/a#x", "no query string or fragment"],
    [
      "an extra segment",
      `https://kv2.vault.azure.net/secrets/a/${VERSION}/x`,
      "nothing after the version",
    ],
    ["a trailing slash", "https://kv2.vault.azure.net/secrets/a/", "nothing after the version"],
    ["another collection", "https://kv2.vault.azure.net/storage/a", "a collection of"],
    ["http", "http://kv2.vault.azure.net/secrets/a", "https://, not http://"],
    [
      "credentials",
      "https://u:p@kv2.vault.azure.net/secrets/a",
      "an object identifier https://<vault-host>",
    ],
    ["a bad version", "https://kv2.vault.azure.net/secrets/a/123", "32 hex digits"],
  ])("refuses %s, naming the key and the value", (_case, ref, expected) => {
    const r = parse({ "akv-injector.io/secret-f": ref });
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toContain("akv-injector.io/secret-f: expected ");
    expect(r.problems[0]).toContain(expected);
    expect(r.problems[0]).toContain(`(got "${ref}")`);
  });

  it("reads certificates and keys as files, with their kind; an identifier of the pod's vault keeps its kind", () => {
    const r = parse({
      "akv-injector.io/secrets": `https://kv2.vault.azure.net/certificates/web,${POD}/keys/signing`,
      "akv-injector.io/secret-ca.crt": `https://kv2.vault.azure.net/certificates/ca/${VERSION}`,
      "akv-injector.io/format-web": "raw",
    });
    expect(r.problems).toEqual([]);
    expect(r.value.map((f) => [f.file, f.format, refsOf(f)])).toEqual([
      [
        "web",
        "raw",
        [{ name: "web", vaultUrl: "https://kv2.vault.azure.net", kind: "certificate" }],
      ],
      ["signing", "raw", [{ name: "signing", vaultUrl: POD, kind: "key" }]],
      [
        "ca.crt",
        "raw",
        [
          {
            name: "ca",
            version: VERSION,
            vaultUrl: "https://kv2.vault.azure.net",
            kind: "certificate",
          },
        ],
      ],
    ]);
  });

  it.each(["pem", "cert", "key", "base64-decode"])(
    "refuses format %s for a certificate or key, saying what applies",
    (format) => {
      const r = parse({
        "akv-injector.io/secret-web.crt": "https://kv2.vault.azure.net/certificates/web",
        "akv-injector.io/format-web.crt": format,
      });
      expect(r.problems).toEqual([
        `akv-injector.io/format-web.crt: expected raw for a certificate identifier: it is written as PEM (a certificate's leaf, a key's public part); for a certificate's chain or private key, name its secret (https://<vault>/secrets/<name>) with format cert, pem or key (got "${format}")`,
      ]);
    },
  );

  it("refuses a certificate or key in a template, saying where it goes", () => {
    const r = parse({
      "akv-injector.io/template-t": 'x={{ secret "https://kv2.vault.azure.net/keys/k" }}',
    });
    expect(r.problems).toEqual([
      `akv-injector.io/template-t: expected a secret in '{{ secret "https://kv2.vault.azure.net/keys/k" }}': a certificate or key is written whole to a file of its own (secrets or secret-<file>), not into a template`,
    ]);
  });
});
