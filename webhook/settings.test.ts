import { describe, expect, it } from "vitest";
import { isAkvError, ErrorCode } from "../common/errors.ts";
import { createCertificateAuthority } from "../certs/index.ts";
import {
  isClientId,
  isQuantity,
  parseInjectionSettings,
  parseSettings,
  SettingDefaults,
  withSidecarExtraCa,
} from "./settings.ts";
import { TENANT_ID } from "../testing/webhook.ts";

const required = {
  AKV_INJECTOR_TLS_CERT_FILE: "/tls/tls.crt",
  AKV_INJECTOR_TLS_KEY_FILE: "/tls/tls.key",
  AKV_INJECTOR_SIDECAR_IMAGE: "example/sidecar:1",
  AZURE_TENANT_ID: TENANT_ID,
};

function settingsError(env: Record<string, string | undefined>): string {
  try {
    parseSettings(env);
  } catch (error) {
    expect(isAkvError(error, ErrorCode.SETTINGS_INVALID)).toBe(true);
    return (error as Error).message;
  }
  throw new Error("expected parseSettings to throw");
}

describe("parseSettings", () => {
  it("fills the defaults of the contract", () => {
    const s = parseSettings(required);
    expect(s).toEqual({
      tlsCertFile: "/tls/tls.crt",
      tlsKeyFile: "/tls/tls.key",
      port: 8443,
      healthPort: 8080,
      sidecarImage: "example/sidecar:1",
      vaultSuffixes: [
        { value: ".vault.azure.net", exactHost: false },
        { value: ".vault.azure.cn", exactHost: false },
        { value: ".vault.usgovcloudapi.net", exactHost: false },
      ],
      tenantId: TENANT_ID,
      authorityHost: "https://login.microsoftonline.com/",
      refreshIntervalMs: 300_000,
      tmpfsSizeLimit: "4Mi",
      fileMode: 0o644,
      sidecarResources: SettingDefaults.sidecarResources,
      nativeSidecars: true,
      logLevel: "info",
      shutdownDelayMs: 5000,
      certMode: "provided",
    });
    expect(Object.isFrozen(s)).toBe(true);
  });

  it("reads every variable", () => {
    const s = parseSettings({
      ...required,
      AKV_INJECTOR_PORT: "9443",
      AKV_INJECTOR_HEALTH_PORT: "9080",
      AKV_INJECTOR_VAULT_SUFFIXES: "127.0.0.1:8444, .vault.example.test",
      AZURE_AUTHORITY_HOST: "https://127.0.0.1:8445",
      AKV_INJECTOR_REFRESH_INTERVAL: "90s",
      AKV_INJECTOR_TMPFS_SIZE_LIMIT: "1Mi",
      AKV_INJECTOR_FILE_MODE: "0440",
      AKV_INJECTOR_SIDECAR_RESOURCES:
        '{"requests":{"cpu":"5m","memory":"32Mi"},"limits":{"memory":64e6}}',
      AKV_INJECTOR_SIDECAR_EXTRA_CA_FILE: "/ca/bundle.pem",
      AKV_INJECTOR_LOG_LEVEL: "debug",
      AKV_INJECTOR_SHUTDOWN_DELAY: "1500ms",
      KUBECONFIG: "/home/me/.kube/config",
      AKV_INJECTOR_SIDECAR_IMAGE_PULL_POLICY: "Always",
      AKV_INJECTOR_CERT_MODE: "cert-manager",
    });
    expect(s).toMatchObject({
      sidecarImagePullPolicy: "Always",
      certMode: "cert-manager",
      port: 9443,
      healthPort: 9080,
      vaultSuffixes: [
        { value: "127.0.0.1:8444", exactHost: true },
        { value: ".vault.example.test", exactHost: false },
      ],
      authorityHost: "https://127.0.0.1:8445/",
      refreshIntervalMs: 90_000,
      tmpfsSizeLimit: "1Mi",
      fileMode: 0o440,
      sidecarResources: { requests: { cpu: "5m", memory: "32Mi" }, limits: { memory: "64000000" } },
      sidecarExtraCaFile: "/ca/bundle.pem",
      logLevel: "debug",
      shutdownDelayMs: 1500,
      kubeconfig: "/home/me/.kube/config",
    });
  });

  it("treats empty values as unset", () => {
    const s = parseSettings({
      ...required,
      AKV_INJECTOR_PORT: "",
      AKV_INJECTOR_VAULT_SUFFIXES: " ",
    });
    expect(s.port).toBe(8443);
    expect(s.vaultSuffixes).toHaveLength(3);
  });

  it("names every missing required variable at once", () => {
    const message = settingsError({});
    for (const name of [
      "AKV_INJECTOR_TLS_CERT_FILE: is required",
      "AKV_INJECTOR_TLS_KEY_FILE: is required",
      "AKV_INJECTOR_SIDECAR_IMAGE: is required",
      "AZURE_TENANT_ID: is required",
    ]) {
      expect(message).toContain(name);
    }
  });

  it.each([
    ["AKV_INJECTOR_PORT", "https", "a port number"],
    ["AKV_INJECTOR_PORT", "70000", "a port number"],
    ["AKV_INJECTOR_HEALTH_PORT", "8443", "a port other than AKV_INJECTOR_PORT's"],
    ["AKV_INJECTOR_SIDECAR_IMAGE", "my image", "without spaces"],
    ["AKV_INJECTOR_VAULT_SUFFIXES", ".vault.azure.net,bad host", "DNS suffixes"],
    ["AZURE_TENANT_ID", "../../evil", "the tenant's GUID"],
    ["AZURE_AUTHORITY_HOST", "http://login.example", "an https:// URL"],
    ["AZURE_AUTHORITY_HOST", "https://login.example/tenant?x=1", "an https:// URL"],
    ["AZURE_AUTHORITY_HOST", "not a url", "an https:// URL"],
    ["AKV_INJECTOR_REFRESH_INTERVAL", "5 minutes", "Go-style duration"],
    ["AKV_INJECTOR_REFRESH_INTERVAL", "500ms", "a duration from 1s to 480h"],
    ["AKV_INJECTOR_REFRESH_INTERVAL", "600h", "a duration from 1s to 480h"],
    ["AKV_INJECTOR_TMPFS_SIZE_LIMIT", "4 MB", "Kubernetes quantity"],
    ["AKV_INJECTOR_TMPFS_SIZE_LIMIT", "0", "positive"],
    ["AKV_INJECTOR_FILE_MODE", "0999", "octal file mode"],
    ["AKV_INJECTOR_SIDECAR_RESOURCES", "{", "JSON like"],
    ["AKV_INJECTOR_SIDECAR_RESOURCES", '{"requests":{"cpu":"lots"}}', '"requests.cpu"'],
    ["AKV_INJECTOR_SIDECAR_RESOURCES", '{"claims":[]}', 'not "claims"'],
    ["AKV_INJECTOR_SIDECAR_RESOURCES", "[]", "JSON like"],
    ["AKV_INJECTOR_LOG_LEVEL", "verbose", "one of fatal"],
    ["AKV_INJECTOR_SIDECAR_IMAGE_PULL_POLICY", "always", "one of Always, IfNotPresent, Never"],
    ["AKV_INJECTOR_CERT_MODE", "manual", "one of self, cert-manager, provided"],
  ])("refuses %s=%j naming it", (name, value, expected) => {
    const message = settingsError({ ...required, [name]: value });
    expect(message).toContain(`${name}: `);
    expect(message).toContain(expected);
    expect(message).toContain(JSON.stringify(value));
  });

  it("reports problems of several variables together", () => {
    const message = settingsError({
      ...required,
      AKV_INJECTOR_PORT: "x",
      AKV_INJECTOR_FILE_MODE: "9",
    });
    expect(message).toMatch(/AKV_INJECTOR_PORT: .*; AKV_INJECTOR_FILE_MODE: /);
  });
});

