/**
 * The directory: tenants, their apps, and each app's federated identity
 * credentials. The token endpoint reads it; the handle and the admin API
 * change it through the same methods, so a test that adds a credential sees
 * the next token request honour it. Tenant ids and client ids compare
 * case-insensitively, as Entra's GUIDs do; issuers and subjects do not.
 */
import { randomUUID } from "node:crypto";
import { AdminInputError } from "../admin.ts";
import { TOKEN_EXCHANGE_AUDIENCE } from "../azure.ts";

/** A federated identity credential: which external tokens may act as the app. */
export interface FederatedCredentialConfig {
  /** Exact `iss` of accepted tokens (case-sensitive, as Entra compares). */
  readonly issuer: string;
  /** Exact `sub`, e.g. `system:serviceaccount:<ns>:<sa>`. */
  readonly subject: string;
  /** Accepted `aud` values; default `["api://AzureADTokenExchange"]`. */
  readonly audiences?: readonly string[];
  /** A label; default `<issuer>#<subject>`. */
  readonly name?: string;
}

/** An application (or user-assigned managed identity) of a tenant. */
export interface AppConfig {
  /** The client id (appid) a token request names. */
  readonly clientId: string;
  /** The service principal's object id, the `oid` of its tokens; default a random GUID. */
  readonly objectId?: string;
  readonly federatedCredentials?: readonly FederatedCredentialConfig[];
}

/** A tenant (directory). */
export interface TenantConfig {
  /** Tenant id as clients name it in the authority path (a GUID in practice). */
  readonly id: string;
  readonly apps?: readonly AppConfig[];
}

/** An app as stored: every default filled in. */
export interface App {
  readonly clientId: string;
  readonly objectId: string;
  federatedCredentials: Required<FederatedCredentialConfig>[];
}

/** The tenants of one mock Entra ID. */
export class Directory {
  /** Apps by lower-case client id, by lower-case tenant id. */
  readonly #tenants = new Map<string, Map<string, App>>();

  addTenant(tenant: TenantConfig): void {
    const key = tenant.id.toLowerCase();
    if (!this.#tenants.has(key)) this.#tenants.set(key, new Map());
    for (const app of tenant.apps ?? []) this.addApp(tenant.id, app);
  }

  hasTenant(tenantId: string): boolean {
    return this.#tenants.has(tenantId.toLowerCase());
  }

  /** Adds or replaces an app; returns its object id. @throws {AdminInputError} without the tenant. */
  addApp(tenantId: string, app: AppConfig): string {
    const apps = this.#tenants.get(tenantId.toLowerCase());
    if (apps === undefined) throw new AdminInputError(`no tenant '${tenantId}'`);
    const objectId = app.objectId ?? randomUUID();
    apps.set(app.clientId.toLowerCase(), {
      clientId: app.clientId,
      objectId,
      federatedCredentials: (app.federatedCredentials ?? []).map(completeCredential),
    });
    return objectId;
  }

  /** The app, if the tenant has it. */
  app(tenantId: string, clientId: string): App | undefined {
    return this.#tenants.get(tenantId.toLowerCase())?.get(clientId.toLowerCase());
  }

  /** The app. @throws {AdminInputError} if there is none. */
  findApp(tenantId: string, clientId: string): App {
    const app = this.app(tenantId, clientId);
    if (app === undefined)
      throw new AdminInputError(`no app '${clientId}' in tenant '${tenantId}'`);
    return app;
  }

  addFederatedCredential(
    tenantId: string,
    clientId: string,
    credential: FederatedCredentialConfig,
  ): void {
    this.findApp(tenantId, clientId).federatedCredentials.push(completeCredential(credential));
  }

  /** Removes credentials by name, or all of the app's when `name` is omitted. */
  removeFederatedCredential(tenantId: string, clientId: string, name?: string): void {
    const app = this.findApp(tenantId, clientId);
    app.federatedCredentials =
      name === undefined ? [] : app.federatedCredentials.filter((c) => c.name !== name);
  }

  /** Every tenant (id in lower case) with its apps, for the admin API. */
  tenants(): { id: string; apps: App[] }[] {
    return [...this.#tenants.entries()].map(([id, apps]) => ({ id, apps: [...apps.values()] }));
  }
}

function completeCredential(c: FederatedCredentialConfig): Required<FederatedCredentialConfig> {
  return {
    issuer: c.issuer,
    subject: c.subject,
    audiences: c.audiences ?? [TOKEN_EXCHANGE_AUDIENCE],
    name: c.name ?? `${c.issuer}#${c.subject}`,
  };
}
