// The serving certificate on its own, without fastify: what a load accepts,
// and how the watcher turns file changes into new secure contexts. The HTTPS
// side (handshakes with the new pair, open connections kept) is in
// server.test.ts.
import { X509Certificate } from "node:crypto";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SecureContextOptions } from "node:tls";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  createCertificateAuthority,
  createServingCertificate,
  type CertificateAndKey,
} from "../certs/index.ts";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import { createLogger } from "../common/logger.ts";
import {
  TLS12_CIPHERS,
  loadCertificate,
  loadServingCertificate,
  secureContextOptions,
  watchServingCertificate,
  type CertificateFiles,
  type ServingCertificate,
} from "./serving-certificate.ts";

const NOW = new Date("2031-05-06T07:08:09.000Z");

let servingA: CertificateAndKey;
let servingB: CertificateAndKey;
beforeAll(() => {
  const make = (commonName: string): CertificateAndKey =>
    createServingCertificate(createCertificateAuthority({ commonName, now: NOW }), {
      dnsNames: ["akv-injector.akv-injector.svc"],
      now: NOW,
    });
  servingA = make("ca-a");
  servingB = make("ca-b");
});

const dirs: string[] = [];
const watching: ServingCertificate[] = [];
afterEach(async () => {
  for (const certificate of watching.splice(0)) await certificate.close();
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** Writes each file by rename, as a writer that never leaves half a file. */
async function writePair(dir: string, pair: { certPem: string; keyPem: string }): Promise<void> {
  for (const [name, text] of [
    ["tls.key", pair.keyPem],
    ["tls.crt", pair.certPem],
  ] as const) {
    await writeFile(join(dir, `${name}.tmp`), text);
    await rename(join(dir, `${name}.tmp`), join(dir, name));
  }
}

interface Setup {
  readonly dir: string;
  readonly files: CertificateFiles;
  readonly logs: Record<string, unknown>[];
  readonly inUse: string[];
  readonly reloaded: string[];
  readonly contexts: SecureContextOptions[];
  readonly target: { setSecureContext(options: SecureContextOptions): void };
}

async function setup(
  pair: CertificateAndKey | undefined,
  timing: { pollMs?: number; debounceMs?: number } = {},
): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), "akv-serving-cert-"));
  dirs.push(dir);
  if (pair !== undefined) await writePair(dir, pair);
  const logs: Record<string, unknown>[] = [];
  const inUse: string[] = [];
  const reloaded: string[] = [];
  const contexts: SecureContextOptions[] = [];
  const files: CertificateFiles = {
    certFile: join(dir, "tls.crt"),
    keyFile: join(dir, "tls.key"),
    logger: createLogger({
      name: "webhook",
      level: "debug",
      destination: { write: (line: string) => logs.push(JSON.parse(line) as never) },
    }),
    hooks: {
      inUse: (state) => inUse.push(state.fingerprint),
      reloaded: (result) => reloaded.push(result),
    },
    clock: () => NOW,
    pollMs: timing.pollMs ?? 60_000,
    debounceMs: timing.debounceMs ?? 20,
  };
  const target = {
    setSecureContext: (options: SecureContextOptions) => contexts.push(options),
  };
  return { dir, files, logs, inUse, reloaded, contexts, target };
}

async function watchFrom(s: Setup): Promise<ServingCertificate> {
  const certificate = watchServingCertificate(
    await loadServingCertificate(s.files),
    s.target,
    s.files,
  );
  watching.push(certificate);
  return certificate;
}

const fingerprintOf = (pem: string): string =>
  new X509Certificate(pem).fingerprint256.replaceAll(":", "").toLowerCase();

describe("loadCertificate", () => {
  it("reads a matching pair and says what it is", async () => {
    const { files } = await setup(servingA);
    const loaded = await loadCertificate(files.certFile, files.keyFile, NOW);
    expect(loaded.cert.toString()).toBe(servingA.certPem);
    expect(loaded.state).toEqual({
      fingerprint: fingerprintOf(servingA.certPem),
      notAfter: new X509Certificate(servingA.certPem).validToDate,
      loadedAt: NOW,
    });
  });

  it.each([
    ["missing files", () => undefined, /^cannot read TLS files: /],
    [
      "a certificate with another's key",
      () => ({ certPem: servingB.certPem, keyPem: servingA.keyPem }),
      /^the TLS certificate and key do not form a usable pair: /,
    ],
    [
      "text that is not PEM",
      () => ({ certPem: "not a certificate", keyPem: "not a key" }),
      /^the TLS certificate and key do not form a usable pair: /,
    ],
  ])("refuses %s with AKV_TLS_INVALID and the cause", async (_name, pair, message) => {
    const { dir, files } = await setup(undefined);
    const written = pair();
    if (written !== undefined) await writePair(dir, written);
    const error: unknown = await loadCertificate(files.certFile, files.keyFile, NOW).catch(
      (e: unknown) => e,
    );
    expect(isAkvError(error, ErrorCode.TLS_INVALID)).toBe(true);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).cause).toBeInstanceOf(Error);
  });
});

