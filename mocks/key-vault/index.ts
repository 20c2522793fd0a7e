/**
 * A mock of Azure Key Vault's secrets data plane that the real
 * `@azure/keyvault-secrets` talks to unmodified over HTTPS (docs/mocks.md):
 * the bearer challenge and token checks (auth.ts), a role table and secrets
 * with versions and certificate-backed ones (store.ts), the service's JSON
 * shapes and paging (wire.ts), the endpoints in the service's order of
 * checks (routes.ts), and the admin API (admin.ts). This file wires them,
 * with the shared faults, throttle, counters and request log, into one
 * listening mock and its handle. Secret values and tokens are never logged.
 */
import { randomBytes } from "node:crypto";
import { createLogger, type Logger } from "../../common/logger.ts";
import { KEY_VAULT_RESOURCE, trimSlash } from "../azure.ts";
import {
  FaultQueue,
  Throttle,
  checkFaultAction,
  faultControls,
  seededRandom,
  type FaultAction,
  type FaultMethods,
  type ThrottleOptions,
} from "../faults.ts";
import { listenMock, type ListeningMock } from "../listen.ts";
import { RequestStats, type RequestStatsMethods } from "../request-stats.ts";
import type { ServingTls } from "../tls.ts";
import { vaultAdminRoutes } from "./admin.ts";
import { TokenValidator, type KeyVaultAuthority } from "./auth.ts";
import {
  emptyCounters,
  matchesFault,
  serveRequest,
  type KeyVaultCounters,
  type KeyVaultFaultMatch,
  type KeyVaultRequestRecord,
  type RequestContext,
} from "./routes.ts";
import {
  RoleTable,
  SecretStore,
  type CertificateInput,
  type RoleAssignment,
  type SecretOptions,
  type SecretSeed,
  type SecretVersionInfo,
} from "./store.ts";
import { MAX_PAGE, VaultWire, type VaultIdentity } from "./wire.ts";
import { leafOf, ObjectStore, type KeyInput } from "./objects.ts";

export type { KeyVaultAuthority } from "./auth.ts";
export type { KeyInput } from "./objects.ts";
export type {
  KeyVaultCounters,
  KeyVaultFaultMatch,
  KeyVaultOperation,
  KeyVaultRequestRecord,
} from "./routes.ts";
export {
  KEY_VAULT_ROLES,
  type CertificateInput,
  type KeyVaultRole,
  type RoleAssignment,
  type SecretOptions,
  type SecretSeed,
  type SecretVersionInfo,
} from "./store.ts";

/** Options of {@link startMockKeyVault}. */
export interface MockKeyVaultOptions {
  readonly authority: KeyVaultAuthority;
  /** Bind address; default `127.0.0.1`. */
  readonly host?: string;
  readonly port?: number;
  /** The vault URL clients use, if not what their `Host` header says. */
  readonly publicUrl?: string;
  /** Default: a fresh CA and a leaf for localhost/127.0.0.1/::1. */
  readonly tls?: ServingTls;
  /** Default `https://vault.azure.net`. */
  readonly resource?: string;
  readonly secrets?: readonly SecretSeed[];
  readonly roles?: readonly RoleAssignment[];
  /** Default page size of listings (the service's is 25; `maxresults` up to 25 overrides). */
  readonly pageSize?: number;
  readonly throttle?: ThrottleOptions;
  /** Clock skew allowed on token lifetimes; default 300 s (as the service's validator). */
  readonly clockSkewSec?: number;
  /** For the 403 message: the vault's name, subscription, resource group, region. */
  readonly vaultName?: string;
  readonly subscriptionId?: string;
  readonly resourceGroup?: string;
  readonly location?: string;
  readonly adminToken?: string;
  readonly now?: () => number;
  readonly seed?: number;
  readonly logger?: Logger;
}

