/**
 * The mocks of Microsoft Entra ID and Azure Key Vault, for tests, the e2e
 * harness and the demo. See docs/mocks.md.
 */
export {
  startMockAad,
  JWT_BEARER,
  KEY_VAULT_RESOURCE,
  TOKEN_EXCHANGE_AUDIENCE,
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
} from "./aad/mock-aad.ts";
export {
  startMockKeyVault,
  authorityOf,
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
} from "./key-vault/mock-key-vault.ts";
export {
  startTestOidcIssuer,
  type MintOptions,
  type TestOidcIssuer,
  type TestOidcIssuerOptions,
} from "./oidc-issuer.ts";
export {
  startMocks,
  checkMocksConfig,
  MocksConfigError,
  type AadConfig,
  type KeyVaultConfig,
  type MocksConfig,
  type MocksSummary,
  type RunningMocks,
} from "./start-mocks.ts";
export { createMockTls, trustCaInThisProcess, type ServingTls } from "./tls.ts";
export { ADMIN_PREFIX, ADMIN_TOKEN_HEADER } from "./admin.ts";
export type { ActiveFault, FaultAction, FaultRule, ThrottleOptions } from "./faults.ts";
