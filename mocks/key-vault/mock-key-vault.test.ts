/**
 * The real @azure/keyvault-secrets (and @azure/identity) against the mock Key
 * Vault and mock Entra ID over real HTTPS: the challenge, reads, paging,
 * RBAC, errors, certificate-backed secrets, faults, the throttle and the
 * request counts a sync costs.
 */
import { ClientAssertionCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  createCertificateAuthority,
  createServingCertificate,
  pkcs12ToPem,
} from "../../certs/index.ts";
import { createLogger } from "../../common/logger.ts";
import { startMockAad, type MockAad } from "../aad/mock-aad.ts";
import { authorityOf, startMockKeyVault, type MockKeyVault } from "./mock-key-vault.ts";
import { startTestOidcIssuer, type TestOidcIssuer } from "../oidc-issuer.ts";
import { CLIENT as READER, SUBJECT, TENANT, rawCall, type RawAnswer } from "../testing.ts";
import { createMockTls, trustCaInThisProcess } from "../tls.ts";

const STRANGER = "5f6e7d8c-1a2b-4c3d-8e9f-0a1b2c3d4e5f";

const tls = createMockTls();
let issuer: TestOidcIssuer;
let aad: MockAad;
let vault: MockKeyVault;

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

/** A fresh federated credential of `clientId` at the mock Entra ID `authorityHost`. */
function credentialOf(
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
function client(clientId = READER, extra: { maxRetries?: number } = {}): SecretClient {
  const credential = credentialOf(clientId);
  return new SecretClient(vault.url, credential, {
    disableChallengeResourceVerification: true,
    retryOptions: { retryDelayInMs: 5, maxRetryDelayInMs: 20, ...extra },
  });
}

/** The RestError an SDK call threw. */
async function restError(
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
function get(path: string, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return rawCall(new URL(path, vault.url), { headers });
}

describe("reading secrets", () => {
  it("reads the latest version after the bearer challenge", async () => {
    const { version } = vault.setSecret("db-password", "s3cret!", {
      contentType: "text/plain",
      tags: { team: "shop" },
    });
    const secret = await client().getSecret("db-password");
    expect(secret.value).toBe("s3cret!");
    expect(secret.properties).toMatchObject({
      id: `${vault.url}/secrets/db-password/${version}`,
      name: "db-password",
      version,
      vaultUrl: vault.url,
      contentType: "text/plain",
      tags: { team: "shop" },
      enabled: true,
      recoveryLevel: "Recoverable+Purgeable",
    });
    expect(secret.properties.createdOn).toBeInstanceOf(Date);
    // The SDK asks for the latest version with a trailing slash, first without a token.
    const requests = vault.requests();
    expect(requests.map((r) => [r.path.replace(/\?.*/, ""), r.withToken, r.status])).toEqual([
      ["/secrets/db-password/", false, 401],
      ["/secrets/db-password/", true, 200],
    ]);
    expect(requests[0]?.path).toMatch(/api(-|%2D)version=2026-04-01/);
    expect(vault.counters()).toMatchObject({
      total: 2,
      challenges: 1,
      authenticated: 1,
      secretGets: { "db-password": 1 },
    });
  });

  it("sends the challenge Key Vault sends", async () => {
    const res = await get("/secrets/anything/?api-version=2025-07-01");
    expect(res.status).toBe(401);
    expect(res.headers["www-authenticate"]).toBe(
      `Bearer authorization="${aad.url}/${TENANT}", resource="https://vault.azure.net"`,
    );
    expect(res.json).toEqual({
      error: {
        code: "Unauthorized",
        message: "AKV10000: Request is missing a Bearer or PoP token.",
      },
    });
  });

  it("reads a given version after a rotation", async () => {
    const first = vault.setSecret("api-key", "one");
    const second = vault.setSecret("api-key", "two");
    expect(second.version).toMatch(/^[0-9a-f]{32}$/);
    expect(second.version).not.toBe(first.version);
    const c = client();
    expect((await c.getSecret("api-key")).value).toBe("two");
    expect((await c.getSecret("api-key", { version: first.version })).value).toBe("one");
  });

  it("lists versions across pages with nextLink", async () => {
    const paged = await startMockKeyVault({
      tls,
      authority: authorityOf(aad, TENANT),
      roles: [{ principal: READER }],
      pageSize: 2,
    });
    try {
      const written = [1, 2, 3, 4, 5].map((i) => paged.setSecret("rotating", `v${i}`).version);
      const credential = credentialOf();
      const c = new SecretClient(paged.url, credential, {
        disableChallengeResourceVerification: true,
      });
      const versions: string[] = [];
      for await (const p of c.listPropertiesOfSecretVersions("rotating"))
        versions.push(p.version ?? "");
      expect(versions.sort()).toEqual([...written].sort());
      const lists = paged
        .requests()
        .filter((r) => r.operation === "getSecretVersions" && r.status === 200);
      expect(lists).toHaveLength(3); // 2 + 2 + 1
      expect(lists[1]?.path).toContain("$skiptoken=");

      const names: string[] = [];
      paged.setSecret("other", "x");
      paged.setSecret("third", "y");
      for await (const p of c.listPropertiesOfSecrets()) names.push(p.name);
      expect(names.sort()).toEqual(["other", "rotating", "third"]);
    } finally {
      await paged.close();
    }
  });

  it("answers 404 SecretNotFound as a RestError", async () => {
    const error = await restError(client().getSecret("no-such-secret"));
    expect(error.statusCode).toBe(404);
    expect(error.code).toBe("SecretNotFound");
    expect(error.message).toContain(
      "A secret with (name/id) no-such-secret was not found in this key vault.",
    );
    vault.setSecret("exists", "x");
    const missingVersion = await restError(
      client().getSecret("exists", { version: "0".repeat(32) }),
    );
    expect(missingVersion.statusCode).toBe(404);
  });

  it("answers 403 ForbiddenByRbac to a caller without a role", async () => {
    vault.setSecret("guarded", "x");
    const error = await restError(client(STRANGER).getSecret("guarded"));
    expect(error.statusCode).toBe(403);
    expect(error.code).toBe("Forbidden");
    expect(error.details).toMatchObject({
      error: { code: "Forbidden", innerError: { code: "ForbiddenByRbac" } },
    });
    expect(error.message).toContain(`Caller: appid=${STRANGER};`);
    expect(error.message).toContain("Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'");
    expect(vault.counters().forbidden).toBe(1);
  });

  it("grants per secret, and Key Vault Reader lists but does not read", async () => {
    vault.setSecret("one", "1");
    vault.setSecret("two", "2");
    vault.grantRole({ principal: STRANGER, secret: "one" });
    try {
      const c = client(STRANGER);
      expect((await c.getSecret("one")).value).toBe("1");
      expect((await restError(c.getSecret("two"))).statusCode).toBe(403);
      vault.grantRole({ principal: STRANGER, role: "Key Vault Reader" });
      const names: string[] = [];
      for await (const p of c.listPropertiesOfSecrets()) names.push(p.name);
      expect(names).toContain("two");
      expect((await restError(c.getSecret("two"))).statusCode).toBe(403);
    } finally {
      vault.revokeRole({ principal: STRANGER, secret: "one" });
      vault.revokeRole({ principal: STRANGER, role: "Key Vault Reader" });
    }
  });

  it("answers 403 SecretDisabled for a disabled secret", async () => {
    vault.setSecret("off", "x");
    vault.setSecretEnabled("off", false);
    const error = await restError(client().getSecret("off"));
    expect(error.statusCode).toBe(403);
    expect(error.code).toBe("Forbidden");
    expect(error.message).toBe("Operation get is not allowed on a disabled secret.");
    expect(error.details).toMatchObject({ error: { innerError: { code: "SecretDisabled" } } });
  });

  it("refuses with 401 a token its Entra did not sign, or for another resource", async () => {
    const foreign = await get("/secrets/x/?api-version=2025-07-01", {
      authorization: `Bearer ${await issuer.mint({ subject: SUBJECT })}`,
    });
    expect(foreign.status).toBe(401);
    expect(foreign.headers["www-authenticate"]).toContain("Bearer authorization=");
    expect(JSON.stringify(foreign.json)).toContain(
      "AKV10046: Unable to resolve the key used for signature validation.",
    );

    const credential = credentialOf();
    const arm = await credential.getToken("https://management.azure.com/.default");
    const wrongAudience = await get("/secrets/x/?api-version=2025-07-01", {
      authorization: `Bearer ${arm.token}`,
    });
    expect(wrongAudience.status).toBe(401);
    expect(wrongAudience.json).toEqual({
      error: {
        code: "Unauthorized",
        message:
          "AKV10022: Invalid audience. Expected https://vault.azure.net, found: https://management.azure.com.",
      },
    });
    expect(vault.counters().rejectedTokens).toBe(2);
  });

  it("refuses a request without api-version", async () => {
    const res = await get("/secrets/x/");
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ error: { code: "BadParameter" } });
  });
});

