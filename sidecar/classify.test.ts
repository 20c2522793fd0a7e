import { createHttpHeaders, createPipelineRequest, RestError } from "@azure/core-rest-pipeline";
import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.ts";
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth";
import {
  causeChain,
  classifyAuthError,
  decodeJwtClaims,
  readAssertion,
  withTokenPrefetch,
} from "./credential.ts";
import { classifyKeyVaultError, createWarmUpGate } from "./key-vault-source.ts";
import {
  isRetryable,
  parseRetryAfter,
  retryAfterOf,
  SourceError,
  statusOf,
} from "./secret-source.ts";

const vaultUrl = "https://myvault.vault.azure.net";
const clientId = "00000000-0000-0000-0000-0000000000c1";
const now = Date.UTC(2025, 0, 1);

function restError(status: number, headers: Record<string, string> = {}, code?: string): RestError {
  const request = createPipelineRequest({ url: `${vaultUrl}/secrets/x/` });
  return new RestError(`status ${status}`, {
    statusCode: status,
    ...(code === undefined ? {} : { code }),
    request,
    response: { status, headers: createHttpHeaders(headers), request },
  });
}

const kv = (error: unknown, version?: string): SourceError =>
  classifyKeyVaultError(error, {
    vaultUrl,
    ref: version === undefined ? { name: "db" } : { name: "db", version },
    clientId,
    now,
  });

