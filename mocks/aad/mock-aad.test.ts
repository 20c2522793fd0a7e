/**
 * The real @azure/identity against the mock Entra ID over real HTTPS, with
 * assertions signed by a test OIDC issuer that sits behind its own private CA
 * (as a kube-apiserver does): only the mock trusts that CA.
 */
import {
  AuthenticationRequiredError,
  ClientAssertionCredential,
  WorkloadIdentityCredential,
} from "@azure/identity";
import { createLocalJWKSet, jwtVerify } from "jose";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startMockAad, type MockAad } from "./index.ts";
import { startTestOidcIssuer, type TestOidcIssuer } from "../oidc-issuer.ts";
import { CLIENT, SUBJECT, TENANT, rawCall, type RawAnswer } from "../testing.ts";
import { createMockTls, trustCaInThisProcess } from "../tls.ts";

const OBJECT = "9d1c2b3a-4e5f-4a6b-8c7d-0e1f2a3b4c5d";
const SCOPE = "https://vault.azure.net/.default";

let issuer: TestOidcIssuer;
let aad: MockAad;

beforeAll(async () => {
  const aadTls = createMockTls();
  trustCaInThisProcess(aadTls.caPem); // the SDK trusts the mock, like NODE_EXTRA_CA_CERTS would
  issuer = await startTestOidcIssuer(); // its own CA, which this process does not trust
  aad = await startMockAad({
    tls: aadTls,
    trustedCaPems: issuer.ca === undefined ? [] : [issuer.ca],
    tenants: [
      {
        id: TENANT,
        apps: [
          {
            clientId: CLIENT,
            objectId: OBJECT,
            federatedCredentials: [{ issuer: issuer.issuer, subject: SUBJECT }],
          },
        ],
      },
    ],
  });
});

afterAll(async () => {
  await aad.close();
  await issuer.close();
});

beforeEach(() => {
  aad.clearFaults();
  aad.resetCounters();
  aad.setFederationErrors("legacy");
});

/** A fresh credential (fresh MSAL cache) whose assertion comes from `mint`. */
function credential(
  mint: () => Promise<string> = () => issuer.mint({ subject: SUBJECT }),
  clientId = CLIENT,
): ClientAssertionCredential {
  return new ClientAssertionCredential(TENANT, clientId, mint, {
    authorityHost: aad.url,
    disableInstanceDiscovery: true,
    retryOptions: { retryDelayInMs: 5, maxRetryDelayInMs: 20 },
  });
}

/** What the SDK surfaces of an Entra refusal: its message, and MSAL's ServerError as the cause. */
interface Refusal {
  readonly message: string;
  /** OAuth `error`, e.g. `invalid_client`. */
  readonly error: string;
  /** HTTP status. */
  readonly status: number;
}

/** Awaits a refused getToken and returns what the SDK surfaced. */
async function refusal(promise: Promise<unknown>): Promise<Refusal> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  // @azure/identity wraps MSAL's ServerError (errorCode, status) in AuthenticationRequiredError.
  expect(error).toBeInstanceOf(AuthenticationRequiredError);
  const cause = (error as Error).cause as { name?: string; errorCode?: string; status?: number };
  expect(cause.name).toBe("ServerError");
  return {
    message: (error as Error).message,
    error: cause.errorCode ?? "",
    status: cause.status ?? 0,
  };
}

/** A raw HTTPS call, to check wire shapes the SDK hides. */
function call(method: string, path: string, body?: string): Promise<RawAnswer> {
  return rawCall(
    new URL(path, aad.url),
    {
      method,
      headers: body === undefined ? {} : { "content-type": "application/x-www-form-urlencoded" },
    },
    body,
  );
}

