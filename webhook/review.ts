/**
 * The admission decision: skip, unchanged, refuse, or patch (with warnings).
 * Pure but for the service-account lookup, which is passed in: the server
 * calls it with the live cache, the preview CLI with the file it was given,
 * tests with a map.
 */
import { isAkvError, ErrorCode } from "../common/errors.ts";
import { INJECT_LABEL, STATUS_ANNOTATION, STATUS_INJECTED } from "../common/names.ts";
import { ProblemList } from "../common/problems.ts";
import {
  allowResponse,
  describePod,
  isEphemeralContainersUpdate,
  isPodCreate,
  parsePod,
  patchResponse,
  readLabels,
  refuseResponse,
  type AdmissionReview,
  type AdmissionReviewResponse,
} from "./admission-review.ts";
import { parseInjectionConfig, type ServiceAccount } from "./injection-config.ts";
import { buildPatch, type PatchOperation } from "./patch.ts";
import { findForbiddenMounts, findReservedNamespace, isInjectedPod } from "./pod-rules.ts";
import { planReinvocation } from "./reinvocation.ts";
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
export const OUTCOMES = [
  "skipped",
  "unchanged",
  "remounted",
  "injected",
  "refused",
  "error",
] as const;
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
 * - already `akv-injector.io/status: injected` (a reinvocation after another webhook) → the
 *   target containers that lack the secrets mount get it ("remounted"), else unchanged;
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
  if (isEphemeralContainersUpdate(request)) return reviewEphemeralContainers(input, podName);
  if (!isPodCreate(request) || readLabels(request.object)[INJECT_LABEL] !== "true") {
    return skip("skipped", podName);
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

  const reserved = findReservedNamespace(namespace, deps.settings.ownNamespace);
  if (reserved !== undefined) return refuse(400, `namespace ${namespace}: ${reserved}`);
  const parsed = parsePod(request.object, namespace);
  if (!parsed.ok) return refuse(400, `the pod cannot be read: ${parsed.problems.join("; ")}`);
  const pod = parsed.pod;
  if (pod.annotations[STATUS_ANNOTATION] === STATUS_INJECTED) {
    const plan = planReinvocation(pod);
    if (!plan.ok) return refuse(400, plan.problems.join("; "));
    if (plan.patch.length === 0) return skip("unchanged", podName);
    return {
      response: patchResponse(request.uid, plan.patch),
      outcome: "remounted",
      pod: podName,
      namespace,
      patch: plan.patch,
      warnings: [],
    };
  }

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

/**
 * Ephemeral containers join a running pod, after injection: one that mounts
 * the token (or writes to the secrets) would break what the pod's creation
 * promised. Pods the webhook did not inject ({@link isInjectedPod}) are left
 * alone.
 */
function reviewEphemeralContainers(input: AdmissionReview, podName: string): ReviewResult {
  const { request } = input;
  const result = (response: AdmissionReviewResponse, outcome: Outcome, message?: string) => ({
    response,
    outcome,
    pod: podName,
    namespace: request.namespace,
    warnings: [],
    ...(message === undefined ? {} : { message }),
  });
  const parsed = parsePod(request.object, request.namespace);
  if (!parsed.ok || !isInjectedPod(parsed.pod))
    return result(allowResponse(request.uid), "skipped");
  const problems = new ProblemList();
  for (const p of findForbiddenMounts("ephemeralContainers", parsed.pod.ephemeralContainers)) {
    problems.add(`${p.field}: ${p.text}`);
  }
  if (problems.count === 0) return result(allowResponse(request.uid), "skipped");
  const message = problems.list().join("; ");
  return result(refuseResponse(request.uid, 400, message), "refused", message);
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
