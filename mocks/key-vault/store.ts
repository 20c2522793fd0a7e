/**
 * The vault's state: secrets with their versions, and the role table. The
 * data plane reads it; the handle and the admin API change it through the
 * same methods, so a test changes the vault exactly as a client then sees
 * it. Names compare case-insensitively, as in Key Vault; a secret keeps the
 * case it was first written with.
 */
import { randomBytes } from "node:crypto";
import { createPkcs12 } from "../../certs/index.ts";
import { AdminInputError } from "../admin.ts";

/**
 * The data-plane roles the mock knows, with the data actions of Azure's
 * built-in roles of the same names (a `*` matches any text, as in a role
 * definition). What a read needs: a secret's value
 * `secrets/getSecret/action`, a listing `secrets/readMetadata/action`, a
 * certificate (its public part) `certificates/read`, a key's public part
 * `keys/read`: so Key Vault Reader reads certificates and public keys but
 * no secret value.
 */
export const KEY_VAULT_ROLE_ACTIONS = {
  "Key Vault Secrets User": [
    "Microsoft.KeyVault/vaults/secrets/getSecret/action",
    "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
  ],
  "Key Vault Reader": [
    "Microsoft.KeyVault/vaults/*/read",
    "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
  ],
  "Key Vault Certificate User": [
    "Microsoft.KeyVault/vaults/certificates/read",
    "Microsoft.KeyVault/vaults/secrets/getSecret/action",
    "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
    "Microsoft.KeyVault/vaults/keys/read",
  ],
  "Key Vault Certificates Officer": [
    "Microsoft.KeyVault/vaults/certificatecas/*",
    "Microsoft.KeyVault/vaults/certificates/*",
    "Microsoft.KeyVault/vaults/certificatecontacts/write",
  ],
  "Key Vault Crypto User": [
    "Microsoft.KeyVault/vaults/keys/read",
    "Microsoft.KeyVault/vaults/keys/update/action",
    "Microsoft.KeyVault/vaults/keys/backup/action",
    "Microsoft.KeyVault/vaults/keys/encrypt/action",
    "Microsoft.KeyVault/vaults/keys/decrypt/action",
    "Microsoft.KeyVault/vaults/keys/wrap/action",
    "Microsoft.KeyVault/vaults/keys/unwrap/action",
    "Microsoft.KeyVault/vaults/keys/sign/action",
    "Microsoft.KeyVault/vaults/keys/verify/action",
  ],
} as const satisfies Readonly<Record<string, readonly string[]>>;

/** The data-plane roles the mock knows. */
export const KEY_VAULT_ROLES = Object.keys(KEY_VAULT_ROLE_ACTIONS) as readonly KeyVaultRole[];
/** One of {@link KEY_VAULT_ROLES}. */
export type KeyVaultRole = keyof typeof KEY_VAULT_ROLE_ACTIONS;

/** A role assignment. */
export interface RoleAssignment {
  /** Client id (appid) or object id (oid) of the caller; `*` for everyone. */
  readonly principal: string;
  /** Scope: one secret by name; default the whole vault. */
  readonly secret?: string;
  /** Default `Key Vault Secrets User`. */
  readonly role?: KeyVaultRole;
}

/** Attributes of a new secret version. */
export interface SecretOptions {
  readonly contentType?: string;
  readonly tags?: Readonly<Record<string, string>>;
  /** Default true. */
  readonly enabled?: boolean;
  /** `nbf`, seconds since the epoch (stored and returned; not enforced). */
  readonly notBefore?: number;
  /** `exp`, seconds since the epoch (stored and returned; not enforced). */
  readonly expiresOn?: number;
}

/** A secret to start with. */
export interface SecretSeed extends SecretOptions {
  readonly name: string;
  readonly value: string;
}

/** A certificate-backed secret's content. */
export type CertificateInput =
  /** Stored as given, `application/x-pkcs12`. */
  | { readonly pkcs12Base64: string }
  /** Stored as given, `application/x-pem-file`. */
  | { readonly pem: string }
  /** Packed as Key Vault would: PKCS#12 without a password (default) or PEM key + chain. */
  | {
      readonly keyPem: string;
      readonly certPems: readonly string[];
      readonly format?: "pkcs12" | "pem";
    };

