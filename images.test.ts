// The two Dockerfiles, checked without a Docker engine: parsed with
// dockerfile-ast, every COPY source must be in the build context (present and
// not dropped by .dockerignore), every source file the bundles are built from
// must reach the build stage, and the final stage must be the distroless
// Node image with our one bundle, a numeric non-root user, no npm, and the
// entrypoint the webhook's injected spec relies on. The sidecar's final stage
// also fills Node's compile cache with one exec-form RUN, which is run here
// against a fresh build of the bundle.
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { Copy, DockerfileParser, From, type Instruction } from "dockerfile-ast";
import { build as esbuild } from "esbuild";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { Injected } from "./common/names.ts";
import { BUNDLE_CHUNK_DIRS, BUNDLE_ENTRIES, type BundleBin } from "./scripts/bundles.ts";
import { sidecarBuildOptions } from "./scripts/sidecar-bundle.ts";
import { webhookBuildOptions } from "./scripts/webhook-bundle.ts";

const ROOT = dirname(fileURLToPath(import.meta.url));
const UID = "65532";
/** Dockerfile.webhook's ENTRYPOINT: the image's Node, its V8 flags, the bundle. */
const WEBHOOK_ENTRYPOINT = [
  "/nodejs/bin/node",
  "--expose-gc",
  "--max-semi-space-size=4",
  "--no-maglev",
  "/app/webhook.mjs",
] as const;

interface Stage {
  readonly from: From;
  readonly image: string;
  readonly name: string | undefined;
  readonly instructions: readonly Instruction[];
}

/** Splits a Dockerfile into its stages, each from its FROM to the next. */
function readStages(file: string): Stage[] {
  const dockerfile = DockerfileParser.parse(readFileSync(join(ROOT, file), "utf8"));
  const stages: { from: From; instructions: Instruction[] }[] = [];
  for (const instruction of dockerfile.getInstructions()) {
    if (instruction instanceof From) stages.push({ from: instruction, instructions: [] });
    else stages.at(-1)?.instructions.push(instruction);
  }
  return stages.map(({ from, instructions }) => {
    const args = from.getArguments().map((a) => a.getValue());
    const asIndex = args.findIndex((a) => a.toUpperCase() === "AS");
    return {
      from,
      image: args[0] ?? "",
      name: asIndex === -1 ? undefined : args[asIndex + 1],
      instructions,
    };
  });
}

/** A COPY's flags, sources and destination. */
function readCopy(instruction: Instruction): {
  from: string | undefined;
  sources: string[];
  dest: string;
} {
  if (!(instruction instanceof Copy)) throw new Error(`not a COPY: ${instruction.getKeyword()}`);
  const from = instruction.getFromFlag()?.getValue() ?? undefined;
  // The parser leaves flags out of the arguments.
  const paths = instruction.getArguments().map((a) => a.getValue());
  return { from, sources: paths.slice(0, -1), dest: paths.at(-1) ?? "" };
}

function jsonArgs(instruction: Instruction): string[] {
  const raw = instruction.getArgumentsContent() ?? "";
  const parsed: unknown = JSON.parse(raw);
  expect(Array.isArray(parsed), `${instruction.getKeyword()} must use the JSON (exec) form`).toBe(
    true,
  );
  return parsed as string[];
}

/**
 * .dockerignore as the Docker builder reads it (moby/patternmatcher): patterns
 * in order, the last one that matches a path or one of its parents wins, `!`
 * re-includes; `*` and `?` stay within a path segment, `**` crosses them.
 */