describe("certificate-backed secrets", () => {
  const now = new Date();
  const ca = createCertificateAuthority({ commonName: "shop CA", now });
  const leaf = createServingCertificate(ca, { dnsNames: ["shop.example"], now });

  it("serves PKCS#12 with kid and managed, and converts to PEM on request", async () => {
    const { version } = vault.addCertificate("tls-cert", {
      keyPem: leaf.keyPem,
      certPems: [leaf.certPem, ca.certPem],
    });
    const c = client();
    const secret = await c.getSecret("tls-cert");
    expect(secret.properties.contentType).toBe("application/x-pkcs12");
    expect(secret.properties.managed).toBe(true);
    expect(secret.properties.certificateKeyId).toBe(`${vault.url}/keys/tls-cert/${version}`);
    const { certPems } = pkcs12ToPem(secret.value ?? "");
    expect(new X509Certificate(certPems[0] ?? "").subject).toContain("shop.example");

    const pem = await c.getSecret("tls-cert", { outContentType: "application/x-pem-file" });
    expect(pem.properties.contentType).toBe("application/x-pem-file");
    expect(pem.value).toContain("-----BEGIN PRIVATE KEY-----");
    expect(pem.value).toContain("-----BEGIN CERTIFICATE-----");
  });

  it("serves PEM certificates as stored", async () => {
    vault.addCertificate("pem-cert", {
      keyPem: leaf.keyPem,
      certPems: [leaf.certPem],
      format: "pem",
    });
    const secret = await client().getSecret("pem-cert");
    expect(secret.properties.contentType).toBe("application/x-pem-file");
    expect(secret.value).toContain("-----BEGIN CERTIFICATE-----");
  });
});

