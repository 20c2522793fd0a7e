import { describe, expect, it } from "vitest";
import { ProblemList } from "../../common/problems.ts";
import { formatSecretRef } from "../../common/refs.ts";
import type { FileSpec } from "../../common/spec.ts";
import { collectProblems } from "../../testing/webhook.ts";
import { sortAnnotationKeys } from "./annotations.ts";
import { parseFileAnnotations } from "./files.ts";

const VERSION = "0123456789abcdef0123456789abcdef";
const POD_VAULT = {
  suffixes: [{ value: ".vault.azure.net", exactHost: false }],
  vaultUrl: "https://pod.vault.azure.net",
  vaultGiven: true,
};
const FILE_NAME = "file name must be one path segment of [A-Za-z0-9._-], not starting with '..'";
const SECRET_NAME = "expected a secret name of 1-127 characters [0-9A-Za-z-]";

/** A file in one line: `FILE FORMAT ← secret REF` or `FILE FORMAT ← template of N parts`. */
const describeFile = (spec: FileSpec): string =>
  `${spec.file} ${spec.format} ← ${
    spec.source.kind === "secret"
      ? `secret ${formatSecretRef(spec.source.ref)}`
      : `template of ${String(spec.source.parts.length)} parts`
  }`;

describe("parseFileAnnotations", () => {
  // [case, annotations, the files, the problems]
  it.each<[string, Record<string, string>, string[], string[]]>([
    // accepted
    [
      "secrets: one",
      { "akv-injector.io/secrets": "db-password" },
      ["db-password raw ← secret db-password"],
      [],
    ],
    [
      "secrets: a list with a version, trimmed",
      { "akv-injector.io/secrets": ` a , b/${VERSION.toUpperCase()} ,` },
      ["a raw ← secret a", `b raw ← secret b/${VERSION}`],
      [],
    ],
    [
      "secret-<file> and template-<file>, after secrets",
      {
        "akv-injector.io/template-app.env": 'PASS={{ secret "a" }}\n',
        "akv-injector.io/secret-tls.pem": "tls",
        "akv-injector.io/secrets": "a",
      },
      ["a raw ← secret a", "tls.pem raw ← secret tls", "app.env raw ← template of 3 parts"],
      [],
    ],
    [
      "format-<file> of a secret",
      { "akv-injector.io/secret-tls.pem": "tls", "akv-injector.io/format-tls.pem": "pem" },
      ["tls.pem pem ← secret tls"],
      [],
    ],
    [
      "format-<file> of a secret in the list",
      { "akv-injector.io/secrets": "a,b", "akv-injector.io/format-b": "base64-decode" },
      ["a raw ← secret a", "b base64-decode ← secret b"],
      [],
    ],
    [
      "format-<file> raw of a template",
      { "akv-injector.io/template-t": "x", "akv-injector.io/format-t": "raw" },
      ["t raw ← template of 1 parts"],
      [],
    ],
    // refused
    [
      "no files at all",
      {},
      [],
      [
        "akv-injector.io/secrets: at least one of akv-injector.io/secrets, akv-injector.io/secret-<file> or akv-injector.io/template-<file> is required",
      ],
    ],
    [
      "an empty secrets list",
      { "akv-injector.io/secrets": " ,, " },
      [],
      [
        'akv-injector.io/secrets: expected a comma-separated list of NAME[/VERSION] or https://<vault>/secrets/NAME[/VERSION] (got " ,, ")',
      ],
    ],
    [
      "a bad name in the list, the good ones kept",
      { "akv-injector.io/secrets": "a,under_score" },
      ["a raw ← secret a"],
      [`akv-injector.io/secrets: ${SECRET_NAME} (got "under_score")`],
    ],
    [
      "a bad version in the list",
      { "akv-injector.io/secrets": "a/123" },
      [],
      ['akv-injector.io/secrets: expected a secret version of 32 hex digits (got "a/123")'],
    ],
    [
      "a ref of three segments",
      { "akv-injector.io/secret-x": "a/b/c" },
      [],
      ['akv-injector.io/secret-x: expected a secret ref NAME or NAME/VERSION (got "a/b/c")'],
    ],
    [
      "a file named twice in the list",
      { "akv-injector.io/secrets": `a,a/${VERSION}` },
      ["a raw ← secret a"],
      [
        `akv-injector.io/secrets: file "a" is written by both 'a' and 'a/${VERSION}' (got "a,a/${VERSION}")`,
      ],
    ],
    [
      "a file of the list written again by secret-<file>",
      { "akv-injector.io/secrets": "a", "akv-injector.io/secret-a": "other" },
      ["a raw ← secret a"],
      [
        'akv-injector.io/secret-a: file "a" is also written by akv-injector.io/secrets (got "other")',
      ],
    ],
    [
      "a file of a secret written again by a template",
      { "akv-injector.io/secret-a.env": "a", "akv-injector.io/template-a.env": "x" },
      ["a.env raw ← secret a"],
      [
        'akv-injector.io/template-a.env: file "a.env" is also written by akv-injector.io/secret-a.env (got "x")',
      ],
    ],
    [
      "a bad file name and a bad ref: both said",
      { "akv-injector.io/secret-../x": "db.password" },
      [],
      [
        `akv-injector.io/secret-../x: ${FILE_NAME} (got "../x")`,
        `akv-injector.io/secret-../x: ${SECRET_NAME} (got "db.password")`,
      ],
    ],
    [
      "an empty file name",
      { "akv-injector.io/secret-": "a" },
      [],
      [`akv-injector.io/secret-: ${FILE_NAME} (got "")`],
    ],
    [
      "a file named '.'",
      { "akv-injector.io/template-.": "x" },
      [],
      [`akv-injector.io/template-.: file name must not be '.' (got ".")`],
    ],
    [
      "a template with another action, the template not shown",
      { "akv-injector.io/template-t": "X={{ .Values.x }}" },
      [],
      [
        `akv-injector.io/template-t: expected only {{ secret "NAME[/VERSION]" }} in templates, not '{{ .Values.x }}'`,
      ],
    ],
    [
      "a template with a bad ref",
      { "akv-injector.io/template-t": '{{ secret "bad_name" }}' },
      [],
      [`akv-injector.io/template-t: ${SECRET_NAME} in '{{ secret "bad_name" }}'`],
    ],
    [
      "an unknown format",
      { "akv-injector.io/secrets": "a", "akv-injector.io/format-a": "json" },
      ["a raw ← secret a"],
      ['akv-injector.io/format-a: expected one of raw, pem, cert, key, base64-decode (got "json")'],
    ],
    [
      "a format of a file nobody writes",
      { "akv-injector.io/secrets": "a", "akv-injector.io/format-b": "pem" },
      ["a raw ← secret a"],
      [
        'akv-injector.io/format-b: no file "b" is written by akv-injector.io/secrets, akv-injector.io/secret-b or akv-injector.io/template-b',
      ],
    ],
    [
      "a format of a bad file name",
      { "akv-injector.io/secrets": "a", "akv-injector.io/format-..a": "pem" },
      ["a raw ← secret a"],
      [`akv-injector.io/format-..a: ${FILE_NAME} (got "..a")`],
    ],
    [
      "a format other than raw for a template",
      { "akv-injector.io/template-t": "x", "akv-injector.io/format-t": "pem" },
      ["t raw ← template of 1 parts"],
      ['akv-injector.io/format-t: a template is always written raw (got "pem")'],
    ],
  ])("%s", (_case, annotations, files, problems) => {
    const keys = sortAnnotationKeys(annotations, new ProblemList());
    const result = collectProblems((list) =>
      parseFileAnnotations(annotations, keys, list, POD_VAULT),
    );
    expect(result.value.map(describeFile)).toEqual(files);
    expect(result.problems).toEqual(problems);
  });
});
