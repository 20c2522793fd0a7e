/**
 * What a test does to the mock Key Vault besides reading, with the real
 * @azure/keyvault-secrets over real HTTPS: the request counts a sync costs,
 * faults and how the SDK retries them, the throttle, the admin HTTP API,
 * and logs that never carry a secret, a token or an assertion.
 */
import { SecretClient } from "@azure/keyvault-secrets";
import { describe, expect, it } from "vitest";
import {
  createCertificateAuthority,
  createPkcs12,
  createServingCertificate,
} from "../../certs/index.ts";
import { createLogger } from "../../common/logger.ts";
import { startMockAad } from "../aad/index.ts";
import { authorityOf } from "../start-mocks.ts";
import { SUBJECT, TENANT, rawCall, type RawAnswer } from "../testing.ts";
import { startMockKeyVault } from "./index.ts";
import {
  READER,
  STRANGER,
  aad,
  client,
  credentialOf,
  get,
  issuer,
  restError,
  tls,
  useVaultWorld,
  vault,
} from "./testing.ts";

useVaultWorld();

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
  const send = (method: string, path: string, body: unknown): Promise<RawAnswer> => {
    // Content-Length, because Node sends a DELETE body neither chunked nor sized otherwise.
    const payload = JSON.stringify(body);
    const headers = {
      "content-type": "application/json",
      "content-length": String(Buffer.byteLength(payload)),
    };
    return rawCall(new URL(path, vault.url), { method, headers }, payload);
  };

  it("sets a secret, grants a role and injects a fault over HTTP", async () => {
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

  it("refuses a certificate whose pem is not a string, even next to a valid pkcs12Base64", async () => {
    const now = new Date();
    const ca = createCertificateAuthority({ commonName: "admin CA", now });
    const leaf = createServingCertificate(ca, { dnsNames: ["admin.example"], now });
    const pkcs12Base64 = createPkcs12({ keyPem: leaf.keyPem, certPems: [leaf.certPem] });

    const refused = await send("PUT", "/_mock/certificates/mixed", { pkcs12Base64, pem: 5 });
    expect(refused).toMatchObject({ status: 400, json: { error: "'pem' must be a string" } });

    // The refused call stored nothing: the next good one is the only version.
    const stored = await send("PUT", "/_mock/certificates/mixed", { pkcs12Base64 });
    expect(stored.status).toBe(200);
    expect(vault.versions("mixed")).toEqual([(stored.json as { version: string }).version]);
  });

  it("packs a key and chain as Key Vault does (PKCS#12), over HTTP as in process", async () => {
    const now = new Date();
    const ca = createCertificateAuthority({ commonName: "admin CA", now });
    const leaf = createServingCertificate(ca, { dnsNames: ["admin.example"], now });
    const stored = await send("PUT", "/_mock/certificates/packed", {
      keyPem: leaf.keyPem,
      certPems: [leaf.certPem, ca.certPem],
    });
    expect(stored.status).toBe(200);
    await send("POST", "/_mock/roles", { principal: STRANGER, secret: "packed" });
    const secret = await client(STRANGER).getSecret("packed");
    expect(secret.properties.contentType).toBe("application/x-pkcs12");
    expect(
      (await send("PUT", "/_mock/certificates/packed", { keyPem: leaf.keyPem, certPems: [] }))
        .status,
    ).toBe(400);
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