describe("request counts", () => {
  it("costs 2N requests for N parallel first reads, N + 1 when one read goes first", async () => {
    const names = ["a1", "a2", "a3", "a4", "a5"];
    for (const n of names) vault.setSecret(n, n);

    await Promise.all(names.map((n) => client().getSecret(n))); // each client is cold
    const naive = client();
    vault.resetCounters();
    await Promise.all(names.map((n) => naive.getSecret(n)));
    expect(vault.counters()).toMatchObject({ total: 2 * names.length, challenges: names.length });

    const careful = client();
    vault.resetCounters();
    aad.resetCounters();
    const [first, ...rest] = names;
    await careful.getSecret(first ?? "");
    await Promise.all(rest.map((n) => careful.getSecret(n)));
    expect(vault.counters()).toMatchObject({
      total: names.length + 1,
      challenges: 1,
      authenticated: names.length,
    });
    expect(aad.counters().tokenRequests).toBe(1);

    // A refresh with the challenge cached: N requests.
    vault.resetCounters();
    await Promise.all(names.map((n) => careful.getSecret(n)));
    expect(vault.counters()).toMatchObject({ total: names.length, challenges: 0 });
  });
});

describe("faults", () => {
  it("429 with Retry-After is retried by the SDK", async () => {
    vault.setSecret("busy", "ok");
    vault.injectFault({
      action: { type: "status", status: 429, retryAfterSeconds: 0 },
      match: { authenticated: true },
    });
    expect((await client().getSecret("busy")).value).toBe("ok");
    expect(vault.counters()).toMatchObject({
      faults: 1,
      byStatus: { "401": 1, "429": 1, "200": 1 },
    });
  });

  it("429 without Retry-After is not retried: the SDK throws", async () => {
    vault.setSecret("busy", "ok");
    vault.injectFault({ action: { type: "status", status: 429 }, match: { authenticated: true } });
    const error = await restError(client().getSecret("busy"));
    expect(error.statusCode).toBe(429);
    expect(error.code).toBe("Throttled");
    expect(vault.counters().total).toBe(2); // the challenge and the one throttled read
  });

  it("503 without Retry-After is retried with backoff; 500 too", async () => {
    vault.setSecret("flaky", "ok");
    vault.injectFault({
      action: { type: "status", status: 503 },
      match: { authenticated: true },
      times: 2,
    });
    expect((await client().getSecret("flaky")).value).toBe("ok");
    vault.injectFault({
      action: { type: "status", status: 500, retryAfterSeconds: 0 },
      match: { operation: "getSecret" },
    });
    expect((await client().getSecret("flaky")).value).toBe("ok");
    expect(vault.counters().faults).toBe(3);
  });

  it("5xx beyond the SDK's retries surfaces", async () => {
    vault.setSecret("down", "x");
    vault.injectFault({
      action: { type: "status", status: 503 },
      match: { secret: "down", authenticated: true },
      times: 10,
    });
    const error = await restError(client(READER, { maxRetries: 1 }).getSecret("down"));
    expect(error.statusCode).toBe(503);
  });

  it("a dropped connection is retried", async () => {
    vault.setSecret("dropped", "ok");
    vault.injectFault({ action: { type: "drop" }, match: { authenticated: true } });
    expect((await client().getSecret("dropped")).value).toBe("ok");
    expect(vault.counters().byStatus).toMatchObject({ dropped: 1 });
  });

  it("a request that is never answered times out on the client's terms", async () => {
    vault.setSecret("slow", "ok");
    vault.injectFault({ action: { type: "hang" }, match: { authenticated: true } });
    const c = client(READER, { maxRetries: 0 });
    await expect(c.getSecret("slow", { abortSignal: AbortSignal.timeout(300) })).rejects.toThrow(
      /abort/i,
    );
    expect(vault.counters().byStatus).toMatchObject({ hung: 1 });
  });

  it("adds latency", async () => {
    vault.setSecret("late", "ok");
    const c = client();
    await c.getSecret("late");
    vault.injectFault({ action: { type: "latency", ms: 250 } });
    const started = Date.now();
    await c.getSecret("late");
    expect(Date.now() - started).toBeGreaterThanOrEqual(240);
  });

  it("fails a fraction of requests, reproducibly with a seed", async () => {
    const seeded = async (): Promise<number[]> => {
      const v = await startMockKeyVault({ tls, authority: authorityOf(aad, TENANT), seed: 42 });
      try {
        v.injectFault({ action: { type: "status", status: 500 }, probability: 0.5 });
        const statuses: number[] = [];
        for (let i = 0; i < 20; i++)
          statuses.push(
            (await rawCall(new URL("/secrets/x/?api-version=2025-07-01", v.url), {})).status,
          );
        return statuses;
      } finally {
        await v.close();
      }
    };
    const first = await seeded();
    expect(first.filter((s) => s === 500).length).toBeGreaterThan(3);
    expect(first.filter((s) => s === 401).length).toBeGreaterThan(3);
    expect(await seeded()).toEqual(first);
  });
});

