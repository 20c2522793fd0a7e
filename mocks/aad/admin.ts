/**
 * The mock Entra ID's admin API under `/_mock/` (docs/mocks.md): the
 * changes the handle makes, from JSON bodies, for a script or a pod that
 * holds only the authority's URL (the kind checks, the demo). Input is
 * checked here; a bad field answers 400 with its name.
 */
import {
  AdminInputError,
  optionalNumber,
  optionalString,
  optionalStrings,
  requireString,
  type AdminHandler,
} from "../admin.ts";
import type { FederationErrorStyle } from "./auth.ts";
import type { Directory } from "./store.ts";

/** What the admin routes read and change. */
export interface EntraControls {
  readonly directory: Directory;
  readonly trustIssuerCa: (pem: string) => void;
  readonly tokenLifetimeSec: () => number;
  readonly setTokenLifetime: (seconds: number) => void;
  readonly federationErrors: () => FederationErrorStyle;
  readonly setFederationErrors: (style: FederationErrorStyle) => void;
  /** The active fault rules, for `GET state`. */
  readonly faults: () => unknown;
}

/**
 * The mock's own admin routes: state, tenants, apps, federated credentials,
 * trusted CAs, settings. The fault and counter routes are shared and added
 * by the caller.
 */
export function entraAdminRoutes(entra: EntraControls): Record<string, AdminHandler> {
  const { directory } = entra;
  return {
    "GET state": () => ({
      tenants: directory.tenants().map(({ id, apps }) => ({
        id,
        apps: apps.map((a) => ({
          clientId: a.clientId,
          objectId: a.objectId,
          federatedCredentials: a.federatedCredentials,
        })),
      })),
      tokenLifetimeSec: entra.tokenLifetimeSec(),
      federationErrors: entra.federationErrors(),
      faults: entra.faults(),
    }),
    "POST tenants": (body) => {
      directory.addTenant({ id: requireString(body, "id") });
    },
    "POST apps": (body) => {
      const objectId = optionalString(body, "objectId");
      return {
        objectId: directory.addApp(requireString(body, "tenantId"), {
          clientId: requireString(body, "clientId"),
          ...(objectId === undefined ? {} : { objectId }),
        }),
      };
    },
    "POST federated-credentials": (body) => {
      const audiences = optionalStrings(body, "audiences");
      const name = optionalString(body, "name");
      directory.addFederatedCredential(
        requireString(body, "tenantId"),
        requireString(body, "clientId"),
        {
          issuer: requireString(body, "issuer"),
          subject: requireString(body, "subject"),
          ...(audiences === undefined ? {} : { audiences }),
          ...(name === undefined ? {} : { name }),
        },
      );
    },
    "DELETE federated-credentials": (body) => {
      directory.removeFederatedCredential(
        requireString(body, "tenantId"),
        requireString(body, "clientId"),
        optionalString(body, "name"),
      );
    },
    "POST trusted-cas": (body) => {
      entra.trustIssuerCa(requireString(body, "pem"));
    },
    "PUT settings": (body) => {
      const lifetime = optionalNumber(body, "tokenLifetimeSec");
      if (lifetime !== undefined) entra.setTokenLifetime(lifetime);
      const style = optionalString(body, "federationErrors");
      if (style !== undefined) {
        if (style !== "legacy" && style !== "granular")
          throw new AdminInputError("federationErrors: legacy or granular");
        entra.setFederationErrors(style);
      }
    },
  };
}
