/** The images as the test kubelet runs them, read from the real Dockerfiles. */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Injected } from "../../common/names.ts";
import { REPO_ROOT } from "./control-plane.ts";
import { IMAGE_NODE, localImages, readDockerfile } from "./images.ts";

describe("images", () => {
  it("reads the sidecar image's entrypoint and user: the contract's", () => {
    const { spec } = readDockerfile(join(REPO_ROOT, "Dockerfile.sidecar"));
    expect(spec.entrypoint).toEqual(Injected.sidecarEntrypoint);
    expect(spec.user).toBe(65532);
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