describe("throttle", () => {
  it("enforces N requests per window with 429 Throttled and Retry-After", async () => {
    vault.setThrottle({ limit: 3, windowMs: 60_000 });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await get("/secrets/x/?api-version=2025-07-01")).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
    const throttled = await get("/secrets/x/?api-version=2025-07-01");
    expect(throttled.headers["retry-after"]).toMatch(/^\d+$/);
    expect(Number(throttled.headers["retry-after"])).toBeGreaterThan(50);
    expect(throttled.json).toMatchObject({ error: { code: "Throttled" } });
    expect(vault.counters().throttled).toBe(2);
  });

  it("the SDK waits out the throttle's Retry-After and succeeds", async () => {
    vault.setSecret("hot", "ok");
    const c = client();
    await c.getSecret("hot"); // the challenge is cached
    vault.setThrottle({ limit: 1, windowMs: 1000 });
    await c.getSecret("hot");
    const started = Date.now();
    expect((await c.getSecret("hot")).value).toBe("ok");
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(vault.counters().throttled).toBe(1);
  });
});

describe("admin API", () => {
  it("sets a secret, grants a role and injects a fault over HTTP", async () => {
    const send = (method: string, path: string, body: unknown): Promise<RawAnswer> => {
      // Content-Length, because Node sends a DELETE body neither chunked nor sized otherwise.
      const payload = JSON.stringify(body);
      const headers = {
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(payload)),
      };
      return rawCall(new URL(path, vault.url), { method, headers }, payload);
    };
    const put = await send("PUT", "/_mock/secrets/from-admin", {
      value: "hello",
      contentType: "text/plain",
    });
    expect(put.status).toBe(200);
    expect(put.json).toMatchObject({
      name: "from-admin",
      version: expect.stringMatching(/^[0-9a-f]{32}$/) as unknown,
    });
    expect(
      (await send("POST", "/_mock/roles", { principal: STRANGER, secret: "from-admin" })).status,
    ).toBe(200);
    expect((await client(STRANGER).getSecret("from-admin")).value).toBe("hello");
    expect(
      (
        await send("POST", "/_mock/faults", {
          action: { type: "status", status: 429 },
          match: { secret: "from-admin", authenticated: true },
        })
      ).status,
    ).toBe(200);
    expect((await restError(client(STRANGER).getSecret("from-admin"))).statusCode).toBe(429);
    expect((await send("PATCH", "/_mock/secrets/from-admin", { enabled: false })).status).toBe(200);
    expect((await restError(client(STRANGER).getSecret("from-admin"))).statusCode).toBe(403);
    expect((await send("POST", "/_mock/faults", { action: { type: "nope" } })).status).toBe(400);
    expect(
      (await send("DELETE", "/_mock/roles", { principal: STRANGER, secret: "from-admin" })).status,
    ).toBe(200);
    const revoked = await restError(client(STRANGER).getSecret("from-admin"));
    expect(revoked.statusCode).toBe(403);
  });
});

