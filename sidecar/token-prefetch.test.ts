/**
 * The token prefetch: for a vault under Azure's Key Vault DNS suffixes the
 * token exchange starts alongside Key Vault's 401 challenge, with the real
 * SecretClient (its challenge policy and token cycler) over a scripted
 * transport, and the request counts still hold: N + 1 Key Vault requests per
 * cold sync, N per refresh, one token request.
 */
import type { AccessToken, GetTokenOptions, TokenCredential } from "@azure/core-auth";
import {
  createHttpHeaders,
  type HttpClient,
  type PipelineRequest,
  type PipelineResponse,
} from "@azure/core-rest-pipeline";
import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.ts";
import { withTokenPrefetch } from "./credential.ts";
import { createKeyVaultSource, knownKeyVaultResource } from "./key-vault-source.ts";
import { SourceError } from "./secret-source.ts";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("knownKeyVaultResource", () => {
  it.each([
    ["https://kv1.vault.azure.net", "https://vault.azure.net"],
    ["https://KV1.Vault.Azure.Net/", "https://vault.azure.net"],
    ["https://kv1.vault.azure.cn", "https://vault.azure.cn"],
    ["https://kv1.vault.usgovcloudapi.net", "https://vault.usgovcloudapi.net"],
  ])("%s → %s", (url, resource) => {
    expect(knownKeyVaultResource(url)).toBe(resource);
  });

  it.each([
    "https://127.0.0.1:8443",
    "https://vault.azure.net",
    "https://kv1.vault.azure.net.evil.example",
    "https://kv1.notvault.azure.net",
    "http://kv1.vault.azure.net",
    "not a url",
  ])("%s → unknown", (url) => {
    expect(knownKeyVaultResource(url)).toBeUndefined();
  });
});

/**
 * An inner credential like MSAL's: an exchange takes `ms` and is counted in
 * `calls`; a token it got is served from its cache, per scope and CAE.
 */
function countingCredential(ms = 20): TokenCredential & {
  calls: { scopes: string[]; opts: GetTokenOptions | undefined; at: number }[];
  fail: Error | undefined;
} {
  const cache = new Map<string, AccessToken>();
  const self = {
    calls: [] as { scopes: string[]; opts: GetTokenOptions | undefined; at: number }[],
    fail: undefined as Error | undefined,
    async getToken(scopes: string | string[], opts?: GetTokenOptions): Promise<AccessToken> {
      const key = `${[scopes].flat().join(" ")}|${String(opts?.enableCae)}`;
      const cached = opts?.claims === undefined ? cache.get(key) : undefined;
      if (cached !== undefined) return cached;
      self.calls.push({ scopes: [scopes].flat(), opts, at: performance.now() });
      await delay(ms);
      if (self.fail !== undefined) throw self.fail;
      const token = {
        token: `token-${self.calls.length}`,
        expiresOnTimestamp: Date.now() + 3600_000,
      };
      cache.set(key, token);
      return token;
    },
  };
  return self;
}

