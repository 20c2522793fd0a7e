/**
 * GET a JSON document over HTTPS, trusting Node's default CAs plus the given
 * ones. The mocks fetch as the real services do (Entra ID reads a federated
 * issuer's discovery document and JWKS; Key Vault reads Entra's keys), and
 * those hosts may sit behind a private CA such as a kube-apiserver's.
 */
import { request } from "node:https";
import { getCACertificates } from "node:tls";

/** Why a fetch failed, in words for the mock's logs (never in a client's answer). */
export class FetchJsonError extends Error {
  override readonly name = "FetchJsonError";
}

/** Options of {@link fetchJson}. */
export interface FetchJsonOptions {
  /** Extra CA certificates (PEM) to trust besides Node's defaults. */
  readonly caPems?: readonly string[];
  /** Default 5000 ms. */
  readonly timeoutMs?: number;
}

const MAX_BYTES = 1024 * 1024;

/** GETs `url` and parses the JSON body of a 200 answer. @throws {FetchJsonError} */
export function fetchJson(url: string, options: FetchJsonOptions = {}): Promise<unknown> {
  const target = new URL(url);
  if (target.protocol !== "https:") {
    return Promise.reject(new FetchJsonError(`refusing a non-https URL: ${url}`));
  }
  const ca = [...getCACertificates("default"), ...(options.caPems ?? [])];
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      {
        method: "GET",
        ca,
        // A kube-apiserver answers 406 to a JWKS request that accepts only
        // application/json: it serves application/jwk-set+json.
        headers: { accept: "application/json, application/jwk-set+json, */*" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BYTES) req.destroy(new FetchJsonError(`${url}: answer too large`));
          else chunks.push(chunk);
        });
        res.on("end", () => {
          if (res.statusCode !== 200) {
            reject(new FetchJsonError(`${url}: HTTP ${res.statusCode ?? "?"}`));
            return;
          }
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown);
          } catch (cause) {
            reject(new FetchJsonError(`${url}: not JSON`, { cause }));
          }
        });
        res.on("error", reject);
      },
    );
    req.setTimeout(options.timeoutMs ?? 5000, () => {
      req.destroy(new FetchJsonError(`${url}: timed out`));
    });
    req.on("error", (cause) => {
      reject(
        cause instanceof FetchJsonError
          ? cause
          : new FetchJsonError(`${url}: ${cause.message}`, { cause }),
      );
    });
    req.end();
  });
}