describe("classifyKeyVaultError", () => {
  it("403: fatal, names vault, secret, the role and the client id", () => {
    const e = kv(restError(403, {}, "Forbidden"));
    expect(e.code).toBe(ErrorCode.SECRET_FORBIDDEN);
    expect(isRetryable(e)).toBe(false);
    expect(e.message).toBe(
      `reading secret 'db' in Key Vault ${vaultUrl} was refused (403 Forbidden): grant 'Key Vault Secrets User' on vault ${vaultUrl} to client id ${clientId} (or an access policy with get on secrets)`,
    );
  });

  it("404: fatal, no such secret or version", () => {
    const e = kv(restError(404, {}, "SecretNotFound"), "0123456789abcdef0123456789abcdef");
    expect(e.code).toBe(ErrorCode.SECRET_NOT_FOUND);
    expect(e.message).toContain(
      "secret 'db/0123456789abcdef0123456789abcdef' in Key Vault https://myvault.vault.azure.net does not exist (404 SecretNotFound)",
    );
  });

  it("400 and 401: fatal, refused", () => {
    expect(kv(restError(400, {}, "BadParameter")).code).toBe(ErrorCode.KEY_VAULT_REFUSED);
    expect(kv(restError(401)).message).toContain("did not accept the Entra token");
  });

  it("429: retryable, with Retry-After in seconds, ms headers or as a date", () => {
    expect(kv(restError(429)).retryAfterMs).toBeUndefined();
    expect(isRetryable(kv(restError(429)))).toBe(true);
    expect(kv(restError(429, { "retry-after": "3" })).retryAfterMs).toBe(3000);
    expect(kv(restError(429, { "retry-after-ms": "1500", "retry-after": "3" })).retryAfterMs).toBe(
      1500,
    );
    expect(
      kv(restError(429, { "retry-after": new Date(now + 10_000).toUTCString() })).retryAfterMs,
    ).toBe(10_000);
  });

  it("408, 5xx and no answer at all: retryable", () => {
    for (const s of [408, 500, 502, 503, 504])
      expect(kv(restError(s)).code).toBe(ErrorCode.UNAVAILABLE);
    const reset = kv(new RestError("socket hang up", { code: "ECONNRESET" }));
    expect(reset.code).toBe(ErrorCode.UNAVAILABLE);
    expect(reset.message).toContain("could not be reached reading secret 'db'");
    expect(reset.message).toContain("ECONNRESET");
    const abort = Object.assign(new Error("The operation was aborted."), { name: "AbortError" });
    expect(kv(abort).code).toBe(ErrorCode.UNAVAILABLE);
  });

  it("passes the credential's own errors through", () => {
    const auth = new SourceError(ErrorCode.AUTH_FAILED, "refused");
    expect(kv(auth)).toBe(auth);
    expect(kv(Object.assign(new Error("wrapped"), { cause: auth }))).toBe(auth);
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds, dates and ms; ignores junk", () => {
    expect(parseRetryAfter("0", now)).toBe(0);
    expect(parseRetryAfter("2.5", now)).toBe(2500);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(new Date(now - 5000).toUTCString(), now)).toBe(0);
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});

describe("createWarmUpGate", () => {
  it("lets one call through alone until one succeeds, then all at once", async () => {
    const gate = createWarmUpGate();
    let inFlight = 0;
    let max = 0;
    const log: string[] = [];
    const task =
      (name: string, fail = false) =>
      async (): Promise<string> => {
        inFlight++;
        max = Math.max(max, inFlight);
        log.push(name);
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
        if (fail) throw new Error(name);
        return name;
      };
    const first = await Promise.allSettled([
      gate.run(task("a", true)),
      gate.run(task("b")),
      gate.run(task("c")),
      gate.run(task("d")),
    ]);
    expect(first.map((r) => r.status)).toEqual(["rejected", "fulfilled", "fulfilled", "fulfilled"]);
    expect(log.slice(0, 2)).toEqual(["a", "b"]);
    expect(max).toBe(2); // c and d ran together once b had warmed the gate
    max = 0;
    await Promise.all([gate.run(task("e")), gate.run(task("f")), gate.run(task("g"))]);
    expect(max).toBe(3);
  });

  it("open() lets the waiting calls through while the leader is still running", async () => {
    const gate = createWarmUpGate();
    const started: string[] = [];
    let finishLeader = (): void => undefined;
    const leader = gate.run(async () => {
      started.push("a");
      await new Promise<void>((resolve) => {
        finishLeader = resolve;
      });
      return "a";
    });
    const others = ["b", "c"].map((name) =>
      gate.run(() => {
        started.push(name);
        return Promise.resolve(name);
      }),
    );
    await new Promise((r) => setTimeout(r, 5));
    expect(started).toEqual(["a"]);
    gate.open();
    expect(await Promise.all(others)).toEqual(["b", "c"]);
    finishLeader();
    expect(await leader).toBe("a");
    expect(started).toEqual(["a", "b", "c"]);
  });
});

const jwt = (claims: object): string =>
  `${Buffer.from('{"alg":"RS256"}').toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.c2ln`;

describe("credential helpers", () => {
  const claims = {
    iss: "https://oidc.example/abc/",
    sub: "system:serviceaccount:ns:app",
    aud: ["api://AzureADTokenExchange"],
    exp: now / 1000 - 60,
  };

  it("decodes the claims a federated credential matches, and nothing from junk", () => {
    expect(decodeJwtClaims(jwt(claims))).toEqual({ ...claims, aud: "api://AzureADTokenExchange" });
    expect(decodeJwtClaims("not-a-jwt")).toEqual({});
    expect(decodeJwtClaims("a.%%%.c")).toEqual({});
  });

  it("reads the token file afresh each time and refuses a missing or empty one", async () => {
    let content = "t1\n";
    const read = (): Promise<string> => Promise.resolve(content);
    expect(await readAssertion("/t", read)).toBe("t1");
    content = "t2";
    expect(await readAssertion("/t", read)).toBe("t2");
    content = " \n";
    await expect(readAssertion("/t", read)).rejects.toMatchObject({
      code: ErrorCode.TOKEN_FILE_UNREADABLE,
    });
    const missing = (): Promise<string> =>
      Promise.reject(Object.assign(new Error("nope"), { code: "ENOENT" }));
    await expect(readAssertion("/t", missing)).rejects.toThrow(
      "cannot read the federated token file /t (ENOENT)",
    );
  });

  const ctx = {
    clientId,
    tenantId: "tenant-1",
    authorityHost: "https://login.example/",
    claims: decodeJwtClaims(jwt(claims)),
    now,
  };

  it("explains a federation mismatch with the AADSTS code, the token's issuer, subject, audience and the client id", () => {
    const msal = Object.assign(
      new Error(
        "AADSTS70021: No matching federated identity record found for presented assertion. Trace ID: x\nCorrelation ID: y",
      ),
      { name: "ServerError", errorCode: "invalid_request" },
    );
    const e = classifyAuthError(
      Object.assign(new Error("wrapped"), { name: "AuthenticationRequiredError", cause: msal }),
      ctx,
    );
    expect(e.code).toBe(ErrorCode.AUTH_FAILED);
    expect(isRetryable(e)).toBe(false);
    expect(e.message).toContain("AADSTS70021: No matching federated identity record found");
    expect(e.message).toContain(`client id ${clientId}`);
    expect(e.message).toContain(
      "issuer 'https://oidc.example/abc/', subject 'system:serviceaccount:ns:app', audience 'api://AzureADTokenExchange'",
    );
    expect(e.message).toContain("the token expired at");
    expect(e.message).not.toContain(jwt(claims));
  });

  it("retries AAD outages and throttling, not refusals", () => {
    expect(classifyAuthError(Object.assign(new Error("x"), { statusCode: 503 }), ctx).code).toBe(
      ErrorCode.UNAVAILABLE,
    );
    expect(classifyAuthError(Object.assign(new Error("x"), { statusCode: 429 }), ctx).code).toBe(
      ErrorCode.THROTTLED,
    );
    expect(
      classifyAuthError(Object.assign(new Error("network"), { errorCode: "network_error" }), ctx)
        .code,
    ).toBe(ErrorCode.UNAVAILABLE);
    expect(
      classifyAuthError(
        Object.assign(new Error("AADSTS700016: Application not found"), { statusCode: 400 }),
        ctx,
      ).code,
    ).toBe(ErrorCode.AUTH_FAILED);
    const own = new SourceError(ErrorCode.TOKEN_FILE_UNREADABLE, "empty");
    expect(classifyAuthError(Object.assign(new Error("w"), { cause: own }), ctx)).toBe(own);
  });
});

describe("parseRetryAfter: every form a service sends", () => {
  const now = Date.UTC(2026, 10, 30, 12, 0, 0);
  it.each<[string | null | undefined, "s" | "ms", number | undefined]>([
    [null, "s", undefined],
    [undefined, "s", undefined],
    ["5", "s", 5000],
    [" 5 ", "s", 5000],
    ["1.25", "s", 1250],
    ["1.5", "ms", 2],
    ["1500", "ms", 1500],
    ["5x", "s", undefined],
    ["x5", "s", undefined],
    [new Date(now + 10_000).toUTCString(), "s", 10_000],
    [new Date(now - 10_000).toUTCString(), "s", 0],
    // A date is no millisecond header's value.
    [new Date(now + 10_000).toUTCString(), "ms", undefined],
    ["soon", "s", undefined],
  ])("%s (%s) → %s", (text, unit, expected) => {
    expect(parseRetryAfter(text, now, unit)).toBe(expected);
  });
});

describe("SourceError", () => {
  it("keeps the cause only when there is one, with the status and the wait asked", () => {
    const cause = new Error("socket hang up");
    const withCause = new SourceError(ErrorCode.UNAVAILABLE, "down", {
      status: 503,
      retryAfterMs: 2000,
      cause,
    });
    expect(withCause.cause).toBe(cause);
    expect(statusOf(withCause)).toBe(503);
    expect(retryAfterOf(withCause)).toBe(2000);
    const without = new SourceError(ErrorCode.UNAVAILABLE, "down");
    expect("cause" in without).toBe(false);
    expect(statusOf(without)).toBeUndefined();
    expect(statusOf(new Error("plain"))).toBeUndefined();
    expect(retryAfterOf(new Error("plain"))).toBeUndefined();
  });
});

describe("classifyAuthError: each kind of failure, by its code and whole message", () => {
  const cid = "11111111-2222-4333-8444-555555555555";
  const base = {
    clientId: cid,
    tenantId: "tenant-1",
    authorityHost: "https://login.example/",
    claims: { iss: "https://oidc/", sub: "system:serviceaccount:a:b", aud: "api://x" },
    now,
  };
  const err = (message: string, fields: Record<string, unknown> = {}) =>
    Object.assign(new Error(message), fields);
  const where = "Entra ID at https://login.example/";

  it.each<[string, unknown, ErrorCode, string]>([
    [
      "429",
      err("x", { statusCode: 429 }),
      ErrorCode.THROTTLED,
      `${where} throttled the token request (429)`,
    ],
    [
      "429 as status",
      err("x", { status: 429 }),
      ErrorCode.THROTTLED,
      `${where} throttled the token request (429)`,
    ],
    [
      "500",
      err("x", { statusCode: 500 }),
      ErrorCode.UNAVAILABLE,
      `${where} is unavailable: status 500`,
    ],
    [
      "a status of 0 is none",
      err("socket hang up", { statusCode: 0 }),
      ErrorCode.UNAVAILABLE,
      `${where} is unavailable: no answer (socket hang up)`,
    ],
    [
      "a transient AADSTS code without a status (MSAL's throttle cache)",
      err("first\nAADSTS90033: A transient error has occurred. Please try again."),
      ErrorCode.UNAVAILABLE,
      `${where} is unavailable: AADSTS90033: A transient error has occurred. Please try again.`,
    ],
    [
      "a transient OAuth error code",
      err("Server busy", { errorCode: "temporarily_unavailable" }),
      ErrorCode.UNAVAILABLE,
      `${where} is unavailable: no answer (temporarily_unavailable)`,
    ],
    [
      "a network code",
      err("x", { code: "ECONNREFUSED" }),
      ErrorCode.UNAVAILABLE,
      `${where} is unavailable: no answer (ECONNREFUSED)`,
    ],
    [
      "an abort",
      Object.assign(new Error("The operation was aborted"), { name: "AbortError" }),
      ErrorCode.UNAVAILABLE,
      `${where} is unavailable: no answer (The operation was aborted)`,
    ],
    [
      "a timeout",
      Object.assign(new Error("late"), { name: "TimeoutError" }),
      ErrorCode.UNAVAILABLE,
      `${where} is unavailable: no answer (late)`,
    ],
    [
      "'timed out' in a cause",
      err("outer", { cause: new Error("request timed out") }),
      ErrorCode.UNAVAILABLE,
      `${where} is unavailable: no answer (outer)`,
    ],
    [
      "'timeout' in a message",
      err("timeout"),
      ErrorCode.UNAVAILABLE,
      `${where} is unavailable: no answer (timeout)`,
    ],
    [
      "a refusal with a status",
      err("AADSTS700016: Application with identifier 'x' was not found.", { statusCode: 400 }),
      ErrorCode.AUTH_FAILED,
      `${where} refused the token exchange for client id ${cid} in tenant tenant-1 (status 400): AADSTS700016: Application with identifier 'x' was not found.`,
    ],
    [
      "a refusal without a status, its first non-empty line",
      err("\n  invalid_client: bad  \nmore"),
      ErrorCode.AUTH_FAILED,
      `${where} refused the token exchange for client id ${cid} in tenant tenant-1: invalid_client: bad`,
    ],
    [
      "a refusal whose text starts before the AADSTS code",
      err("ServerError: invalid_request: AADSTS50020: User account does not exist.", {
        statusCode: 400,
      }),
      ErrorCode.AUTH_FAILED,
      `${where} refused the token exchange for client id ${cid} in tenant tenant-1 (status 400): AADSTS50020: User account does not exist.`,
    ],
    [
      "a federation mismatch with a live token",
      err(
        "AADSTS700213: No matching federated identity record found for presented assertion subject.",
        { statusCode: 400 },
      ),
      ErrorCode.AUTH_FAILED,
      `${where} refused the token exchange for client id ${cid} in tenant tenant-1 (status 400): AADSTS700213: No matching federated identity record found for presented assertion subject.; the service-account token has issuer 'https://oidc/', subject 'system:serviceaccount:a:b', audience 'api://x' and a federated identity credential of client id ${cid} must match all three`,
    ],
  ])("%s", (_, error, code, message) => {
    const e = classifyAuthError(error, base);
    expect(e.code).toBe(code);
    expect(e.message).toBe(message);
    expect(e.cause).toBe(error);
  });

  it("keeps the status it read, and says '?' for claims it does not have", () => {
    const e = classifyAuthError(err("AADSTS70021: no match", { statusCode: 401 }), {
      ...base,
      claims: undefined,
    });
    expect(e.status).toBe(401);
    expect(e.message).toContain("issuer '?', subject '?', audience '?'");
    expect(e.message).not.toContain("expired");
  });

  it("cuts a long first line at 300 characters", () => {
    const e = classifyAuthError(err(`invalid_grant: ${"x".repeat(400)}`), base);
    expect(e.message.endsWith(`${"x".repeat(285)}…`)).toBe(true);
  });

  it("follows causes at most eight deep, and through a cycle", () => {
    const a = err("a");
    const b = err("b", { cause: a });
    (a as { cause?: unknown }).cause = b;
    expect(causeChain(b)).toEqual([b, a]);
    let deep: unknown = err("bottom", { statusCode: 503 });
    for (let i = 0; i < 10; i++) deep = err(`level ${String(i)}`, { cause: deep });
    expect(causeChain(deep)).toHaveLength(8);
    expect(causeChain(null)).toEqual([]);
  });
});

describe("classifyKeyVaultError: each answer, by its code and whole message", () => {
  const secret = `secret 'db' in Key Vault ${vaultUrl}`;
  it.each<[string, unknown, string | undefined, ErrorCode, string]>([
    [
      "404 of a latest version",
      restError(404),
      undefined,
      ErrorCode.SECRET_NOT_FOUND,
      `${secret} does not exist (404): check the secret name`,
    ],
    [
      "404 of a pinned version",
      restError(404),
      "0123456789abcdef0123456789abcdef",
      ErrorCode.SECRET_NOT_FOUND,
      `secret 'db/0123456789abcdef0123456789abcdef' in Key Vault ${vaultUrl} does not exist (404): check the secret name and version`,
    ],
    [
      "429 without a wait",
      restError(429),
      undefined,
      ErrorCode.THROTTLED,
      `Key Vault ${vaultUrl} throttled reading ${secret} (429)`,
    ],
    [
      "429 with x-ms-retry-after-ms",
      restError(429, { "x-ms-retry-after-ms": "250" }),
      undefined,
      ErrorCode.THROTTLED,
      `Key Vault ${vaultUrl} throttled reading ${secret} (429, retry after 250 ms)`,
    ],
    [
      "408",
      restError(408),
      undefined,
      ErrorCode.UNAVAILABLE,
      `Key Vault ${vaultUrl} is unavailable (status 408) reading ${secret}`,
    ],
    [
      "500",
      restError(500),
      undefined,
      ErrorCode.UNAVAILABLE,
      `Key Vault ${vaultUrl} is unavailable (status 500) reading ${secret}`,
    ],
    [
      "499 is a refusal",
      restError(499),
      undefined,
      ErrorCode.KEY_VAULT_REFUSED,
      `reading ${secret} was refused (status 499)`,
    ],
    [
      "400 with the service's code",
      restError(400, {}, "BadParameter"),
      undefined,
      ErrorCode.KEY_VAULT_REFUSED,
      `reading ${secret} was refused (status 400 BadParameter)`,
    ],
    [
      "401",
      restError(401),
      undefined,
      ErrorCode.KEY_VAULT_REFUSED,
      `reading ${secret} was refused (status 401): the vault did not accept the Entra token (wrong tenant or audience?)`,
    ],
    [
      "a challenge for another resource",
      Object.assign(new Error("outer"), {
        cause: new Error("The challenge resource 'x' does not match"),
      }),
      undefined,
      ErrorCode.KEY_VAULT_REFUSED,
      `Key Vault ${vaultUrl} sent a bearer challenge for a resource that does not match its host`,
    ],
    [
      "no answer, with a code",
      Object.assign(new Error("connect"), { code: "ECONNREFUSED" }),
      undefined,
      ErrorCode.UNAVAILABLE,
      `Key Vault ${vaultUrl} could not be reached reading ${secret} (ECONNREFUSED)`,
    ],
    [
      "no answer, by the error's name",
      Object.assign(new Error("late"), { name: "TimeoutError" }),
      undefined,
      ErrorCode.UNAVAILABLE,
      `Key Vault ${vaultUrl} could not be reached reading ${secret} (TimeoutError)`,
    ],
    [
      "no answer, not even an Error",
      "boom",
      undefined,
      ErrorCode.UNAVAILABLE,
      `Key Vault ${vaultUrl} could not be reached reading ${secret} (error)`,
    ],
  ])("%s", (_, error, version, code, message) => {
    const e = kv(error, version);
    expect(e.code).toBe(code);
    expect(e.message).toBe(message);
    expect(e.cause).toBe(error);
  });

  it("keeps the status and a 5xx's Retry-After", () => {
    const e = kv(restError(503, { "retry-after": "7" }));
    expect(e.status).toBe(503);
    expect(e.retryAfterMs).toBe(7000);
    expect(kv(restError(404)).status).toBe(404);
    expect(kv(restError(401)).status).toBe(401);
    expect(kv(restError(403)).status).toBe(403);
  });

  it("finds the RestError among the causes", () => {
    const e = kv(Object.assign(new Error("wrapped"), { cause: restError(403) }));
    expect(e.code).toBe(ErrorCode.SECRET_FORBIDDEN);
  });
});

describe("classifyAuthError: every code it knows", () => {
  const ctx = {
    clientId: "c",
    tenantId: "t",
    authorityHost: "https://login.example/",
    claims: { iss: "i", sub: "s", aud: "a", exp: 1_700_000_000 },
    now: 1_800_000_000_000,
  };

  it.each(["70021", "700211", "700212", "700213", "700024", "70025"])(
    "AADSTS%s is a federation mismatch, explained with the claims and when the token expired",
    (code) => {
      const e = classifyAuthError(
        Object.assign(new Error(`AADSTS${code}: no`), { statusCode: 400 }),
        ctx,
      );
      expect(e.code).toBe(ErrorCode.AUTH_FAILED);
      expect(e.message).toContain(
        "a federated identity credential of client id c must match all three",
      );
      expect(e.message).toContain(
        "; the token expired at 2023-11-14T22:13:20.000Z (is the kubelet rotating it?)",
      );
    },
  );

  it("another AADSTS code is no federation mismatch", () => {
    const e = classifyAuthError(
      Object.assign(new Error("AADSTS700016: no"), { statusCode: 400 }),
      ctx,
    );
    expect(e.message).not.toContain("federated identity credential");
  });

  it("AADSTS90055 without a status (MSAL repeating Entra's 429 until Retry-After) is throttling, not a refusal", () => {
    const e = classifyAuthError(
      new Error(
        "90055: AADSTS90055: The request is throttled temporarily. Please try after some time.",
      ),
      ctx,
    );
    expect(e.code).toBe(ErrorCode.THROTTLED);
    expect(e.message).toContain(
      "throttled the token request (AADSTS90055, repeated by MSAL until its Retry-After has passed)",
    );
  });

  it("AADSTS90061 (Entra could not read the issuer's OIDC metadata) is retried, naming the issuer", () => {
    const e = classifyAuthError(
      Object.assign(
        new Error("invalid_request: AADSTS90061: Request to External OIDC endpoint failed."),
        { statusCode: 400 },
      ),
      ctx,
    );
    expect(e.code).toBe(ErrorCode.UNAVAILABLE);
    expect(e.message).toContain("issuer 'i'");
    expect(e.message).toContain("AADSTS90061: Request to External OIDC endpoint failed.");
    expect(e.message).toContain("/.well-known/openid-configuration");
  });

  it.each(["90033", "50000", "90006", "50196"])("AADSTS%s without a status is retried", (code) => {
    expect(classifyAuthError(new Error(`AADSTS${code}: try again`), ctx).code).toBe(
      ErrorCode.UNAVAILABLE,
    );
  });

  it.each(["endpoints_resolution_error", "openid_config_error", "network_error"])(
    "MSAL's %s in the message alone (the authority's metadata could not be read) is retried",
    (code) => {
      const e = classifyAuthError(
        new Error(`${code}: See https://aka.ms/msal.js.errors#${code} for details`),
        ctx,
      );
      expect(e.code).toBe(ErrorCode.UNAVAILABLE);
      expect(e.message).toContain(code);
    },
  );

  it.each(["temporarily_unavailable", "server_error"])("OAuth error %s is retried", (code) => {
    expect(classifyAuthError(Object.assign(new Error("x"), { errorCode: code }), ctx).code).toBe(
      ErrorCode.UNAVAILABLE,
    );
  });

  it.each([
    "ECONNREFUSED",
    "ECONNRESET",
    "ETIMEDOUT",
    "ENOTFOUND",
    "EAI_AGAIN",
    "EPIPE",
    "ENETUNREACH",
    "EHOSTUNREACH",
    "UND_ERR_SOCKET",
    "REQUEST_SEND_ERROR",
    "network_error",
    "endpoints_resolution_error",
    "openid_config_error",
  ])("network code %s is retried, and named", (code) => {
    const e = classifyAuthError(Object.assign(new Error("failed"), { code }), ctx);
    expect(e.code).toBe(ErrorCode.UNAVAILABLE);
    expect(e.message).toBe(
      `Entra ID at https://login.example/ is unavailable: no answer (${code})`,
    );
  });

  it("an unknown code is a refusal", () => {
    expect(
      classifyAuthError(Object.assign(new Error("failed"), { code: "EWEIRD" }), ctx).code,
    ).toBe(ErrorCode.AUTH_FAILED);
  });
});

describe("withTokenPrefetch: which calls share the prefetch", () => {
  const scope = "https://vault.azure.net/.default";
  /** A credential whose exchanges the test settles by hand, counting them. */
  const manual = () => {
    const calls: unknown[][] = [];
    const settle: ((t: AccessToken) => void)[] = [];
    const inner: TokenCredential = {
      getToken: (...args: unknown[]) => {
        calls.push(args);
        return new Promise<AccessToken>((resolve) => settle.push(resolve));
      },
    };
    return { inner, calls, settle };
  };
  const token = (t: string): AccessToken => ({ token: t, expiresOnTimestamp: 0 });

  it.each<[string, string | string[], GetTokenOptions | undefined, boolean]>([
    ["the same scope, CAE, this tenant", scope, { enableCae: true, tenantId: "Tenant-1" }, true],
    ["the same scope as a list, CAE, no tenant", [scope], { enableCae: true }, true],
    ["without CAE", scope, { tenantId: "tenant-1" }, false],
    ["without options", scope, undefined, false],
    ["with claims", scope, { enableCae: true, claims: "x" }, false],
    ["another tenant", scope, { enableCae: true, tenantId: "other" }, false],
    ["another scope", "https://graph.microsoft.com/.default", { enableCae: true }, false],
    ["two scopes", [scope, "x"], { enableCae: true }, false],
  ])("%s: shared %s", async (_, scopes, opts, shared) => {
    const { inner, calls, settle } = manual();
    const credential = withTokenPrefetch(inner, "tenant-1");
    credential.prefetch(scope);
    expect(calls).toEqual([[scope, { enableCae: true, tenantId: "tenant-1" }]]);
    const answer = credential.getToken(scopes, opts);
    expect(calls).toHaveLength(shared ? 1 : 2);
    settle.forEach((s, i) => {
      s(token(`t${String(i)}`));
    });
    expect((await answer)?.token).toBe(shared ? "t0" : "t1");
  });

  it("starts one prefetch at a time, and none shared once it settled", async () => {
    const { inner, calls, settle } = manual();
    const credential = withTokenPrefetch(inner, "tenant-1");
    credential.prefetch(scope);
    credential.prefetch(scope);
    expect(calls).toHaveLength(1);
    settle[0]?.(token("first"));
    await new Promise((r) => setImmediate(r));
    const later = credential.getToken(scope, { enableCae: true });
    expect(calls).toHaveLength(2);
    settle[1]?.(token("second"));
    expect((await later)?.token).toBe("second");
    credential.prefetch(scope);
    expect(calls).toHaveLength(3);
  });

  it("a failed prefetch rejects no one but the caller that shared it", async () => {
    const inner: TokenCredential = {
      getToken: () => Promise.reject(new Error("down")),
    };
    const credential = withTokenPrefetch(inner, "tenant-1");
    credential.prefetch(scope);
    await expect(credential.getToken(scope, { enableCae: true })).rejects.toThrow("down");
  });
});

describe("readAssertion: its messages", () => {
  it("names the file and why it cannot be read, keeping the cause", async () => {
    const cause = Object.assign(new Error("no"), { code: "EACCES" });
    const error = (await readAssertion("/t", () => Promise.reject(cause)).catch(
      (e: unknown) => e,
    )) as Error;
    expect(error.message).toBe(
      "cannot read the federated token file /t (EACCES): is the projected service-account token volume mounted?",
    );
    expect(error.cause).toBe(cause);
    const bare = (await readAssertion("/t", () => Promise.reject(new Error("x"))).catch(
      (e: unknown) => e,
    )) as Error;
    expect(bare.message).toContain("(error)");
  });

  it("names an empty file", async () => {
    await expect(readAssertion("/t", () => Promise.resolve("  \n"))).rejects.toThrow(
      /^the federated token file \/t is empty$/,
    );
  });
});

describe("decodeJwtClaims and the text of odd failures", () => {
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  it.each<[string, string, Record<string, unknown>]>([
    ["no payload part", "abc", {}],
    ["a payload of null", `h.${part(null)}.s`, {}],
    ["a payload that is a number", `h.${part(5)}.s`, {}],
    ["claims of the wrong types", `h.${part({ iss: 1, sub: 2, aud: 3, exp: "4" })}.s`, {}],
    ["an audience list with odd entries", `h.${part({ aud: ["a", 1, "b"] })}.s`, { aud: "a,b" }],
    ["an audience string", `h.${part({ aud: "a", exp: 5 })}.s`, { aud: "a", exp: 5 }],
  ])("%s", (_, token, claims) => {
    expect(decodeJwtClaims(token)).toEqual(claims);
  });

  const ctx = {
    clientId: "c",
    tenantId: "t",
    authorityHost: "https://l/",
    claims: undefined,
    now: 0,
  };
  it.each<[string, unknown, string]>([
    [
      "a thrown string",
      "plain words",
      "Entra ID at https://l/ refused the token exchange for client id c in tenant t: plain words",
    ],
    [
      "an empty message",
      new Error(" \n \n"),
      "Entra ID at https://l/ refused the token exchange for client id c in tenant t: unknown error",
    ],
    [
      "a line of exactly 300 characters, trimmed",
      new Error(`  ${"z".repeat(298)}`),
      `Entra ID at https://l/ refused the token exchange for client id c in tenant t: ${"z".repeat(298)}`,
    ],
    [
      "an empty error code",
      Object.assign(new Error("x"), { errorCode: "", code: "ECONNRESET" }),
      "Entra ID at https://l/ is unavailable: no answer (ECONNRESET)",
    ],
    [
      "a status that is a string",
      Object.assign(new Error("boom"), { statusCode: "503" }),
      "Entra ID at https://l/ refused the token exchange for client id c in tenant t: boom",
    ],
  ])("%s", (_, error, message) => {
    expect(classifyAuthError(error, ctx).message).toBe(message);
  });

  it("a token that expires exactly now is expired; one a second later is not", () => {
    const at = (now: number) =>
      classifyAuthError(Object.assign(new Error("AADSTS70021: no"), { statusCode: 400 }), {
        ...ctx,
        claims: { exp: 100 },
        now,
      }).message;
    expect(at(100_000)).toContain("the token expired at 1970-01-01T00:01:40.000Z");
    expect(at(99_999)).not.toContain("expired");
  });
});