function readDockerignore(): (path: string) => boolean {
  const patterns = readFileSync(join(ROOT, ".dockerignore"), "utf8")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const negated = line.startsWith("!");
      const clean = posix.normalize(negated ? line.slice(1) : line).replace(/^\/+|\/+$/g, "");
      let source = "";
      for (let i = 0; i < clean.length; i++) {
        const c = clean.charAt(i);
        if (c === "*" && clean.charAt(i + 1) === "*") {
          const slash = clean.charAt(i + 2) === "/";
          source += slash ? "(?:.*/)?" : ".*";
          i += slash ? 2 : 1;
        } else if (c === "*") source += "[^/]*";
        else if (c === "?") source += "[^/]";
        else source += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
      }
      return { negated, regex: new RegExp(`^${source}$`) };
    });
  return (path: string) => {
    const parents: string[] = [];
    for (let p = path; p !== "." && p !== ""; p = posix.dirname(p)) parents.push(p);
    let excluded = false;
    for (const { negated, regex } of patterns) {
      if (parents.some((p) => regex.test(p))) excluded = !negated;
    }
    return excluded;
  };
}

function listFiles(path: string): string[] {
  const full = join(ROOT, path);
  if (!statSync(full).isDirectory()) return [path];
  return readdirSync(full).flatMap((name) =>
    name === "node_modules" ? [] : listFiles(posix.join(path, name)),
  );
}

/** Every repository file a bundle is built from: the entry and its relative imports, transitively. */
function sourcesOf(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    expect(existsSync(join(ROOT, file)), `${file} (imported by the build)`).toBe(true);
    seen.add(file);
    const text = readFileSync(join(ROOT, file), "utf8");
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)) {
      const target = match[1];
      if (target !== undefined) visit(posix.normalize(posix.join(posix.dirname(file), target)));
    }
  };
  visit(entry);
  return seen;
}

const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  bin: Record<string, string>;
  engines: { node: string };
};
/** bin name → entry, as scripts/build.ts bundles them. */
const buildEntries: Readonly<Record<string, string>> = BUNDLE_ENTRIES;
const isIgnored = readDockerignore();

