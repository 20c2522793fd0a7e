import { describe, expect, it } from "vitest";
import { isAkvError } from "./errors.ts";
import {
  encodeSpec,
  listSecretRefs,
  listVaults,
  parseSpec,
  SpecError,
  type SyncSpec,
} from "./spec.ts";

const spec: SyncSpec = {
  vaultUrl: "https://kv.vault.azure.net",
  mode: "sidecar",
  refreshIntervalMs: 300_000,
  fileMode: 0o644,
  outputDir: "/var/run/akv-injector/secrets",
  files: [
    { file: "db", format: "raw", source: { kind: "secret", ref: { name: "db" } } },
    {
      file: "tls.pem",
      format: "pem",
      source: { kind: "secret", ref: { name: "tls", version: "a".repeat(32) } },
    },
    {
      file: "app.conf",
      format: "raw",
      source: {
        kind: "template",
        parts: [{ text: "p=" }, { secret: { name: "db" } }, { secret: { name: "api" } }],
      },
    },
  ],
};

function problemsOf(json: string): readonly string[] {
  try {
    parseSpec(json);
  } catch (error) {
    expect(isAkvError(error, "AKV_SPEC_INVALID")).toBe(true);
    return (error as SpecError).problems;
  }
  throw new Error("expected a SpecError");
}

describe("spec", () => {
  it("round-trips through JSON and comes back frozen", () => {
    const parsed = parseSpec(encodeSpec(spec));
    expect(parsed).toEqual(spec);
    expect(Object.isFrozen(parsed.files[0]?.source)).toBe(true);
  });

  it("lists each secret once, in first-use order", () => {
    expect(listSecretRefs(spec)).toEqual([
      { name: "db" },
      { name: "tls", version: "a".repeat(32) },
      { name: "api" },
    ]);
  });

  it("refuses a refresh interval a Node timer cannot hold (it would fire after 1 ms)", () => {
    expect(parseSpec(encodeSpec({ ...spec, refreshIntervalMs: 480 * 3_600_000 })).mode).toBe(
      "sidecar",
    );
    expect(problemsOf(encodeSpec({ ...spec, refreshIntervalMs: 2 ** 31 }))).toEqual([
      "refreshIntervalMs: expected an integer from 1000 to 1728000000",
    ]);
  });

  it("names every bad field at once", () => {
    const problems = problemsOf(
      JSON.stringify({
        vaultUrl: "http://x",
        mode: "daemon",
        refreshIntervalMs: 5,
        fileMode: 0o1777,
        outputDir: "relative",
        files: [],
      }),
    );
    expect(problems.map((p) => p.split(":")[0])).toEqual([
      "vaultUrl",
      "mode",
      "refreshIntervalMs",
      "fileMode",
      "outputDir",
      "files",
    ]);
  });

  it.each([
    [
      { file: "../x", format: "raw", source: { kind: "secret", ref: { name: "a" } } },
      "files[0].file",
    ],
    [
      { file: "x", format: "yaml", source: { kind: "secret", ref: { name: "a" } } },
      "files[0].format",
    ],
    [
      { file: "x", format: "raw", source: { kind: "secret", ref: { name: "a_b" } } },
      "files[0].source.ref",
    ],
    [
      { file: "x", format: "pem", source: { kind: "template", parts: [{ text: "t" }] } },
      "files[0].format",
    ],
    [
      { file: "x", format: "raw", source: { kind: "template", parts: [{ exec: "rm" }] } },
      "files[0].source.parts",
    ],
    [{ file: "x", format: "raw", source: { kind: "shell" } }, "files[0].source"],
  ])("refuses a bad file %j", (file, path) => {
    const problems = problemsOf(encodeSpec({ ...spec, files: [file as never] }));
    expect(problems[0]?.startsWith(`${path}:`)).toBe(true);
  });

  it("refuses duplicate files and non-JSON", () => {
    const first = spec.files[0];
    if (first === undefined) throw new Error("fixture");
    expect(problemsOf(encodeSpec({ ...spec, files: [first, first] }))[0]).toContain("repeated");
    expect(problemsOf("{")[0]).toContain("not JSON");
    expect(problemsOf("[]")[0]).toContain("object");
  });

  describe("object identifiers", () => {
    const other = { name: "db", vaultUrl: "https://kv2.vault.azure.net", kind: "secret" } as const;
    const withIdentifier: SyncSpec = {
      ...spec,
      files: [
        ...spec.files,
        { file: "db2", format: "raw", source: { kind: "secret", ref: other } },
      ],
    };

    it("carries each ref's vault and kind, and lists each vault once", () => {
      const parsed = parseSpec(encodeSpec(withIdentifier));
      expect(parsed).toEqual(withIdentifier);
      expect(listSecretRefs(parsed)).toContainEqual(other);
      // The same name in two vaults: two refs.
      expect(listSecretRefs(parsed).filter((r) => r.name === "db")).toHaveLength(2);
      expect(listVaults(parsed)).toEqual([
        "https://kv.vault.azure.net",
        "https://kv2.vault.azure.net",
      ]);
    });

    it("needs no vaultUrl when every ref names its vault", () => {
      const only = {
        ...spec,
        files: [{ file: "db2", format: "raw", source: { kind: "secret", ref: other } }],
      };
      const parsed = parseSpec(JSON.stringify({ ...only, vaultUrl: undefined }));
      expect(parsed.vaultUrl).toBeUndefined();
      expect(listVaults(parsed)).toEqual(["https://kv2.vault.azure.net"]);
    });

    it("refuses a spec without vaultUrl when a ref names no vault, naming the ref", () => {
      // JSON.stringify leaves an undefined field out.
      expect(problemsOf(JSON.stringify({ ...withIdentifier, vaultUrl: undefined }))).toEqual([
        "vaultUrl: expected https://host: ref 'db' names no vault of its own",
      ]);
    });

    it.each([
      [{ ...other, vaultUrl: "http://kv2.vault.azure.net" }],
      [{ ...other, vaultUrl: "https://kv2.vault.azure.net/secrets" }],
      [{ ...other, vaultUrl: "https://KV2.vault.azure.net" }],
      [{ ...other, kind: "blob" }],
    ])("refuses a bad ref %j", (ref) => {
      const bad = {
        ...spec,
        files: [{ file: "x", format: "raw", source: { kind: "secret", ref } }],
      };
      expect(problemsOf(JSON.stringify(bad))[0]).toContain(
        "files[0].source.ref: expected { name, version?, vaultUrl?, kind? (secret",
      );
    });
  });

  it("carries certificates and keys as raw files only, never in templates", () => {
    const cert = { name: "web", vaultUrl: "https://kv2.vault.azure.net", kind: "certificate" };
    const ok = {
      ...spec,
      files: [{ file: "w", format: "raw", source: { kind: "secret", ref: cert } }],
    };
    expect(parseSpec(JSON.stringify(ok)).files[0]?.source).toEqual({ kind: "secret", ref: cert });
    const pem = {
      ...spec,
      files: [{ file: "w", format: "pem", source: { kind: "secret", ref: cert } }],
    };
    expect(problemsOf(JSON.stringify(pem))).toEqual([
      "files[0].format: expected raw for a certificate (written as PEM)",
    ]);
    const template = {
      ...spec,
      files: [
        { file: "t", format: "raw", source: { kind: "template", parts: [{ secret: cert }] } },
      ],
    };
    expect(problemsOf(JSON.stringify(template))[0]).toContain("files[0].source.parts");
  });
});