describe("secureContextOptions", () => {
  it("always sets the TLS policy, and the pair only when there is one", async () => {
    const { files } = await setup(servingA);
    expect(secureContextOptions(undefined)).toEqual({
      minVersion: "TLSv1.2",
      ciphers: TLS12_CIPHERS,
    });
    const loaded = await loadCertificate(files.certFile, files.keyFile, NOW);
    expect(secureContextOptions(loaded)).toEqual({
      minVersion: "TLSv1.2",
      ciphers: TLS12_CIPHERS,
      cert: loaded.cert,
      key: loaded.key,
    });
  });
});

describe("loadServingCertificate", () => {
  it("announces the pair in use: the hook, and a log line without the key", async () => {
    const s = await setup(servingA);
    const loaded = await loadServingCertificate(s.files);
    expect(loaded?.state.fingerprint).toBe(fingerprintOf(servingA.certPem));
    expect(s.inUse).toEqual([fingerprintOf(servingA.certPem)]);
    expect(s.logs).toMatchObject([
      {
        level: "info",
        msg: "TLS certificate loaded",
        fingerprint: fingerprintOf(servingA.certPem),
      },
    ]);
    expect(JSON.stringify(s.logs)).not.toContain("PRIVATE KEY");
  });

  it("starts without a pair, saying why, when the files are not there yet", async () => {
    const s = await setup(undefined);
    expect(await loadServingCertificate(s.files)).toBeUndefined();
    expect(s.inUse).toEqual([]);
    expect(s.logs).toMatchObject([
      {
        level: "error",
        code: ErrorCode.TLS_INVALID,
        msg: "no usable TLS certificate yet; not ready",
        reason: expect.stringMatching(/^cannot read TLS files: /) as string,
      },
    ]);
  });
});

describe("watchServingCertificate", () => {
  it("takes a new pair once per burst of file events", async () => {
    // Long enough to span both files' writes on a busy machine.
    const s = await setup(servingA, { debounceMs: 300 });
    const certificate = await watchFrom(s);
    await writePair(s.dir, servingB);
    await vi.waitFor(() => {
      expect(certificate.state()?.fingerprint).toBe(fingerprintOf(servingB.certPem));
    });
    // Two files written and renamed: a burst of events, one reload.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(s.reloaded).toEqual(["success"]);
    expect(s.contexts).toHaveLength(1);
    expect(s.contexts[0]?.cert?.toString()).toBe(servingB.certPem);
    expect(s.inUse).toEqual([fingerprintOf(servingA.certPem), fingerprintOf(servingB.certPem)]);
    expect(s.logs.at(-1)).toMatchObject({ msg: "TLS certificate reloaded" });
  });

  it("does nothing when the files hold the pair in use", async () => {
    const s = await setup(servingA);
    const certificate = await watchFrom(s);
    expect(await certificate.reload()).toBe(false);
    expect(s.reloaded).toEqual([]);
    expect(s.contexts).toEqual([]);
  });

  it("counts a failure once per reason, and again after a success", async () => {
    const s = await setup(servingA);
    const certificate = await watchFrom(s);
    await writePair(s.dir, { certPem: servingB.certPem, keyPem: servingA.keyPem });
    expect(await certificate.reload()).toBe(false);
    expect(await certificate.reload()).toBe(false);
    expect(s.reloaded).toEqual(["failure"]);
    expect(certificate.state()?.fingerprint).toBe(fingerprintOf(servingA.certPem));
    expect(s.logs.filter((l) => l.level === "warn")).toMatchObject([
      { code: ErrorCode.TLS_INVALID, msg: "TLS files not usable; keeping the certificate in use" },
    ]);

    await rm(s.files.keyFile);
    expect(await certificate.reload()).toBe(false);
    expect(s.reloaded).toEqual(["failure", "failure"]);

    await writePair(s.dir, servingB);
    expect(await certificate.reload()).toBe(true);
    await writePair(s.dir, { certPem: servingA.certPem, keyPem: servingB.keyPem });
    expect(await certificate.reload()).toBe(false);
    expect(s.reloaded).toEqual(["failure", "failure", "success", "failure"]);
  });

  it("polls for changes no event reported, and stops on close", async () => {
    const s = await setup(undefined, { pollMs: 20 });
    const certificate = watchServingCertificate(undefined, s.target, {
      ...s.files,
      debounceMs: 60_000,
    });
    watching.push(certificate);
    await writePair(s.dir, servingA);
    await vi.waitFor(() => {
      expect(certificate.state()?.fingerprint).toBe(fingerprintOf(servingA.certPem));
    });
    await certificate.close();
    await writePair(s.dir, servingB);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(certificate.state()?.fingerprint).toBe(fingerprintOf(servingA.certPem));
    expect(s.contexts).toHaveLength(1);
  });
});
