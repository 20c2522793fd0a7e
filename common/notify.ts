/**
 * What `notify-<container>` asks for: how the sidecar tells an app container
 * that its files changed. One parser for the webhook (the annotation) and the
 * sidecar (`AKV_INJECTOR_NOTIFY`, which the webhook wrote but a pod spec can
 * be edited), so both hold the same rules.
 *
 * HTTP goes to loopback only, plain `http` only: the containers of a pod
 * share its network namespace, so the app is on `localhost`, and a sidecar
 * that POSTs wherever a pod says would be a way for any pod author to make
 * requests from it to other hosts. No redirect is followed (see
 * `sidecar/notify-http.ts`), for the same reason.
 */
import { NOTIFY_SIGNALS, type NotifySignal } from "./names.ts";

/** What to do for one container. */
export type NotifyAction =
  | { readonly kind: "http"; readonly url: string }
  | { readonly kind: "signal"; readonly signal: NotifySignal };

/** One container to notify, and how. */
export interface NotifyTarget {
  readonly container: string;
  readonly action: NotifyAction;
}

/** A parse result: the value, or what was expected. */
export type NotifyParse<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly expected: string };

/** The loopback host names a URL may name, as `URL.hostname` spells them. */
export const LOOPBACK_HOSTS: readonly string[] = ["localhost", "127.0.0.1", "[::1]"];

/** The longest target accepted: a URL for a local endpoint needs far less. */
export const MAX_NOTIFY_TARGET_CHARS = 2048;

const SIGNAL_PREFIX = "signal:";

/**
 * Parses one target: `http://localhost:<port>/<path>` (or `127.0.0.1`,
 * `[::1]`) or `signal:<NAME>`.
 * @example parseNotifyAction("signal:SIGHUP") // { ok: true, value: { kind: "signal", signal: "SIGHUP" } }
 * @example parseNotifyAction("http://localhost:8080/-/reload") // { ok: true, value: { kind: "http", url: "http://localhost:8080/-/reload" } }
 */
export function parseNotifyAction(text: string): NotifyParse<NotifyAction> {
  const value = text.trim();
  const shape = `http://localhost:<port>/<path> or signal:<NAME> (${NOTIFY_SIGNALS.join(", ")})`;
  if (value.length > MAX_NOTIFY_TARGET_CHARS)
    return { ok: false, expected: `at most ${MAX_NOTIFY_TARGET_CHARS} characters: ${shape}` };
  if (value.startsWith(SIGNAL_PREFIX)) {
    const name = value.slice(SIGNAL_PREFIX.length);
    const signal = NOTIFY_SIGNALS.find((s) => s === name);
    return signal === undefined
      ? { ok: false, expected: `a signal among ${NOTIFY_SIGNALS.join(", ")}` }
      : { ok: true, value: { kind: "signal", signal } };
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { ok: false, expected: shape };
  }
  if (url.protocol !== "http:") {
    return {
      ok: false,
      expected: `an http:// URL, not ${url.protocol}// (the app is on the pod's loopback, which needs no TLS)`,
    };
  }
  if (!LOOPBACK_HOSTS.includes(url.hostname)) {
    return {
      ok: false,
      expected: `a loopback host (${LOOPBACK_HOSTS.join(", ")}), not ${url.hostname}: the sidecar notifies containers of its own pod and must not become a way to reach other hosts`,
    };
  }
  if (url.username !== "" || url.password !== "")
    return { ok: false, expected: "a URL without user or password" };
  url.hash = "";
  return { ok: true, value: { kind: "http", url: url.href } };
}

/** The text of an action, as {@link parseNotifyAction} reads it back. */
export function formatNotifyAction(action: NotifyAction): string {
  return action.kind === "http" ? action.url : `${SIGNAL_PREFIX}${action.signal}`;
}

/** The JSON of `AKV_INJECTOR_NOTIFY`. */
export function encodeNotifyTargets(targets: readonly NotifyTarget[]): string {
  return JSON.stringify(
    targets.map((t) => ({ container: t.container, target: formatNotifyAction(t.action) })),
  );
}

const CONTAINER_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * Parses `AKV_INJECTOR_NOTIFY`: each container once, each target as
 * {@link parseNotifyAction} allows.
 * @returns the targets, or every problem (each with its JSON path).
 */
export function parseNotifyTargets(
  json: string,
):
  | { readonly ok: true; readonly value: readonly NotifyTarget[] }
  | { readonly ok: false; readonly problems: readonly string[] } {
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch {
    return { ok: false, problems: ["expected JSON"] };
  }
  if (!Array.isArray(data))
    return { ok: false, problems: ['expected a JSON list of {"container","target"}'] };
  const problems: string[] = [];
  const targets: NotifyTarget[] = [];
  const seen = new Set<string>();
  data.forEach((item: unknown, i) => {
    const at = `[${i}]`;
    const entry =
      typeof item === "object" && item !== null ? (item as Record<string, unknown>) : {};
    const { container, target } = entry;
    if (typeof container !== "string" || !CONTAINER_NAME.test(container)) {
      problems.push(`${at}.container: expected a container name`);
      return;
    }
    if (seen.has(container)) {
      problems.push(`${at}.container: "${container}" is listed twice`);
      return;
    }
    seen.add(container);
    const action =
      typeof target === "string"
        ? parseNotifyAction(target)
        : { ok: false as const, expected: "a string" };
    if (!action.ok) problems.push(`${at}.target: expected ${action.expected}`);
    else targets.push(Object.freeze({ container, action: Object.freeze(action.value) }));
  });
  return problems.length > 0
    ? { ok: false, problems }
    : { ok: true, value: Object.freeze(targets) };
}
