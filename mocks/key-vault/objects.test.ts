/**
 * The mock's certificates and keys APIs, as the official clients and a raw
 * caller see them: the bundles' shapes, the challenge, 404 and 403 bodies,
 * and the built-in roles' data actions (Key Vault Reader reads a
 * certificate and a public key; Key Vault Secrets User does not).
 */
import { X509Certificate, generateKeyPairSync } from "node:crypto";
import { CertificateClient } from "@azure/keyvault-certificates";
import { KeyClient } from "@azure/keyvault-keys";
import { describe, expect, it } from "vitest";
import { createCertificateAuthority, createServingCertificate } from "../../certs/index.ts";
import { rawCall } from "../testing.ts";
import { credentialOf, READER, STRANGER, useVaultWorld, vault } from "./testing.ts";

useVaultWorld();

const now = new Date();
const ca = createCertificateAuthority({ commonName: "mock objects CA", now });
const leaf = createServingCertificate(ca, { dnsNames: ["svc.example.test"], now });
const options = { disableChallengeResourceVerification: true, retryOptions: { maxRetries: 0 } };
const certificates = (clientId = READER) =>
  new CertificateClient(vault.url, credentialOf(clientId), options);
const keys = (clientId = READER) => new KeyClient(vault.url, credentialOf(clientId), options);

const statusOf = async (p: Promise<unknown>): Promise<{ status?: number; code?: string }> => {
  try {
    await p;
  } catch (error) {
    const e = error as { statusCode?: number; code?: string };
    return {
      ...(e.statusCode === undefined ? {} : { status: e.statusCode }),
      ...(e.code === undefined ? {} : { code: e.code }),
    };
  }
  return {};
};

describe("the mock's certificates API", () => {
  it("serves a certificate's leaf as cer, with the ids of its key and secret, latest and by version", async () => {
    const info = vault.addCertificate("svc", {
      keyPem: leaf.keyPem,
      certPems: [leaf.certPem, ca.certPem],
    });
    vault.grantRole({ principal: READER, role: "Key Vault Reader" });
    const latest = await certificates().getCertificate("svc");
    expect(new X509Certificate(latest.cer ?? new Uint8Array()).fingerprint256).toBe(
      new X509Certificate(leaf.certPem).fingerprint256,
    );
    expect(latest.properties.version).toBe(info.version);
    expect(latest.secretId).toBe(`${vault.url}/secrets/svc/${info.version}`);
    expect(latest.keyId).toBe(`${vault.url}/keys/svc/${info.version}`);
    const pinned = await certificates().getCertificateVersion("svc", info.version);
    expect(pinned.properties.version).toBe(info.version);
    // The certificate's key is the leaf's public key.
    const key = await keys().getKey("svc");
    expect(key.keyType).toBe("RSA");
    // One challenge per client, then the authorised reads.
    expect(vault.counters()).toMatchObject({ certificateGets: { svc: 2 }, keyGets: { svc: 1 } });
    vault.revokeRole({ principal: READER, role: "Key Vault Reader" });
  });

  it("answers 404 CertificateNotFound and 403 ForbiddenByRbac as the service does", async () => {
    vault.grantRole({ principal: READER, role: "Key Vault Reader" });
    expect(await statusOf(certificates().getCertificate("nope"))).toEqual({
      status: 404,
      code: "CertificateNotFound",
    });
    vault.revokeRole({ principal: READER, role: "Key Vault Reader" });
    vault.addCertificate("guarded", { keyPem: leaf.keyPem, certPems: [leaf.certPem] });
    // Key Vault Secrets User (the world's grant) reads secret values, not certificates.
    expect(await statusOf(certificates().getCertificate("guarded"))).toEqual({
      status: 403,
      code: "Forbidden",
    });
    const token = await credentialOf(READER).getToken("https://vault.azure.net/.default");
    const raw = await rawCall(new URL(`${vault.url}/certificates/guarded?api-version=7.6`), {
      headers: { authorization: `Bearer ${token.token}` },
    });
    const error = (raw.json as { error: { message: string; innererror: { code: string } } }).error;
    expect(error.innererror.code).toBe("ForbiddenByRbac");
    expect(error.message).toContain("Action: 'Microsoft.KeyVault/vaults/certificates/read'");
    expect(error.message).toContain("/certificates/guarded'");
  });

  it("asks for the challenge without a token and checks api-version first", async () => {
    const url = `${vault.url}/certificates/any`;
    expect((await rawCall(new URL(`${url}?api-version=7.6`), {})).status).toBe(401);
    expect((await rawCall(new URL(url), {})).status).toBe(400);
  });
});

describe("the mock's keys API", () => {
  it("serves the public JWK of RSA and EC keys, and no material of an oct key", async () => {
    vault.grantRole({ principal: STRANGER, role: "Key Vault Crypto User" });
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
    vault.addKey("k-rsa", { pem: rsa.publicKey.export({ type: "spki", format: "pem" }) as string });
    const ecVersion = vault.addKey("k-ec", {
      pem: ec.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    });
    vault.addKey("k-oct", { oct: true });
    const r = await keys(STRANGER).getKey("k-rsa");
    expect(Buffer.from(r.key?.n ?? new Uint8Array()).toString("base64url")).toBe(
      (rsa.publicKey.export({ format: "jwk" }) as { n: string }).n,
    );
    const e = await keys(STRANGER).getKey("k-ec", { version: ecVersion });
    expect(e.key).toMatchObject({ kty: "EC", crv: "P-256" });
    expect(e.key?.d).toBeUndefined();
    const o = await keys(STRANGER).getKey("k-oct");
    expect(o.key?.kty).toBe("oct");
    expect(o.key?.k).toBeUndefined();
    expect(await statusOf(keys(STRANGER).getKey("nope"))).toEqual({
      status: 404,
      code: "KeyNotFound",
    });
    vault.revokeRole({ principal: STRANGER, role: "Key Vault Crypto User" });
    expect(await statusOf(keys(STRANGER).getKey("k-rsa"))).toEqual({
      status: 403,
      code: "Forbidden",
    });
  });
});
