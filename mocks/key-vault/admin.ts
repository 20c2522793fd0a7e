/**
 * The vault's admin API under `/_mock/` (docs/mocks.md): the changes the
 * handle makes, from JSON bodies, for a script or a pod that holds only the
 * vault's URL (the kind checks, the demo). Input is checked here; a bad
 * field answers 400 with its name.
 */
import {
  AdminInputError,
  optionalBoolean,
  optionalNumber,
  optionalString,
  optionalStringMap,
  requireString,
  type AdminHandler,
} from "../admin.ts";
import type { ThrottleOptions } from "../faults.ts";
import { leafOf, type ObjectStore } from "./objects.ts";
import {
  KEY_VAULT_ROLES,
  type CertificateInput,
  type KeyVaultRole,
  type RoleAssignment,
  type RoleTable,
  type SecretOptions,
  type SecretStore,
} from "./store.ts";

/** What the admin routes change. */
export interface VaultControls {
  readonly store: SecretStore;
  readonly objects: ObjectStore;
  readonly roles: RoleTable;
  readonly setThrottle: (options: ThrottleOptions | undefined) => void;
}

/** The throttle `PUT /_mock/throttle` sets without a body: Key Vault's limit for secret GETs. */
const DEFAULT_THROTTLE: ThrottleOptions = { limit: 4000, windowMs: 10_000 };

/**
 * The vault's own admin routes: secrets, certificates, keys, roles, throttle. The
 * fault and counter routes are shared and added by the caller.
 */
export function vaultAdminRoutes(vault: VaultControls): Record<string, AdminHandler> {
  const { store, roles } = vault;
  return {
    "GET secrets": () =>
      store.all().map((s) => ({
        name: s.name,
        versions: s.versions.map((v) => ({
          version: v.version,
          enabled: v.enabled,
          contentType: v.contentType,
          managed: v.kidPath !== undefined,
        })),
      })),
    "PUT secrets": (body, params) => {
      const value = body.value;
      if (typeof value !== "string") throw new AdminInputError("'value' must be a string");
      return store.setSecret(nameParam(params), value, secretOptionsOf(body));
    },
    "PATCH secrets": (body, params) => {
      const enabled = optionalBoolean(body, "enabled");
      if (enabled === undefined) throw new AdminInputError("'enabled' must be a boolean");
      store.setEnabled(nameParam(params), enabled, params[1]);
    },
    "DELETE secrets": (_body, params) => {
      store.delete(nameParam(params));
    },
    "PUT certificates": (body, params) => {
      const tags = optionalStringMap(body, "tags");
      const certificate = certificateOf(body);
      const leaf = leafOf(certificate);
      const info = store.addCertificate(
        nameParam(params),
        certificate,
        tags === undefined ? {} : { tags },
      );
      vault.objects.addCertificate(info.name, leaf, info.version);
      return info;
    },
    "PUT keys": (body, params) => {
      const pem = body.pem;
      if (body.oct === true)
        return { version: vault.objects.addKey(nameParam(params), { oct: true }) };
      if (typeof pem !== "string")
        throw new AdminInputError("'pem' must be a PEM RSA or EC key, or 'oct' true");
      return { version: vault.objects.addKey(nameParam(params), { pem }) };
    },
    "POST roles": (body) => {
      roles.grant(roleOf(body));
    },
    "DELETE roles": (body) => {
      roles.revoke(roleOf(body));
    },
    "GET roles": () => roles.list(),
    "PUT throttle": (body) => {
      vault.setThrottle({
        limit: optionalNumber(body, "limit") ?? DEFAULT_THROTTLE.limit,
        windowMs: optionalNumber(body, "windowMs") ?? DEFAULT_THROTTLE.windowMs,
      });
    },
    "DELETE throttle": () => {
      vault.setThrottle(undefined);
    },
  };
}

function secretOptionsOf(body: Record<string, unknown>): SecretOptions {
  const contentType = optionalString(body, "contentType");
  const tags = optionalStringMap(body, "tags");
  const enabled = optionalBoolean(body, "enabled");
  const notBefore = optionalNumber(body, "notBefore");
  const expiresOn = optionalNumber(body, "expiresOn");
  return {
    ...(contentType === undefined ? {} : { contentType }),
    ...(tags === undefined ? {} : { tags }),
    ...(enabled === undefined ? {} : { enabled }),
    ...(notBefore === undefined ? {} : { notBefore }),
    ...(expiresOn === undefined ? {} : { expiresOn }),
  };
}

function certificateOf(body: Record<string, unknown>): CertificateInput {
  // Both fields are checked before either is used: a non-string `pem` next to
  // a good `pkcs12Base64` is refused, not ignored (operations.test.ts).
  const pkcs12Base64 = optionalString(body, "pkcs12Base64");
  const pem = optionalString(body, "pem");
  const keyPem = optionalString(body, "keyPem");
  const certPems = body.certPems;
  if (pkcs12Base64 !== undefined) return { pkcs12Base64 };
  if (pem !== undefined) return { pem };
  if (keyPem !== undefined) {
    // Packed as Key Vault packs an imported certificate: PKCS#12, as the in-process API does.
    if (
      !Array.isArray(certPems) ||
      certPems.length === 0 ||
      !certPems.every((c) => typeof c === "string")
    )
      throw new AdminInputError(
        "'certPems' must be a non-empty list of PEM certificates, leaf first",
      );
    return { keyPem, certPems };
  }
  throw new AdminInputError("give 'pkcs12Base64', 'pem', or 'keyPem' and 'certPems'");
}

function roleOf(body: Record<string, unknown>): RoleAssignment {
  const secret = optionalString(body, "secret");
  const role = optionalString(body, "role");
  if (role !== undefined && !(KEY_VAULT_ROLES as readonly string[]).includes(role)) {
    throw new AdminInputError(`role: one of ${KEY_VAULT_ROLES.join(", ")}`);
  }
  return {
    principal: requireString(body, "principal"),
    ...(secret === undefined ? {} : { secret }),
    ...(role === undefined ? {} : { role: role as KeyVaultRole }),
  };
}

function nameParam(params: readonly string[]): string {
  const name = params[0];
  if (name === undefined) throw new AdminInputError("the path needs a secret name");
  return name;
}
