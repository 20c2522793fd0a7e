/**
 * Where this checkout is. Test code finds the Dockerfiles, `dist/`, the chart
 * and `build.sh` from here; one definition, so that moving a file never
 * leaves a `../..` pointing at the wrong folder.
 */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (this file is `e2e/host/repo.ts`). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
