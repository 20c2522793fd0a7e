/**
 * Secret values → file contents: the formats and the templates. Pure: no I/O,
 * no clock; the certificate functions are passed in, so the caller loads
 * node-forge only when a `pem`/`cert`/`key` file exists (start time).
 *
 * Errors are `FORMAT_FAILED`, naming the file and the secret, never the value.
 */
import { AkvError, ErrorCode } from "../common/errors.ts";
import type { Format } from "../common/names.ts";
import { formatSecretRef, type SecretRef, type TemplatePart } from "../common/refs.ts";
import type { FileSpec } from "../common/spec.ts";
import type { FetchedSecret } from "./secret-source.ts";

/** The two functions of `certs/index.ts` that the certificate formats use. */
export interface CertsApi {
  pkcs12ToPem(
    pkcs12: Uint8Array | string,
    password?: string,
  ): { keyPem: string; certPems: string[] };
  parsePemBundle(text: string): { keyPem?: string; certPems: string[] };
}

/** Values by {@link formatSecretRef} key (`NAME` or `NAME/VERSION`). */
export type SecretValues = ReadonlyMap<string, FetchedSecret>;

const CERT_FORMATS: readonly Format[] = ["pem", "cert", "key"];

/** True when some file needs the certificate functions (so they are worth loading). */
export function needsCerts(files: readonly FileSpec[]): boolean {
  return files.some((f) => CERT_FORMATS.includes(f.format));
}

/** Options of {@link renderFiles}. */
export interface RenderOptions {
  /** Required when {@link needsCerts} is true. */
  readonly certs?: CertsApi | undefined;
  /**
   * The most bytes the files may take together: the size of the volume they
   * are published to. Undefined: no bound.
   */
  readonly maxBytes?: number | undefined;
}

/**
 * Renders every file of a spec, refusing a set larger than `maxBytes`. A
 * template stops at the part that passes the bound: 5,000 references to one
 * secret would otherwise build a string of 125 MB before anything could
 * refuse it.
 * @throws {AkvError} `FORMAT_FAILED` for a value that does not fit its
 *   format, `OUTPUT_TOO_LARGE` for a set larger than `maxBytes`.
 */
export function renderFiles(
  files: readonly FileSpec[],
  values: SecretValues,
  options: RenderOptions = {},
): Map<string, Buffer> {
  const maxBytes = options.maxBytes ?? Infinity;
  const out = new Map<string, Buffer>();
  let total = 0;
  for (const f of files) {
    const content =
      f.source.kind === "template"
        ? renderTemplate(f.file, f.source.parts, values, { total, maxBytes })
        : renderSecret(
            f.file,
            f.format,
            f.source.ref,
            lookup(values, f.source.ref, f.file),
            options.certs,
          );
    total += content.length;
    if (total > maxBytes) throw tooLarge(f.file, content.length, total, maxBytes, "");
    out.set(f.file, content);
  }
  return out;
}

/** A template's parts joined, stopping as soon as the set passes `maxBytes`. */
function renderTemplate(
  file: string,
  parts: readonly TemplatePart[],
  values: SecretValues,
  bound: { readonly total: number; readonly maxBytes: number },
): Buffer {
  // One encoding per secret, however often the template names it.
  const encoded = new Map<string, Buffer>();
  const chunks: Buffer[] = [];
  let size = 0;
  for (const part of parts) {
    let chunk: Buffer;
    if ("text" in part) chunk = Buffer.from(part.text, "utf8");
    else {
      const key = formatSecretRef(part.secret);
      chunk = encoded.get(key) ?? Buffer.from(lookup(values, part.secret, file).value, "utf8");
      encoded.set(key, chunk);
    }
    size += chunk.length;
    if (bound.total + size > bound.maxBytes)
      throw tooLarge(file, size, bound.total + size, bound.maxBytes, "at least ");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

function tooLarge(
  file: string,
  fileBytes: number,
  totalBytes: number,
  maxBytes: number,
  atLeast: "at least " | "",
): AkvError {
  return new AkvError(
    ErrorCode.OUTPUT_TOO_LARGE,
    `file '${file}' (${atLeast}${fileBytes} bytes) brings the files to ${atLeast}${totalBytes} bytes, more than the volume's ${maxBytes} bytes; nothing is published`,
  );
}

function lookup(values: SecretValues, ref: SecretRef, file: string): FetchedSecret {
  const value = values.get(formatSecretRef(ref));
  if (value === undefined) {
    // A bug, not a user error: the loop fetches every ref of the spec.
    throw new AkvError(
      ErrorCode.FORMAT_FAILED,
      `file '${file}': secret '${formatSecretRef(ref)}' was not fetched`,
    );
  }
  return value;
}

function renderSecret(
  file: string,
  format: Format,
  ref: SecretRef,
  secret: FetchedSecret,
  certs: CertsApi | undefined,
): Buffer {
  const fail = (expected: string, cause?: unknown): AkvError =>
    new AkvError(
      ErrorCode.FORMAT_FAILED,
      `file '${file}': secret '${formatSecretRef(ref)}' (version ${secret.version}) ${expected}`,
      cause === undefined ? undefined : { cause },
    );
  switch (format) {
    case "raw":
      return Buffer.from(secret.value, "utf8");
    case "base64-decode": {
      const decoded = decodeBase64Strict(secret.value);
      if (decoded === undefined)
        throw fail(
          "is not valid base64 (standard alphabet, padded; line breaks allowed) for format base64-decode",
        );
      return decoded;
    }
    case "pem":
    case "cert":
    case "key": {
      if (certs === undefined) throw fail(`needs the certificate functions for format ${format}`);
      let bundle: { keyPem?: string; certPems: string[] };
      try {
        bundle = isPem(secret)
          ? certs.parsePemBundle(secret.value)
          : certs.pkcs12ToPem(secret.value);
      } catch (cause) {
        const why = cause instanceof Error ? `: ${cause.message}` : "";
        throw fail(
          `is not a certificate-backed secret (PKCS#12 or PEM) for format ${format}${why}`,
          cause,
        );
      }
      const key = bundle.keyPem;
      if (format === "cert") {
        if (bundle.certPems.length === 0) throw fail("holds no certificate for format cert");
        return Buffer.from(joinPem(bundle.certPems), "utf8");
      }
      if (key === undefined) throw fail(`holds no private key for format ${format}`);
      if (format === "key") return Buffer.from(joinPem([key]), "utf8");
      if (bundle.certPems.length === 0) throw fail("holds no certificate for format pem");
      // Key first, then the chain leaf first: Key Vault's own PEM layout.
      return Buffer.from(joinPem([key, ...bundle.certPems]), "utf8");
    }
  }
}

function isPem(secret: FetchedSecret): boolean {
  if (secret.contentType === "application/x-pem-file") return true;
  if (secret.contentType === "application/x-pkcs12") return false;
  return secret.value.trimStart().startsWith("-----BEGIN");
}

function joinPem(blocks: readonly string[]): string {
  return blocks.map((b) => (b.endsWith("\n") ? b : `${b}\n`)).join("");
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decodes standard, padded base64; whitespace (line breaks of wrapped
 * base64) is ignored, anything else outside the alphabet is refused (Node's
 * own decoder silently skips it, which would write a corrupt file).
 * @example decodeBase64Strict("aGk=") // <Buffer 68 69>
 * @example decodeBase64Strict("aGk") // undefined (unpadded)
 */
export function decodeBase64Strict(text: string): Buffer | undefined {
  const compact = text.replace(/[\t\n\r ]/g, "");
  return BASE64.test(compact) ? Buffer.from(compact, "base64") : undefined;
}
