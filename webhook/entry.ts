/**
 * The webhook's entry (`akv-injector-webhook`): Node's compile cache on when
 * `webhook-cache/` sits beside this file (Dockerfile.webhook fills it), then
 * the process itself (`main.ts`, a chunk), whose code the cache then covers.
 */
import { useCompileCacheIfPresent } from "../common/compile-cache.ts";

useCompileCacheIfPresent(new URL("webhook-cache/", import.meta.url));
await import("./main.ts");
