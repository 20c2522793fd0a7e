/**
 * The HTTPS server's certificate and key, apart from the routes, because they
 * change under a running server: a Secret volume update or the `self` mode's
 * renewal rewrites the files, and the apiserver must never meet a half-written
 * pair. A new pair is taken only when both files read and match; until then
 * the pair in use stays. The files are read again when their directory changes
 * (a Secret volume swaps a `..data` symlink, so the files' own inodes never
 * change), once per burst of events, and on a poll in case an event is missed.
 *
 * The server stays the only owner of the metrics and readiness: it passes
 * {@link ServingCertificateHooks} in and asks {@link ServingCertificate.state}.
 */
import { X509Certificate, createHash } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import { AkvError, ErrorCode } from "../common/errors.ts";
import type { Logger } from "../common/logger.ts";
import { WebhookEnv } from "../common/names.ts";

/** TLS floor for the apiserver's connections. */
const MIN_TLS_VERSION = "TLSv1.2";
/**
 * TLS 1.2 suites with forward secrecy and authenticated encryption only
 * (ECDHE with AES-GCM or ChaCha20-Poly1305), as Go's crypto/tls client in
 * the apiserver prefers; TLS 1.3's suites are all of that kind already.
 * Node's default list would also take `AES128-SHA` (static RSA, CBC).
 */
export const TLS12_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

/** What is known about the serving certificate. */
export interface CertificateState {
  /** SHA-256 of the certificate's DER, hex. */
  readonly fingerprint: string;
  readonly notAfter: Date;
  readonly loadedAt: Date;
}

/** A checked pair, as read from the files. */
export interface LoadedCertificate {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly state: CertificateState;
}

/** What the server counts and logs about the certificate; each hook is optional. */
export interface ServingCertificateHooks {
  /** A pair went into use: at start-up, and after each reload that took a new one. */
  readonly inUse?: (state: CertificateState) => void;
  /** A reload took a new pair (`success`), or found the files unusable (`failure`, once per distinct reason). */
  readonly reloaded?: (result: "success" | "failure") => void;
}

/** Where the pair is read from, and who hears about it. */
export interface CertificateFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly logger: Logger;
  readonly hooks?: ServingCertificateHooks;
  /** The clock of `loadedAt`; default the system's. */
  readonly clock?: () => Date;
  /** A safety net for missed file events: the files are re-read this often. Default 10 s. */
  readonly pollMs?: number | undefined;
  /** File events come in bursts (a Secret volume update is several renames); one reload follows the burst. Default 50 ms. */
  readonly debounceMs?: number | undefined;
}

/** Where a new pair goes: the HTTPS server, whose `setSecureContext` keeps open connections on the old one. */
export interface SecureContextTarget {
  setSecureContext(options: SecureContextOptions): void;
}

/** The pair in use, followed on disk. */
export interface ServingCertificate {
  /** The certificate in use, or undefined before one loaded. */
  state(): CertificateState | undefined;
  /** Reads the files again now (also done on file events and by polling). Resolves true when a new certificate is in use. */
  reload(): Promise<boolean>;
  /** Stops watching and polling at once; resolves when a reload in flight has finished. */
  close(): Promise<void>;
}

/**
 * Reads and checks a certificate and key pair: both PEM, the key matching the
 * certificate (OpenSSL checks when building the context).
 * @throws {AkvError} `AKV_TLS_INVALID`.
 */
export async function loadCertificate(
  certFile: string,
  keyFile: string,
  now: Date,
): Promise<LoadedCertificate> {
  const [cert, key] = await readPair(certFile, keyFile);
  return checkCertificate(cert, key, now);
}

/** The server's TLS options: the policy above, and the pair when there is one. */
export function secureContextOptions(loaded: LoadedCertificate | undefined): SecureContextOptions {
  return {
    minVersion: MIN_TLS_VERSION,
    ciphers: TLS12_CIPHERS,
    ...(loaded === undefined ? {} : { cert: loaded.cert, key: loaded.key }),
  };
}

/**
 * The pair at start-up, or `undefined` (logged) when the files are missing or
 * unusable: self-managed certificates may be written after start-up, so the
 * webhook starts unready and {@link watchServingCertificate} picks them up.
 */
export async function loadServingCertificate(
  options: CertificateFiles,
): Promise<LoadedCertificate | undefined> {
  const clock = options.clock ?? (() => new Date());
  try {
    const loaded = await loadCertificate(options.certFile, options.keyFile, clock());
    announce(loaded, options, "TLS certificate loaded");
    return loaded;
  } catch (error) {
    options.logger.error(
      { code: ErrorCode.TLS_INVALID, reason: (error as Error).message },
      "no usable TLS certificate yet; not ready",
    );
    return undefined;
  }
}