describe("self certificate mode", () => {
  const self = {
    ...required,
    AKV_INJECTOR_CERT_MODE: "self",
    AKV_INJECTOR_CERT_SECRET: "akv-injector-tls",
    AKV_INJECTOR_WEBHOOK_CONFIG_NAME: "akv-injector",
    AKV_INJECTOR_SERVICE_NAME: "akv-injector",
    AKV_INJECTOR_NAMESPACE: "akv-system",
  };

  it("reads the self-mode settings with their defaults", () => {
    expect(parseSettings(self).selfCerts).toEqual({
      secretName: "akv-injector-tls",
      webhookConfigName: "akv-injector",
      serviceName: "akv-injector",
      namespace: "akv-system",
      validityMs: 8760 * 3_600_000,
      extraSans: [],
    });
    expect(parseSettings(required).selfCerts).toBeUndefined();
  });

  it("reads validity and extra SANs", () => {
    const s = parseSettings({
      ...self,
      AKV_INJECTOR_CERT_VALIDITY: "90s",
      AKV_INJECTOR_CERT_EXTRA_SANS: "127.0.0.1, ::1,webhook.local",
    });
    expect(s.selfCerts).toMatchObject({
      validityMs: 90_000,
      extraSans: ["127.0.0.1", "::1", "webhook.local"],
    });
  });

  it("names every missing self-mode variable", () => {
    const message = settingsError({ ...required, AKV_INJECTOR_CERT_MODE: "self" });
    for (const name of [
      "AKV_INJECTOR_CERT_SECRET",
      "AKV_INJECTOR_WEBHOOK_CONFIG_NAME",
      "AKV_INJECTOR_SERVICE_NAME",
      "AKV_INJECTOR_NAMESPACE",
    ]) {
      expect(message).toContain(`${name}: is required when AKV_INJECTOR_CERT_MODE is self`);
    }
  });

  it.each([
    ["AKV_INJECTOR_CERT_SECRET", "Bad_Name", "a Kubernetes object name"],
    ["AKV_INJECTOR_NAMESPACE", "a.b", "a lower-case DNS label"],
    ["AKV_INJECTOR_CERT_VALIDITY", "1y", "Go-style duration"],
    ["AKV_INJECTOR_CERT_VALIDITY", "5s", "at least 10s"],
    ["AKV_INJECTOR_CERT_EXTRA_SANS", "127.0.0.1,bad host", "not 'bad host'"],
  ])("refuses %s=%j", (name, value, expected) => {
    const message = settingsError({ ...self, [name]: value });
    expect(message).toContain(`${name}: `);
    expect(message).toContain(expected);
  });
});

