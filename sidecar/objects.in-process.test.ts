/**
 * Certificates and keys through their own APIs, in process with the real
 * SDKs against a mock vault over real HTTPS: the certificate's leaf and a
 * key's public part as PEM, read by an identity that holds Key Vault Reader
 * only (no secret value), the same identity refused the certificate's
 * secret, N + 1 requests per cold sync per API, and a symmetric key's clear
 * failure.
 */
import { X509Certificate, createPublicKey, generateKeyPairSync } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCertificateAuthority, createServingCertificate } from "../certs/index.ts";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import type { ObjectKind } from "../common/refs.ts";
import { SidecarEnv } from "../common/names.ts";
import type { FileSpec, SyncSpec } from "../common/spec.ts";
import type { MockKeyVault } from "../mocks/index.ts";
import { trustCaInThisProcess } from "../mocks/tls.ts";
import {
  CLIENT_ID,
  readSet,
  readStatus,
  startMockWorld,
  type MockWorld,
} from "../testing/sidecar-world.ts";
import { runSidecar } from "./app.ts";

let world: MockWorld;
/** A vault where the client holds Key Vault Reader alone: metadata, certificates, public keys; no secret value. */
let reader: MockKeyVault;
const now = new Date();
const ca = createCertificateAuthority({ commonName: "objects test CA", now });
const leaf = createServingCertificate(ca, { dnsNames: ["app.example.test"], now });
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-384" });

const devNull = (): Writable =>
  new Writable({
    write(_c, _e, cb) {
      cb();
    },
  });
const object = (vault: MockKeyVault, kind: ObjectKind, name: string, file = name): FileSpec => ({
  file,
  format: "raw",
  source: { kind: "secret", ref: { name, vaultUrl: vault.url, kind } },
});
const outputDirOf = (env: Record<string, string>): string =>
  (JSON.parse(env[SidecarEnv.spec] ?? "{}") as SyncSpec).outputDir;
const run = (env: Record<string, string>) =>
  runSidecar({ env, signal: new AbortController().signal, logDestination: devNull() }).catch(
    (e: unknown) => e,
  );

beforeAll(async () => {
  world = await startMockWorld();
  trustCaInThisProcess(world.caPem);
  reader = await world.startVault({ roles: [{ principal: CLIENT_ID, role: "Key Vault Reader" }] });
  reader.addCertificate("web", { keyPem: leaf.keyPem, certPems: [leaf.certPem, ca.certPem] });
  reader.addKey("signing-rsa", {
    pem: rsa.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
  });
  reader.addKey("signing-ec", {
    pem: ec.publicKey.export({ type: "spki", format: "pem" }) as string,
  });
  reader.addKey("wrapping", { oct: true });
}, 60_000);

afterAll(async () => {
  await world.close();
});

describe("certificates and keys", () => {
  it("writes a certificate's leaf and keys' public parts as PEM for an identity without secret read access: N + 1 requests per API", async () => {
    reader.resetCounters();
    world.aad.resetCounters();
    const env = world.env({
      files: [
        object(reader, "certificate", "web", "web.crt"),
        object(reader, "key", "signing-rsa", "rsa.pub"),
        object(reader, "key", "signing-ec", "ec.pub"),
      ],
      mode: "init",
    });
    const dir = outputDirOf(env);
    expect(await run(env)).toBeUndefined();
    expect(existsSync(join(dir, "..data"))).toBe(true);
    const files = await readSet(dir);
    // The certificates API gives the leaf alone: one certificate, the leaf's.
    const blocks = files["web.crt"]?.match(/BEGIN CERTIFICATE/g) ?? [];
    expect(blocks).toHaveLength(1);
    expect(new X509Certificate(files["web.crt"] ?? "").fingerprint256).toBe(
      new X509Certificate(leaf.certPem).fingerprint256,
    );
    expect(files["rsa.pub"]).toBe(
      createPublicKey(rsa.privateKey).export({ type: "spki", format: "pem" }),
    );
    expect(files["ec.pub"]).toBe(ec.publicKey.export({ type: "spki", format: "pem" }));
    // One challenge per API (certificates, keys), each read once: 1 + 1 and 2 + 1.
    expect(reader.counters()).toMatchObject({
      total: 5,
      challenges: 2,
      authenticated: 3,
      certificateGets: { web: 1 },
      keyGets: { "signing-rsa": 1, "signing-ec": 1 },
    });
    expect(world.aad.counters().tokenRequests).toBe(1);
    const status = await readStatus(dir);
    expect(status.files.find((f) => f.name === "web.crt")?.secrets[0]).toMatchObject({
      name: "web",
      vault: reader.url,
      kind: "certificate",
      version: expect.stringMatching(/^[0-9a-f]{32}$/) as string,
    });
  });

  it("the same identity may not read the certificate's secret (its private key): 403 naming the role", async () => {
    const env = world.env({ files: [object(reader, "secret", "web", "web.pfx")], mode: "init" });
    const error = await run(env);
    expect(isAkvError(error, ErrorCode.SECRET_FORBIDDEN)).toBe(true);
    expect((error as Error).message).toContain(`secret '${reader.url}/secrets/web'`);
    expect((error as Error).message).toContain("'Key Vault Secrets User'");
  });

  it("refuses a certificate to an identity without certificates/read, naming the object and the roles that grant it", async () => {
    // The world's own vault: the client holds Key Vault Secrets User there.
    world.vault.addCertificate("only-secret-role", {
      keyPem: leaf.keyPem,
      certPems: [leaf.certPem],
    });
    const env = world.env({
      files: [object(world.vault, "certificate", "only-secret-role", "c.crt")],
      mode: "init",
    });
    const error = await run(env);
    expect(isAkvError(error, ErrorCode.SECRET_FORBIDDEN)).toBe(true);
    expect((error as Error).message).toContain(
      `certificate '${world.vault.url}/certificates/only-secret-role'`,
    );
    expect((error as Error).message).toContain(
      "'Key Vault Certificate User' or 'Key Vault Reader'",
    );
  });

  it("a symmetric key has no public part: a clear, fatal error", async () => {
    const env = world.env({ files: [object(reader, "key", "wrapping", "w.pub")], mode: "init" });
    const error = await run(env);
    expect(isAkvError(error, ErrorCode.FORMAT_FAILED)).toBe(true);
    expect((error as Error).message).toContain(
      `key '${reader.url}/keys/wrapping' in Key Vault ${reader.url} is a symmetric (oct) key`,
    );
  });

  it("a missing certificate or key is a 404 naming it", async () => {
    for (const kind of ["certificate", "key"] as const) {
      const env = world.env({ files: [object(reader, kind, "absent", "x")], mode: "init" });
      const error = await run(env);
      expect(isAkvError(error, ErrorCode.SECRET_NOT_FOUND), kind).toBe(true);
      expect((error as Error).message).toContain(`${kind} '${reader.url}/${kind}s/absent'`);
      expect((error as Error).message).toContain(`check the ${kind} name`);
    }
  });
});
