/** The images as the test kubelet runs them, read from the real Dockerfiles. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Injected } from "../../common/names.ts";
import { REPO_ROOT } from "../host/repo.ts";
import { IMAGE_NODE, localImages, readDockerfile } from "./images.ts";

describe("images", () => {
  it("reads the sidecar image's entrypoint and user: the contract's", () => {
    const { spec } = readDockerfile(join(REPO_ROOT, "Dockerfile.sidecar"));
    expect(spec.entrypoint).toEqual(Injected.sidecarEntrypoint);
    // The last USER wins: root only for the compile cache's RUN.
    expect(spec.user).toBe(65532);
    expect(spec.env?.NODE_OPTIONS).toMatch(/^--max-semi-space-size=\d+ --jitless$/);
  });

  it("keeps Node flags of an exec-form entrypoint in place and maps only node and bundles", () => {
    const dir = mkdtempSync(join(tmpdir(), "akv-images-"));
    try {
      const path = join(dir, "Dockerfile");
      writeFileSync(
        path,
        [
          "FROM node:24-bookworm-slim AS build",
          "USER 1000",
          "FROM gcr.io/distroless/nodejs24-debian12:nonroot",
          "COPY --from=build /src/dist/sidecar.mjs /app/sidecar.mjs",
          'ENV NODE_OPTIONS="--max-semi-space-size=1 --v8-pool-size=1"',
          "USER 0:0",
          'RUN ["/nodejs/bin/node", "-e", "require(\'/app/sidecar.mjs\')"]',
          "USER 65532:65532",
          'ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=1", "/app/sidecar.mjs"]',
          "",
        ].join("\n"),
      );
      const { spec, bundles } = readDockerfile(path);
      expect(spec.entrypoint).toEqual([IMAGE_NODE, "--max-semi-space-size=1", "/app/sidecar.mjs"]);
      expect(spec.user).toBe(65532);
      expect(spec.env).toEqual({ NODE_OPTIONS: "--max-semi-space-size=1 --v8-pool-size=1" });
      expect(bundles).toContain("/app/sidecar.mjs");
      // The kubelet maps every word through `files`; a flag is not a file.
      const { files } = localImages({ webhook: "w:1", sidecar: "s:1" });
      expect(spec.entrypoint.map((w) => files[w] ?? w)).toEqual([
        process.execPath,
        "--max-semi-space-size=1",
        join(REPO_ROOT, "dist/sidecar.mjs"),
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("maps image paths to this checkout's Node and bundles", () => {
    const { images, files } = localImages({ webhook: "w:1", sidecar: "s:1" });
    expect(images["w:1"]?.entrypoint[0]).toBe(IMAGE_NODE);
    expect(images["w:1"]?.user).toBe(65532);
    expect(files[IMAGE_NODE]).toBe(process.execPath);
    expect(files["/app/sidecar.mjs"]).toBe(join(REPO_ROOT, "dist/sidecar.mjs"));
    expect(files["/app/webhook.mjs"]).toBe(join(REPO_ROOT, "dist/webhook.mjs"));
  });
});
