import { describe, expect, it } from "vitest";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import { SidecarEnv } from "../common/names.ts";
import { encodeSpec, type SyncSpec } from "../common/spec.ts";
import { parseSidecarConfig, type SidecarConfig, type SidecarEnvRecord } from "./config.ts";

const spec: SyncSpec = {
  vaultUrl: "https://myvault.vault.azure.net",
  files: [{ file: "db", source: { kind: "secret", ref: { name: "db-password" } }, format: "raw" }],
  mode: "sidecar",
  refreshIntervalMs: 300_000,
  fileMode: 0o644,
  outputDir: "/var/run/akv-injector/secrets",
};

const env = (
  over: Record<string, string | undefined> = {},
  s: SyncSpec = spec,
): SidecarEnvRecord => ({
  [SidecarEnv.clientId]: "00000000-0000-0000-0000-0000000000c1",
  [SidecarEnv.tenantId]: "00000000-0000-0000-0000-0000000000a1",
  [SidecarEnv.federatedTokenFile]: "/var/run/secrets/akv-injector/token/azure-identity-token",
  [SidecarEnv.authorityHost]: "https://login.microsoftonline.com/",
  [SidecarEnv.spec]: encodeSpec(s),
  ...over,
});

/** Whether the spec's own vault has challenge resource verification off. */
const unverified = (c: SidecarConfig): boolean => c.unverifiedVaults.has(c.spec.vaultUrl ?? "");
const unverifiedOf = (e: SidecarEnvRecord): boolean => unverified(parseSidecarConfig(e));

function problemOf(e: SidecarEnvRecord): string {
  try {
    parseSidecarConfig(e);
  } catch (error) {
    expect(isAkvError(error, ErrorCode.SIDECAR_CONFIG_INVALID)).toBe(true);
    return (error as Error).message;
  }
  throw new Error("expected a configuration error");
}

