/**
 * The mocks' JSON configuration (docs/mocks.md), as the process entry
 * (`main.ts`) reads it from `--config` and flags, and the kind manifests
 * pass it: the same options as {@link startMocks}, with files where those
 * take PEM or certificates. Its shape is checked before anything starts, so
 * a typo is an error that names the field rather than a setting silently
 * dropped.
 */
import type { Logger } from "../common/logger.ts";
import type { MockAadOptions } from "./aad/index.ts";
import { KEY_VAULT_ROLES, type MockKeyVault, type MockKeyVaultOptions } from "./key-vault/index.ts";
import {
  MocksConfigError,
  startMocks,
  type AadSection,
  type KeyVaultSection,
  type RunningMocks,
} from "./start-mocks.ts";
import { createMockTls, type ServingTls } from "./tls.ts";

/** Serving certificate files (PEM). */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** The CA to report to clients; optional. */
  readonly caFile?: string;
}

/** The mock Entra ID's section: its options, with files for what they take as PEM. */
export interface AadConfig extends Pick<
  MockAadOptions,
  "port" | "publicUrl" | "tenants" | "tokenLifetimeSec" | "federationErrors" | "clockSkewSec"
> {
  /** CA files to trust when fetching federated issuers' discovery (e.g. the kube-apiserver's CA). */
  readonly trustedCaFiles?: readonly string[];
}

/** A certificate-backed secret loaded from a file. */
export interface CertificateFileSeed {
  readonly name: string;
  /** DER or base64 PKCS#12 without a password. */
  readonly pkcs12File?: string;
  /** PEM key and chain. */
  readonly pemFile?: string;
}

/** The mock Key Vault's section: its options, with files for certificates and the authority's CA. */
export interface KeyVaultConfig extends Pick<
  MockKeyVaultOptions,
  "port" | "publicUrl" | "secrets" | "roles" | "pageSize" | "throttle" | "vaultName"
> {
  /** The vault's tenant; default the mock Entra ID's first tenant. */
  readonly tenantId?: string;
  /** Needed only when no mock Entra ID runs in this process. */
  readonly authority?: {
    readonly url: string;
    readonly tenantId: string;
    readonly caFile?: string;
    readonly jwksUrl?: string;
  };
  readonly certificates?: readonly CertificateFileSeed[];
}

/** The whole configuration. */
export interface MocksConfig {
  /** Bind address of both; default `127.0.0.1`. */
  readonly host?: string;
  /** Serving certificate; default a fresh CA and leaf for `dnsNames`/`ipAddresses`. */
  readonly tls?: TlsFiles;
  /** SANs of a generated certificate; default `localhost`. */
  readonly dnsNames?: readonly string[];
  /** Default `127.0.0.1`, `::1`. */
  readonly ipAddresses?: readonly string[];
  readonly adminToken?: string;
  /** Start the mock Entra ID (present, even empty, means start it). */
  readonly aad?: AadConfig;
  /** Start the mock Key Vault. */
  readonly keyVault?: KeyVaultConfig;
}

/** What a parent process reads: one JSON line. */
export interface MocksSummary {
  readonly aad?: {
    readonly url: string;
    readonly port: number;
    readonly admin: string;
    readonly tenants: readonly string[];
  };
  readonly keyVault?: {
    readonly url: string;
    readonly port: number;
    readonly admin: string;
    readonly tenantId: string;
  };
  /** PEM of the CA clients must trust (null when serving a given certificate without its CA). */
  readonly ca: string | null;
}

/** Mocks started from a configuration, and what a parent process is told about them. */
export interface ConfiguredMocks extends RunningMocks {
  readonly summary: MocksSummary;
}

/**
 * Checks a parsed configuration's shape (the fields a typo would silently
 * drop). @throws {MocksConfigError}
 */