/** A new version's coordinates. */
export interface SecretVersionInfo {
  readonly name: string;
  /** 32 lowercase hex digits, new for every write. */
  readonly version: string;
  /** `/secrets/<name>/<version>`: prefix the vault URL for the `id` clients see. */
  readonly path: string;
}

/** One version of a secret, as stored. */
export interface StoredVersion {
  readonly version: string;
  readonly value: string;
  readonly contentType?: string;
  readonly tags?: Readonly<Record<string, string>>;
  enabled: boolean;
  readonly created: number;
  updated: number;
  readonly nbf?: number;
  readonly exp?: number;
  /** Certificate-backed: the key's path, `/keys/<name>/<version>`. */
  readonly kidPath?: string;
}

/** A secret: its name as first written, and its versions, oldest first. */
export interface StoredSecret {
  readonly name: string;
  readonly versions: StoredVersion[];
}

/** Secret names Key Vault accepts. */
export const SECRET_NAME = /^[0-9a-zA-Z-]{1,127}$/;
/** The content type of a PKCS#12 certificate-backed secret. */
export const PKCS12 = "application/x-pkcs12";
/** The content type of a PEM certificate-backed secret. */
export const PEM = "application/x-pem-file";

/** The secrets of one vault. */
export class SecretStore {
  readonly #secrets = new Map<string, StoredSecret>();
  readonly #now: () => number;

  /** @param now the clock (ms since the epoch), for `created` and `updated`. */
  constructor(now: () => number) {
    this.#now = now;
  }

  /** The secret named so, if any. */
  get(name: string): StoredSecret | undefined {
    return this.#secrets.get(name.toLowerCase());
  }

  /** The secret named so. @throws {AdminInputError} if there is none. */
  find(name: string): StoredSecret {
    const s = this.get(name);
    if (s === undefined) throw new AdminInputError(`no secret '${name}'`);
    return s;
  }

  /** Every secret, in the order they were first written. */
  all(): StoredSecret[] {
    return [...this.#secrets.values()];
  }

  /** Writes a new version (a rotation when the secret exists). */
  setSecret(name: string, value: string, options: SecretOptions = {}): SecretVersionInfo {
    return this.#write(name, value, options, false);
  }

  /** Writes a new version of a certificate-backed secret (`managed`, `kid`). */
  addCertificate(
    name: string,
    certificate: CertificateInput,
    options: Pick<SecretOptions, "tags"> = {},
  ): SecretVersionInfo {
    const { value, contentType } = packCertificate(certificate);
    return this.#write(name, value, { ...options, contentType }, true);
  }

  /** Enables or disables the latest version, or the given one. */
  setEnabled(name: string, enabled: boolean, version?: string): void {
    const s = this.find(name);
    const v =
      version === undefined
        ? s.versions.at(-1)
        : s.versions.find((x) => x.version === version.toLowerCase());
    if (v === undefined) throw new AdminInputError(`no version '${version ?? ""}' of '${name}'`);
    v.enabled = enabled;
    v.updated = this.#nowSec();
  }

  /** Removes a secret and all its versions. */
  delete(name: string): void {
    this.find(name);
    this.#secrets.delete(name.toLowerCase());
  }

  /** Versions of a secret, oldest first. */
  versions(name: string): string[] {
    return this.find(name).versions.map((v) => v.version);
  }

  #write(name: string, value: string, opts: SecretOptions, kid: boolean): SecretVersionInfo {
    if (!SECRET_NAME.test(name))
      throw new AdminInputError(`bad secret name '${name}': 1-127 of [0-9A-Za-z-]`);
    const key = name.toLowerCase();
    const secret = this.#secrets.get(key) ?? { name, versions: [] };
    this.#secrets.set(key, secret);
    const version = randomBytes(16).toString("hex");
    const t = this.#nowSec();
    secret.versions.push({
      version,
      value,
      ...(opts.contentType === undefined ? {} : { contentType: opts.contentType }),
      ...(opts.tags === undefined ? {} : { tags: { ...opts.tags } }),
      enabled: opts.enabled ?? true,
      created: t,
      updated: t,
      ...(opts.notBefore === undefined ? {} : { nbf: opts.notBefore }),
      ...(opts.expiresOn === undefined ? {} : { exp: opts.expiresOn }),
      ...(kid ? { kidPath: `/keys/${secret.name}/${version}` } : {}),
    });
    return { name: secret.name, version, path: `/secrets/${secret.name}/${version}` };
  }

