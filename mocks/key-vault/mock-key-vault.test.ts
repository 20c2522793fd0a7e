/**
 * The real @azure/keyvault-secrets (and @azure/identity) reading from the
 * mock Key Vault over real HTTPS: the challenge, reads, rotation, paging,
 * RBAC, errors and certificate-backed secrets. Faults, the throttle, the
 * request counts and the admin API are in operations.test.ts.
 */
import { SecretClient } from "@azure/keyvault-secrets";
import { X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  createCertificateAuthority,
  createServingCertificate,
  pkcs12ToPem,
} from "../../certs/index.ts";
import { authorityOf } from "../start-mocks.ts";
import { SUBJECT, TENANT } from "../testing.ts";
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
