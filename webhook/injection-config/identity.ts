/**
 * The workload identity the sidecar signs in as: a client id and a tenant.
 *
 * Client id precedence: the pod's `akv-injector.io/client-id`, then the
 * service account's `azure.workload.identity/client-id`; one is required.
 * Tenant precedence: the service account's
 * `azure.workload.identity/tenant-id`, then the webhook's `AZURE_TENANT_ID`;
 * never the pod's, since the tenant decides whom the token is asked from.
 * Both are checked here (GUIDs; a tenant is lowered, and a tenant's domain
 * name refused: see `parseTenantId`), so a typo is refused at admission
 * instead of failing the sidecar's first token request; a bad value on the
 * service account is named as such.
 */
import { Annotation, ServiceAccountAnnotation } from "../../common/names.ts";
import type { ProblemList } from "../../common/problems.ts";
import { parseTenantId } from "../../common/refs.ts";
import type { Pod } from "../admission-review.ts";
import { isClientId } from "../settings.ts";

/** What the webhook reads of a service account. */
export interface ServiceAccount {
  readonly metadata?: {
    readonly name?: string | undefined;
    readonly namespace?: string | undefined;
    readonly annotations?: Readonly<Record<string, string>> | undefined;
  };
}

/**
 * The client id, or undefined after adding the problem.
 * @example resolveClientId(pod, { metadata: { annotations: { "azure.workload.identity/client-id": "4d0e…" } } }, problems) // "4d0e…"
 */
export function resolveClientId(
  pod: Pod,
  serviceAccount: ServiceAccount,
  problems: ProblemList,
): string | undefined {
  const podClientId = pod.annotations[Annotation.clientId];
  const saClientId = serviceAccount.metadata?.annotations?.[ServiceAccountAnnotation.clientId];
  if (podClientId !== undefined) {
    if (isClientId(podClientId.trim())) return podClientId.trim();
    problems.addExpected(Annotation.clientId, "a client id (a GUID)", podClientId);
  } else if (saClientId !== undefined && saClientId.trim() !== "") {
    if (isClientId(saClientId.trim())) return saClientId.trim();
    problems.addExpected(
      describeAnnotation(pod, serviceAccount, ServiceAccountAnnotation.clientId),
      "a client id (a GUID)",
      saClientId,
    );
  } else {
    problems.addFor(
      Annotation.clientId,
      `no client id: annotate service account ${describeServiceAccount(pod, serviceAccount)} with ${ServiceAccountAnnotation.clientId}, or the pod with ${Annotation.clientId}`,
    );
  }
  return undefined;
}

/**
 * The tenant id; the default after adding the problem.
 * @param defaultTenantId the webhook's `AZURE_TENANT_ID`.
 */
export function resolveTenantId(
  pod: Pod,
  serviceAccount: ServiceAccount,
  defaultTenantId: string,
  problems: ProblemList,
): string {
  const saTenantId = serviceAccount.metadata?.annotations?.[ServiceAccountAnnotation.tenantId];
  if (saTenantId === undefined || saTenantId.trim() === "") return defaultTenantId;
  const tenant = parseTenantId(saTenantId);
  if (tenant.ok) return tenant.value;
  problems.addExpected(
    describeAnnotation(pod, serviceAccount, ServiceAccountAnnotation.tenantId),
    tenant.expected,
    saTenantId,
  );
  return defaultTenantId;
}

/** `NAMESPACE/NAME` of the pod's service account. */
function describeServiceAccount(pod: Pod, serviceAccount: ServiceAccount): string {
  return `${pod.namespace}/${serviceAccount.metadata?.name ?? pod.serviceAccountName}`;
}

/** The key of a problem with an annotation of the service account. */
function describeAnnotation(pod: Pod, serviceAccount: ServiceAccount, key: string): string {
  return `service account ${describeServiceAccount(pod, serviceAccount)} annotation ${key}`;
}