  #nowSec(): number {
    return Math.floor(this.#now() / 1000);
  }
}

/** A key and its chain as one PEM file, the way Key Vault serves a PEM certificate. */
export function pemBundle(keyPem: string, certPems: readonly string[]): string {
  return [keyPem, ...certPems].map((p) => p.trim()).join("\n") + "\n";
}

/** A certificate as Key Vault stores it behind a secret: the value and its content type. */
function packCertificate(certificate: CertificateInput): { value: string; contentType: string } {
  if ("pkcs12Base64" in certificate)
    return { value: certificate.pkcs12Base64, contentType: PKCS12 };
  if ("pem" in certificate) return { value: certificate.pem, contentType: PEM };
  if (certificate.format === "pem")
    return { value: pemBundle(certificate.keyPem, certificate.certPems), contentType: PEM };
  return {
    value: createPkcs12({ keyPem: certificate.keyPem, certPems: certificate.certPems }),
    contentType: PKCS12,
  };
}

/** What a caller asks to do, and the data action each needs. */
export const PERMISSION_ACTIONS = {
  getSecret: "Microsoft.KeyVault/vaults/secrets/getSecret/action",
  readMetadata: "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
  getCertificate: "Microsoft.KeyVault/vaults/certificates/read",
  getKey: "Microsoft.KeyVault/vaults/keys/read",
} as const;
/** A key of {@link PERMISSION_ACTIONS}. */
export type Permission = keyof typeof PERMISSION_ACTIONS;

/** Whether a role's data action (with `*` wildcards) covers `action`. */
function covers(pattern: string, action: string): boolean {
  const parts = pattern
    .toLowerCase()
    .split("*")
    .map((p) => p.replace(/[.?+^$|()[\]{}\\/]/g, "\\$&"));
  return new RegExp(`^${parts.join(".*")}$`).test(action.toLowerCase());
}

/** The vault's role assignments. */
export class RoleTable {
  #roles: Required<RoleAssignment>[] = [];

  grant(assignment: RoleAssignment): void {
    const r = completeRole(assignment);
    if (!this.#roles.some((x) => sameRole(x, r))) this.#roles.push(r);
  }

  revoke(assignment: RoleAssignment): void {
    const r = completeRole(assignment);
    this.#roles = this.#roles.filter((x) => !sameRole(x, r));
  }

  /** The assignments, principals and secrets in lower case, `secret: ""` for the vault. */
  list(): readonly Required<RoleAssignment>[] {
    return this.#roles;
  }

  /**
   * Whether one of `principals` (lower case) holds a role whose data actions
   * cover `permission`'s, on the whole vault or (for a secret) on `secret`.
   * An assignment scoped to a secret never covers a certificate or a key.
   */
  allows(principals: readonly string[], permission: Permission, secret?: string): boolean {
    const action = PERMISSION_ACTIONS[permission];
    const onSecrets = permission === "getSecret" || permission === "readMetadata";
    return this.#roles.some(
      (r) =>
        principals.includes(r.principal) &&
        (r.secret === "" ||
          (onSecrets && secret !== undefined && r.secret === secret.toLowerCase())) &&
        KEY_VAULT_ROLE_ACTIONS[r.role].some((pattern) => covers(pattern, action)),
    );
  }
}

function completeRole(a: RoleAssignment): Required<RoleAssignment> {
  const role = a.role ?? "Key Vault Secrets User";
  if (!(KEY_VAULT_ROLES as readonly string[]).includes(role)) {
    throw new AdminInputError(`role: one of ${KEY_VAULT_ROLES.join(", ")}`);
  }
  return { principal: a.principal.toLowerCase(), secret: a.secret?.toLowerCase() ?? "", role };
}

function sameRole(a: Required<RoleAssignment>, b: Required<RoleAssignment>): boolean {
  return a.principal === b.principal && a.secret === b.secret && a.role === b.role;
}
