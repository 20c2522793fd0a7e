import { describe, expect, it } from "vitest";
import {
  encodeNotifyTargets,
  formatNotifyAction,
  parseNotifyAction,
  parseNotifyTargets,
  type NotifyAction,
} from "./notify.ts";

const LOOPBACK =
  "a loopback host (localhost, 127.0.0.1, [::1]), not %s: the sidecar notifies containers of its own pod and must not become a way to reach other hosts";
const SHAPE = "http://localhost:<port>/<path> or signal:<NAME> (SIGHUP, SIGUSR1, SIGUSR2, SIGTERM)";

describe("parseNotifyAction", () => {
  it.each<[string, NotifyAction]>([
    ["http://localhost:8080/-/reload", { kind: "http", url: "http://localhost:8080/-/reload" }],
    ["http://127.0.0.1:9000/reload?x=1", { kind: "http", url: "http://127.0.0.1:9000/reload?x=1" }],
    ["http://[::1]:9000/", { kind: "http", url: "http://[::1]:9000/" }],
    // The URL parser's own spellings of loopback, normalised before the check.
    ["HTTP://LOCALHOST:8080/r", { kind: "http", url: "http://localhost:8080/r" }],
    ["http://127.1:8080/r", { kind: "http", url: "http://127.0.0.1:8080/r" }],
    ["http://localhost/r", { kind: "http", url: "http://localhost/r" }],
    [" http://localhost:1/r#part ", { kind: "http", url: "http://localhost:1/r" }],
    ["signal:SIGHUP", { kind: "signal", signal: "SIGHUP" }],
    ["signal:SIGUSR1", { kind: "signal", signal: "SIGUSR1" }],
    ["signal:SIGUSR2", { kind: "signal", signal: "SIGUSR2" }],
    ["signal:SIGTERM", { kind: "signal", signal: "SIGTERM" }],
  ])("accepts %s", (text, action) => {
    expect(parseNotifyAction(text)).toEqual({ ok: true, value: action });
  });

  it.each<[string, string]>([
    ["http://example.com/reload", LOOPBACK.replace("%s", "example.com")],
    ["http://10.0.0.5:8080/", LOOPBACK.replace("%s", "10.0.0.5")],
    ["http://169.254.169.254/metadata", LOOPBACK.replace("%s", "169.254.169.254")],
    ["http://localhost.:8080/", LOOPBACK.replace("%s", "localhost.")],
    ["http://localhost.evil.test/", LOOPBACK.replace("%s", "localhost.evil.test")],
    [
      "https://localhost:8443/",
      "an http:// URL, not https:// (the app is on the pod's loopback, which needs no TLS)",
    ],
    [
      "file:///etc/passwd",
      "an http:// URL, not file:// (the app is on the pod's loopback, which needs no TLS)",
    ],
    ["http://user:pw@localhost:1/", "a URL without user or password"],
    [
      "localhost:8080/reload",
      "an http:// URL, not localhost:// (the app is on the pod's loopback, which needs no TLS)",
    ],
    ["/reload", SHAPE],
    ["", SHAPE],
    ["signal:HUP", "a signal among SIGHUP, SIGUSR1, SIGUSR2, SIGTERM"],
    ["signal:SIGKILL", "a signal among SIGHUP, SIGUSR1, SIGUSR2, SIGTERM"],
    ["signal:sighup", "a signal among SIGHUP, SIGUSR1, SIGUSR2, SIGTERM"],
    [`http://localhost/${"x".repeat(2100)}`, `at most 2048 characters: ${SHAPE}`],
  ])("refuses %s", (text, expected) => {
    expect(parseNotifyAction(text)).toEqual({ ok: false, expected });
  });

  it("reads back what it formats", () => {
    for (const text of ["http://[::1]:9000/a?b=c", "signal:SIGUSR2"]) {
      const parsed = parseNotifyAction(text);
      if (!parsed.ok) throw new Error(parsed.expected);
      expect(formatNotifyAction(parsed.value)).toBe(text);
    }
  });
});

describe("parseNotifyTargets (AKV_INJECTOR_NOTIFY)", () => {
  it("reads what the webhook encodes, frozen", () => {
    const targets = [
      { container: "app", action: { kind: "http", url: "http://localhost:8080/r" } },
      { container: "worker", action: { kind: "signal", signal: "SIGHUP" } },
    ] as const;
    const parsed = parseNotifyTargets(encodeNotifyTargets(targets));
    expect(parsed).toEqual({ ok: true, value: targets });
    expect(parsed.ok && Object.isFrozen(parsed.value)).toBe(true);
  });

  it.each<[string, string, string[]]>([
    ["not JSON", "{", ["expected JSON"]],
    ["not a list", "{}", ['expected a JSON list of {"container","target"}']],
    [
      "a bad container and a host elsewhere",
      '[{"container":"App_1","target":"signal:SIGHUP"},{"container":"b","target":"http://example.com/"}]',
      [
        "[0].container: expected a container name",
        `[1].target: expected ${LOOPBACK.replace("%s", "example.com")}`,
      ],
    ],
    [
      "a container twice",
      '[{"container":"a","target":"signal:SIGHUP"},{"container":"a","target":"signal:SIGHUP"}]',
      ['[1].container: "a" is listed twice'],
    ],
    [
      "a target that is no string",
      '[{"container":"a","target":1}]',
      ["[0].target: expected a string"],
    ],
  ])("refuses %s", (_case, json, problems) => {
    expect(parseNotifyTargets(json)).toEqual({ ok: false, problems });
  });
});
