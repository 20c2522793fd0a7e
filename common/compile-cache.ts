import { existsSync } from "node:fs";
import { enableCompileCache } from "node:module";
import { fileURLToPath } from "node:url";

/**
 * Turns Node's compile cache (V8 code caches of the modules loaded from now
 * on) on in `dir`, if that directory exists: an image fills it at build time,
 * as the user and with the flags that read it, and the container reads it
 * from its read-only root filesystem. Without the directory nothing changes
 * (nothing is created), and a cache Node cannot use is ignored: it is an
 * optimisation, never a reason not to start.
 */
export function useCompileCacheIfPresent(dir: URL): void {
  const path = fileURLToPath(dir);
  if (!existsSync(path)) return;
  try {
    enableCompileCache(path);
  } catch {
    // See above: a cache is never a reason not to start.
  }
}