describe.each([
  {
    kind: "webhook",
    bin: "akv-injector-webhook",
    entrypoint: [...WEBHOOK_ENTRYPOINT],
  },
  { kind: "sidecar", bin: "akv-injector-sidecar", entrypoint: [...Injected.sidecarEntrypoint] },
])("Dockerfile.$kind", ({ kind, bin, entrypoint }) => {
  const stages = readStages(`Dockerfile.${kind}`);
  const [build, final] = stages;

  it("has a Node 24 build stage and a distroless Node 24 final stage", () => {
    expect(stages).toHaveLength(2);
    expect(build?.name).toBe("build");
    expect(build?.image).toMatch(/^node:24-bookworm-slim$/);
    expect(pkg.engines.node).toBe(">=24");
    // Built once on the builder's platform: the bundle is platform-independent JavaScript.
    expect(build?.from.getPlatformFlag()?.getValue()).toBe("$BUILDPLATFORM");
    expect(final?.from.getPlatformFlag()).toBeNull();
    expect(final?.image).toBe("gcr.io/distroless/nodejs24-debian12:nonroot");
  });

  it("installs from the lock file, then runs the project's build", () => {
    const runs = (build?.instructions ?? [])
      .filter((i) => i.getKeyword() === "RUN")
      .map((i) => i.getArgumentsContent() ?? "");
    expect(runs).toEqual([expect.stringMatching(/^npm ci\b/), "npm run build"]);
    const copiesBeforeCi = (build?.instructions ?? []).slice(
      0,
      build?.instructions.findIndex((i) => i.getKeyword() === "RUN"),
    );
    // Only the manifests before `npm ci`, so source edits do not reinstall.
    expect(
      copiesBeforeCi.filter((i) => i.getKeyword() === "COPY").map((i) => readCopy(i).sources),
    ).toEqual([["package.json", "package-lock.json"]]);
  });

  it("copies only sources that exist and that .dockerignore lets through", () => {
    for (const copy of (build?.instructions ?? []).filter((i) => i.getKeyword() === "COPY")) {
      const { from, sources } = readCopy(copy);
      expect(from).toBeUndefined();
      for (const source of sources) {
        const path = source.replace(/\/$/, "");
        expect(existsSync(join(ROOT, path)), `COPY ${source}`).toBe(true);
        const sent = listFiles(path).filter((f) => !isIgnored(f));
        expect(sent.length, `COPY ${source} sends nothing past .dockerignore`).toBeGreaterThan(0);
      }
    }
  });

  it("gives the build stage every file the bundles are built from, and no tests", () => {
    const copied = (build?.instructions ?? [])
      .filter((i) => i.getKeyword() === "COPY")
      .flatMap((i) => readCopy(i).sources.map((s) => s.replace(/\/$/, "")));
    const inContext = (file: string): boolean =>
      !isIgnored(file) && copied.some((c) => file === c || file.startsWith(`${c}/`));
    expect(Object.keys(buildEntries).sort()).toEqual(Object.keys(pkg.bin).sort());
    const files = new Set([
      ...sourcesOf("scripts/build.ts"),
      ...Object.values(buildEntries).flatMap((e) => [...sourcesOf(e)]),
    ]);
    expect(files).toContain("common/names.ts");
    for (const file of files) expect(inContext(file), `${file} reaches the build stage`).toBe(true);
    expect(isIgnored("webhook/self-managed-certs.test.ts")).toBe(true);
    for (const heavy of [
      "node_modules/yaml/package.json",
      "dist/webhook.mjs",
      ".cache/bin/helm",
      ".git/HEAD",
      "e2e/cluster/build.sh",
    ]) {
      expect(isIgnored(heavy), heavy).toBe(true);
    }
  });

  it("copies the bundle that `npm run build` makes for its bin, with its chunks", () => {
    const copies = (final?.instructions ?? [])
      .filter((i) => i.getKeyword() === "COPY")
      .map(readCopy);
    const workdir =
      build?.instructions.find((i) => i.getKeyword() === "WORKDIR")?.getArgumentsContent() ?? "";
    expect(pkg.bin[bin]).toBe(`dist/${kind}.mjs`);
    expect(existsSync(join(ROOT, buildEntries[bin] ?? "missing"))).toBe(true);
    const entry = entrypoint.find((w) => w.endsWith(".mjs")) ?? "";
    const app = posix.dirname(entry);
    expect(copies).toEqual([
      { from: "build", sources: [posix.join(workdir, pkg.bin[bin] ?? "")], dest: entry },
      ...BUNDLE_CHUNK_DIRS[bin as BundleBin].map((dir) => ({
        from: "build",
        sources: [`${posix.join(workdir, "dist", dir)}/`],
        dest: `${posix.join(app, dir)}/`,
      })),
    ]);
    // After a build (the e2e suite runs one), the file is really there.
    if (existsSync(join(ROOT, "dist"))) {
      const built = join(ROOT, pkg.bin[bin] ?? "");
      if (existsSync(built)) expect(statSync(built).size).toBeGreaterThan(0);
    }
  });

  it("runs as numeric non-root user 65532 with no npm, shell or package manager", () => {
    const instructions = final?.instructions ?? [];
    const keywords = instructions.map((i) => i.getKeyword());
    // The sidecar's one RUN (and its NODE_OPTIONS) is checked below.
    const extra = kind === "sidecar" ? ["ENV", "RUN"] : ["RUN"];
    expect(
      keywords.filter((k) => !["COPY", "USER", "EXPOSE", "ENTRYPOINT", "LABEL"].includes(k)),
    ).toEqual(extra);
    const users = instructions.filter((i) => i.getKeyword() === "USER");
    // Root only around the RUN that fills the compile cache; the image runs as 65532.
    expect(users.map((u) => u.getArgumentsContent())).toEqual(["0:0", `${UID}:${UID}`]);
    expect(keywords.slice(keywords.indexOf("USER"), keywords.lastIndexOf("USER") + 1)).toEqual([
      "USER",
      "RUN",
      "USER",
    ]);
    expect(keywords.lastIndexOf("USER")).toBeLessThan(keywords.indexOf("ENTRYPOINT"));
    const text = (final?.instructions ?? []).map((i) => i.getArgumentsContent() ?? "").join("\n");
    expect(text).not.toMatch(/\bnpm\b|node_modules|\/bin\/sh|bash/);
    // The chart's default runAsUser (pod and container) agrees with the image.
    const values = parse(readFileSync(join(ROOT, "charts/akv-injector/values.yaml"), "utf8")) as {
      webhook: Record<"podSecurityContext" | "securityContext", { runAsUser: number }>;
    };
    expect(values.webhook.podSecurityContext.runAsUser).toBe(Number(UID));
    expect(values.webhook.securityContext.runAsUser).toBe(Number(UID));
  });

  it("starts with the exec-form entrypoint the injected spec uses", () => {
    const entrypoints = (final?.instructions ?? []).filter((i) => i.getKeyword() === "ENTRYPOINT");
    expect(entrypoints).toHaveLength(1);
    expect(jsonArgs(entrypoints[0] as Instruction)).toEqual(entrypoint);
    expect(entrypoint[0]).toBe("/nodejs/bin/node");
    // Node, its flags (if any), then the bundle and nothing else.
    expect(entrypoint.at(-1)).toMatch(/^\/app\/[a-z]+\.mjs$/);
    for (const word of entrypoint.slice(1, -1)) expect(word).toMatch(/^--[a-z-]+(=\S+)?$/);
  });
});

