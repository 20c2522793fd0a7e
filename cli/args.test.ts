import { describe, expect, it } from "vitest";
import { usageError } from "../testing/cli.ts";
import { HELP, parseCliArgs, PREVIEW_DEFAULTS } from "./args.ts";
import { WORKLOAD_KINDS } from "./workloads.ts";

describe("parseCliArgs", () => {
  it("reads preview with every option", () => {
    expect(
      parseCliArgs([
        "preview",
        "app.yaml",
        "-o",
        "json",
        "--service-account",
        "sa.yaml",
        "--namespace",
        "ns",
        "--tenant-id",
        "t",
        "--sidecar-image=img",
        "--vault-suffixes",
        "127.0.0.1",
        "--authority-host",
        "https://a/",
        "--refresh-interval",
        "1m",
        "--tmpfs-size-limit",
        "1Mi",
        "--file-mode",
        "0600",
        "--sidecar-resources",
        "{}",
        "--extra-ca-file",
        "ca.pem",
      ]),
    ).toEqual({
      command: "preview",
      file: "app.yaml",
      output: "json",
      serviceAccountFile: "sa.yaml",
      namespace: "ns",
      extraCaFile: "ca.pem",
      settingsEnv: {
        AZURE_TENANT_ID: "t",
        AKV_INJECTOR_SIDECAR_IMAGE: "img",
        AKV_INJECTOR_VAULT_SUFFIXES: "127.0.0.1",
        AZURE_AUTHORITY_HOST: "https://a/",
        AKV_INJECTOR_REFRESH_INTERVAL: "1m",
        AKV_INJECTOR_TMPFS_SIZE_LIMIT: "1Mi",
        AKV_INJECTOR_FILE_MODE: "0600",
        AKV_INJECTOR_SIDECAR_RESOURCES: "{}",
      },
    });
  });

  it.each([
    [["preview", "a.yaml"], "yaml"],
    [["preview", "a.yaml", "-o", "yaml"], "yaml"],
    [["preview", "a.yaml", "--output=json"], "json"],
    [["preview", "-", "-ojson"], "json"],
  ])("reads the output format of %j", (argv, output) => {
    expect(parseCliArgs(argv)).toMatchObject({ command: "preview", output });
  });

  it("reads --help and --version anywhere, --help first", () => {
    expect(parseCliArgs(["--help"])).toEqual({ command: "help" });
    expect(parseCliArgs(["preview", "-h"])).toEqual({ command: "help" });
    expect(parseCliArgs(["--version"])).toEqual({ command: "version" });
    expect(parseCliArgs(["preview", "a.yaml", "--version"])).toEqual({ command: "version" });
    expect(parseCliArgs(["--version", "--help"])).toEqual({ command: "help" });
  });

  it.each([
    [[], "missing command"],
    [["apply", "x"], "unknown command 'apply'"],
    [["preview"], "missing FILE.yaml"],
    [["preview", "a.yaml", "b.yaml"], "unexpected arguments: b.yaml"],
    [["preview", "a.yaml", "--bogus"], "--bogus"],
    [["preview", "a.yaml", "--namespace"], "--namespace"],
    [["preview", "a.yaml", "-o", "wide"], "-o wide: expected one of yaml, json"],
    [["preview", "a.yaml", "-o"], "-o"],
    [["--version=1"], "--version"],
  ])("refuses %j", (argv, expected) => {
    const message = usageError(() => parseCliArgs(argv));
    expect(message).toContain(expected);
    expect(message).toContain("akv-injector --help");
  });

  it("documents every flag, kind and default in --help", () => {
    for (const words of [
      "--output yaml|json",
      "--service-account",
      "--namespace",
      "--tenant-id",
      "--sidecar-image",
      "--vault-suffixes",
      "--authority-host",
      "--refresh-interval",
      "--tmpfs-size-limit",
      "--file-mode",
      "--sidecar-resources",
      "--extra-ca-file",
      "--version",
      "$AZURE_TENANT_ID",
      PREVIEW_DEFAULTS.tenantId,
      PREVIEW_DEFAULTS.sidecarImage,
      "ServiceAccount in FILE",
      "v1 List",
      "16 MiB",
      ...WORKLOAD_KINDS,
    ]) {
      expect(HELP).toContain(words);
    }
  });
});
