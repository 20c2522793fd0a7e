/**
 * The Key Vault {@link SecretSource}: `SecretClient` from
 * @azure/keyvault-secrets, with its failures turned into {@link SourceError}s
 * that say which vault, which secret, what status, and what to do.
 *
 * What the SDK does not do for us:
 * - Request count. Until the client has cached a bearer challenge, every call
 *   first goes out without a token and gets a 401: N calls in parallel cost
 *   2N requests. This source lets one call through alone until the challenge
 *   and token are cached, which the first request that leaves with a token
 *   shows (the SDK caches both before it retries the call with the token), so
 *   a cold sync costs N + 1 and a warm one N, and the other reads start while
 *   the first one's authorised request is still out.
 * - Retries. The SDK's own retries are off (`maxRetries: 0`); a bare 429 is
 *   not retried by it anyway. The sync loop retries with backoff, jitter and
 *   Retry-After, so there is one retry policy, ours.
 * - Latency. The SDK asks Entra for a token only after Key Vault's 401
 *   challenge has named the resource. For a vault under one of Azure's Key
 *   Vault DNS suffixes the resource is known in advance
 *   ({@link knownKeyVaultResource}), so the first read starts the token
 *   exchange alongside the challenge request (`prefetchToken`, which shares
 *   the exchange with the SDK's own call: still one token request). The SDK
 *   still verifies the challenge's resource against the vault host, and the
 *   token only ever goes to this vault. An exact-host vault (an emulator)
 *   gets no guess: its resource is whatever its challenge says.
 */
import type { TokenCredential } from "@azure/core-auth";
import type { HttpClient, PipelinePolicy } from "@azure/core-rest-pipeline";
import { SecretClient } from "@azure/keyvault-secrets";
import { AZURE_KEY_VAULTS } from "../common/names.ts";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import { formatSecretRef, type ObjectKind, type SecretRef } from "../common/refs.ts";
import { causeChain } from "./credential.ts";
import { warmOnArrival, WarmingAgent } from "./warm-agent.ts";
import {
  parseRetryAfter,
  SourceError,
  type FetchedSecret,
  type FetchOptions,
  type SecretSource,
} from "./secret-source.ts";

/** What {@link createKeyVaultSource} needs. */
export interface KeyVaultSourceOptions {
  readonly vaultUrl: string;
  readonly credential: TokenCredential;
  /** Client id, for the "grant the role" advice in a 403 message. */
  readonly clientId: string;
  /** Only for a vault allowed by an exact-host suffix (see config.ts). */
  readonly disableChallengeResourceVerification: boolean;
  /** The clock (ms), for Retry-After dates. */
  readonly now: () => number;
  /**
   * Starts the token exchange for a scope ahead of the SDK's own call
   * ({@link PrefetchingCredential.prefetch} of the same `credential`);
   * called once, at the first read, for a vault with a known resource.
   */
  readonly prefetchToken?: (scope: string) => void;
  /** The SDK's transport; tests only (default: Node's HTTPS). */
  readonly httpClient?: HttpClient;
}

/**
 * The resource Key Vault's challenge will name for a vault under one of
 * Azure's Key Vault DNS suffixes (public, China, US Government), or
 * undefined for any other host.
 * @example knownKeyVaultResource("https://kv1.vault.azure.net") // "https://vault.azure.net"
 */
export function knownKeyVaultResource(vaultUrl: string): string | undefined {
  let url: URL;
  try {
    url = new URL(vaultUrl);
  } catch {
    return undefined;
  }
  if (url.protocol !== "https:") return undefined;
  const host = url.hostname.toLowerCase();
  return AZURE_KEY_VAULTS.find(({ suffix }) => host.endsWith(suffix) && host.length > suffix.length)
    ?.resource;
}

/**
 * The options every Key Vault client of the sidecar gets, whatever its API:
 * the SDK's retries off (the sync loop's are the one retry policy) and the
 * warm-up gate opened when the first request leaves with its token.
 */
export function keyVaultClientOptions(
  options: Pick<KeyVaultSourceOptions, "disableChallengeResourceVerification" | "httpClient">,
  gate: WarmUpGate,
) {
  return {
    disableChallengeResourceVerification: options.disableChallengeResourceVerification,
    retryOptions: { maxRetries: 0 },
    // After the SDK's challenge policy (which runs before the Retry phase).
    additionalPolicies: [{ policy: openGateOnToken(gate), position: "perRetry" as const }],
    ...(options.httpClient === undefined ? {} : { httpClient: options.httpClient }),
  };
}

/**
 * A call that asks for the vault's token once, at a source's first read, so
 * it is under way while the read waits for its challenge. Never for an
 * exact-host vault: verification is off there, and the resource is not known.
 */
