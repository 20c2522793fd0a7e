/**
 * The Key Vault source with the real SecretClient over a fake HTTP client
 * that answers as Key Vault does (a bearer challenge, then the secret): what
 * it asks for, what it makes of the answer, when it prefetches a token and
 * when the warm-up gate opens.
 */
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import {
  createHttpHeaders,
  type HttpClient,
  type PipelineRequest,
  type PipelineResponse,
} from "@azure/core-rest-pipeline";
import { describe, expect, it } from "vitest";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import { createKeyVaultSource, knownKeyVaultResource } from "./key-vault-source.ts";

const VAULT = "https://kv1.vault.azure.net";
const V = "0123456789abcdef0123456789abcdef";

interface Seen {
  readonly requests: PipelineRequest[];
  readonly scopes: string[];
  readonly prefetched: string[];
}

/** A vault that challenges a request without a token and answers `body` to one with it. */
function world(
  body: Record<string, unknown>,
  options: { vaultUrl?: string; verify?: boolean; prefetch?: boolean } = {},
) {
  const vaultUrl = options.vaultUrl ?? VAULT;
  const seen: Seen = { requests: [], scopes: [], prefetched: [] };
  const httpClient: HttpClient = {
    sendRequest(request): Promise<PipelineResponse> {
      seen.requests.push(request);
      if (!request.headers.has("authorization")) {
        return Promise.resolve({
          request,
          status: 401,
          headers: createHttpHeaders({
            "www-authenticate": `Bearer authorization="https://login.microsoftonline.com/tenant", resource="https://vault.azure.net"`,
          }),
        });
      }
      return Promise.resolve({
        request,
        status: 200,
        headers: createHttpHeaders({ "content-type": "application/json" }),
        bodyAsText: JSON.stringify(body),
      });
    },
  };
  const credential: TokenCredential = {
    getToken(scopes): Promise<AccessToken> {
      seen.scopes.push(...(Array.isArray(scopes) ? scopes : [scopes]));
      return Promise.resolve({ token: "t", expiresOnTimestamp: Date.now() + 3_600_000 });
    },
  };
  const source = createKeyVaultSource({
    vaultUrl,
    credential,
    clientId: "c",
    disableChallengeResourceVerification: options.verify === false,
    now: () => 0,
    httpClient,
    ...(options.prefetch === false
      ? {}
      : {
          prefetchToken: (scope: string) => {
            seen.prefetched.push(scope);
          },
        }),
  });
  return { source, seen };
}

const secretBody = (over: Record<string, unknown> = {}) => ({
  value: "s3cret",
  id: `${VAULT}/secrets/db/${V}`,
  contentType: "text/plain",
  attributes: { enabled: true },
  ...over,
});

describe("createKeyVaultSource", () => {
  it("reads the latest version, and returns value, content type and version", async () => {
    const { source, seen } = world(secretBody());
    expect(await source.fetch({ name: "db" })).toEqual({
      value: "s3cret",
      contentType: "text/plain",
      version: V,
    });
    expect(new URL(seen.requests.at(-1)?.url ?? "").pathname).toBe("/secrets/db/");
  });

  it("asks for a pinned version by its URL, and falls back to it when the answer names none", async () => {
    const { source, seen } = world(secretBody({ id: `${VAULT}/secrets/db` }));
    expect((await source.fetch({ name: "db", version: V })).version).toBe(V);
    expect(new URL(seen.requests.at(-1)?.url ?? "").pathname).toBe(`/secrets/db/${V}`);
    const latest = world(secretBody({ id: `${VAULT}/secrets/db` }));
    expect((await latest.source.fetch({ name: "db" })).version).toBe("");
  });

  it("passes the read's abort signal to the request", async () => {
    const { source, seen } = world(secretBody());
    const stop = new AbortController();
    await source.fetch({ name: "db" }, { signal: stop.signal });
    stop.abort();
    expect(seen.requests.at(-1)?.abortSignal?.aborted).toBe(true);
  });

  it("refuses an answer without a value, naming vault and secret", async () => {
    const { source } = world(secretBody({ value: undefined }));
    const error = await source.fetch({ name: "db" }).catch((e: unknown) => e);
    expect(isAkvError(error, ErrorCode.SECRET_NOT_FOUND)).toBe(true);
    expect((error as Error).message).toBe(
      `Key Vault ${VAULT} returned secret 'db' without a value`,
    );
  });

  it("prefetches the known resource's token once, at the first read", async () => {
    const { source, seen } = world(secretBody());
    await source.fetch({ name: "a" });
    await source.fetch({ name: "b" });
    expect(seen.prefetched).toEqual(["https://vault.azure.net/.default"]);
  });

  it("prefetches nothing for a vault whose resource is not known, or whose check is off", async () => {
    const exact = world(secretBody(), { verify: false });
    await exact.source.fetch({ name: "a" });
    expect(exact.seen.prefetched).toEqual([]);
    const other = world(secretBody(), { vaultUrl: "https://127.0.0.1:9443", verify: false });
    await other.source.fetch({ name: "a" }).catch(() => undefined);
    expect(other.seen.prefetched).toEqual([]);
  });

  it("works without a prefetch function", async () => {
    const { source } = world(secretBody(), { prefetch: false });
    expect((await source.fetch({ name: "db" })).value).toBe("s3cret");
  });

  it("after the first read, each read is one request with the cached token", async () => {
    const { source, seen } = world(secretBody());
    await source.fetch({ name: "first" });
    const before = seen.requests.length;
    await Promise.all(["a", "b", "c"].map((name) => source.fetch({ name })));
    // Warm: each read is one request with the cached token, no challenge.
    expect(seen.requests.length - before).toBe(3);
    expect(seen.requests.slice(before).every((r) => r.headers.has("authorization"))).toBe(true);
  });
});

describe("knownKeyVaultResource", () => {
  it.each<[string, string | undefined]>([
    ["https://kv1.vault.azure.net", "https://vault.azure.net"],
    ["https://KV1.VAULT.AZURE.NET/", "https://vault.azure.net"],
    ["https://kv1.vault.azure.cn", "https://vault.azure.cn"],
    ["https://kv1.vault.usgovcloudapi.net", "https://vault.usgovcloudapi.net"],
    ["https://vault.azure.net", undefined],
    ["https://.vault.azure.net", undefined],
    ["http://kv1.vault.azure.net", undefined],
    ["https://kv1.vault.azure.net.evil.com", undefined],
    ["not a url", undefined],
  ])("%s → %s", (url, resource) => {
    expect(knownKeyVaultResource(url)).toBe(resource);
  });
});
