/**
 * The world the Key Vault mock's tests run in: a test OIDC issuer, the mock
 * Entra ID federated with it (two apps, one with a role on the vault), and
 * the mock Key Vault, over real HTTPS under one CA this process trusts; and
 * the clients and raw calls the tests make. Shared by the test files of
 * this folder, each of which starts its own world.
 */
import { ClientAssertionCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";
import { afterAll, beforeAll, beforeEach, expect } from "vitest";
import { startMockAad, type MockAad } from "../aad/index.ts";
import { startTestOidcIssuer, type TestOidcIssuer } from "../oidc-issuer.ts";
import { authorityOf } from "../start-mocks.ts";
import { CLIENT as READER, SUBJECT, TENANT, rawCall, type RawAnswer } from "../testing.ts";
import { createMockTls, trustCaInThisProcess } from "../tls.ts";
import { startMockKeyVault, type MockKeyVault } from "./index.ts";

export { READER };

/** A client id the vault grants nothing unless a test does. */
export const STRANGER = "5f6e7d8c-1a2b-4c3d-8e9f-0a1b2c3d4e5f";

/** The certificate of every mock here; this process trusts its CA. */
export const tls = createMockTls();
// Live bindings: set by the hooks of useVaultWorld, read by the tests.
export let issuer: TestOidcIssuer;
export let aad: MockAad;
export let vault: MockKeyVault;

/**
 * Registers the hooks of a test file: the world starts before its tests,
 * stops after them, and each test starts without faults, throttle or counts.
 */
export function useVaultWorld(): void {
  beforeAll(async () => {
    trustCaInThisProcess(tls.caPem);
    issuer = await startTestOidcIssuer({ tls });
    const federated = [{ issuer: issuer.issuer, subject: SUBJECT }];
    aad = await startMockAad({
      tls,
      tenants: [
        {
          id: TENANT,
          apps: [
            { clientId: READER, federatedCredentials: federated },
            { clientId: STRANGER, federatedCredentials: federated },
          ],
        },
      ],
    });
    vault = await startMockKeyVault({
      tls,
      authority: authorityOf(aad, TENANT),
      roles: [{ principal: READER }],
    });
  });

  afterAll(async () => {
    await vault.close();
    await aad.close();
    await issuer.close();
  });

  beforeEach(() => {
    vault.clearFaults();
    vault.setThrottle(undefined);
    vault.resetCounters();
    aad.resetCounters();
  });
}

/** A fresh federated credential of `clientId` at the mock Entra ID `authorityHost`. */
export function credentialOf(
  clientId = READER,
  mint: () => Promise<string> = () => issuer.mint({ subject: SUBJECT }),
  authorityHost = aad.url,
): ClientAssertionCredential {
  return new ClientAssertionCredential(TENANT, clientId, mint, {
    authorityHost,
    disableInstanceDiscovery: true,
  });
}

/** A fresh client, with the options a user pointing at a non-Azure host would set, and quick retries. */
export function client(clientId = READER, extra: { maxRetries?: number } = {}): SecretClient {
  const credential = credentialOf(clientId);
  return new SecretClient(vault.url, credential, {
    disableChallengeResourceVerification: true,
    retryOptions: { retryDelayInMs: 5, maxRetryDelayInMs: 20, ...extra },
  });
}

/** The RestError an SDK call threw. */
export async function restError(
  promise: Promise<unknown>,
): Promise<{ statusCode: number; code: string; message: string; details: unknown }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect((error as Error | undefined)?.name).toBe("RestError");
  return error as { statusCode: number; code: string; message: string; details: unknown };
}

/** A raw GET, for wire details the SDK hides. */
export function get(path: string, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return rawCall(new URL(path, vault.url), { headers });
}