export function tokenPrefetcher(
  options: Pick<
    KeyVaultSourceOptions,
    "disableChallengeResourceVerification" | "vaultUrl" | "prefetchToken"
  >,
): () => void {
  const resource = options.disableChallengeResourceVerification
    ? undefined
    : knownKeyVaultResource(options.vaultUrl);
  let pending = options.prefetchToken !== undefined && resource !== undefined;
  return () => {
    if (!pending) return;
    pending = false;
    options.prefetchToken?.(`${resource ?? ""}/.default`);
  };
}

/** One read of a Key Vault object by its client, behind the warm-up gate. */
export type GatedRead = (ref: SecretRef, signal: AbortSignal | undefined) => Promise<FetchedSecret>;

/**
 * A source over one Key Vault client, whatever its API: each read through
 * the client's warm-up gate, its failure classified, the token prefetched at
 * the first read. `makeRead` builds the client with the gate (see
 * {@link keyVaultClientOptions}); `whileClosed` runs as each read arrives
 * at a gate still closed.
 */
export function createGatedSource(
  options: KeyVaultSourceOptions,
  makeRead: (gate: WarmUpGate) => GatedRead,
  whileClosed?: () => void,
): SecretSource {
  const gate = createWarmUpGate();
  const read = makeRead(gate);
  const prefetch = tokenPrefetcher(options);
  return {
    async fetch(ref: SecretRef, fetchOptions: FetchOptions = {}): Promise<FetchedSecret> {
      prefetch();
      if (!gate.isOpen()) whileClosed?.();
      return gate.run(async () => {
        try {
          return await read(ref, fetchOptions.signal);
        } catch (error) {
          throw classifyKeyVaultError(error, {
            vaultUrl: options.vaultUrl,
            ref,
            clientId: options.clientId,
            now: options.now(),
          });
        }
      });
    },
  };
}

/** Creates the Key Vault source. */
export function createKeyVaultSource(options: KeyVaultSourceOptions): SecretSource {
  // Connections for the reads waiting at the gate, opened while the first
  // read waits for its token (warm-agent.ts).
  const agent = new WarmingAgent();
  const arrive = warmOnArrival(agent, options.vaultUrl);
  return createGatedSource(
    options,
    (gate) => {
      const client = new SecretClient(options.vaultUrl, options.credential, {
        ...keyVaultClientOptions(options, gate),
        agent,
      });
      return async (ref, signal) => {
        const secret = await client.getSecret(ref.name, {
          ...(ref.version === undefined ? {} : { version: ref.version }),
          ...(signal === undefined ? {} : { abortSignal: signal }),
        });
        if (secret.value === undefined) {
          throw new SourceError(
            ErrorCode.SECRET_NOT_FOUND,
            `Key Vault ${options.vaultUrl} returned secret '${formatSecretRef(ref)}' without a value`,
          );
        }
        return {
          value: secret.value,
          contentType: secret.properties.contentType,
          version: secret.properties.version ?? ref.version ?? "",
        };
      };
    },
    arrive,
  );
}

/** Lets calls through one at a time until it is opened (or one succeeds), then all at once. */
export interface WarmUpGate {
  run<T>(task: () => Promise<T>): Promise<T>;
  /** Lets every waiting and later call through. */
  open(): void;
  isOpen(): boolean;
}

/**
 * Creates a {@link WarmUpGate}. A failed leader hands over to the next
 * waiter, which then tries alone.
 */
export function createWarmUpGate(): WarmUpGate {
  // An object: its field changes across awaits, which a local's narrowing would hide.
  const state = { warm: false };
  const isWarm = (): boolean => state.warm;
  let opened = (): void => undefined;
  const warm = new Promise<void>((resolve) => {
    opened = resolve;
  });
  const open = (): void => {
    state.warm = true;
    opened();
  };
  let tail: Promise<void> = Promise.resolve();
  return {
    open,
    isOpen: isWarm,
    async run<T>(task: () => Promise<T>): Promise<T> {
      if (isWarm()) return task();
      const previous = tail;
      let release = (): void => undefined;
      tail = new Promise<void>((resolve) => {
        release = resolve;
      });
      await Promise.race([previous, warm]);
      if (isWarm()) {
        release();
        return task();
      }
      try {
        const result = await task();
        open();
        return result;
      } finally {
        release();
      }
    },
  };
}

/**
 * A pipeline policy that opens the gate when a request leaves with a token:
 * Key Vault's challenge policy has then cached the challenge and the token,
 * so the other calls go out with them instead of each drawing a 401.
 */
export function openGateOnToken(gate: WarmUpGate): PipelinePolicy {
  return {
    name: "akvOpenWarmUpGate",
    sendRequest(request, next) {
      if (request.headers.has("authorization")) gate.open();
      return next(request);
    },
  };
}