describe("parseInjectionSettings", () => {
  it("reads whether kubelets run native sidecars: true by default, and names a bad value", () => {
    const base = {
      AZURE_TENANT_ID: "11111111-2222-3333-4444-555555555555",
      AKV_INJECTOR_SIDECAR_IMAGE: "i",
    };
    expect(parseInjectionSettings(base).nativeSidecars).toBe(true);
    expect(
      parseInjectionSettings({ ...base, AKV_INJECTOR_NATIVE_SIDECARS: "false" }).nativeSidecars,
    ).toBe(false);
    expect(() => parseInjectionSettings({ ...base, AKV_INJECTOR_NATIVE_SIDECARS: "yes" })).toThrow(
      'AKV_INJECTOR_NATIVE_SIDECARS: expected true or false (got "yes")',
    );
  });

  it("reads the webhook's own namespace in every mode, and names a bad one", () => {
    const base = {
      AZURE_TENANT_ID: "11111111-2222-3333-4444-555555555555",
      AKV_INJECTOR_SIDECAR_IMAGE: "i",
    };
    expect(parseInjectionSettings({ ...base, AKV_INJECTOR_NAMESPACE: "akv" }).ownNamespace).toBe(
      "akv",
    );
    expect(parseInjectionSettings(base).ownNamespace).toBeUndefined();
    expect(() => parseInjectionSettings({ ...base, AKV_INJECTOR_NAMESPACE: "A_B" })).toThrow(
      'AKV_INJECTOR_NAMESPACE: expected a lower-case DNS label of at most 63 characters (got "A_B")',
    );
  });

  it("needs no TLS files or ports (the preview CLI)", () => {
    const s = parseInjectionSettings({
      AZURE_TENANT_ID: TENANT_ID,
      AKV_INJECTOR_SIDECAR_IMAGE: "x",
    });
    expect(s.sidecarImage).toBe("x");
    expect("tlsCertFile" in s).toBe(false);
  });
});

