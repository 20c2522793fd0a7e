/**
 * What `npm run build` bundles: bin name (package.json `bin`) → source entry,
 * and the extra output folders an image must copy beside a bin's file.
 */
export const BUNDLE_ENTRIES = {
  "akv-injector-webhook": "webhook/entry.ts",
  "akv-injector-sidecar": "sidecar/main.ts",
  "akv-injector": "cli/main.ts",
} as const;

/** A bin name of {@link BUNDLE_ENTRIES}. */
export type BundleBin = keyof typeof BUNDLE_ENTRIES;

/** Chunk folders (under dist/) that a bin's entry file loads at run time. */
export const BUNDLE_CHUNK_DIRS: Readonly<Record<BundleBin, readonly string[]>> = {
  "akv-injector-webhook": ["webhook-chunks"],
  "akv-injector-sidecar": ["sidecar-chunks"],
  "akv-injector": [],
};