/**
 * The built-in role a 403 advises, by what was read: a certificate's public
 * part needs `certificates/read` and a key's `keys/read`, which Key Vault
 * Reader holds too, and neither needs `secrets/getSecret`.
 */
const ROLE_ADVICE: Readonly<Record<ObjectKind, string>> = {
  secret: "'Key Vault Secrets User'",
  certificate: "'Key Vault Certificate User' or 'Key Vault Reader' (certificates/read)",
  key: "'Key Vault Crypto User' or 'Key Vault Reader' (keys/read)",
};

/** Context of {@link classifyKeyVaultError}. */
export interface KeyVaultErrorContext {
  readonly vaultUrl: string;
  readonly ref: SecretRef;
  readonly clientId: string;
  readonly now: number;
}

/**
 * Maps a failed `getSecret` to a {@link SourceError}: 403 → `SECRET_FORBIDDEN`
 * (the role to grant), 404 → `SECRET_NOT_FOUND`, 400/401 → `KEY_VAULT_REFUSED`
 * (all fatal); 429 → `THROTTLED` with Retry-After; 408, 5xx, timeouts and
 * connection errors → `UNAVAILABLE` (retried). Errors of the credential pass
 * through as they are.
 */
export function classifyKeyVaultError(error: unknown, ctx: KeyVaultErrorContext): SourceError {
  const chain = causeChain(error);
  const own = chain.find((e) => isAkvError(e));
  if (own instanceof SourceError) return own;

  const kind = ctx.ref.kind ?? "secret";
  const secret = `${kind} '${formatSecretRef(ctx.ref)}' in Key Vault ${ctx.vaultUrl}`;
  const rest = chain.find((e) => e instanceof Error && e.name === "RestError") as
    | (Error & {
        statusCode?: number;
        code?: string;
        response?: { headers: { get(name: string): string | undefined } };
      })
    | undefined;
  const status = rest?.statusCode;
  const serviceCode = rest?.code === undefined ? "" : ` ${rest.code}`;
  if (status === 403) {
    return new SourceError(
      ErrorCode.SECRET_FORBIDDEN,
      `reading ${secret} was refused (403${serviceCode}): grant ${ROLE_ADVICE[kind]} on vault ${ctx.vaultUrl} to client id ${ctx.clientId} (or an access policy with get on ${kind}s)`,
      { status, cause: error },
    );
  }
  if (status === 404) {
    return new SourceError(
      ErrorCode.SECRET_NOT_FOUND,
      `${secret} does not exist (404${serviceCode}): check the ${kind} name${ctx.ref.version === undefined ? "" : " and version"}`,
      { status, cause: error },
    );
  }
  if (status === 429) {
    const headers = rest?.response?.headers;
    const retryAfterMs =
      parseRetryAfter(headers?.get("retry-after-ms"), ctx.now, "ms") ??
      parseRetryAfter(headers?.get("x-ms-retry-after-ms"), ctx.now, "ms") ??
      parseRetryAfter(headers?.get("retry-after"), ctx.now);
    return new SourceError(
      ErrorCode.THROTTLED,
      `Key Vault ${ctx.vaultUrl} throttled reading ${secret} (429${retryAfterMs === undefined ? "" : `, retry after ${retryAfterMs} ms`})`,
      { status, retryAfterMs, cause: error },
    );
  }
  if (status !== undefined && (status === 408 || status >= 500)) {
    const retryAfterMs = parseRetryAfter(rest?.response?.headers.get("retry-after"), ctx.now);
    return new SourceError(
      ErrorCode.UNAVAILABLE,
      `Key Vault ${ctx.vaultUrl} is unavailable (status ${status}) reading ${secret}`,
      { status, retryAfterMs, cause: error },
    );
  }
  if (status !== undefined) {
    return new SourceError(
      ErrorCode.KEY_VAULT_REFUSED,
      `reading ${secret} was refused (status ${status}${serviceCode})${status === 401 ? ": the vault did not accept the Entra token (wrong tenant or audience?)" : ""}`,
      { status, cause: error },
    );
  }
  if (chain.some((e) => e instanceof Error && e.message.includes("challenge resource"))) {
    return new SourceError(
      ErrorCode.KEY_VAULT_REFUSED,
      `Key Vault ${ctx.vaultUrl} sent a bearer challenge for a resource that does not match its host`,
      { cause: error },
    );
  }
  // No HTTP answer: timeout, dropped or refused connection, TLS trouble.
  const code = (rest?.code ?? (chain[0] as { code?: unknown } | undefined)?.code) as
    string | undefined;
  const name = chain[0] instanceof Error ? chain[0].name : "error";
  return new SourceError(
    ErrorCode.UNAVAILABLE,
    `Key Vault ${ctx.vaultUrl} could not be reached reading ${secret} (${code ?? name})`,
    { cause: error },
  );
}
