/**
 * The mocks as a process, as the e2e harness and the demo start them: one
 * JSON line on stdout, configuration from a file and flags, the real SDKs
 * against it, a clean exit on SIGTERM. Also a Key Vault process on its own,
 * fetching the keys of an Entra ID that runs elsewhere.
 */
import { ClientAssertionCredential } from "@azure/identity";
import { SecretClient } from "@azure/keyvault-secrets";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMockAad, type MockAad } from "./aad/index.ts";
import { startTestOidcIssuer, type TestOidcIssuer } from "./oidc-issuer.ts";
import type { MocksConfig, MocksSummary } from "./config.ts";
import { createMockTls, trustCaInThisProcess } from "./tls.ts";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));
const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT = "0b6e3f7a-5d1c-4a8e-9f2b-3c4d5e6f7a8b";
const SUBJECT = "system:serviceaccount:shop:api";

type Printed = MocksSummary & { caFile: string | null; pid: number };

let dir: string;
let issuer: TestOidcIssuer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "akv-mocks-main-"));
  issuer = await startTestOidcIssuer();
});

afterAll(async () => {
  await issuer.close();
  await rm(dir, { recursive: true, force: true });
});

/** Starts `node mocks/main.ts ARGS` and reads its one JSON line. */
async function startProcess(
  args: readonly string[],
): Promise<{ child: ChildProcess; printed: Printed; stderr: () => string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  const lines = createInterface({ input: child.stdout });
  const exited = once(child, "exit").then(() => {
    throw new Error(`mocks exited early: ${stderr}`);
  });
  const first = once(lines, "line").then(([line]) => JSON.parse(line as string) as Printed);
  const printed = await Promise.race([first, exited]);
  // Once the line is read, a later exit (our own SIGTERM) is expected.
  exited.catch(() => undefined);
  return { child, printed, stderr: () => stderr };
}

async function stop(child: ChildProcess): Promise<number | null> {
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const [code] = (await exited) as [number | null];
  return code;
}

function secretClient(vaultUrl: string, authorityHost: string): SecretClient {
  const credential = new ClientAssertionCredential(
    TENANT,
    CLIENT,
    () => issuer.mint({ subject: SUBJECT }),
    {
      authorityHost,
      disableInstanceDiscovery: true,
    },
  );
  return new SecretClient(vaultUrl, credential, { disableChallengeResourceVerification: true });
}

describe("node mocks/main.ts", () => {
  it("prints one JSON line, serves the real SDKs, and exits 0 on SIGTERM", async () => {
    const issuerCaFile = join(dir, "issuer-ca.pem");
    await writeFile(issuerCaFile, issuer.ca ?? "");
    const config: MocksConfig = {
      aad: {
        tenants: [
          {
            id: TENANT,
            apps: [
              {
                clientId: CLIENT,
                federatedCredentials: [{ issuer: issuer.issuer, subject: SUBJECT }],
              },
            ],
          },
        ],
      },
      keyVault: {
        secrets: [{ name: "my-secret", value: "Hello!", contentType: "text/plain" }],
        roles: [{ principal: CLIENT }],
      },
    };
    const configFile = join(dir, "mocks.json");
    await writeFile(configFile, JSON.stringify(config));

    const { child, printed } = await startProcess([
      "--config",
      configFile,
      "--trust-ca",
      issuerCaFile,
      "--out-dir",
      dir,
    ]);
    try {
      expect(printed.aad?.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(printed.keyVault?.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(printed.keyVault?.tenantId).toBe(TENANT);
      expect(printed.aad?.admin).toBe(`${printed.aad?.url ?? ""}/_mock/`);
      expect(printed.ca).toContain("BEGIN CERTIFICATE");
      expect(printed.caFile).toBe(join(dir, "mocks-ca.pem"));
      expect(await readFile(printed.caFile ?? "", "utf8")).toBe(printed.ca);
      expect(printed.pid).toBe(child.pid);

      trustCaInThisProcess(printed.ca ?? "");
      const c = secretClient(printed.keyVault?.url ?? "", printed.aad?.url ?? "");
      expect((await c.getSecret("my-secret")).value).toBe("Hello!");
    } finally {
      expect(await stop(child)).toBe(0);
    }
  });

  it("runs a Key Vault alone that fetches its Entra ID's keys over HTTPS", async () => {
    const aadTls = createMockTls();
    trustCaInThisProcess(aadTls.caPem);
    const aad: MockAad = await startMockAad({
      tls: aadTls,
      trustedCaPems: [issuer.ca ?? ""],
      tenants: [
        {
          id: TENANT,
          apps: [
            {
              clientId: CLIENT,
              federatedCredentials: [{ issuer: issuer.issuer, subject: SUBJECT }],
            },
          ],
        },
      ],
    });
    const aadCaFile = join(dir, "aad-ca.pem");
    await writeFile(aadCaFile, aadTls.caPem);
    const { child, printed } = await startProcess([
      "--only",
      "key-vault",
      "--aad-url",
      aad.url,
      "--aad-ca",
      aadCaFile,
      "--tenant",
      TENANT,
      "--admin-token",
      "let-me-in",
    ]);
    try {
      expect(printed.aad).toBeUndefined();
      const vaultUrl = printed.keyVault?.url ?? "";
      trustCaInThisProcess(printed.ca ?? "");
      // Configure it through the admin API, with its token.
      const admin = async (
        method: string,
        path: string,
        body: unknown,
        token = "let-me-in",
      ): Promise<number> => {
        const res = await fetchWithCa(`${vaultUrl}/_mock/${path}`, method, body, token);
        return res;
      };
      expect(await admin("PUT", "secrets/remote", { value: "over https" }, "wrong")).toBe(401);
      expect(await admin("PUT", "secrets/remote", { value: "over https" })).toBe(200);
      expect(await admin("POST", "roles", { principal: CLIENT })).toBe(200);
      const c = secretClient(vaultUrl, aad.url);
      expect((await c.getSecret("remote")).value).toBe("over https");
    } finally {
      expect(await stop(child)).toBe(0);
      await aad.close();
    }
  });

  it("exits 2 with a message on a bad configuration", async () => {
    const bad = join(dir, "bad.json");
    await writeFile(bad, JSON.stringify({ keyVault: { secrets: [{ name: "x" }] } }));
    const child = spawn(process.execPath, [MAIN, "--config", bad], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString("utf8");
    });
    const [code] = (await once(child, "exit")) as [number | null];
    expect(code).toBe(2);
    expect(stderr).toContain("keyVault.secrets[0]");
  });
});

/** A JSON request with Node's https (trusting this process's default CAs), returning the status. */
async function fetchWithCa(
  url: string,
  method: string,
  body: unknown,
  token: string,
): Promise<number> {
  const { request } = await import("node:https");
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        headers: {
          "content-type": "application/json",
          "content-length": String(Buffer.byteLength(payload)),
          "x-mock-admin-token": token,
        },
      },
      (res) => {
        res.resume();
        res.on("end", () => {
          resolve(res.statusCode ?? 0);
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}