describe("parseSidecarConfig", () => {
  it("reads a webhook-made environment for Azure: both SDK safety checks stay on", () => {
    const c = parseSidecarConfig(env());
    expect(c.spec).toEqual(spec);
    expect(c.disableInstanceDiscovery).toBe(false);
    expect(unverified(c)).toBe(false);
    expect(c.logLevel).toBe("info");
    expect(c.extraCaCerts).toEqual([]);
    // No metrics unless the pod asked for them.
    expect(c.metricsPort).toBeUndefined();
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("reads the metrics port the webhook passes for metrics-port", () => {
    expect(parseSidecarConfig(env({ [SidecarEnv.metricsPort]: "9102" })).metricsPort).toBe(9102);
    expect(parseSidecarConfig(env({ [SidecarEnv.metricsPort]: "65535" })).metricsPort).toBe(65_535);
  });

  it("reads the notify targets the webhook passes for notify-<container>; none by default", () => {
    expect(parseSidecarConfig(env()).notify).toEqual([]);
    const c = parseSidecarConfig(
      env({
        [SidecarEnv.notify]:
          '[{"container":"app","target":"http://localhost:8080/r"},{"container":"w","target":"signal:SIGHUP"}]',
      }),
    );
    expect(c.notify).toEqual([
      { container: "app", action: { kind: "http", url: "http://localhost:8080/r" } },
      { container: "w", action: { kind: "signal", signal: "SIGHUP" } },
    ]);
  });

  it("turns instance discovery off exactly for a non-Entra authority", () => {
    expect(
      parseSidecarConfig(env({ [SidecarEnv.authorityHost]: "https://127.0.0.1:8443" }))
        .disableInstanceDiscovery,
    ).toBe(true);
    expect(
      parseSidecarConfig(env({ [SidecarEnv.authorityHost]: "https://login.microsoftonline.us/" }))
        .disableInstanceDiscovery,
    ).toBe(false);
    // Missing: the Entra default.
    const c = parseSidecarConfig(env({ [SidecarEnv.authorityHost]: undefined }));
    expect(c.authorityHost).toBe("https://login.microsoftonline.com/");
    expect(c.disableInstanceDiscovery).toBe(false);
  });

  it("turns challenge resource verification off only for a vault allowed by an exact-host entry", () => {
    const local = { ...spec, vaultUrl: "https://127.0.0.1:9443" };
    const c = parseSidecarConfig(
      env({ [SidecarEnv.vaultSuffixes]: ".vault.azure.net,127.0.0.1" }, local),
    );
    expect(unverified(c)).toBe(true);
    // Same suffix list, an Azure vault: stays on.
    const azure = parseSidecarConfig(
      env({ [SidecarEnv.vaultSuffixes]: ".vault.azure.net,127.0.0.1" }),
    );
    expect(unverified(azure)).toBe(false);
    // A dotted entry never turns it off, even for a non-Azure suffix.
    const dotted = { ...spec, vaultUrl: "https://v.vault.example.test" };
    expect(unverifiedOf(env({ [SidecarEnv.vaultSuffixes]: ".vault.example.test" }, dotted))).toBe(
      false,
    );
  });

  it("keeps challenge resource verification on for a vault under a Key Vault DNS suffix, even when an exact-host entry names it", () => {
    // The contract: off only for an exact-host entry, never for a vault under
    // a Key Vault DNS suffix, whatever the order of the list.
    for (const suffixes of [
      "myvault.vault.azure.net",
      "myvault.vault.azure.net,.vault.azure.net",
      "v.vault.example.test,.vault.example.test",
    ]) {
      const vaultUrl = suffixes.startsWith("v.")
        ? "https://v.vault.example.test"
        : "https://myvault.vault.azure.net";
      expect(
        unverifiedOf(env({ [SidecarEnv.vaultSuffixes]: suffixes }, { ...spec, vaultUrl })),
        suffixes,
      ).toBe(false);
    }
    // An exact host with a port, under no DNS suffix: off.
    expect(
      unverifiedOf(
        env(
          { [SidecarEnv.vaultSuffixes]: ".vault.azure.net,kv.emulator.test:8443" },
          { ...spec, vaultUrl: "https://kv.emulator.test:8443" },
        ),
      ),
    ).toBe(true);
  });

  it("refuses a vault outside the allowed suffixes (the token would go there)", () => {
    for (const vaultUrl of ["https://evil.example.com", "https://evil.com%2e.vault.azure.net"]) {
      expect(problemOf(env({}, { ...spec, vaultUrl })), vaultUrl).toContain(
        "AKV_INJECTOR_SPEC: vaultUrl: expected a vault under the allowed suffixes",
      );
    }
  });

  it("names every bad variable at once", () => {
    const message = problemOf({
      [SidecarEnv.clientId]: "not-a-guid",
      [SidecarEnv.authorityHost]: "http://login.example",
      [SidecarEnv.federatedTokenFile]: "relative/token",
      [SidecarEnv.logLevel]: "loud",
    });
    for (const name of [
      "AZURE_CLIENT_ID",
      "AZURE_TENANT_ID",
      "AZURE_FEDERATED_TOKEN_FILE",
      "AZURE_AUTHORITY_HOST",
      "AKV_INJECTOR_SPEC",
      "AKV_INJECTOR_LOG_LEVEL",
    ]) {
      expect(message).toContain(`${name}:`);
    }
  });

  it("passes the spec's own problems on with their JSON paths", () => {
    const message = problemOf(
      env({
        [SidecarEnv.spec]: JSON.stringify({
          ...spec,
          files: [{ file: "../x", format: "raw", source: { kind: "secret", ref: { name: "a" } } }],
        }),
      }),
    );
    expect(message).toContain("AKV_INJECTOR_SPEC: files[0].file");
    expect(problemOf(env({ [SidecarEnv.spec]: "{" }))).toContain("AKV_INJECTOR_SPEC: not JSON");
  });

  it("takes the tenant's GUID in lower case; refuses a domain name saying why, and junk", () => {
    expect(
      parseSidecarConfig(env({ [SidecarEnv.tenantId]: "00000000-0000-0000-0000-0000000000A1" }))
        .tenantId,
    ).toBe("00000000-0000-0000-0000-0000000000a1");
    expect(problemOf(env({ [SidecarEnv.tenantId]: "contoso.onmicrosoft.com" }))).toContain(
      "AZURE_TENANT_ID: expected the Entra tenant id, the tenant's GUID, not a domain name",
    );
    expect(problemOf(env({ [SidecarEnv.tenantId]: "a b" }))).toContain("AZURE_TENANT_ID");
  });

  it("splits the extra CA bundle into certificates and refuses text without one", () => {
    const pem = (n: number): string =>
      `-----BEGIN CERTIFICATE-----\nMII${n}\n-----END CERTIFICATE-----`;
    const c = parseSidecarConfig(env({ [SidecarEnv.extraCaCerts]: `${pem(1)}\n${pem(2)}\n` }));
    expect(c.extraCaCerts).toEqual([pem(1), pem(2)]);
    expect(problemOf(env({ [SidecarEnv.extraCaCerts]: "hello" }))).toContain(
      "AKV_INJECTOR_EXTRA_CA_CERTS",
    );
  });

  it("refuses bad vault suffixes", () => {
    expect(problemOf(env({ [SidecarEnv.vaultSuffixes]: "a b" }))).toContain(
      "AKV_INJECTOR_VAULT_SUFFIXES",
    );
  });
});

describe("parseSidecarConfig: each bad variable, by its whole message", () => {
  const prefix = "invalid sidecar configuration: ";
  it.each<[string, Record<string, string | undefined>, string]>([
    [
      "no client id",
      { [SidecarEnv.clientId]: undefined },
      "AZURE_CLIENT_ID: expected the managed identity's client id, a GUID",
    ],
    [
      "a blank client id",
      { [SidecarEnv.clientId]: "   " },
      "AZURE_CLIENT_ID: expected the managed identity's client id, a GUID",
    ],
    [
      "a client id with more around the GUID",
      { [SidecarEnv.clientId]: "x00000000-0000-0000-0000-0000000000c1" },
      "AZURE_CLIENT_ID: expected the managed identity's client id, a GUID",
    ],
    [
      "a client id with a digit too many",
      { [SidecarEnv.clientId]: "00000000-0000-0000-0000-0000000000c10" },
      "AZURE_CLIENT_ID: expected the managed identity's client id, a GUID",
    ],
    [
      "no tenant",
      { [SidecarEnv.tenantId]: undefined },
      "AZURE_TENANT_ID: expected the Entra tenant id, the tenant's GUID",
    ],
    [
      "a tenant that is one word",
      { [SidecarEnv.tenantId]: "contoso" },
      "AZURE_TENANT_ID: expected the Entra tenant id, the tenant's GUID",
    ],
    [
      "a tenant GUID without its dashes",
      { [SidecarEnv.tenantId]: "000000000000000000000000000000a1" },
      "AZURE_TENANT_ID: expected the Entra tenant id, the tenant's GUID",
    ],
    [
      "a tenant given as a domain name",
      { [SidecarEnv.tenantId]: "contoso.com" },
      "AZURE_TENANT_ID: expected the Entra tenant id, the tenant's GUID, not a domain name (Key Vault names the tenant by GUID, and the Azure SDK compares the two as text)",
    ],
    [
      "a relative token file",
      { [SidecarEnv.federatedTokenFile]: "token" },
      "AZURE_FEDERATED_TOKEN_FILE: expected the absolute path of the projected service-account token",
    ],
    [
      "no token file",
      { [SidecarEnv.federatedTokenFile]: undefined },
      "AZURE_FEDERATED_TOKEN_FILE: expected the absolute path of the projected service-account token",
    ],
    [
      "an http authority",
      { [SidecarEnv.authorityHost]: "http://login.microsoftonline.com/" },
      "AZURE_AUTHORITY_HOST: expected an https:// URL with no path, query or credentials, like https://login.microsoftonline.com/",
    ],
    [
      "no spec",
      { [SidecarEnv.spec]: undefined },
      "AKV_INJECTOR_SPEC: expected the sync spec as JSON (set by the webhook)",
    ],
    [
      "extra CA text without a certificate",
      { [SidecarEnv.extraCaCerts]: "not a certificate" },
      "AKV_INJECTOR_EXTRA_CA_CERTS: expected PEM text with one or more BEGIN CERTIFICATE blocks",
    ],
    ...["80", "1023", "65536", "9102x", "0x2000", "-9102"].map(
      (port): [string, Record<string, string>, string] => [
        `a metrics port of ${port}`,
        { [SidecarEnv.metricsPort]: port },
        "AKV_INJECTOR_METRICS_PORT: expected a port number from 1024 to 65535",
      ],
    ),
    [
      "a notify target on another host (a hand-edited pod)",
      { [SidecarEnv.notify]: '[{"container":"app","target":"http://10.1.2.3/"}]' },
      "AKV_INJECTOR_NOTIFY: [0].target: expected a loopback host (localhost, 127.0.0.1, [::1]), not 10.1.2.3: the sidecar notifies containers of its own pod and must not become a way to reach other hosts",
    ],
    [
      "notify targets that are not JSON",
      { [SidecarEnv.notify]: "app=signal:SIGHUP" },
      "AKV_INJECTOR_NOTIFY: expected JSON",
    ],
    [
      "an unknown log level",
      { [SidecarEnv.logLevel]: "verbose" },
      "AKV_INJECTOR_LOG_LEVEL: expected fatal, error, warn, info, debug, trace, silent",
    ],
  ])("%s", (_, over, problem) => {
    expect(problemOf(env(over))).toBe(`${prefix}${problem}`);
  });

  it("refuses notify targets in init mode", () => {
    expect(
      problemOf(
        env(
          { [SidecarEnv.notify]: '[{"container":"app","target":"signal:SIGHUP"}]' },
          { ...spec, mode: "init" },
        ),
      ),
    ).toBe(
      `${prefix}AKV_INJECTOR_NOTIFY: expected no notification in init mode (nothing runs after the app starts)`,
    );
  });

  it("names a vault outside the allowed suffixes, listing them", () => {
    const evil = { ...spec, vaultUrl: "https://evil.example.com" };
    expect(problemOf(env({ [SidecarEnv.vaultSuffixes]: ".vault.azure.net,127.0.0.1" }, evil))).toBe(
      `${prefix}AKV_INJECTOR_SPEC: vaultUrl: expected a vault under the allowed suffixes (.vault.azure.net, 127.0.0.1), not https://evil.example.com`,
    );
  });

  it("lists every problem at once, joined with '; '", () => {
    expect(problemOf(env({ [SidecarEnv.clientId]: "x", [SidecarEnv.logLevel]: "loud" }))).toBe(
      `${prefix}AZURE_CLIENT_ID: expected the managed identity's client id, a GUID; AKV_INJECTOR_LOG_LEVEL: expected fatal, error, warn, info, debug, trace, silent`,
    );
  });

  it("takes values with white space around them", () => {
    const c = parseSidecarConfig(
      env({
        [SidecarEnv.clientId]: "  00000000-0000-0000-0000-0000000000C1 ",
        [SidecarEnv.tenantId]: " 00000000-0000-0000-0000-0000000000a1 ",
        [SidecarEnv.logLevel]: " debug ",
      }),
    );
    expect(c.clientId).toBe("00000000-0000-0000-0000-0000000000C1");
    expect(c.tenantId).toBe("00000000-0000-0000-0000-0000000000a1");
    expect(c.logLevel).toBe("debug");
  });
});