describe("withSidecarExtraCa", () => {
  const ca = createCertificateAuthority({ commonName: "extra", now: new Date() });

  it("keeps only the certificates of a PEM bundle", () => {
    const s = withSidecarExtraCa(parseSettings(required), `# my CA\n${ca.certPem}\n${ca.certPem}`);
    expect(s.sidecarExtraCaPem?.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(s.sidecarExtraCaPem).not.toContain("# my CA");
    expect(Object.isFrozen(s)).toBe(true);
  });

  it("refuses a file without certificates, naming the variable", () => {
    expect(() => withSidecarExtraCa(parseSettings(required), ca.keyPem)).toThrow(
      /AKV_INJECTOR_SIDECAR_EXTRA_CA_FILE: expected a file of PEM certificates/,
    );
  });

  it("refuses a certificate that does not parse", () => {
    const broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    expect(() => withSidecarExtraCa(parseSettings(required), broken)).toThrow(
      /AKV_INJECTOR_SIDECAR_EXTRA_CA_FILE: expected PEM certificates; certificate 1 does not parse/,
    );
  });
});

describe("identifier checks", () => {
  it.each([
    ["4d0e2f2a-7f44-4d9b-9bd8-0e0b8a1f3c11", true],
    ["4D0E2F2A-7F44-4D9B-9BD8-0E0B8A1F3C11", true],
    ["4d0e2f2a7f444d9b9bd80e0b8a1f3c11", false],
    ["my-app", false],
  ])("isClientId(%j) is %s", (text, expected) => {
    expect(isClientId(text)).toBe(expected);
  });

  it("takes the tenant's GUID in lower case, and refuses a domain name saying why", () => {
    expect(parseSettings({ ...required, AZURE_TENANT_ID: TENANT_ID.toUpperCase() }).tenantId).toBe(
      TENANT_ID,
    );
    expect(settingsError({ ...required, AZURE_TENANT_ID: "contoso.onmicrosoft.com" })).toBe(
      'invalid webhook settings: AZURE_TENANT_ID: expected the tenant\'s GUID, not a domain name (Key Vault names the tenant by GUID, and the Azure SDK compares the two as text) (got "contoso.onmicrosoft.com")',
    );
  });

  it.each([
    ["64Mi", true],
    ["100m", true],
    ["1.5", true],
    ["1e3", true],
    ["1Mb", false],
    ["-1", false],
  ])("isQuantity(%j) is %s", (text, expected) => {
    expect(isQuantity(text)).toBe(expected);
  });
});

describe("the shapes settings take, at their edges", () => {
  const ok = (env: Record<string, string>) => parseSettings({ ...required, ...env });
  const self = {
    AKV_INJECTOR_CERT_MODE: "self",
    AKV_INJECTOR_CERT_SECRET: "akv-injector-tls",
    AKV_INJECTOR_WEBHOOK_CONFIG_NAME: "akv-injector",
    AKV_INJECTOR_SERVICE_NAME: "akv-injector",
    AKV_INJECTOR_NAMESPACE: "akv-system",
  };

  it.each([
    ["4d0e2f2a-7f44-4d9b-9bd8-0e0b8a1f3c11", true],
    ["4D0E2F2A-7F44-4D9B-9BD8-0E0B8A1F3C11", true],
    ["x4d0e2f2a-7f44-4d9b-9bd8-0e0b8a1f3c11", false],
    ["4d0e2f2a-7f44-4d9b-9bd8-0e0b8a1f3c11x", false],
    ["4d0e2f2a-7f44-4d9b-9bd8", false],
  ])("isClientId(%s) is %s", (text, expected) => {
    expect(isClientId(text)).toBe(expected);
  });

  it.each([
    ["64Mi", true],
    ["100m", true],
    ["1.5", true],
    ["1.", true],
    [".5", true],
    [".55Gi", true],
    ["1.25Gi", true],
    ["1e3", true],
    ["1E-3", true],
    ["x64Mi", false],
    ["64Mix", false],
    [".", false],
    ["1.5.5", false],
    ["Mi", false],
  ])("isQuantity(%s) is %s", (text, expected) => {
    expect(isQuantity(text)).toBe(expected);
  });

  it.each(["0", "65535", "8443"])("takes port %s", (port) => {
    expect(ok({ AKV_INJECTOR_PORT: port, AKV_INJECTOR_HEALTH_PORT: "1" }).port).toBe(Number(port));
  });

  it.each(["65536", "-1", "1x", "x1", "123456", ""])("refuses port %j", (port) => {
    if (port === "") {
      expect(ok({ AKV_INJECTOR_PORT: port }).port).toBe(8443);
      return;
    }
    expect(settingsError({ ...required, AKV_INJECTOR_PORT: port })).toBe(
      `invalid webhook settings: AKV_INJECTOR_PORT: expected a port number 0-65535 (got ${JSON.stringify(port)})`,
    );
  });

  it("takes the same port for both servers only when both are 0 (any free port)", () => {
    expect(ok({ AKV_INJECTOR_PORT: "0", AKV_INJECTOR_HEALTH_PORT: "0" }).port).toBe(0);
    expect(
      settingsError({ ...required, AKV_INJECTOR_PORT: "9000", AKV_INJECTOR_HEALTH_PORT: "9000" }),
    ).toContain("AKV_INJECTOR_HEALTH_PORT");
  });

  it.each([
    ["0", false],
    ["0.0", false],
    ["00", false],
    ["10Mi", true],
    ["0.5Mi", true],
    ["100", true],
  ])("tmpfs size limit %s: taken %s", (limit, taken) => {
    if (taken) expect(ok({ AKV_INJECTOR_TMPFS_SIZE_LIMIT: limit }).tmpfsSizeLimit).toBe(limit);
    else
      expect(settingsError({ ...required, AKV_INJECTOR_TMPFS_SIZE_LIMIT: limit })).toContain(
        "AKV_INJECTOR_TMPFS_SIZE_LIMIT: ",
      );
  });

  it.each([
    ['{"requests":{"cpu":"10m"}}', true],
    ['{"requests":{"cpu":10}}', true],
    ['{"limits":{"example.com/gpu":"1"}}', true],
    ['{"requests":{"cpu":"ten"}}', false],
    ['{"requests":{"-cpu":"1"}}', false],
    ['{"requests":{"cpu-":"1"}}', false],
    ['{"requests":[]}', false],
    ['{"requests":null}', false],
    ['{"requests":"1"}', false],
    ["[]", false],
    ["null", false],
    ["{", false],
  ])("sidecar resources %s: taken %s", (json, taken) => {
    if (taken) ok({ AKV_INJECTOR_SIDECAR_RESOURCES: json });
    else
      expect(settingsError({ ...required, AKV_INJECTOR_SIDECAR_RESOURCES: json })).toContain(
        "AKV_INJECTOR_SIDECAR_RESOURCES: ",
      );
  });

  it.each([
    ["AKV_INJECTOR_NAMESPACE", "a", true],
    ["AKV_INJECTOR_NAMESPACE", "a".repeat(63), true],
    ["AKV_INJECTOR_NAMESPACE", "a".repeat(64), false],
    ["AKV_INJECTOR_NAMESPACE", "a-", false],
    ["AKV_INJECTOR_CERT_SECRET", "a", true],
    ["AKV_INJECTOR_CERT_SECRET", "a.b-c", true],
    ["AKV_INJECTOR_CERT_SECRET", "a.", false],
    ["AKV_INJECTOR_CERT_SECRET", "a".repeat(254), false],
    ["AKV_INJECTOR_CERT_SECRET", "a".repeat(253), true],
    ["AKV_INJECTOR_CERT_EXTRA_SANS", "*.example.com", true],
    ["AKV_INJECTOR_CERT_EXTRA_SANS", "a", true],
    ["AKV_INJECTOR_CERT_EXTRA_SANS", "x.*.example.com", false],
    ["AKV_INJECTOR_CERT_EXTRA_SANS", "a-.example.com", false],
    ["AKV_INJECTOR_CERT_EXTRA_SANS", "example.com.", false],
    ["AKV_INJECTOR_CERT_VALIDITY", "10s", true],
  ])("self mode %s=%s: taken %s", (name, value, taken) => {
    const env = { ...required, ...self, [name]: value };
    if (taken) expect(parseSettings(env).selfCerts).toBeDefined();
    else expect(settingsError(env)).toContain(`${name}: `);
  });

  it("a namespace of its own is a DNS label, and only set when given", () => {
    expect(ok({ AKV_INJECTOR_NAMESPACE: "akv-system" }).ownNamespace).toBe("akv-system");
    expect("ownNamespace" in ok({})).toBe(false);
    expect(settingsError({ ...required, AKV_INJECTOR_NAMESPACE: "Bad" })).toContain(
      "AKV_INJECTOR_NAMESPACE: ",
    );
  });

  it("optional settings appear only when set", () => {
    const s = ok({});
    for (const key of ["sidecarImagePullPolicy", "kubeconfig", "selfCerts", "sidecarExtraCaFile"])
      expect(key in s, key).toBe(false);
    expect(ok({ AKV_INJECTOR_SIDECAR_IMAGE_PULL_POLICY: "Always" }).sidecarImagePullPolicy).toBe(
      "Always",
    );
    expect(ok({ KUBECONFIG: "/k" }).kubeconfig).toBe("/k");
    expect(ok({ AKV_INJECTOR_SIDECAR_EXTRA_CA_FILE: "/ca.pem" }).sidecarExtraCaFile).toBe(
      "/ca.pem",
    );
  });

  it("refresh intervals at the range's ends", () => {
    expect(ok({ AKV_INJECTOR_REFRESH_INTERVAL: "1s" }).refreshIntervalMs).toBe(1000);
    expect(ok({ AKV_INJECTOR_REFRESH_INTERVAL: "480h" }).refreshIntervalMs).toBe(480 * 3_600_000);
    expect(settingsError({ ...required, AKV_INJECTOR_REFRESH_INTERVAL: "999ms" })).toBe(
      'invalid webhook settings: AKV_INJECTOR_REFRESH_INTERVAL: expected a duration from 1s to 480h (got "999ms")',
    );
  });

  it.each([
    ["0", 0],
    ["0s", 0],
    ["0ms", 0],
    ["1ms", 1],
    ["60s", 60_000],
    ["1m", 60_000],
  ])("a shutdown delay of %s is %d ms", (value, ms) => {
    expect(ok({ AKV_INJECTOR_SHUTDOWN_DELAY: value }).shutdownDelayMs).toBe(ms);
  });

  it.each(["60001ms", "2m", "-1s", "5", "00s", "soon"])(
    "refuses a shutdown delay of %s, naming the range",
    (value) => {
      expect(settingsError({ ...required, AKV_INJECTOR_SHUTDOWN_DELAY: value })).toBe(
        `invalid webhook settings: AKV_INJECTOR_SHUTDOWN_DELAY: expected a duration from 0s to 60s (got "${value}")`,
      );
    },
  );

  it("names the log levels it takes", () => {
    expect(settingsError({ ...required, AKV_INJECTOR_LOG_LEVEL: "loud" })).toBe(
      'invalid webhook settings: AKV_INJECTOR_LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent (got "loud")',
    );
  });

  it("the extra CA bundle: each certificate, one per line, ending in a line break", () => {
    const ca1 = createCertificateAuthority({ commonName: "one", now: new Date() }).certPem.trim();
    const ca2 = createCertificateAuthority({ commonName: "two", now: new Date() }).certPem.trim();
    const s = withSidecarExtraCa(parseInjectionSettings(required), `junk\n${ca1}\nmore\n${ca2}`);
    expect(s.sidecarExtraCaPem).toBe(`${ca1}\n${ca2}\n`);
  });
});
