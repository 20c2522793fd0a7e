/**
 * The one way the mocks start together, whoever starts them: the sidecar's
 * tests and benches (testing/sidecar-world.ts), the e2e installation and the
 * demo (e2e/cluster/environment.ts), the process and kind (main.ts, through
 * config.ts). Both mocks serve one certificate, so clients trust one CA; a
 * Key Vault started next to the mock Entra ID verifies tokens with its keys
 * in-process, else it fetches them from the authority it is given. If the
 * second fails to start, the first is closed.
 */
import { startMockAad, type MockAad, type MockAadOptions } from "./aad/index.ts";
import {
  startMockKeyVault,
  type KeyVaultAuthority,
  type MockKeyVault,
  type MockKeyVaultOptions,
} from "./key-vault/index.ts";
import type { ServingTls } from "./tls.ts";

/** Options of {@link startMocks}: what both share, and one section per mock to start. */
export interface StartMocksOptions {
  /** The certificate both serve. */
  readonly tls: ServingTls;
  /** Bind address of both; default `127.0.0.1`. */
  readonly host?: string;
  /** Required in `x-mock-admin-token` on both mocks' admin calls when set. */
  readonly adminToken?: string;
  /** Start the mock Entra ID. */
  readonly aad?: AadSection;
  /** Start the mock Key Vault. */
  readonly keyVault?: KeyVaultSection;
}

/** The mock Entra ID's own options (the shared ones are given once, for both). */
export type AadSection = Omit<MockAadOptions, "tls" | "host" | "adminToken">;

/** The mock Key Vault's own options, and where its tokens come from. */
export type KeyVaultSection = Omit<
  MockKeyVaultOptions,
  "tls" | "host" | "adminToken" | "authority"
> & {
  /** With the mock Entra ID: the vault's tenant; default its first tenant. */
  readonly tenantId?: string;
  /** Without it: where the vault's tokens come from. */
  readonly authority?: KeyVaultAuthority;
};

/** The mocks {@link startMocks} started: a section given means a mock running. */
export interface RunningMocks<O extends StartMocksOptions = StartMocksOptions> {
  readonly aad: undefined extends O["aad"] ? MockAad | undefined : MockAad;
  readonly keyVault: undefined extends O["keyVault"] ? MockKeyVault | undefined : MockKeyVault;
  /** Closes both (the Key Vault first). */
  close(): Promise<void>;
}

/** A problem with what to start; the message names the field. */
export class MocksConfigError extends Error {
  override readonly name = "MocksConfigError";
}

/** The authority of a mock Entra ID started in the same process: its keys, in-process. */
export function authorityOf(aad: MockAad, tenantId: string): KeyVaultAuthority {
  return {
    url: aad.url,
    tenantId,
    keys: () => aad.jwks(),
    issuer: aad.accessTokenIssuer(tenantId),
  };
}

/** Starts the mocks whose sections are given. @throws {MocksConfigError} */
export async function startMocks<const O extends StartMocksOptions>(
  options: O,
): Promise<RunningMocks<O>> {
  if (options.aad === undefined && options.keyVault === undefined) {
    throw new MocksConfigError("mocks config: nothing to start (no aad, no keyVault)");
  }
  const shared = {
    tls: options.tls,
    ...(options.host === undefined ? {} : { host: options.host }),
    ...(options.adminToken === undefined ? {} : { adminToken: options.adminToken }),
  };
  const aad =
    options.aad === undefined ? undefined : await startMockAad({ ...shared, ...options.aad });
  let keyVault: MockKeyVault | undefined;
  try {
    if (options.keyVault !== undefined) {
      const { tenantId, authority, ...vaultOptions } = options.keyVault;
      keyVault = await startMockKeyVault({
        ...shared,
        ...vaultOptions,
        authority: vaultAuthority(aad, tenantId ?? options.aad?.tenants?.[0]?.id, authority),
      });
    }
  } catch (error) {
    await aad?.close();
    throw error;
  }
  const running: RunningMocks = {
    aad,
    keyVault,
    async close() {
      await keyVault?.close();
      await aad?.close();
    },
  };
  // Each section given was started above, or this threw: what the conditional types promise.
  return running as unknown as RunningMocks<O>;
}

/** The mock Entra ID next to the vault if there is one, else the authority given. */
function vaultAuthority(
  aad: MockAad | undefined,
  tenantId: string | undefined,
  authority: KeyVaultAuthority | undefined,
): KeyVaultAuthority {
  if (aad !== undefined) {
    if (tenantId === undefined)
      throw new MocksConfigError(
        "mocks config: keyVault.tenantId: expected a tenant (no aad tenant to default to)",
      );
    return authorityOf(aad, tenantId);
  }
  if (authority !== undefined) return authority;
  throw new MocksConfigError(
    "mocks config: keyVault.authority: expected { url, tenantId } when no aad runs in this process",
  );
}