describe("OIDC metadata", () => {
  it("serves discovery whose issuer has the authority's scheme, host and port", async () => {
    const res = await call("GET", `/${TENANT}/v2.0/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    const doc = res.json as Record<string, string>;
    expect(doc.issuer).toBe(`${aad.url}/${TENANT}/v2.0`);
    expect(doc.token_endpoint).toBe(`${aad.url}/${TENANT}/oauth2/v2.0/token`);
    expect(doc.jwks_uri).toBe(`${aad.url}/${TENANT}/discovery/v2.0/keys`);
    expect(doc.authorization_endpoint).toBeTypeOf("string");
    const keys = await call("GET", `/${TENANT}/discovery/v2.0/keys`);
    expect(keys.json).toEqual(aad.jwks());
  });

  it("answers an unknown tenant with AADSTS90002", async () => {
    const res = await call(
      "GET",
      "/00000000-1111-2222-3333-444444444444/v2.0/.well-known/openid-configuration",
    );
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ error: "invalid_tenant", error_codes: [90002] });
  });
});

describe("client credentials with a federated assertion", () => {
  it("issues a Key Vault token to ClientAssertionCredential", async () => {
    // Key Vault's challenge policy asks for CAE tokens, so the SDK sends the cp1 capability as `claims`.
    const token = await credential().getToken(SCOPE, { enableCae: true });
    expect(token.token).toBeTypeOf("string");
    expect(token.expiresOnTimestamp - Date.now()).toBeGreaterThan(3500_000);

    const { payload, protectedHeader } = await jwtVerify(
      token.token,
      createLocalJWKSet(aad.jwks()),
      {
        audience: "https://vault.azure.net",
        issuer: `https://sts.windows.net/${TENANT}/`,
      },
    );
    expect(protectedHeader.alg).toBe("RS256");
    expect(payload).toMatchObject({
      tid: TENANT,
      appid: CLIENT,
      oid: OBJECT,
      sub: OBJECT,
      ver: "1.0",
    });
    expect(payload.xms_cc).toEqual(["CP1"]);

    expect(aad.counters()).toMatchObject({
      tokenRequests: 1,
      tokensIssued: 1,
      tokensByClientId: { [CLIENT]: 1 },
    });
    // The issuer was asked for its discovery document and keys.
    expect(issuer.fetches().jwks).toBeGreaterThan(0);
  });

  it("issues a token to WorkloadIdentityCredential reading a token file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "akv-mock-aad-"));
    try {
      const file = join(dir, "azure-identity-token");
      await writeFile(file, await issuer.mint({ subject: SUBJECT }));
      const cred = new WorkloadIdentityCredential({
        tenantId: TENANT,
        clientId: CLIENT,
        tokenFilePath: file,
        authorityHost: aad.url,
        disableInstanceDiscovery: true,
      });
      const token = await cred.getToken(SCOPE);
      expect(token.token).toBeTypeOf("string");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("sends one token request per token lifetime (MSAL caches)", async () => {
    const cred = credential();
    await cred.getToken(SCOPE);
    await cred.getToken(SCOPE);
    await cred.getToken(SCOPE);
    expect(aad.counters().tokenRequests).toBe(1);
  });

  it("refuses a subject without a federated credential with AADSTS70021 naming issuer, subject, audience", async () => {
    const error = await refusal(
      credential(() => issuer.mint({ subject: "system:serviceaccount:shop:other" })).getToken(
        SCOPE,
      ),
    );
    expect(error.status).toBe(401);
    expect(error.error).toBe("invalid_client");
    expect(error.message).toContain(
      "AADSTS70021: No matching federated identity record found for presented assertion.",
    );
    expect(error.message).toContain(`Assertion Issuer: '${issuer.issuer}'`);
    expect(error.message).toContain("Assertion Subject: 'system:serviceaccount:shop:other'");
    expect(error.message).toContain("Assertion Audience: 'api://AzureADTokenExchange'");
    expect(aad.counters().errorsByCode).toEqual({ AADSTS70021: 1 });
  });

  it("refuses a wrong audience, and reports granular codes when asked to", async () => {
    const wrongAudience = (): Promise<string> =>
      issuer.mint({ subject: SUBJECT, audience: "api://other" });
    expect((await refusal(credential(wrongAudience).getToken(SCOPE))).message).toContain(
      "AADSTS70021",
    );
    aad.setFederationErrors("granular");
    expect((await refusal(credential(wrongAudience).getToken(SCOPE))).message).toContain(
      "AADSTS700212",
    );
    const otherSubject = (): Promise<string> =>
      issuer.mint({ subject: "system:serviceaccount:x:y" });
    expect((await refusal(credential(otherSubject).getToken(SCOPE))).message).toContain(
      "AADSTS700213",
    );
    const otherIssuer = (): Promise<string> =>
      issuer.mint({ subject: SUBJECT, issuer: "https://elsewhere.example" });
    expect((await refusal(credential(otherIssuer).getToken(SCOPE))).message).toContain(
      "AADSTS700211: No matching federated identity record found for presented assertion issuer 'https://elsewhere.example'",
    );
  });

  it("refuses an expired assertion with AADSTS700024", async () => {
    const error = await refusal(
      credential(() => issuer.mint({ subject: SUBJECT, expiresInSec: -600 })).getToken(SCOPE),
    );
    expect(error.status).toBe(401);
    expect(error.message).toMatch(
      /AADSTS700024: Client assertion is not within its valid time range\. Current time: \d{4}-\d\d-\d\dT[\d:]+\.\d{7}Z/,
    );
  });

  it("refuses an assertion signed by a key the issuer does not publish with AADSTS7000272", async () => {
    const error = await refusal(
      credential(() => issuer.mint({ subject: SUBJECT, foreignKey: true })).getToken(SCOPE),
    );
    expect(error.message).toContain("AADSTS7000272");
    expect(error.message).toContain(issuer.issuer);
  });

  it("follows a key rotation at the issuer", async () => {
    await credential().getToken(SCOPE); // caches the current keys
    await issuer.rotateKey();
    const token = await credential().getToken(SCOPE);
    expect(token.token).toBeTypeOf("string");
  });

  it("refuses an unknown client id with AADSTS700016", async () => {
    const error = await refusal(
      credential(undefined, "00000000-0000-0000-0000-00000000dead").getToken(SCOPE),
    );
    expect(error.status).toBe(400);
    expect(error.error).toBe("unauthorized_client");
    expect(error.message).toContain(
      "AADSTS700016: Application with identifier '00000000-0000-0000-0000-00000000dead'",
    );
  });

  it("refuses a malformed assertion with AADSTS50027", async () => {
    const error = await refusal(credential(() => Promise.resolve("not-a-jwt")).getToken(SCOPE));
    expect(error.message).toContain("AADSTS50027");
  });

  it("answers AADSTS90061 when the issuer's discovery cannot be fetched", async () => {
    issuer.setAvailable(false);
    try {
      // Another issuer path, so nothing is cached for it.
      const other = await startTestOidcIssuer({ path: "/cluster/" });
      aad.addFederatedCredential(TENANT, CLIENT, { issuer: other.issuer, subject: SUBJECT });
      other.setAvailable(false);
      const error = await refusal(
        credential(() => other.mint({ subject: SUBJECT })).getToken(SCOPE),
      );
      expect(error.message).toContain("AADSTS90061: Request to External OIDC endpoint failed.");
      await other.close();
    } finally {
      issuer.setAvailable(true);
    }
  });

  it("refuses a client secret with AADSTS7000215 and a bad grant with AADSTS70003", async () => {
    const form = (fields: Record<string, string>): string => new URLSearchParams(fields).toString();
    const secret = await call(
      "POST",
      `/${TENANT}/oauth2/v2.0/token`,
      form({
        grant_type: "client_credentials",
        client_id: CLIENT,
        scope: SCOPE,
        client_secret: "x",
      }),
    );
    expect(secret.status).toBe(401);
    expect(secret.json).toMatchObject({ error: "invalid_client", error_codes: [7000215] });
    const grant = await call(
      "POST",
      `/${TENANT}/oauth2/v2.0/token`,
      form({ grant_type: "password" }),
    );
    expect(grant.status).toBe(400);
    const body = grant.json as Record<string, unknown>;
    expect(body).toMatchObject({ error: "unsupported_grant_type", error_codes: [70003] });
    // Entra's shape: the description ends with trace, correlation and timestamp.
    expect(body.error_description).toMatch(
      /^AADSTS70003: .* Trace ID: [0-9a-f-]{36} Correlation ID: [0-9a-f-]{36} Timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/,
    );
    expect(body.timestamp).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
    expect(body.trace_id).toBeTypeOf("string");
    expect(body.correlation_id).toBeTypeOf("string");
  });

  it("refuses a scope without /.default with AADSTS1002012", async () => {
    const error = await refusal(
      credential().getToken("https://vault.azure.net/user_impersonation"),
    );
    expect(error.message).toContain("AADSTS1002012");
  });
});

describe("faults", () => {
  it("fails the next token request with 503; the SDK retries", async () => {
    aad.injectFault({ action: { type: "status", status: 503 } });
    const token = await credential().getToken(SCOPE);
    expect(token.token).toBeTypeOf("string");
    expect(aad.counters()).toMatchObject({
      tokenRequests: 2,
      tokensIssued: 1,
      faults: 1,
      tokenErrors: 1,
    });
  });

  it("answers a given AADSTS error for the next N requests", async () => {
    aad.injectFault({
      action: {
        type: "aadsts",
        code: 700024,
        error: "invalid_client",
        status: 401,
        description: "Injected expiry.",
      },
      times: 2,
    });
    expect((await refusal(credential().getToken(SCOPE))).message).toContain(
      "AADSTS700024: Injected expiry.",
    );
    expect((await refusal(credential().getToken(SCOPE))).message).toContain("AADSTS700024");
    expect(await credential().getToken(SCOPE)).toBeTruthy();
  });

  it("adds latency to a token request", async () => {
    aad.injectFault({ action: { type: "latency", ms: 300 } });
    const started = Date.now();
    await credential().getToken(SCOPE);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  });

  it("throttles token requests over the limit with 429 AADSTS90055 and Retry-After; discovery is not counted", async () => {
    aad.setThrottle({ limit: 2, windowMs: 60_000 });
    try {
      await credential().getToken(SCOPE);
      await credential().getToken(SCOPE);
      const over = await call(
        "POST",
        `/${TENANT}/oauth2/v2.0/token`,
        "grant_type=client_credentials",
      );
      expect([over.status, over.headers["retry-after"]]).toEqual([429, "60"]);
      expect(JSON.stringify(over.json)).toContain("AADSTS90055");
      const discovery = await call("GET", `/${TENANT}/v2.0/.well-known/openid-configuration`);
      expect(discovery.status).toBe(200);
      const c = aad.counters();
      expect([c.tokenRequests, c.tokensIssued, c.throttled]).toEqual([3, 2, 1]);
    } finally {
      aad.setThrottle(undefined);
    }
    expect(await credential().getToken(SCOPE)).toBeTruthy();
  });

  it("applies to one client id only when asked", async () => {
    aad.injectFault({
      action: { type: "status", status: 500 },
      match: { clientId: "someone-else" },
    });
    await credential().getToken(SCOPE);
    expect(aad.counters().faults).toBe(0);
    expect(aad.faults()).toHaveLength(1);
  });
});

describe("admin API", () => {
  it("registers a federated credential over HTTP, then a token is issued", async () => {
    const subject = "system:serviceaccount:late:comer";
    const post = async (path: string, body: unknown): Promise<number> =>
      (
        await rawCall(
          new URL(path, aad.url),
          { method: "POST", headers: { "content-type": "application/json" } },
          JSON.stringify(body),
        )
      ).status;
    expect(
      await post("/_mock/federated-credentials", {
        tenantId: TENANT,
        clientId: CLIENT,
        issuer: issuer.issuer,
        subject,
      }),
    ).toBe(200);
    expect(await credential(() => issuer.mint({ subject })).getToken(SCOPE)).toBeTruthy();
    expect(await post("/_mock/faults", { action: { type: "bogus" } })).toBe(400);
    const counters = await call("GET", "/_mock/counters");
    expect(counters.json).toMatchObject({ tokensIssued: 1 });
    // Admin calls are not counted.
    expect(aad.counters().total).toBe(
      aad.counters().tokenRequests + aad.counters().openidConfiguration + aad.counters().keys,
    );
  });
});
