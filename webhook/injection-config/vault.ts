/**
 * The `vault` annotation: a vault name, or an https:// vault URL, under one
 * of the suffixes the webhook allows (`AKV_INJECTOR_VAULT_SUFFIXES`). Why
 * the suffixes: the sidecar sends its Entra token to this host, so a pod
 * must not name one outside the clouds the operator trusts. Required unless
 * every ref is an object identifier (files.ts says which ref needs it); a
 * bare name takes the first dotted suffix (see `resolveVaultUrl`).
 */
import { Annotation } from "../../common/names.ts";
import type { ProblemList } from "../../common/problems.ts";
import { resolveVaultUrl, type VaultSuffix } from "../../common/refs.ts";

/**
 * The vault URL, or undefined after adding the problem.
 * @example parseVaultAnnotation("myvault", [".vault.azure.net"], problems) // "https://myvault.vault.azure.net"
 */
export function parseVaultAnnotation(
  text: string | undefined,
  suffixes: readonly VaultSuffix[],
  problems: ProblemList,
): string | undefined {
  if (text === undefined) return undefined;
  const vault = resolveVaultUrl(text, suffixes);
  if (vault.ok) return vault.value;
  problems.addExpected(Annotation.vault, vault.expected, text);
  return undefined;
}
