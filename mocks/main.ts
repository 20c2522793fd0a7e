/**
 * The mocks as a process: `node mocks/main.ts [flags]` (Node 24 runs the
 * TypeScript directly). Starts the mock Entra ID and the mock Key Vault (or
 * one of them with `--only`), prints ONE JSON line on stdout for a parent to
 * read (URLs, ports, admin URLs, the CA in PEM and a file holding it), logs
 * JSON lines on stderr, and stops on SIGTERM/SIGINT. Flags override the
 * `--config` file; see docs/mocks.md.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { createLogger } from "../common/logger.ts";
import {
  checkMocksConfig,
  startMocksFromConfig,
  type AadConfig,
  type KeyVaultConfig,
  type MocksConfig,
} from "./config.ts";
import { MocksConfigError } from "./start-mocks.ts";

const USAGE = `usage: node mocks/main.ts [--config FILE] [--only aad|key-vault]
  [--host ADDR] [--aad-port N] [--key-vault-port N]
  [--aad-public-url URL] [--key-vault-public-url URL]
  [--tenant ID]... [--trust-ca FILE]... [--token-lifetime SECONDS]
  [--tls-cert FILE --tls-key FILE [--tls-ca FILE]] [--dns-name NAME]... [--ip-address IP]...
  [--aad-url URL --aad-ca FILE]   (Key Vault alone: where its Entra ID is)
  [--admin-token TOKEN] [--out-dir DIR] [--log-level LEVEL]`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      config: { type: "string" },
      only: { type: "string" },
      host: { type: "string" },
      "aad-port": { type: "string" },
      "key-vault-port": { type: "string" },
      "aad-public-url": { type: "string" },
      "key-vault-public-url": { type: "string" },
      tenant: { type: "string", multiple: true },
      "trust-ca": { type: "string", multiple: true },
      "token-lifetime": { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "tls-ca": { type: "string" },
      "dns-name": { type: "string", multiple: true },
      "ip-address": { type: "string", multiple: true },
      "aad-url": { type: "string" },
      "aad-ca": { type: "string" },
      "admin-token": { type: "string" },
      "out-dir": { type: "string" },
      "log-level": { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const logger = createLogger({
    name: "mocks",
    level: values["log-level"] ?? "info",
    // stdout carries the one JSON line a parent reads; logs go to stderr.
    destination: pino.destination({ fd: 2, sync: false }),
  });

  const fileConfig: MocksConfig =
    values.config === undefined
      ? {}
      : checkMocksConfig(JSON.parse(await readFile(values.config, "utf8")) as unknown);
  const only = values.only;
  if (only !== undefined && only !== "aad" && only !== "key-vault")
    throw new MocksConfigError(`--only: aad or key-vault, not '${only}'`);
  const port = (flag: string, text: string | undefined): number | undefined => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 0 || n > 65535)
      throw new MocksConfigError(`${flag}: a port number, not '${text}'`);
    return n;
  };
  const tenants = values.tenant?.map((id) => ({ id }));
  const aadPort = port("--aad-port", values["aad-port"]);
  const keyVaultPort = port("--key-vault-port", values["key-vault-port"]);

  const aad: AadConfig | undefined =
    only === "key-vault"
      ? undefined
      : {
          ...fileConfig.aad,
          ...(aadPort === undefined ? {} : { port: aadPort }),
          ...(values["aad-public-url"] === undefined
            ? {}
            : { publicUrl: values["aad-public-url"] }),
          ...(tenants === undefined
            ? {}
            : { tenants: [...(fileConfig.aad?.tenants ?? []), ...tenants] }),
          ...(values["trust-ca"] === undefined
            ? {}
            : {
                trustedCaFiles: [...(fileConfig.aad?.trustedCaFiles ?? []), ...values["trust-ca"]],
              }),
          ...(values["token-lifetime"] === undefined
            ? {}
            : { tokenLifetimeSec: Number(values["token-lifetime"]) }),
        };
  const keyVault: KeyVaultConfig | undefined =
    only === "aad"
      ? undefined
      : {
          ...fileConfig.keyVault,
          ...(keyVaultPort === undefined ? {} : { port: keyVaultPort }),
          ...(values["key-vault-public-url"] === undefined
            ? {}
            : { publicUrl: values["key-vault-public-url"] }),
          ...(values["aad-url"] === undefined
            ? {}
            : {
                authority: {
                  url: values["aad-url"],
                  tenantId: values.tenant?.[0] ?? fileConfig.keyVault?.authority?.tenantId ?? "",
                  ...(values["aad-ca"] === undefined ? {} : { caFile: values["aad-ca"] }),
                },
              }),
        };
  const tlsFlags =
    values["tls-cert"] === undefined || values["tls-key"] === undefined
      ? undefined
      : {
          certFile: values["tls-cert"],
          keyFile: values["tls-key"],
          ...(values["tls-ca"] === undefined ? {} : { caFile: values["tls-ca"] }),
        };
  // The sections come from `aad`/`keyVault` above (which honour --only), the rest from the file.
  const fileRest = Object.fromEntries(
    Object.entries(fileConfig).filter(([key]) => key !== "aad" && key !== "keyVault"),
  ) as Omit<MocksConfig, "aad" | "keyVault">;
  const config: MocksConfig = {
    ...fileRest,
    ...(values.host === undefined ? {} : { host: values.host }),
    ...(tlsFlags === undefined ? {} : { tls: tlsFlags }),
    ...(values["dns-name"] === undefined ? {} : { dnsNames: values["dns-name"] }),
    ...(values["ip-address"] === undefined ? {} : { ipAddresses: values["ip-address"] }),
    ...(values["admin-token"] === undefined ? {} : { adminToken: values["admin-token"] }),
    ...(aad === undefined ? {} : { aad }),
    ...(keyVault === undefined ? {} : { keyVault }),
  };

  const mocks = await startMocksFromConfig(config, {
    readFile: (p) => readFile(p, "utf8"),
    readFileBytes: (p) => readFile(p),
    logger,
  });

  // The CA as a file too, ready for NODE_EXTRA_CA_CERTS; a temporary one goes with us.
  let caFile: string | null = null;
  let tempDir: string | undefined;
  if (mocks.summary.ca !== null) {
    const dir =
      values["out-dir"] === undefined
        ? (tempDir = await mkdtemp(join(tmpdir(), "akv-mocks-")))
        : resolve(values["out-dir"]);
    caFile = join(dir, "mocks-ca.pem");
    await writeFile(caFile, mocks.summary.ca);
  }
  process.stdout.write(`${JSON.stringify({ ...mocks.summary, caFile, pid: process.pid })}\n`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "mocks stopping");
    void mocks
      .close()
      .then(() =>
        tempDir === undefined ? undefined : rm(tempDir, { recursive: true, force: true }),
      )
      .then(
        () => {
          logger.flush();
          process.exit(0);
        },
        (error: unknown) => {
          logger.error({ err: error }, "mocks did not stop cleanly");
          process.exit(1);
        },
      );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((error: unknown) => {
  const message =
    error instanceof MocksConfigError || error instanceof SyntaxError || error instanceof RangeError
      ? error.message
      : String((error as Error).stack ?? error);
  process.stderr.write(
    `mocks: ${message}\n${error instanceof MocksConfigError ? `${USAGE}\n` : ""}`,
  );
  process.exit(2);
});
