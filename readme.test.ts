/**
 * The README's tables are the user's reference; this keeps them in step with
 * the names table that the code uses, so neither drifts from the other.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  Annotation,
  ContainerAnnotationPrefix,
  FileAnnotationPrefix,
  ServiceAccountAnnotation,
  SidecarEnv,
  WebhookEnv,
} from "./common/names.ts";

const readme = readFileSync(new URL("README.md", import.meta.url), "utf8");

/** First-column keys of the markdown table that follows a line containing `heading`. */
function tableKeys(heading: string): string[] {
  const start = readme.indexOf(heading);
  expect(start, `README has "${heading}"`).toBeGreaterThanOrEqual(0);
  const lines = readme.slice(start).split("\n");
  const first = lines.findIndex((l) => l.startsWith("|"));
  const keys: string[] = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith("|")) break;
    const cell = /^\|\s*`([^`]+)`/.exec(line);
    if (cell?.[1] !== undefined) keys.push(cell[1]);
  }
  return keys;
}

describe("README", () => {
  it("lists every pod annotation, and only those", () => {
    const expected = [
      ...Object.values(Annotation),
      ...Object.values(FileAnnotationPrefix).map((p) => `${p}<file>`),
      ...Object.values(ContainerAnnotationPrefix).map((p) => `${p}<container>`),
    ];
    expect(tableKeys("Pod annotations:").sort()).toEqual([...new Set(expected)].sort());
  });

  it("lists every service-account annotation", () => {
    expect(tableKeys("Service-account").sort()).toEqual(
      Object.values(ServiceAccountAnnotation).sort(),
    );
  });

  it("lists every webhook setting", () => {
    expect(tableKeys("The webhook is configured by environment").sort()).toEqual(
      [...new Set(Object.values(WebhookEnv))].sort(),
    );
  });

  it("lists every variable of the sidecar", () => {
    expect(tableKeys("The sidecar gets, from the webhook").sort()).toEqual(
      Object.values(SidecarEnv).sort(),
    );
  });

  it("names the test command that CI runs", () => {
    const ci = readFileSync(new URL(".ci/run", import.meta.url), "utf8");
    const command = /^npm run \S+$/m.exec(ci)?.[0];
    expect(command).toBeDefined();
    expect(readme).toContain(`npm ci && ${command ?? ""}`);
  });
});