describe("logs", () => {
  it("never carry a secret value, an access token or an assertion", async () => {
    const lines: string[] = [];
    const sink = { write: (line: string) => lines.push(line) };
    const logger = createLogger({ name: "test", level: "debug", destination: sink });
    const loggedAad = await startMockAad({
      tls,
      logger,
      tenants: [
        {
          id: TENANT,
          apps: [
            {
              clientId: READER,
              federatedCredentials: [{ issuer: issuer.issuer, subject: SUBJECT }],
            },
          ],
        },
      ],
    });
    const loggedVault = await startMockKeyVault({
      tls,
      logger,
      authority: authorityOf(loggedAad, TENANT),
      roles: [{ principal: READER }],
      secrets: [{ name: "loud", value: "value-that-must-not-leak" }],
    });
    try {
      const assertions: string[] = [];
      const credential = credentialOf(
        READER,
        async () => {
          const a = await issuer.mint({ subject: SUBJECT });
          assertions.push(a);
          return a;
        },
        loggedAad.url,
      );
      const token = await credential.getToken("https://vault.azure.net/.default");
      const c = new SecretClient(loggedVault.url, credential, {
        disableChallengeResourceVerification: true,
      });
      expect((await c.getSecret("loud")).value).toBe("value-that-must-not-leak");
      await c.getSecret("missing").catch(() => undefined);
      const bad = credentialOf(READER, () => issuer.mint({ subject: "x" }), loggedAad.url);
      await bad.getToken("https://vault.azure.net/.default").catch(() => undefined);

      const all = lines.join("");
      expect(all).toContain("mock-key-vault request");
      expect(all).toContain("mock-aad request");
      expect(all).not.toContain("value-that-must-not-leak");
      expect(all).not.toContain(token.token);
      for (const a of assertions) expect(all).not.toContain(a);
      // Nothing that looks like a JWT at all.
      expect(all).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\./);
    } finally {
      await loggedVault.close();
      await loggedAad.close();
    }
  });
});
