/**
 * The two images as the test kubelet runs them on this machine: their
 * ENTRYPOINT, USER, WORKDIR and ENV read from `Dockerfile.webhook` and
 * `Dockerfile.sidecar` (final stage), and their files mapped to this
 * checkout: the base image's Node is this Node 24, and each bundle copied
 * into the image is the one `npm run build` wrote to `dist/`. So a pod runs
 * here the command it would run in its image, and a change to a Dockerfile's
 * entrypoint shows up in the e2e suite. Node flags in an exec-form ENTRYPOINT
 * pass through as they are (only the node path and `.mjs` bundles are
 * files); the image's ENV (the sidecar's NODE_OPTIONS) reaches the process.
 * RUN is not replayed: the sidecar runs here without the compile cache its
 * image bakes in (which only makes it start faster).
 */
import { DockerfileParser } from "dockerfile-ast";
import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { Injected } from "../../common/names.ts";
import { REPO_ROOT } from "../host/repo.ts";
import type { ImageSpec } from "../kubelet/kubelet.ts";

/** The distroless Node base image's interpreter. */
export const IMAGE_NODE = "/nodejs/bin/node";

/** What the kubelet needs to run the project's images. */
export interface LocalImages {
  readonly images: Record<string, ImageSpec>;
  readonly files: Record<string, string>;
}

/** The final stage of a Dockerfile, as an {@link ImageSpec} plus the bundles it copies. */
export function readDockerfile(path: string): { spec: ImageSpec; bundles: string[] } {
  const dockerfile = DockerfileParser.parse(readFileSync(path, "utf8"));
  const instructions = dockerfile.getInstructions();
  let lastFrom = -1;
  instructions.forEach((instruction, i) => {
    if (instruction.getKeyword() === "FROM") lastFrom = i;
  });
  const final = instructions.slice(lastFrom + 1);
  let entrypoint: string[] | undefined;
  let user: number | undefined;
  let workingDir: string | undefined;
  const env: Record<string, string> = {};
  const bundles: string[] = [];
  for (const instruction of final) {
    const args = instruction.getArgumentsContent() ?? "";
    switch (instruction.getKeyword()) {
      case "ENTRYPOINT":
        entrypoint = JSON.parse(args) as string[];
        break;
      case "USER": {
        const uid = Number(args.split(":")[0]);
        if (Number.isInteger(uid)) user = uid;
        break;
      }
      case "WORKDIR":
        workingDir = args.trim();
        break;
      case "ENV": {
        const match = /^(\S+?)[= ](.*)$/.exec(args.trim());
        if (match?.[1] !== undefined) env[match[1]] = (match[2] ?? "").replace(/^"|"$/g, "");
        break;
      }
      case "COPY":
        for (const word of instruction.getArguments().map((a) => a.getValue())) {
          if (word.endsWith(".mjs")) bundles.push(word);
        }
        break;
      default:
        break;
    }
  }
  if (entrypoint === undefined) throw new Error(`${path}: no ENTRYPOINT in its final stage`);
  return {
    spec: {
      entrypoint,
      ...(user === undefined ? {} : { user }),
      ...(workingDir === undefined ? {} : { workingDir }),
      env,
    },
    bundles,
  };
}

/**
 * The images by reference. Without a Dockerfile (not written yet), the
 * contract's entrypoint (`Injected.sidecarEntrypoint`) and its webhook twin.
 */
export function localImages(refs: { webhook: string; sidecar: string }): LocalImages {
  const dist = join(REPO_ROOT, "dist");
  const files: Record<string, string> = { [IMAGE_NODE]: process.execPath };
  const images: Record<string, ImageSpec> = {};
  const fallbacks = {
    webhook: { entrypoint: [IMAGE_NODE, "/app/webhook.mjs"], user: 65532 },
    sidecar: { entrypoint: [...Injected.sidecarEntrypoint], user: 65532 },
  };
  for (const which of ["webhook", "sidecar"] as const) {
    const path = join(REPO_ROOT, `Dockerfile.${which}`);
    const { spec, bundles } = existsSync(path)
      ? readDockerfile(path)
      : { spec: fallbacks[which], bundles: [] };
    images[refs[which]] = spec;
    for (const word of [...spec.entrypoint, ...bundles]) {
      if (word.endsWith(".mjs") && word.startsWith("/")) files[word] = join(dist, basename(word));
    }
  }
  // The startup probe names the sidecar bundle by its image path.
  for (const word of Injected.sidecarEntrypoint) {
    if (word.endsWith(".mjs")) files[word] ??= join(dist, basename(word));
  }
  return { images, files };
}