export function checkMocksConfig(raw: unknown): MocksConfig {
  const bad = (path: string, expected: string): never => {
    throw new MocksConfigError(`mocks config: ${path}: expected ${expected}`);
  };
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isObject(raw)) return bad("(root)", "an object");
  const known = (obj: Record<string, unknown>, path: string, keys: readonly string[]): void => {
    for (const k of Object.keys(obj))
      if (!keys.includes(k)) bad(`${path}${k}`, `one of ${keys.join(", ")}`);
  };
  known(raw, "", ["host", "tls", "dnsNames", "ipAddresses", "adminToken", "aad", "keyVault"]);
  if (raw.aad !== undefined) {
    if (!isObject(raw.aad)) bad("aad", "an object");
    const aad = raw.aad as Record<string, unknown>;
    known(aad, "aad.", [
      "port",
      "publicUrl",
      "tenants",
      "tokenLifetimeSec",
      "trustedCaFiles",
      "federationErrors",
      "clockSkewSec",
    ]);
    if (aad.tenants !== undefined && !Array.isArray(aad.tenants)) bad("aad.tenants", "an array");
    for (const [i, t] of ((aad.tenants as unknown[] | undefined) ?? []).entries()) {
      if (!isObject(t) || typeof t.id !== "string") bad(`aad.tenants[${i}].id`, "a string");
    }
  }
  if (raw.keyVault !== undefined) {
    if (!isObject(raw.keyVault)) bad("keyVault", "an object");
    const kv = raw.keyVault as Record<string, unknown>;
    known(kv, "keyVault.", [
      "port",
      "publicUrl",
      "tenantId",
      "authority",
      "secrets",
      "certificates",
      "roles",
      "pageSize",
      "throttle",
      "vaultName",
    ]);
    for (const [i, s] of ((kv.secrets as unknown[] | undefined) ?? []).entries()) {
      if (!isObject(s) || typeof s.name !== "string" || typeof s.value !== "string") {
        bad(`keyVault.secrets[${i}]`, "{ name, value, contentType?, tags?, enabled? }");
      }
    }
    for (const [i, r] of ((kv.roles as unknown[] | undefined) ?? []).entries()) {
      if (!isObject(r) || typeof r.principal !== "string")
        bad(`keyVault.roles[${i}].principal`, "a string");
      const role = (r as Record<string, unknown>).role;
      if (role !== undefined && !(KEY_VAULT_ROLES as readonly unknown[]).includes(role)) {
        bad(`keyVault.roles[${i}].role`, KEY_VAULT_ROLES.join(" or "));
      }
    }
  }
  return raw;
}

/** Dependencies of {@link startMocksFromConfig}. */
export interface StartMocksDeps {
  readonly readFile: (path: string) => Promise<string>;
  readonly readFileBytes: (path: string) => Promise<Uint8Array>;
  readonly logger: Logger;
}

/** Reads the files a configuration names, then starts its mocks. @throws {MocksConfigError} */
export async function startMocksFromConfig(
  config: MocksConfig,
  deps: StartMocksDeps,
): Promise<ConfiguredMocks> {
  const tls = await servingTlsOf(config, deps);
  // Certificates are loaded into the running vault, from files.
  const { certificates, ...vaultConfig }: KeyVaultConfig = config.keyVault ?? {};
  const mocks = await startMocks({
    tls,
    ...(config.host === undefined ? {} : { host: config.host }),
    ...(config.adminToken === undefined ? {} : { adminToken: config.adminToken }),
    ...(config.aad === undefined ? {} : { aad: await aadOptionsOf(config.aad, deps) }),
    ...(config.keyVault === undefined
      ? {}
      : { keyVault: await keyVaultOptionsOf(vaultConfig, config.aad !== undefined, deps) }),
  });
  try {
    if (mocks.keyVault !== undefined) {
      await addCertificateFiles(mocks.keyVault, certificates ?? [], deps);
    }
  } catch (error) {
    await mocks.close();
    throw error;
  }
  return { ...mocks, summary: summarize(config, mocks, tls) };
}