describe("withTokenPrefetch", () => {
  const scope = "https://vault.azure.net/.default";

  it("a getToken like the Key Vault client's shares the exchange in flight", async () => {
    const inner = countingCredential();
    const credential = withTokenPrefetch(inner, TENANT);
    credential.prefetch(scope);
    credential.prefetch(scope);
    const [a, b] = await Promise.all([
      credential.getToken([scope], { enableCae: true, tenantId: TENANT }),
      credential.getToken([scope], { enableCae: true, tenantId: TENANT.toUpperCase() }),
    ]);
    expect(inner.calls).toHaveLength(1);
    expect(inner.calls[0]?.opts).toEqual({ enableCae: true, tenantId: TENANT });
    expect(a?.token).toBe("token-1");
    expect(b?.token).toBe("token-1");
  });

  it("anything else goes to the inner credential: another scope, claims, another tenant, no CAE", async () => {
    const inner = countingCredential();
    const credential = withTokenPrefetch(inner, TENANT);
    credential.prefetch(scope);
    await Promise.all([
      credential.getToken(["https://graph.microsoft.com/.default"], { enableCae: true }),
      credential.getToken([scope], { enableCae: true, claims: '{"access_token":{}}' }),
      credential.getToken([scope], { enableCae: true, tenantId: "other-tenant" }),
      credential.getToken([scope], { tenantId: TENANT }),
    ]);
    expect(inner.calls).toHaveLength(5);
  });

  it("after the prefetch settled, calls go to the inner credential (whose cache has the token)", async () => {
    let calls = 0;
    const inner: TokenCredential = {
      getToken: async () => {
        calls++;
        await delay(1);
        return { token: `t${calls}`, expiresOnTimestamp: Date.now() + 3600_000 };
      },
    };
    const credential = withTokenPrefetch(inner, TENANT);
    credential.prefetch(scope);
    await delay(20);
    await credential.getToken([scope], { enableCae: true, tenantId: TENANT });
    expect(calls).toBe(2);
  });

  it("a failed prefetch is no unhandled rejection; the sharer sees the failure, a later call retries", async () => {
    const inner = countingCredential(5);
    inner.fail = new SourceError(ErrorCode.UNAVAILABLE, "entra down");
    const credential = withTokenPrefetch(inner, TENANT);
    credential.prefetch(scope);
    const shared = await credential
      .getToken([scope], { enableCae: true, tenantId: TENANT })
      .catch((e: unknown) => e);
    expect((shared as Error).message).toBe("entra down");
    inner.fail = undefined;
    const later = await credential.getToken([scope], { enableCae: true, tenantId: TENANT });
    expect(later?.token).toBe("token-2");
  });
});

interface Seen {
  readonly url: string;
  readonly auth: string | undefined;
  readonly at: number;
  /** When its answer went back. */
  answeredAt?: number;
}

/**
 * A Key Vault on a scripted transport: 401 with the challenge for a request
 * without a token, else the secret. Each answer takes `ms`.
 */
function scriptedVault(options: {
  vaultUrl: string;
  resource: string;
  ms?: number;
}): HttpClient & { seen: Seen[]; challengeAnsweredAt: number | undefined } {
  const self = {
    seen: [] as Seen[],
    challengeAnsweredAt: undefined as number | undefined,
    async sendRequest(request: PipelineRequest): Promise<PipelineResponse> {
      const auth = request.headers.get("authorization");
      const seen: Seen = { url: request.url, auth, at: performance.now() };
      self.seen.push(seen);
      await delay(options.ms ?? 20);
      seen.answeredAt = performance.now();
      if (auth === undefined) {
        self.challengeAnsweredAt ??= performance.now();
        return {
          request,
          status: 401,
          headers: createHttpHeaders({
            "www-authenticate": `Bearer authorization="https://login.microsoftonline.com/${TENANT}", resource="${options.resource}"`,
          }),
          bodyAsText: "",
        };
      }
      const name = /\/secrets\/([^/]+)\//.exec(new URL(request.url).pathname)?.[1] ?? "?";
      return {
        request,
        status: 200,
        headers: createHttpHeaders({ "content-type": "application/json" }),
        bodyAsText: JSON.stringify({
          value: `value-of-${name}`,
          id: `${options.vaultUrl}/secrets/${name}/0123456789abcdef0123456789abcdef`,
          attributes: { enabled: true, created: 1, updated: 1 },
        }),
      };
    },
  };
  return self;
}

function sourceFor(
  vaultUrl: string,
  resource: string,
  disableChallengeResourceVerification = false,
  tokenMs = 20,
): {
  inner: ReturnType<typeof countingCredential>;
  vault: ReturnType<typeof scriptedVault>;
  prefetches: string[];
  fetchAll: (n: number) => Promise<string[]>;
} {
  const inner = countingCredential(tokenMs);
  const credential = withTokenPrefetch(inner, TENANT);
  const vault = scriptedVault({ vaultUrl, resource });
  const prefetches: string[] = [];
  const source = createKeyVaultSource({
    vaultUrl,
    credential,
    prefetchToken: (scope) => {
      prefetches.push(scope);
      credential.prefetch(scope);
    },
    clientId: "00000000-0000-0000-0000-0000000000c1",
    disableChallengeResourceVerification,
    now: Date.now,
    httpClient: vault,
  });
  const fetchAll = (n: number): Promise<string[]> =>
    Promise.all(
      Array.from({ length: n }, (_, i) => source.fetch({ name: `s${i}` }).then((s) => s.value)),
    );
  return { inner, vault, prefetches, fetchAll };
}