/**
 * Follows the files from `initial` on: each new usable pair goes to `target`.
 * Reloads run one at a time; a file event during a reload queues one more.
 * @throws {AkvError} `AKV_TLS_INVALID`, naming the variables, when a directory of the files cannot be watched.
 */
export function watchServingCertificate(
  initial: LoadedCertificate | undefined,
  target: SecureContextTarget,
  options: CertificateFiles,
): ServingCertificate {
  const { certFile, keyFile, logger, hooks } = options;
  const clock = options.clock ?? (() => new Date());
  let current = initial;
  let reloading: Promise<boolean> = Promise.resolve(false);
  let lastFailure: string | undefined;

  const failed = (reason: string): false => {
    if (reason !== lastFailure) {
      hooks?.reloaded?.("failure");
      logger.warn(
        { code: ErrorCode.TLS_INVALID, reason },
        "TLS files not usable; keeping the certificate in use",
      );
      lastFailure = reason;
    }
    return false;
  };
  const reloadOnce = async (): Promise<boolean> => {
    let cert: Buffer;
    let key: Buffer;
    try {
      [cert, key] = await readPair(certFile, keyFile);
    } catch (error) {
      return failed((error as Error).message);
    }
    if (current !== undefined && cert.equals(current.cert) && key.equals(current.key)) return false;
    let next: LoadedCertificate;
    try {
      next = checkCertificate(cert, key, clock());
    } catch (error) {
      // Often a writer caught between the two files; the next event or poll completes it.
      return failed((error as Error).message);
    }
    target.setSecureContext(secureContextOptions(next));
    current = next;
    lastFailure = undefined;
    hooks?.reloaded?.("success");
    announce(next, options, "TLS certificate reloaded");
    return true;
  };
  const reload = (): Promise<boolean> => {
    reloading = reloading.then(reloadOnce, reloadOnce);
    return reloading;
  };

  const debounceMs = options.debounceMs ?? 50;
  let debounce: NodeJS.Timeout | undefined;
  const onChange = (): void => {
    clearTimeout(debounce);
    debounce = setTimeout(() => void reload(), debounceMs);
  };
  const watchers: FSWatcher[] = [];
  for (const dir of new Set([dirname(certFile), dirname(keyFile)])) {
    try {
      const watcher = watch(dir, { persistent: false }, onChange);
      watcher.on("error", (error) => {
        logger.warn({ dir, reason: error.message }, "TLS directory watch failed; polling only");
      });
      watchers.push(watcher);
    } catch (cause) {
      for (const watcher of watchers) watcher.close();
      throw new AkvError(
        ErrorCode.TLS_INVALID,
        `${WebhookEnv.tlsCertFile}, ${WebhookEnv.tlsKeyFile}: cannot watch ${dir}, the directory of the TLS files (${(cause as Error).message})`,
        { cause },
      );
    }
  }
  const poll = setInterval(() => void reload(), options.pollMs ?? 10_000);
  poll.unref();

  return {
    state: () => current?.state,
    reload,
    close: async () => {
      clearInterval(poll);
      clearTimeout(debounce);
      for (const watcher of watchers) watcher.close();
      await reloading.catch(() => false);
    },
  };
}

/** Both files' bytes. @throws {AkvError} `AKV_TLS_INVALID` when either cannot be read. */
async function readPair(certFile: string, keyFile: string): Promise<[Buffer, Buffer]> {
  try {
    return await Promise.all([readFile(certFile), readFile(keyFile)]);
  } catch (cause) {
    throw new AkvError(
      ErrorCode.TLS_INVALID,
      `cannot read TLS files: ${(cause as Error).message}`,
      { cause },
    );
  }
}

function checkCertificate(cert: Buffer, key: Buffer, now: Date): LoadedCertificate {
  try {
    createSecureContext({ cert, key });
    const x509 = new X509Certificate(cert);
    return {
      cert,
      key,
      state: {
        fingerprint: createHash("sha256").update(x509.raw).digest("hex"),
        notAfter: new Date(x509.validTo),
        loadedAt: now,
      },
    };
  } catch (cause) {
    throw new AkvError(
      ErrorCode.TLS_INVALID,
      `the TLS certificate and key do not form a usable pair: ${(cause as Error).message}`,
      { cause },
    );
  }
}

/** A pair went into use: the hook, then the log line (fingerprint and expiry, never the key). */
function announce(loaded: LoadedCertificate, options: CertificateFiles, msg: string): void {
  options.hooks?.inUse?.(loaded.state);
  options.logger.info(
    { fingerprint: loaded.state.fingerprint, notAfter: loaded.state.notAfter.toISOString() },
    msg,
  );
}
