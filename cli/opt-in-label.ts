/**
 * The opt-in label in the wrong place on a workload. The webhook sees pods,
 * so only the pod template's `akv-injector.io/inject: "true"` opts in; Azure
 * Workload Identity users learnt this the hard way (azure-workload-identity
 * issue #1025) by labelling the Deployment, or its selector, instead. Pure.
 */
import { INJECT_LABEL } from "../common/names.ts";
import { isObject, valueAt, WORKLOAD_SHAPES, type WorkloadKind } from "./workloads.ts";

/**
 * Warnings about where a workload carries the opt-in label:
 * - in its selector (`matchLabels`, or a `matchExpressions` entry on the
 *   key): selectors are immutable, so taking the label off later means
 *   deleting and re-creating the workload;
 * - in its own labels (or a CronJob's job template's) as `"true"` while the
 *   pod template lacks it: nothing will be injected.
 * Each names the field. Odd shapes give no warning (the apiserver
 * validates them).
 */
export function findOptInLabelTraps(object: unknown, kind: WorkloadKind): string[] {
  const shape = WORKLOAD_SHAPES[kind];
  const warnings: string[] = [];
  const templateLabels = [...shape.template, "metadata", "labels"];
  const selectorPath = shape.selector.join(".");
  const immutable = `a selector cannot be changed, so removing the label later means deleting and re-creating the ${kind}; select on the app's own labels and set ${INJECT_LABEL}: "true" in ${templateLabels.join(".")} only`;

  const selector = valueAt(object, shape.selector);
  if (isObject(selector)) {
    if (isObject(selector.matchLabels) && INJECT_LABEL in selector.matchLabels) {
      warnings.push(`${selectorPath}.matchLabels has ${INJECT_LABEL}: ${immutable}`);
    }
    if (Array.isArray(selector.matchExpressions)) {
      selector.matchExpressions.forEach((expression: unknown, i) => {
        if (isObject(expression) && expression.key === INJECT_LABEL) {
          warnings.push(
            `${selectorPath}.matchExpressions[${String(i)}] is on ${INJECT_LABEL}: ${immutable}`,
          );
        }
      });
    }
  }

  const template = valueAt(object, templateLabels);
  const templateOptsIn = isObject(template) && template[INJECT_LABEL] === "true";
  if (!templateOptsIn) {
    for (const path of shape.ownLabels) {
      const labels = valueAt(object, path);
      if (isObject(labels) && labels[INJECT_LABEL] === "true") {
        warnings.push(
          `${path.join(".")} has ${INJECT_LABEL}: "true", but ${templateLabels.join(".")} does not: the webhook sees pods, not the ${kind}, so nothing will be injected; put the label on the pod template`,
        );
      }
    }
  }
  return warnings;
}
