/**
 * Signature checks against JSON Web Key Sets, as Entra ID and Key Vault
 * make them: a set's keys are imported once and reused until the set
 * changes. Importing an RSA key costs more than checking a signature with it,
 * and a mock that paid it on every request would be the bottleneck of any
 * benchmark run against it.
 */
import { compactVerify, createLocalJWKSet, type JSONWebKeySet } from "jose";

/** Sets kept at once; more than a test's issuers, few enough to stay small. */
const MAX_SETS = 16;

export class KeySetVerifier {
  /** By the set's JSON text, so a rotated set (new keys, same kid or not) is imported afresh. */
  readonly #sets = new Map<string, ReturnType<typeof createLocalJWKSet>>();

  /**
   * Verifies an RS256 compact JWS against `keys`.
   * @throws jose's errors, as `compactVerify` does (`JWKSNoMatchingKey`, …).
   */
  async verify(token: string, keys: JSONWebKeySet): Promise<void> {
    await compactVerify(token, this.#setOf(keys), { algorithms: ["RS256"] });
  }

  #setOf(keys: JSONWebKeySet): ReturnType<typeof createLocalJWKSet> {
    const json = JSON.stringify(keys);
    let set = this.#sets.get(json);
    if (set === undefined) {
      if (this.#sets.size >= MAX_SETS) this.#sets.clear();
      set = createLocalJWKSet(keys);
      this.#sets.set(json, set);
    }
    return set;
  }
}
