/**
 * What the Azure services agree on and more than one mock needs: Key Vault's
 * resource id (Entra ID issues tokens for it, Key Vault challenges with it),
 * the issuer of v1 access tokens (Entra ID signs it, Key Vault expects it),
 * and the audience of federated tokens (Entra ID's default, the test
 * issuer's too). Here, so that neither mock imports the other.
 */

/** Key Vault's resource id; a `scope` of `https://vault.azure.net/.default` asks for it. */
export const KEY_VAULT_RESOURCE = "https://vault.azure.net";

/** The audience Entra expects of federated tokens, and the default of a federated credential. */
export const TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange";

/** The `iss` of the v1 access tokens Entra ID issues for a tenant: `https://sts.windows.net/{tenant}/`. */
export function accessTokenIssuer(tenantId: string): string {
  return `https://sts.windows.net/${tenantId}/`;
}

/** `url` without a trailing slash: resource ids and authorities compare that way. */
export function trimSlash(url: string): string {
  return url.endsWith("/") ? url.slice(0, -1) : url;
}