/** The certificate files given, or a fresh CA and leaf for the names given. */
async function servingTlsOf(config: MocksConfig, deps: StartMocksDeps): Promise<ServingTls> {
  if (config.tls === undefined) {
    return createMockTls({
      ...(config.dnsNames === undefined ? {} : { dnsNames: config.dnsNames }),
      ...(config.ipAddresses === undefined ? {} : { ipAddresses: config.ipAddresses }),
    });
  }
  return {
    certPem: await deps.readFile(config.tls.certFile),
    keyPem: await deps.readFile(config.tls.keyFile),
    caPem: config.tls.caFile === undefined ? undefined : await deps.readFile(config.tls.caFile),
  };
}

/** The mock Entra ID's options: the section as it is, its CA files read. */
async function aadOptionsOf(a: AadConfig, deps: StartMocksDeps): Promise<AadSection> {
  const { trustedCaFiles, ...options } = a;
  return {
    ...options,
    logger: deps.logger.child({ mock: "aad" }),
    trustedCaPems: await Promise.all((trustedCaFiles ?? []).map((f) => deps.readFile(f))),
  };
}

/** The vault's options; its authority's CA file is read only when no mock Entra ID runs here. */
async function keyVaultOptionsOf(
  k: Omit<KeyVaultConfig, "certificates">,
  withAad: boolean,
  deps: StartMocksDeps,
): Promise<KeyVaultSection> {
  const { authority: given, ...options } = k;
  const authority =
    withAad || given === undefined
      ? undefined
      : {
          url: given.url,
          tenantId: given.tenantId,
          ...(given.jwksUrl === undefined ? {} : { jwksUrl: given.jwksUrl }),
          ...(given.caFile === undefined ? {} : { caPems: [await deps.readFile(given.caFile)] }),
        };
  return {
    ...options,
    logger: deps.logger.child({ mock: "key-vault" }),
    ...(authority === undefined ? {} : { authority }),
  };
}

/** Loads each certificate file into the vault (PKCS#12 as DER or base64, or PEM). */
async function addCertificateFiles(
  keyVault: MockKeyVault,
  certificates: readonly CertificateFileSeed[],
  deps: StartMocksDeps,
): Promise<void> {
  for (const c of certificates) {
    if (c.pkcs12File !== undefined) {
      const bytes = await deps.readFileBytes(c.pkcs12File);
      // Accept DER or its base64 text, as people keep either.
      const text = Buffer.from(bytes).toString("latin1").trim();
      const base64 = /^[A-Za-z0-9+/=\s]+$/.test(text)
        ? text.replace(/\s/g, "")
        : Buffer.from(bytes).toString("base64");
      keyVault.addCertificate(c.name, { pkcs12Base64: base64 });
    } else if (c.pemFile !== undefined) {
      keyVault.addCertificate(c.name, { pem: await deps.readFile(c.pemFile) });
    } else {
      throw new MocksConfigError(
        `mocks config: keyVault.certificates '${c.name}': expected pkcs12File or pemFile`,
      );
    }
  }
}

/** The one JSON line a parent process reads. */
function summarize(config: MocksConfig, mocks: RunningMocks, tls: ServingTls): MocksSummary {
  const { aad, keyVault } = mocks;
  return {
    ...(aad === undefined
      ? {}
      : {
          aad: {
            url: aad.url,
            port: aad.port,
            admin: `${aad.url}/_mock/`,
            tenants: (config.aad?.tenants ?? []).map((t) => t.id),
          },
        }),
    ...(keyVault === undefined
      ? {}
      : {
          keyVault: {
            url: keyVault.url,
            port: keyVault.port,
            admin: `${keyVault.url}/_mock/`,
            tenantId:
              config.keyVault?.tenantId ??
              config.keyVault?.authority?.tenantId ??
              config.aad?.tenants?.[0]?.id ??
              "",
          },
        }),
    ca: tls.caPem ?? null,
  };
}
