/**
 * The mock Entra ID against a real kube-apiserver's service-account issuer:
 * a TokenRequest token (audience `api://AzureADTokenExchange`) is exchanged
 * with the real @azure/identity, the mock verifying it through the
 * apiserver's OIDC discovery and JWKS behind the apiserver's private CA,
 * then the real SecretClient reads a secret with the access token. A token
 * of another service account is refused with AADSTS70021.
 */
/* eslint-disable @typescript-eslint/no-unsafe-class-instance-assignment -- client-node's
   models are plain data classes, built from object literals as its own docs do. */
import { ClientAssertionCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";
import { CoreV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Injected } from "../../common/names.ts";
import { startControlPlane, type ControlPlane } from "../cluster/control-plane.ts";
import { startMockAad, type MockAad } from "./mock-aad.ts";
import { authorityOf, startMockKeyVault, type MockKeyVault } from "./mock-key-vault.ts";
import { createMockTls, trustCaInThisProcess } from "./tls.ts";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT = "0b6e3f7a-5d1c-4a8e-9f2b-3c4d5e6f7a8b";
const NAMESPACE = "mocks-check";

let cp: ControlPlane;
let aad: MockAad;
let vault: MockKeyVault;
let core: CoreV1Api;

beforeAll(async () => {
  cp = await startControlPlane({
    onProgress: (line) => {
      console.log(line);
    },
  });
  core = cp.kubeConfig().makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
  for (const name of ["app", "other"]) {
    await core.createNamespacedServiceAccount({
      namespace: NAMESPACE,
      body: { metadata: { name } },
    });
  }
  const tls = createMockTls();
  trustCaInThisProcess(tls.caPem);
  aad = await startMockAad({
    tls,
    trustedCaPems: [cp.caPem],
    tenants: [
      {
        id: TENANT,
        apps: [
          {
            clientId: CLIENT,
            federatedCredentials: [
              { issuer: cp.issuer, subject: `system:serviceaccount:${NAMESPACE}:app` },
            ],
          },
        ],
      },
    ],
  });
  vault = await startMockKeyVault({
    tls,
    authority: authorityOf(aad, TENANT),
    roles: [{ principal: CLIENT }],
    secrets: [{ name: "my-secret", value: "Hello!" }],
  });
});

afterAll(async () => {
  await vault.close();
  await aad.close();
  await cp.stop();
});

/** What the kubelet would project for a service account. */
async function projectedToken(serviceAccount: string): Promise<string> {
  const minted = await core.createNamespacedServiceAccountToken({
    name: serviceAccount,
    namespace: NAMESPACE,
    body: {
      spec: {
        audiences: [Injected.tokenAudience],
        expirationSeconds: Injected.tokenExpirationSeconds,
      },
    },
  });
  return minted.status?.token ?? "";
}

describe("mock Entra ID with a kube-apiserver issuer", () => {
  it("exchanges a projected token, verified through the apiserver's discovery and JWKS", async () => {
    const credential = new ClientAssertionCredential(TENANT, CLIENT, () => projectedToken("app"), {
      authorityHost: aad.url,
      disableInstanceDiscovery: true,
    });
    const client = new SecretClient(vault.url, credential, {
      disableChallengeResourceVerification: true,
    });
    expect((await client.getSecret("my-secret")).value).toBe("Hello!");
    expect(aad.counters()).toMatchObject({ tokensIssued: 1, tokenErrors: 0 });
  });

  it("refuses another service account's token with AADSTS70021", async () => {
    const credential = new ClientAssertionCredential(
      TENANT,
      CLIENT,
      () => projectedToken("other"),
      {
        authorityHost: aad.url,
        disableInstanceDiscovery: true,
      },
    );
    await expect(credential.getToken("https://vault.azure.net/.default")).rejects.toThrow(
      `AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '${cp.issuer}'. Assertion Subject: 'system:serviceaccount:${NAMESPACE}:other'.`,
    );
  });
});
