/**
 * The kind path needs Docker (`e2e/kind/run.sh`, which CI runs), so it is
 * also kept honest by what runs without it: shellcheck on every script (in
 * e2e/kind and its subfolders), the names the scripts use equal to the ones
 * the checks use, and every file the mocks' Dockerfile copies present and let
 * through by its own .dockerignore. (`e2e/kind.e2e.test.ts` applies its
 * manifests and values to the real apiserver and starts the mocks with its
 * arguments.)
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Kind } from "./setup.ts";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "../..");
const scripts = [
  ...readdirSync(here, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".sh") && !f.startsWith("out/"))
    .sort()
    .map((f) => join(here, f)),
  join(root, "e2e/cluster/build.sh"),
];
const shellcheck = spawnSync("shellcheck", ["--version"], { encoding: "utf8" });
const hasShellcheck = shellcheck.status === 0;

describe("kind scripts", () => {
  it("pass shellcheck", (context) => {
    if (!hasShellcheck) {
      if (process.env.CI === "true") throw new Error("CI=true, but shellcheck is not installed");
      context.skip(
        "shellcheck is not installed (apt-get install shellcheck): the scripts were NOT linted",
      );
    }
    const run = spawnSync("shellcheck", ["--external-sources", ...scripts], {
      encoding: "utf8",
      cwd: root,
    });
    expect(run.stdout + run.stderr).toBe("");
    expect(run.status).toBe(0);
  });

  it("include the ones in subfolders", () => {
    const names = scripts.map((s) => relative(here, s));
    for (const name of ["up.sh", "base/images.sh", "node/build.sh", "host/docker.sh"]) {
      expect(names).toContain(name);
    }
  });

  it("are executable and strict", () => {
    for (const script of scripts) {
      const text = readFileSync(script, "utf8");
      expect(text.startsWith("#!/usr/bin/env bash\n"), script).toBe(true);
      if (!script.endsWith("lib.sh")) expect(text, script).toContain("set -euo pipefail");
    }
  });

  it("use the names the checks use", () => {
    const lib = readFileSync(join(here, "lib.sh"), "utf8");
    const value = (name: string): string | undefined =>
      new RegExp(`^${name}="(?:\\$\\{[A-Z_]+:-)?([^"}]+)\\}?"`, "m").exec(lib)?.[1];
    expect(value("CLUSTER")).toBe(Kind.cluster);
    expect(value("MOCKS_NAMESPACE")).toBe(Kind.mocksNamespace);
    expect(value("RELEASE")).toBe(Kind.release);
    expect(value("RELEASE_NAMESPACE")).toBe(Kind.releaseNamespace);
    const ref = (i: { repository: string; tag: string }): string => `${i.repository}:${i.tag}`;
    expect(value("WEBHOOK_IMAGE")).toBe(ref(Kind.images.webhook));
    expect(value("SIDECAR_IMAGE")).toBe(ref(Kind.images.sidecar));
    expect(value("MOCKS_IMAGE")).toBe(ref(Kind.images.mocks));
    expect(value("APP_IMAGE")).toBe(Kind.appImage);
  });

  it("build images from files that exist", () => {
    for (const dockerfile of [
      join(here, "Dockerfile.mocks"),
      join(root, "Dockerfile.webhook"),
      join(root, "Dockerfile.sidecar"),
    ]) {
      expect(existsSync(dockerfile), dockerfile).toBe(true);
    }
    const text = readFileSync(join(here, "Dockerfile.mocks"), "utf8");
    const sources = [...text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) =>
      (m[1] ?? "").split(/\s+/),
    );
    expect(sources.length).toBeGreaterThan(3);
    for (const source of sources) expect(existsSync(join(root, source)), source).toBe(true);
    expect(text).toContain("mocks/main.ts");
    // The root .dockerignore is the product images' allow-list; BuildKit
    // reads Dockerfile.mocks.dockerignore instead for this one.
    const allowed = readFileSync(join(here, "Dockerfile.mocks.dockerignore"), "utf8")
      .split("\n")
      .filter((line) => line.startsWith("!"))
      .map((line) => line.slice(1));
    for (const source of sources) expect(allowed, source).toContain(source);
  });
});