/** A running mock Key Vault. */
export interface MockKeyVault
  extends
    ListeningMock,
    FaultMethods<FaultAction, KeyVaultFaultMatch>,
    RequestStatsMethods<KeyVaultCounters, KeyVaultRequestRecord> {
  /** Writes a new version (a rotation when the secret exists). */
  setSecret(name: string, value: string, options?: SecretOptions): SecretVersionInfo;
  /** Writes a new version of a certificate-backed secret (`managed`, `kid`). */
  addCertificate(
    name: string,
    certificate: CertificateInput,
    options?: Pick<SecretOptions, "tags">,
  ): SecretVersionInfo;
  /**
   * Writes a new version of a key (RSA or EC from a PEM key, or a symmetric
   * `oct` one); returns the version. Certificates' keys come with
   * {@link MockKeyVault.addCertificate}.
   */
  addKey(name: string, key: KeyInput): string;
  /** Enables or disables the latest version, or the given one. */
  setSecretEnabled(name: string, enabled: boolean, version?: string): void;
  /** Removes a secret and all its versions. */
  deleteSecret(name: string): void;
  /** Versions of a secret, oldest first. */
  versions(name: string): string[];
  grantRole(assignment: RoleAssignment): void;
  revokeRole(assignment: RoleAssignment): void;
  /** Sets or (with `undefined`) removes the throttle. */
  setThrottle(options: ThrottleOptions | undefined): void;
}

/** Starts a mock Key Vault. */
export async function startMockKeyVault(options: MockKeyVaultOptions): Promise<MockKeyVault> {
  const logger = options.logger ?? createLogger({ name: "mock-key-vault", level: "silent" });
  const now = options.now ?? Date.now;
  const store = new SecretStore(now);
  const objects = new ObjectStore(now);
  const roles = new RoleTable();
  for (const s of options.secrets ?? []) store.setSecret(s.name, s.value, s);
  for (const r of options.roles ?? []) roles.grant(r);
  let throttle = options.throttle === undefined ? undefined : new Throttle(options.throttle);
  const setThrottle = (t: ThrottleOptions | undefined): void => {
    throttle = t === undefined ? undefined : new Throttle(t);
  };
  const faultQueue = new FaultQueue<FaultAction, KeyVaultFaultMatch, RequestContext>(
    matchesFault,
    seededRandom(options.seed ?? randomBytes(4).readUInt32LE()),
  );
  const faults = faultControls(faultQueue, checkFaultAction);
  const stats = new RequestStats<KeyVaultCounters, KeyVaultRequestRecord>(emptyCounters);
  const plane = {
    store,
    objects,
    roles,
    tokens: new TokenValidator({
      authority: options.authority,
      resource: trimSlash(options.resource ?? KEY_VAULT_RESOURCE),
      clockSkewSec: options.clockSkewSec ?? 300,
      now,
      logger,
    }),
    wire: new VaultWire(
      vaultIdentityOf(options),
      Math.min(Math.max(options.pageSize ?? MAX_PAGE, 1), MAX_PAGE),
    ),
    stats,
    faults: faultQueue,
    throttle: () => throttle,
    now,
    logger,
  };

  const listening = await listenMock({
    name: "mock-key-vault",
    options,
    adminRoutes: {
      ...vaultAdminRoutes({ store, objects, roles, setThrottle }),
      ...faults.adminRoutes,
      ...stats.adminRoutes(),
    },
    serve: (call) => serveRequest(call, plane),
    logger,
  });
  return {
    ...listening,
    setSecret: (name, value, opts) => store.setSecret(name, value, opts),
    addCertificate: (name, certificate, opts) => {
      const info = store.addCertificate(name, certificate, opts);
      objects.addCertificate(info.name, leafOf(certificate), info.version);
      return info;
    },
    addKey: (name, key) => objects.addKey(name, key),
    setSecretEnabled: (name, enabled, version) => {
      store.setEnabled(name, enabled, version);
    },
    deleteSecret: (name) => {
      store.delete(name);
    },
    versions: (name) => store.versions(name),
    grantRole: (assignment) => {
      roles.grant(assignment);
    },
    revokeRole: (assignment) => {
      roles.revoke(assignment);
    },
    ...faults.methods,
    setThrottle,
    ...stats.handleMethods(),
  };
}

/** What the 403 message and the region header say about the vault. */
function vaultIdentityOf(options: MockKeyVaultOptions): VaultIdentity {
  const name = options.vaultName ?? "mock-vault";
  const subscription = options.subscriptionId ?? "00000000-0000-0000-0000-000000000000";
  const resourceGroup = options.resourceGroup ?? "mock-rg";
  return {
    name,
    resourceId: `/subscriptions/${subscription}/resourcegroups/${resourceGroup}/providers/microsoft.keyvault/vaults/${name}`,
    location: options.location ?? "mock",
  };
}
