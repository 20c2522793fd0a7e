/**
 * One {@link SecretSource} over every vault a spec reads from: each ref goes
 * to the source of its vault (an object identifier's own, else the pod's)
 * and kind, made at its first read and kept. One source per (vault, API)
 * keeps each Key Vault client's bearer challenge and warm-up gate its own
 * (N + 1 requests per cold sync per vault and API); every source shares the
 * one credential, whose token serves every vault of a cloud (they share the
 * token's scope).
 */
import { AkvError, ErrorCode } from "../common/errors.ts";
import { formatSecretRef, type ObjectKind, type SecretRef } from "../common/refs.ts";
import type { FetchedSecret, FetchOptions, SecretSource } from "./secret-source.ts";

/** Makes the source of one vault and kind (called once per pair). */
export type SourceFactory = (vaultUrl: string, kind: ObjectKind) => Promise<SecretSource>;

/**
 * Routes reads by vault and kind.
 * @param defaultVault the pod's vault, for refs that name none.
 */
export function createVaultSources(
  defaultVault: string | undefined,
  create: SourceFactory,
): SecretSource {
  const sources = new Map<string, Promise<SecretSource>>();
  return {
    async fetch(ref: SecretRef, options?: FetchOptions): Promise<FetchedSecret> {
      const vaultUrl = ref.vaultUrl ?? defaultVault;
      if (vaultUrl === undefined) {
        // The spec parser refuses this; a bug, not a user error.
        throw new AkvError(
          ErrorCode.SPEC_INVALID,
          `ref '${formatSecretRef(ref)}' names no vault and the spec has no vaultUrl`,
        );
      }
      const kind = ref.kind ?? "secret";
      const key = `${kind} ${vaultUrl}`;
      let source = sources.get(key);
      if (source === undefined) {
        source = create(vaultUrl, kind);
        sources.set(key, source);
      }
      return (await source).fetch(ref, options);
    },
  };
}
