/**
 * The `notify-<container>` annotations: which app containers the sidecar
 * tells, after a sync that changed the set of files, and how (an HTTP POST to
 * the pod's loopback, or a signal to the container's main process).
 *
 * Refused, each naming the key and value: a container that does not get the
 * mount (it would be told of files it cannot see), `init` mode (nothing runs
 * after the app starts), a target that is not loopback `http` or a known
 * signal. A signal also needs `spec.shareProcessNamespace: true` (else the
 * sidecar cannot see the app's processes) and an explicit non-root
 * `runAsUser` and an explicit `runAsGroup` for the container (container or
 * pod): Linux lets a process signal another of the same user without any
 * capability, and read its `/proc/<pid>/environ` (where the sidecar finds
 * the container's marker) only with the same user and group, so the sidecar
 * runs as both and the pod stays within Pod Security `restricted`;
 * signalled containers of different users or groups cannot all be reached
 * by one sidecar and are refused.
 */
import { ContainerAnnotationPrefix, type Mode } from "../../common/names.ts";
import { parseNotifyAction, type NotifyTarget } from "../../common/notify.ts";
import type { ProblemList } from "../../common/problems.ts";
import type { Pod } from "../admission-review.ts";
import type { TargetContainer } from "./targets.ts";

/** What the patch needs for notifications. */
export interface NotifyConfig {
  /** Each container to notify, in key order. */
  readonly targets: readonly NotifyTarget[];
  /** The user the sidecar runs as, when a container is signalled (theirs). */
  readonly sidecarUser?: number;
  /** The group the sidecar runs as, when a container is signalled (theirs). */
  readonly sidecarGroup?: number;
  /** Signalled containers: each gets the env marker the sidecar finds its main process by. */
  readonly signalled: readonly TargetContainer[];
}

/**
 * Reads every `notify-<container>` annotation.
 * @param targets the containers that get the mount.
 * @example parseNotifyAnnotations(pod, { "akv-injector.io/notify-app": "http://localhost:8080/reload" }, targets, "sidecar", problems).targets // [{ container: "app", action: { kind: "http", url: "http://localhost:8080/reload" } }]
 */
export function parseNotifyAnnotations(
  pod: Pick<Pod, "containers" | "runAsUser" | "runAsGroup" | "shareProcessNamespace">,
  annotations: Readonly<Record<string, string>>,
  targets: readonly TargetContainer[],
  mode: Mode,
  problems: ProblemList,
): NotifyConfig {
  const keys = Object.keys(annotations)
    .filter((k) => k.startsWith(ContainerAnnotationPrefix.notify))
    .sort();
  const result: NotifyTarget[] = [];
  const signalled: { target: TargetContainer; key: string; user: number; group: number }[] = [];
  const apps = targets.filter((t) => t.list === "containers");
  for (const key of keys) {
    const text = annotations[key] ?? "";
    const name = key.slice(ContainerAnnotationPrefix.notify.length);
    const target = apps.find((t) => t.name === name);
    if (target === undefined) {
      const have = apps.length > 0 ? apps.map((t) => t.name).join(", ") : "none";
      problems.addFor(
        key,
        `the pod has no container "${name}" that gets the mount (containers that do: ${have})`,
        text,
      );
      continue;
    }
    if (mode === "init") {
      problems.addFor(
        key,
        "expected no notification in init mode: the init container exits after one sync, before the app starts",
        text,
      );
      continue;
    }
    const action = parseNotifyAction(text);
    if (!action.ok) {
      problems.addExpected(key, action.expected, text);
      continue;
    }
    if (action.value.kind === "signal") {
      if (!pod.shareProcessNamespace) {
        problems.addFor(
          key,
          "a signal needs spec.shareProcessNamespace: true (the sidecar sees the app's processes only in a shared PID namespace)",
          text,
        );
        continue;
      }
      const container = pod.containers[target.index];
      const user = container?.runAsUser ?? pod.runAsUser;
      const group = container?.runAsGroup ?? pod.runAsGroup;
      if (user === undefined || user === 0 || group === undefined) {
        const wrong =
          user === 0
            ? "runAsUser is 0"
            : user === undefined
              ? "no runAsUser is set"
              : "no runAsGroup is set";
        problems.addFor(
          key,
          `a signal needs an explicit non-root runAsUser and an explicit runAsGroup for container "${name}" (its securityContext or the pod's), but ${wrong}: the sidecar runs as that user and group, since Linux lets a process signal another of its user, and read its environment (how the sidecar finds it) with its group too, without a capability`,
          text,
        );
        continue;
      }
      signalled.push({ target, key, user, group });
    }
    result.push({ container: name, action: action.value });
  }
  const ids = new Set(signalled.map((s) => `${String(s.user)}:${String(s.group)}`));
  if (ids.size > 1) {
    problems.add(
      `${signalled.map((s) => s.key).join(", ")}: signalled containers must run as one user and group, the sidecar's (${signalled.map((s) => `"${s.target.name}" runs as ${String(s.user)}:${String(s.group)}`).join(", ")})`,
    );
  }
  const [first] = signalled;
  return {
    targets: result,
    signalled: signalled.map((s) => s.target),
    ...(first === undefined ? {} : { sidecarUser: first.user, sidecarGroup: first.group }),
  };
}
