/**
 * The sidecar's world on loopback, for the integration tests and the bench:
 * a test OIDC issuer (the cluster's service-account issuer), the mock Entra
 * ID federated with it, and the mock Key Vault, all HTTPS under one private
 * CA, plus a minted service-account token in a file and the environment the
 * webhook would give the sidecar. Not shipped.
 */
import { mkdtemp, readdir, readFile, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Injected, SidecarEnv } from "../common/names.ts";
import { encodeSpec, type FileSpec, type SyncSpec } from "../common/spec.ts";
import type { SyncStatus } from "../sidecar/status.ts";
import {
  createMockTls,
  startMocks,
  startTestOidcIssuer,
  authorityOf,
  startMockKeyVault,
  type MockAad,
  type MockKeyVault,
  type RoleAssignment,
  type TestOidcIssuer,
} from "../mocks/index.ts";

export const TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47";
export const CLIENT_ID = "5e3c6f0a-1b2c-4d5e-8f90-a1b2c3d4e5f6";
export const SUBJECT = "system:serviceaccount:default:app";

/** A running world. */
export interface MockWorld {
  readonly issuer: TestOidcIssuer;
  readonly aad: MockAad;
  readonly vault: MockKeyVault;
  /** The CA of all three, PEM. */
  readonly caPem: string;
  /** A scratch directory: token file, CA file, output dirs. */
  readonly dir: string;
  readonly tokenFile: string;
  readonly caFile: string;
  /** Mints a token for `subject` (default {@link SUBJECT}) into the token file. */
  writeToken(options?: { subject?: string; expiresInSec?: number }): Promise<string>;
  /**
   * Starts another mock Key Vault under the same CA and Entra ID (the
   * client may read), for several vaults per pod; closed with the world.
   * The sidecar's allowed suffixes (`env`) take the vaults started so far.
   */
  startVault(options?: { roles?: readonly RoleAssignment[] }): Promise<MockKeyVault>;
  /** The sidecar's environment for a spec (outputDir defaults to a fresh dir under `dir`). */
  env(spec: Partial<SyncSpec> & Pick<SyncSpec, "files">): Record<string, string>;
  close(): Promise<void>;
}

let outputs = 0;

/** Starts the world; `secrets` are seeded as plain secrets. */
export async function startMockWorld(
  options: {
    secrets?: Record<string, string>;
    tokenLifetimeSec?: number;
    /** How long the mock Entra ID caches the issuer's keys (default its own, 60 s). */
    issuerCacheMs?: number;
  } = {},
): Promise<MockWorld> {
  const tls = createMockTls();
  const caPem = tls.caPem;
  const issuer = await startTestOidcIssuer({ tls });
  const mocks = await startMocks({
    tls,
    aad: {
      trustedCaPems: [caPem],
      tenants: [
        {
          id: TENANT_ID,
          apps: [
            {
              clientId: CLIENT_ID,
              federatedCredentials: [{ issuer: issuer.issuer, subject: SUBJECT }],
            },
          ],
        },
      ],
      ...(options.issuerCacheMs === undefined ? {} : { issuerCacheMs: options.issuerCacheMs }),
      ...(options.tokenLifetimeSec === undefined
        ? {}
        : { tokenLifetimeSec: options.tokenLifetimeSec }),
    },
    keyVault: {
      roles: [{ principal: CLIENT_ID }],
      secrets: Object.entries(options.secrets ?? {}).map(([name, value]) => ({ name, value })),
    },
  });
  const { aad, keyVault: vault } = mocks;
  const dir = await mkdtemp(join(tmpdir(), "akv-sidecar-"));
  const tokenFile = join(dir, "azure-identity-token");
  const caFile = join(dir, "ca.pem");
  await writeFile(caFile, caPem);
  const writeToken = async (
    o: { subject?: string; expiresInSec?: number } = {},
  ): Promise<string> => {
    const token = await issuer.mint({
      subject: o.subject ?? SUBJECT,
      ...(o.expiresInSec === undefined ? {} : { expiresInSec: o.expiresInSec }),
    });
    await writeFile(tokenFile, token);
    return token;
  };
  await writeToken();
  const extraVaults: MockKeyVault[] = [];
  const startVault = async (
    o: { roles?: readonly RoleAssignment[] } = {},
  ): Promise<MockKeyVault> => {
    const v = await startMockKeyVault({
      tls,
      authority: authorityOf(aad, TENANT_ID),
      roles: o.roles ?? [{ principal: CLIENT_ID }],
    });
    extraVaults.push(v);
    return v;
  };
  const allowedHosts = (): string =>
    [vault, ...extraVaults].map((v) => new URL(v.url).host).join(",");
  return {
    issuer,
    aad,
    vault,
    caPem,
    dir,
    tokenFile,
    caFile,
    writeToken,
    startVault,
    env: (spec) => ({
      [SidecarEnv.clientId]: CLIENT_ID,
      [SidecarEnv.tenantId]: TENANT_ID,
      [SidecarEnv.federatedTokenFile]: tokenFile,
      [SidecarEnv.authorityHost]: aad.url,
      [SidecarEnv.vaultSuffixes]: `.vault.azure.net,${allowedHosts()}`,
      [SidecarEnv.spec]: encodeSpec({
        vaultUrl: vault.url,
        mode: "init",
        refreshIntervalMs: 300_000,
        fileMode: 0o644,
        outputDir: join(dir, `out-${++outputs}`),
        ...spec,
      }),
    }),
    close: async () => {
      await Promise.all([...extraVaults.map((v) => v.close()), mocks.close(), issuer.close()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** `n` raw secret files `s0..s{n-1}`. */
export function rawFiles(n: number, prefix = "s"): FileSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    file: `${prefix}${i}`,
    format: "raw",
    source: { kind: "secret", ref: { name: `${prefix}${i}` } },
  }));
}

/**
 * The published set, read as an app would: through `..data`, again if a
 * publish removed it mid-read. The files alone: the status file
 * (`..status.json`) is read by {@link readStatus}.
 */
export async function readSet(dir: string): Promise<Record<string, string>> {
  for (let attempt = 1; ; attempt++) {
    try {
      const data = await realpath(join(dir, "..data"));
      const out: Record<string, string> = {};
      for (const name of await readdir(data)) {
        if (!name.startsWith("..")) out[name] = await readFile(join(data, name), "utf8");
      }
      return out;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT" || attempt === 20) throw error;
    }
  }
}

/** The status file beside the files, parsed. */
export async function readStatus(dir: string): Promise<SyncStatus> {
  return JSON.parse(await readFile(join(dir, Injected.statusFile), "utf8")) as SyncStatus;
}

/** Polls `fn` until it returns something other than undefined. */
export async function waitFor<T>(
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 15_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}
