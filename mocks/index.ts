/**
 * The mocks of Microsoft Entra ID and Azure Key Vault, for unit tests, the
 * benches, the e2e harness, the demo and kind: what a caller imports, from
 * one place. See docs/mocks.md.
 */
export {
  startMockAad,
  JWT_BEARER,
  type AadCounters,
  type AadEndpoint,
  type AadFaultAction,
  type AadFaultMatch,
  type AadRequestRecord,
  type AppConfig,
  type FederatedCredentialConfig,
  type FederationErrorStyle,
  type MockAad,
  type MockAadOptions,
  type TenantConfig,
} from "./aad/index.ts";
export { KEY_VAULT_RESOURCE, TOKEN_EXCHANGE_AUDIENCE } from "./azure.ts";
export {
  startMockKeyVault,
  KEY_VAULT_ROLES,
  type CertificateInput,
  type KeyVaultAuthority,
  type KeyVaultCounters,
  type KeyVaultFaultMatch,
  type KeyVaultOperation,
  type KeyVaultRequestRecord,
  type KeyVaultRole,
  type MockKeyVault,
  type MockKeyVaultOptions,
  type RoleAssignment,
  type SecretOptions,
  type SecretSeed,
  type SecretVersionInfo,
} from "./key-vault/index.ts";
export {
  startTestOidcIssuer,
  type MintOptions,
  type TestOidcIssuer,
  type TestOidcIssuerOptions,
} from "./oidc-issuer.ts";
export {
  startMocks,
  authorityOf,
  MocksConfigError,
  type RunningMocks,
  type StartMocksOptions,
} from "./start-mocks.ts";
export {
  startMocksFromConfig,
  checkMocksConfig,
  type AadConfig,
  type ConfiguredMocks,
  type KeyVaultConfig,
  type MocksConfig,
  type MocksSummary,
} from "./config.ts";
export { createMockTls, trustCaInThisProcess, type ServingTls } from "./tls.ts";
export { ADMIN_PREFIX, ADMIN_TOKEN_HEADER } from "./admin.ts";
export type { ActiveFault, FaultAction, FaultRule, ThrottleOptions } from "./faults.ts";
