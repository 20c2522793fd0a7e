/**
 * A user's side of workload identity, done in one call because almost every
 * test needs it and a missing piece fails far from its cause: the namespace,
 * the service account annotated with the client id, the app and its
 * federated credential in the mock tenant, and the app's role on the vault.
 * `federate` and `grantVault` leave a piece out on purpose, for the tests of
 * what the sidecar says when one is missing.
 */
import type { CoreV1Api } from "@kubernetes/client-node";
import { randomUUID } from "node:crypto";
import { ServiceAccountAnnotation } from "../../common/names.ts";
import type { MockAad, MockKeyVault } from "../../mocks/index.ts";
import { ensureNamespace } from "./objects.ts";

/** A workload identity: a service account federated with an app of the mock tenant. */
export interface Workload {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly clientId: string;
  /** `system:serviceaccount:<ns>:<sa>`. */
  readonly subject: string;
}

/** What a test asks for. */
export interface WorkloadOptions {
  namespace: string;
  serviceAccount: string;
  clientId?: string;
  /** Default true. */
  federate?: boolean;
  /** Default true. */
  grantVault?: boolean;
}

/** Where the workload is made: the apiserver, the mocks, and the issuer Entra ID trusts. */
export interface WorkloadPlace {
  readonly core: CoreV1Api;
  readonly aad: MockAad;
  readonly vault: MockKeyVault;
  readonly tenantId: string;
  /** The service-account issuer (the apiserver's URL). */
  readonly issuer: string;
}

/** Creates the namespace (if new), the annotated service account, the app and federated credential in the mock tenant, and its role on the vault. */
export async function addWorkload(place: WorkloadPlace, w: WorkloadOptions): Promise<Workload> {
  const { core, aad, vault } = place;
  const clientId = w.clientId ?? randomUUID();
  const subject = `system:serviceaccount:${w.namespace}:${w.serviceAccount}`;
  await ensureNamespace(core, w.namespace);
  await core.createNamespacedServiceAccount({
    namespace: w.namespace,
    body: {
      metadata: {
        name: w.serviceAccount,
        annotations: { [ServiceAccountAnnotation.clientId]: clientId },
      },
    },
  });
  aad.addApp(place.tenantId, {
    clientId,
    federatedCredentials: w.federate === false ? [] : [{ issuer: place.issuer, subject }],
  });
  if (w.grantVault !== false) {
    vault.grantRole({ principal: clientId });
    // Certificates and public keys (certificates/read, keys/read): the objects scenario.
    vault.grantRole({ principal: clientId, role: "Key Vault Reader" });
  }
  return { namespace: w.namespace, serviceAccount: w.serviceAccount, clientId, subject };
}
