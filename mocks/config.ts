/**
 * Starts the mocks from a JSON-shaped configuration, for the process entry
 * (`main.ts`), the e2e harness, the demo and the kind manifests alike. Both
 * mocks share one serving certificate (one CA for clients to trust); a Key
 * Vault started with the mock Entra ID in the same process verifies tokens
 * with its keys directly, else it fetches them from `authority.url`.
 *
 * The configuration format is documented in docs/mocks.md.
 */
import type { Logger } from "../common/logger.ts";
import { startMockAad, type MockAad, type MockAadOptions } from "./aad/mock-aad.ts";
import {
  KEY_VAULT_ROLES,
  authorityOf,
  startMockKeyVault,
  type KeyVaultAuthority,
  type MockKeyVault,
  type MockKeyVaultOptions,
} from "./key-vault/mock-key-vault.ts";
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

/** Running mocks. */
export interface RunningMocks {
  readonly aad: MockAad | undefined;
  readonly keyVault: MockKeyVault | undefined;
  readonly summary: MocksSummary;
  close(): Promise<void>;
}

/** A configuration problem; the message names the field. */
export class MocksConfigError extends Error {
  override readonly name = "MocksConfigError";
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

/** Dependencies of {@link startMocks}. */
export interface StartMocksDeps {
  readonly readFile: (path: string) => Promise<string>;
  readonly readFileBytes: (path: string) => Promise<Uint8Array>;
  readonly logger: Logger;
}

/** Starts the configured mocks. */
export async function startMocks(config: MocksConfig, deps: StartMocksDeps): Promise<RunningMocks> {
  if (config.aad === undefined && config.keyVault === undefined) {
    throw new MocksConfigError("mocks config: nothing to start (no aad, no keyVault)");
  }
  let tls: ServingTls;
  if (config.tls === undefined) {
    tls = createMockTls({
      ...(config.dnsNames === undefined ? {} : { dnsNames: config.dnsNames }),
      ...(config.ipAddresses === undefined ? {} : { ipAddresses: config.ipAddresses }),
    });
  } else {
    tls = {
      certPem: await deps.readFile(config.tls.certFile),
      keyPem: await deps.readFile(config.tls.keyFile),
      caPem: config.tls.caFile === undefined ? undefined : await deps.readFile(config.tls.caFile),
    };
  }
  const common = {
    tls,
    ...(config.host === undefined ? {} : { host: config.host }),
    ...(config.adminToken === undefined ? {} : { adminToken: config.adminToken }),
  };

  let aad: MockAad | undefined;
  let keyVault: MockKeyVault | undefined;
  try {
    if (config.aad !== undefined) {
      const a = config.aad;
      const trustedCaPems = await Promise.all(
        (a.trustedCaFiles ?? []).map((f) => deps.readFile(f)),
      );
      aad = await startMockAad({
        ...common,
        logger: deps.logger.child({ mock: "aad" }),
        trustedCaPems,
        ...(a.port === undefined ? {} : { port: a.port }),
        ...(a.publicUrl === undefined ? {} : { publicUrl: a.publicUrl }),
        ...(a.tenants === undefined ? {} : { tenants: a.tenants }),
        ...(a.tokenLifetimeSec === undefined ? {} : { tokenLifetimeSec: a.tokenLifetimeSec }),
        ...(a.federationErrors === undefined ? {} : { federationErrors: a.federationErrors }),
        ...(a.clockSkewSec === undefined ? {} : { clockSkewSec: a.clockSkewSec }),
      });
    }
    if (config.keyVault !== undefined) {
      const k = config.keyVault;
      let authority: KeyVaultAuthority;
      if (aad !== undefined) {
        const tenantId = k.tenantId ?? config.aad?.tenants?.[0]?.id;
        if (tenantId === undefined)
          throw new MocksConfigError(
            "mocks config: keyVault.tenantId: expected a tenant (no aad tenant to default to)",
          );
        authority = authorityOf(aad, tenantId);
      } else if (k.authority !== undefined) {
        authority = {
          url: k.authority.url,
          tenantId: k.authority.tenantId,
          ...(k.authority.jwksUrl === undefined ? {} : { jwksUrl: k.authority.jwksUrl }),
          ...(k.authority.caFile === undefined
            ? {}
            : { caPems: [await deps.readFile(k.authority.caFile)] }),
        };
      } else {
        throw new MocksConfigError(
          "mocks config: keyVault.authority: expected { url, tenantId } when no aad runs in this process",
        );
      }
      keyVault = await startMockKeyVault({
        ...common,
        logger: deps.logger.child({ mock: "key-vault" }),
        authority,
        ...(k.port === undefined ? {} : { port: k.port }),
        ...(k.publicUrl === undefined ? {} : { publicUrl: k.publicUrl }),
        ...(k.secrets === undefined ? {} : { secrets: k.secrets }),
        ...(k.roles === undefined ? {} : { roles: k.roles }),
        ...(k.pageSize === undefined ? {} : { pageSize: k.pageSize }),
        ...(k.throttle === undefined ? {} : { throttle: k.throttle }),
        ...(k.vaultName === undefined ? {} : { vaultName: k.vaultName }),
      });
      for (const c of k.certificates ?? []) {
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
  } catch (error) {
    await keyVault?.close();
    await aad?.close();
    throw error;
  }

  const summary: MocksSummary = {
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
  return {
    aad,
    keyVault,
    summary,
    async close() {
      await keyVault?.close();
      await aad?.close();
    },
  };
}
