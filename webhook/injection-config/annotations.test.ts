import { describe, expect, it } from "vitest";
import { collectProblems } from "../../testing/webhook.ts";
import { sortAnnotationKeys, splitList, type FileAnnotationKeys } from "./annotations.ts";

const KNOWN =
  "known: akv-injector.io/vault, akv-injector.io/secrets, akv-injector.io/mount-path, akv-injector.io/containers, akv-injector.io/mode, akv-injector.io/refresh-interval, akv-injector.io/file-mode, akv-injector.io/client-id, akv-injector.io/metrics-port, akv-injector.io/status, and akv-injector.io/{secret,template,format}-<file>, akv-injector.io/notify-<container>";
const none: FileAnnotationKeys = { secret: [], template: [], format: [] };
const long = `akv-injector.io/${"x".repeat(200)}`;

describe("sortAnnotationKeys", () => {
  // [case, annotation keys, the sorted per-file keys, the problems]
  it.each<[string, string[], FileAnnotationKeys, string[]]>([
    ["no annotations", [], none, []],
    ["keys outside the prefix", ["example.com/x", "akv-injector.io.evil/y"], none, []],
    [
      "the fixed keys, status included",
      ["akv-injector.io/vault", "akv-injector.io/secrets", "akv-injector.io/status"],
      none,
      [],
    ],
    [
      "per-file keys, each kind sorted",
      [
        "akv-injector.io/secret-b",
        "akv-injector.io/format-b",
        "akv-injector.io/template-t",
        "akv-injector.io/secret-a",
        "akv-injector.io/format-a",
      ],
      {
        secret: ["akv-injector.io/secret-a", "akv-injector.io/secret-b"],
        template: ["akv-injector.io/template-t"],
        format: ["akv-injector.io/format-a", "akv-injector.io/format-b"],
      },
      [],
    ],
    [
      "a per-file key with a bad file name (files.ts judges it)",
      ["akv-injector.io/secret-../x"],
      { ...none, secret: ["akv-injector.io/secret-../x"] },
      [],
    ],
    [
      "an unknown key, with the known ones",
      ["akv-injector.io/secert-x"],
      none,
      [`akv-injector.io/secert-x: unknown annotation (${KNOWN})`],
    ],
    [
      "two unknown keys: the known ones listed once, in key order",
      ["akv-injector.io/zz", "akv-injector.io/aa"],
      none,
      [
        `akv-injector.io/aa: unknown annotation (${KNOWN})`,
        "akv-injector.io/zz: unknown annotation",
      ],
    ],
    [
      "the inject label given as an annotation",
      ["akv-injector.io/inject"],
      none,
      [
        "akv-injector.io/inject: unknown annotation (akv-injector.io/inject is a pod label, not an annotation)",
      ],
    ],
    [
      "a long unknown key, cut after 100 characters",
      [long],
      none,
      [`${long.slice(0, 100)}…: unknown annotation (${KNOWN})`],
    ],
  ])("%s", (_case, keys, sorted, problems) => {
    const annotations = Object.fromEntries(keys.map((k) => [k, "1"]));
    const result = collectProblems((list) => sortAnnotationKeys(annotations, list));
    expect(result.value).toEqual(sorted);
    expect(result.problems).toEqual(problems);
  });
});

describe("splitList", () => {
  it.each<[string, string[]]>([
    ["a", ["a"]],
    [" a , b ", ["a", "b"]],
    ["a,,b,", ["a", "b"]],
    [" , ", []],
    ["", []],
    ["a,a", ["a", "a"]],
  ])("%j → %j", (text, items) => {
    expect(splitList(text)).toEqual(items);
  });
});
