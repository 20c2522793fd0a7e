import * as certs from "../certs/index.ts";
import {
  planCerts,
  reconcileCerts,
  type CertRequirements,
  type Reconciled,
  type StoredCerts,
} from "../webhook/cert-reconcile.ts";

/** What one pass of the `self` mode decides and makes at `now`, with the real issuer. */
export function reconcile(
  stored: StoredCerts | undefined,
  requirements: CertRequirements,
  now: Date,
): Reconciled {
  return reconcileCerts(planCerts(stored, requirements, now), requirements, now, certs);
}
