/**
 * The Key Vault source opens the connections of a cold sync's reads while
 * the first read waits for its token: with the real SecretClient and MSAL
 * against the mocks, behind a proxy that adds 20 ms each way (so the
 * challenge and the token take several round trips), every connection of a
 * 10-secret sync is up by the time the token arrives; the counts stay
 * N + 1 cold and N per refresh, and a refresh opens no connection.
 */
import type { TokenCredential } from "@azure/core-auth";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import { trustCaInThisProcess } from "../mocks/tls.ts";
import { startLatencyProxy, type LatencyProxy } from "../testing/latency-proxy.ts";
import { CLIENT_ID, startMockWorld, TENANT_ID, type MockWorld } from "../testing/sidecar-world.ts";
import { createCredential } from "./credential.ts";
import { createKeyVaultSource } from "./key-vault-source.ts";

const N = 10;
let world: MockWorld;
let proxy: LatencyProxy;

beforeAll(async () => {
  world = await startMockWorld({
    secrets: Object.fromEntries(Array.from({ length: N }, (_, i) => [`s${i}`, `value-${i}`])),
  });
  trustCaInThisProcess(world.caPem);
  proxy = await startLatencyProxy(world.vault.url, 20);
});
afterAll(async () => {
  await proxy.close();
  await world.close();
});

it("opens every read's connection before the first read has its token", async () => {
  const entra = createCredential({
    tenantId: TENANT_ID,
    clientId: CLIENT_ID,
    tokenFile: world.tokenFile,
    authorityHost: world.aad.url,
    disableInstanceDiscovery: true,
    readFile: (path) => Promise.resolve(readFileSync(path, "utf8")),
    now: Date.now,
  });
  const connectionsAtToken: number[] = [];
  const credential: TokenCredential = {
    async getToken(scopes, options) {
      const token = await entra.getToken(scopes, options);
      connectionsAtToken.push(proxy.connections());
      return token;
    },
  };
  const source = createKeyVaultSource({
    vaultUrl: proxy.url,
    credential,
    clientId: CLIENT_ID,
    disableChallengeResourceVerification: true,
    now: Date.now,
  });
  const sync = (): Promise<unknown[]> =>
    Promise.all(Array.from({ length: N }, (_, i) => source.fetch({ name: `s${i}` })));

  world.vault.resetCounters();
  const values = await sync();
  expect(values).toHaveLength(N);
  // The challenge's connection and one for each of the other nine reads.
  expect(connectionsAtToken[0]).toBe(N);
  expect(proxy.connections()).toBe(N);
  expect(world.vault.counters().total).toBe(N + 1);

  world.vault.resetCounters();
  await sync();
  expect(world.vault.counters().total).toBe(N);
  expect(proxy.connections()).toBe(N);
});
