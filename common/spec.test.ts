import { describe, expect, it } from "vitest";
import { isAkvError } from "./errors.ts";
import { encodeSpec, listSecretRefs, parseSpec, SpecError, type SyncSpec } from "./spec.ts";

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
});
