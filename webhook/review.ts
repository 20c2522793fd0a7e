/**
 * The admission decision: skip, unchanged, refuse, or patch (with warnings).
 * Pure but for the service-account lookup, which is passed in: the server
 * calls it with the live cache, the preview CLI with the file it was given,
 * tests with a map.
 */
import { isAkvError, ErrorCode } from "../common/errors.ts";
import { INJECT_LABEL, STATUS_ANNOTATION, STATUS_INJECTED } from "../common/names.ts";
import {
  allowResponse,
  describePod,
  isPodCreate,
  parsePod,
  patchResponse,
  readAnnotations,
  readLabels,
  refuseResponse,
  type AdmissionReview,
  type AdmissionReviewResponse,
} from "./admission-review.ts";
import { parseInjectionConfig, type ServiceAccount } from "./injection-config.ts";
import { buildPatch, type PatchOperation } from "./patch.ts";
import type { InjectionSettings } from "./settings.ts";

/** Looks a service account up; `undefined` when it does not exist. Rejects with an `AkvError` when it cannot tell. */
export type ServiceAccountLookup = (
  namespace: string,
  name: string,
) => Promise<ServiceAccount | undefined>;

/** What {@link review} needs besides the request. */
export interface ReviewDeps {
  readonly settings: InjectionSettings;
  readonly lookupServiceAccount: ServiceAccountLookup;
}

/** How a review ended, for the log line and the metrics. */
export const OUTCOMES = ["skipped", "unchanged", "injected", "refused", "error"] as const;
/** One of {@link OUTCOMES}. */
export type Outcome = (typeof OUTCOMES)[number];

/** The answer and what the server logs about it. */
export interface ReviewResult {
  readonly response: AdmissionReviewResponse;
  readonly outcome: Outcome;
  /** The pod's name or `generateName*`, for the log line. */
  readonly pod: string;
  readonly namespace: string;
  /** The operations, when patched (the CLI applies them). */
  readonly patch?: readonly PatchOperation[];
  /** The refusal message, when refused or failed. */
  readonly message?: string;
  readonly warnings: readonly string[];
}

/**
 * Decides one AdmissionReview.
 * - not a pod create, or the pod lacks the `akv-injector.io/inject: "true"` label → allowed, no patch;
 * - already `akv-injector.io/status: injected` → allowed unchanged (reinvocation is a no-op);
 * - service account missing, or any annotation problem → refused with 400 and every problem;
 * - the Kubernetes API unreachable → refused with 500 (the apiserver reports it; nothing half-injected);
 * - else patched, with warnings for what is allowed but probably a mistake.
 */
export async function review(input: AdmissionReview, deps: ReviewDeps): Promise<ReviewResult> {
  const { request } = input;
  const namespace = request.namespace;
  const skip = (outcome: Outcome, pod: string): ReviewResult => ({
    response: allowResponse(request.uid),
    outcome,
    pod,
    namespace,
    warnings: [],
  });
  const podName = describePodOf(request.object, request.name);
  if (!isPodCreate(request) || readLabels(request.object)[INJECT_LABEL] !== "true") {
    return skip("skipped", podName);
  }
  if (readAnnotations(request.object)[STATUS_ANNOTATION] === STATUS_INJECTED) {
    return skip("unchanged", podName);
  }
  const refuse = (
    code: number,
    message: string,
    warnings: readonly string[] = [],
  ): ReviewResult => ({
    response: refuseResponse(request.uid, code, message, warnings),
    outcome: code === 400 ? "refused" : "error",
    pod: podName,
    namespace,
    message,
    warnings,
  });

  const parsed = parsePod(request.object, namespace);
  if (!parsed.ok) return refuse(400, `the pod cannot be read: ${parsed.problems.join("; ")}`);
  const pod = parsed.pod;

  let serviceAccount: ServiceAccount | undefined;
  try {
    serviceAccount = await deps.lookupServiceAccount(pod.namespace, pod.serviceAccountName);
  } catch (error) {
    const why = isAkvError(error) ? error.message : "the lookup failed";
    return refuse(
      500,
      `cannot read service account ${pod.namespace}/${pod.serviceAccountName}: ${why}`,
    );
  }
  if (serviceAccount === undefined) {
    return refuse(
      400,
      `service account ${pod.namespace}/${pod.serviceAccountName} does not exist (${ErrorCode.SERVICE_ACCOUNT_NOT_FOUND}); create it, annotated with the identity's client id, before the pod`,
    );
  }

  const config = parseInjectionConfig(pod, serviceAccount, deps.settings);
  if (!config.ok) return refuse(400, config.problems.join("; "), config.warnings);
  const patch = buildPatch(pod, config.config, deps.settings);
  return {
    response: patchResponse(request.uid, patch, config.warnings),
    outcome: "injected",
    pod: podName,
    namespace,
    patch,
    warnings: config.warnings,
  };
}

function describePodOf(object: unknown, requestName: string): string {
  const meta =
    typeof object === "object" && object !== null && "metadata" in object
      ? (object as { metadata?: unknown }).metadata
      : undefined;
  const read = (key: string): string | undefined => {
    if (typeof meta !== "object" || meta === null) return undefined;
    const value = (meta as Record<string, unknown>)[key];
    return typeof value === "string" ? value : undefined;
  };
  return describePod({
    name: requestName !== "" ? requestName : read("name"),
    generateName: read("generateName"),
  });
}