describe.each([
  {
    kind: "sidecar",
    entrypoint: [...Injected.sidecarEntrypoint],
    // `run` without configuration loads the chunks and exits 2.
    args: ["run"],
    status: 2,
    nodeOptions: true,
    bundle: (app: string) => sidecarBuildOptions(app, join(ROOT, "sidecar/main.ts")),
  },
  {
    kind: "webhook",
    entrypoint: [...WEBHOOK_ENTRYPOINT],
    // A start without settings loads the process (main.ts) and exits 1.
    args: [],
    status: 1,
    nodeOptions: false,
    bundle: (app: string) => webhookBuildOptions(app, join(ROOT, "webhook/entry.ts")),
  },
])("Dockerfile.$kind compile cache", ({ kind, entrypoint, args, status, nodeOptions, bundle }) => {
  const final = readStages(`Dockerfile.${kind}`)[1];
  const instructions = final?.instructions ?? [];
  const entry = entrypoint.at(-1) ?? "";
  const flags = entrypoint.slice(1, -1);
  const cacheDir = posix.join(posix.dirname(entry), `${kind}-cache`);
  const env = instructions.filter((i) => i.getKeyword() === "ENV");
  const runs = instructions.filter((i) => i.getKeyword() === "RUN");

  it("sets at most NODE_OPTIONS, V8 flags, before the RUN that fills the cache", () => {
    if (!nodeOptions) {
      // The flags are the entrypoint's, and the RUN passes them too.
      expect(env).toEqual([]);
      return;
    }
    expect(env.map((e) => e.getArgumentsContent())).toEqual([
      expect.stringMatching(/^NODE_OPTIONS="--max-semi-space-size=\d+ --jitless"$/),
    ]);
    // V8 keys a code cache by its flags: the cache is written under the runtime's.
    expect(instructions.indexOf(env[0] as Instruction)).toBeLessThan(
      instructions.indexOf(runs[0] as Instruction),
    );
  });

  it("has exactly one RUN: exec form, the image's own Node, after the bundle is copied", () => {
    expect(runs).toHaveLength(1);
    const argv = jsonArgs(runs[0] as Instruction);
    expect(argv.slice(0, 2)).toEqual(["/nodejs/bin/node", "-e"]);
    expect(argv).toHaveLength(3);
    const code = argv[2] ?? "";
    expect(code).toContain(`'${cacheDir}'`);
    expect(code).toContain(`[${[...flags, entry, ...args].map((a) => `'${a}'`).join(",")}]`);
    // Written as the user that reads it: Node's cache directory is per uid.
    expect(code).toContain(`u=${UID}`);
    const lastCopy = instructions.findLastIndex((i) => i.getKeyword() === "COPY");
    expect(instructions.indexOf(runs[0] as Instruction)).toBeGreaterThan(lastCopy);
  });

  it("fills a cache that the image's user reads, read-only, as the image build would", async () => {
    const argv = jsonArgs(runs[0] as Instruction);
    const options = /^NODE_OPTIONS="(.*)"$/.exec(env[0]?.getArgumentsContent() ?? "")?.[1];
    const root = mkdtempSync(join(tmpdir(), "akv-image-"));
    try {
      chmodSync(root, 0o755);
      // The image's own Node at its own path: the checkout's copy may sit
      // below a folder that user 65532 cannot enter (a CI clone's temp dir).
      const node = join(root, "nodejs/bin/node");
      mkdirSync(dirname(node), { recursive: true });
      copyFileSync(process.execPath, node);
      const app = join(root, "app");
      await esbuild({ ...bundle(app), logLevel: "error" });
      const code = (argv[2] ?? "").replaceAll(`'${posix.dirname(entry)}/`, `'${app}/`);
      const asRoot = process.getuid?.() === 0;
      // Not root (a developer's machine): the uid switch and chown are the image build's.
      const runnable = asRoot
        ? code
        : code
            .replace(/u=\d+;/, `u=${String(process.getuid?.())};`)
            .replace(/fs\.chownSync\(([^,]+),0,0\);/, "");
      const nodeEnv = options === undefined ? {} : { NODE_OPTIONS: options };
      const filled = spawnSync(node, ["-e", runnable], {
        env: { PATH: process.env.PATH ?? "", ...nodeEnv },
        encoding: "utf8",
      });
      expect(filled.stderr).toBe("");
      expect(filled.status).toBe(0);
      const cache = join(app, `${kind}-cache`);
      const entries = readdirSync(cache, { recursive: true, withFileTypes: true });
      const uidDirs = readdirSync(cache);
      expect(uidDirs).toEqual([expect.stringMatching(asRoot ? new RegExp(`-${UID}$`) : /-\d+$/)]);
      expect(entries.filter((e) => e.isFile()).length).toBeGreaterThan(0);
      for (const e of entries) {
        const info = statSync(join(e.parentPath, e.name));
        expect(info.mode & 0o777).toBe(e.isDirectory() ? 0o555 : 0o444);
        if (asRoot) expect(info.uid).toBe(0);
      }
      expect(statSync(cache).mode & 0o777).toBe(0o555);
      if (asRoot) {
        // The container: user 65532, the image's flags; every chunk's cache accepted.
        const log = spawnSync(
          "setpriv",
          [
            `--reuid=${UID}`,
            `--regid=${UID}`,
            "--clear-groups",
            node,
            ...flags,
            join(app, posix.basename(entry)),
            ...args,
          ],
          {
            env: {
              PATH: process.env.PATH ?? "",
              ...nodeEnv,
              NODE_DEBUG_NATIVE: "COMPILE_CACHE",
            },
            encoding: "utf8",
          },
        );
        if (log.error === undefined) {
          expect(log.status).toBe(status);
          const accepted = log.stderr.match(/V8 code cache for ESM \S+ was accepted/g) ?? [];
          expect(accepted.length).toBe(entries.filter((e) => e.isFile()).length);
          expect(log.stderr).not.toMatch(/was rejected|permission denied/);
        }
      }
    } finally {
      execFileSync("chmod", ["-R", "u+w", root]);
      rmSync(root, { recursive: true, force: true });
    }
  }, 30_000);
});

describe(".dockerignore matcher", () => {
  it("reads the patterns as Docker does", () => {
    expect(isIgnored("package.json")).toBe(false);
    expect(isIgnored("README.md")).toBe(true);
    expect(isIgnored("scripts/build.ts")).toBe(false);
    expect(isIgnored("scripts/other.ts")).toBe(true);
    expect(isIgnored("common/names.ts")).toBe(false);
    expect(isIgnored("common/names.test.ts")).toBe(true);
    expect(relative(ROOT, join(ROOT, "certs/index.ts"))).toBe("certs/index.ts");
    expect(isIgnored("certs/index.ts")).toBe(false);
  });
});
