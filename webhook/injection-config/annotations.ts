/**
 * The pod's `akv-injector.io/*` annotation keys, sorted by kind. Why: the
 * per-file keys (`secret-<file>`, `template-<file>`, `format-<file>`) are
 * sorted so the spec, and so the patch, do not depend on the order of a JSON
 * map; and a key under the prefix that is not ours is refused, since it is
 * most often a typo (`secert-x`) that would otherwise be silently ignored.
 * Keys outside the prefix are not ours to judge.
 */
import {
  Annotation,
  ContainerAnnotationPrefix,
  FileAnnotationPrefix,
  INJECT_LABEL,
  PREFIX,
} from "../../common/names.ts";
import type { ProblemList } from "../../common/problems.ts";

/** The per-file annotation keys of a pod, each list sorted. */
export interface FileAnnotationKeys {
  /** `akv-injector.io/secret-<file>` keys. */
  readonly secret: readonly string[];
  /** `akv-injector.io/template-<file>` keys. */
  readonly template: readonly string[];
  /** `akv-injector.io/format-<file>` keys. */
  readonly format: readonly string[];
}

/** Every fixed annotation key, for "unknown annotation" messages. */
const FIXED_KEYS: ReadonlySet<string> = new Set(Object.values(Annotation));
/** The families in one brace group each (`akv-injector.io/{secret,template,format}-<file>`): a refusal item holds 500 characters. */
const family = (prefixes: readonly string[], what: string): string =>
  prefixes.length === 1
    ? `${prefixes[0] ?? ""}${what}`
    : `${PREFIX}{${prefixes.map((p) => p.slice(PREFIX.length, -1)).join(",")}}-${what}`;
const KNOWN_KEYS = `${[...FIXED_KEYS].join(", ")}, and ${family(Object.values(FileAnnotationPrefix), "<file>")}, ${family(Object.values(ContainerAnnotationPrefix), "<container>")}`;

/**
 * Sorts the per-file keys by kind and refuses unknown keys under the prefix
 * (`notify-<container>` keys are read by `notify.ts`);
 * the list of known keys is given once, however many keys are unknown.
 * @example sortAnnotationKeys({ "akv-injector.io/secret-b": "x", "akv-injector.io/secret-a": "y" }, problems).secret // ["akv-injector.io/secret-a", "akv-injector.io/secret-b"]
 */
export function sortAnnotationKeys(
  annotations: Readonly<Record<string, string>>,
  problems: ProblemList,
): FileAnnotationKeys {
  const secret: string[] = [];
  const template: string[] = [];
  const format: string[] = [];
  let unknown = 0;
  // Only our keys are sorted: a pod carries many others (kubectl, Helm, meshes).
  const ours = Object.keys(annotations).filter((key) => key.startsWith(PREFIX));
  for (const key of ours.sort()) {
    if (key.startsWith(FileAnnotationPrefix.secret)) secret.push(key);
    else if (key.startsWith(FileAnnotationPrefix.template)) template.push(key);
    else if (key.startsWith(FileAnnotationPrefix.format)) format.push(key);
    else if (key.startsWith(ContainerAnnotationPrefix.notify)) continue;
    else if (!FIXED_KEYS.has(key)) {
      const hint =
        key === INJECT_LABEL
          ? ` (${INJECT_LABEL} is a pod label, not an annotation)`
          : unknown === 0
            ? ` (known: ${KNOWN_KEYS})`
            : "";
      unknown++;
      problems.addFor(key, `unknown annotation${hint}`);
    }
  }
  return { secret, template, format };
}

/**
 * The items of a comma-separated annotation value, trimmed, empty ones dropped.
 * @example splitList(" a, ,b ") // ["a", "b"]
 */
export function splitList(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}