describe("the Key Vault source with a vault under an Azure suffix", () => {
  const vaultUrl = "https://kv1.vault.azure.net";

  it.each([
    ["answered after the challenge (shared in flight)", 40],
    ["answered before the challenge (then cached)", 5],
  ])(
    "starts the token exchange before the challenge is answered, %s: N + 1 requests, one token, then N per refresh",
    async (_, tokenMs) => {
      const { inner, vault, prefetches, fetchAll } = sourceFor(
        vaultUrl,
        "https://vault.azure.net",
        false,
        tokenMs,
      );
      const n = 5;
      expect(await fetchAll(n)).toEqual(Array.from({ length: n }, (_, i) => `value-of-s${i}`));
      expect(prefetches).toEqual(["https://vault.azure.net/.default"]);
      expect(inner.calls).toHaveLength(1);
      const challengeAnsweredAt = vault.challengeAnsweredAt ?? Number.NaN;
      // In parallel: the exchange began before the 401 came back.
      expect(inner.calls[0]?.at).toBeLessThan(challengeAnsweredAt);
      expect(vault.seen).toHaveLength(n + 1);
      expect(vault.seen.filter((s) => s.auth === undefined)).toHaveLength(1);
      // The token went to this vault only, and only after its challenge.
      for (const s of vault.seen) expect(new URL(s.url).origin).toBe(vaultUrl);
      for (const s of vault.seen.filter((x) => x.auth !== undefined)) {
        expect(s.auth).toBe("Bearer token-1");
        expect(s.at).toBeGreaterThanOrEqual(challengeAnsweredAt);
      }

      vault.seen.length = 0;
      await fetchAll(n);
      expect(vault.seen).toHaveLength(n);
      expect(inner.calls).toHaveLength(1);
      expect(prefetches).toHaveLength(1);
    },
  );

  it("a challenge for another resource is still refused (verification stays on); the token is never sent", async () => {
    const { vault, fetchAll } = sourceFor(vaultUrl, "https://evil.example");
    const error = await fetchAll(1).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceError);
    expect((error as SourceError).code).toBe(ErrorCode.KEY_VAULT_REFUSED);
    expect(vault.seen.every((s) => s.auth === undefined)).toBe(true);
  });
});

describe("the Key Vault source with an exact-host vault (an emulator)", () => {
  it("guesses nothing: no prefetch, the token is asked for after the challenge, N + 1 requests", async () => {
    const vaultUrl = "https://127.0.0.1:8443";
    const { inner, vault, prefetches, fetchAll } = sourceFor(
      vaultUrl,
      "https://vault.azure.net",
      true,
    );
    await fetchAll(3);
    expect(prefetches).toEqual([]);
    expect(inner.calls).toHaveLength(1);
    expect(inner.calls[0]?.at).toBeGreaterThanOrEqual(vault.challengeAnsweredAt ?? Number.NaN);
    expect(vault.seen).toHaveLength(4);
  });

  it("the other reads go out with the token as soon as the first leaves with it, before its answer", async () => {
    const { vault, fetchAll } = sourceFor(
      "https://127.0.0.1:8443",
      "https://vault.azure.net",
      true,
    );
    await fetchAll(4);
    const [challenge, leader, ...others] = vault.seen;
    expect(challenge?.auth).toBeUndefined();
    expect(leader?.auth).toBe("Bearer token-1");
    expect(others).toHaveLength(3);
    for (const s of others) {
      expect(s.auth).toBe("Bearer token-1");
      expect(s.at).toBeLessThan(leader?.answeredAt ?? Number.NaN);
    }
  });
});
