/**
 * The `metrics-port` annotation: the port of the sidecar's Prometheus
 * metrics (`GET /metrics`); unset, the sidecar serves none. The sidecar runs
 * as a non-root user, so the port is 1024 or above; the containers of a pod
 * share one network namespace, so it may not be a port a container of the
 * pod declares (one of the two could not listen). Only in `sidecar` mode: an
 * `init` container exits after its one sync, and nothing would be scraped.
 */
import { Annotation, Injected, type Mode } from "../../common/names.ts";
import type { ProblemList } from "../../common/problems.ts";
import type { Pod } from "../admission-review.ts";

/** The lowest port the sidecar may use: it has no capability to bind below. */
export const MIN_METRICS_PORT = 1024;

/**
 * The metrics port, or undefined (unset, or after adding the problem).
 * @example parseMetricsPortAnnotation("9102", pod, "sidecar", problems) // 9102
 */
export function parseMetricsPortAnnotation(
  text: string | undefined,
  pod: Pick<Pod, "containers" | "initContainers">,
  mode: Mode,
  problems: ProblemList,
): number | undefined {
  if (text === undefined) return undefined;
  const value = text.trim();
  const port = /^[0-9]{1,5}$/.test(value) ? Number(value) : NaN;
  if (!(port >= MIN_METRICS_PORT && port <= 65_535)) {
    problems.addExpected(
      Annotation.metricsPort,
      `a port number from ${MIN_METRICS_PORT} to 65535`,
      text,
    );
    return undefined;
  }
  // The sidecar's own container (a pod injected before) is not the app's.
  const taken = [...pod.containers, ...pod.initContainers].find(
    (c) => c.name !== Injected.containerName && c.ports?.includes(port) === true,
  );
  if (taken !== undefined) {
    problems.addExpected(
      Annotation.metricsPort,
      `a port no container of the pod declares: container "${taken.name}" has containerPort ${port}`,
      text,
    );
    return undefined;
  }
  if (mode === "init") {
    problems.addExpected(
      Annotation.metricsPort,
      "no metrics port in init mode: the init container exits after one sync, so nothing could scrape it",
      text,
    );
    return undefined;
  }
  return port;
}
