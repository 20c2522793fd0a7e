import { X509Certificate, createPrivateKey } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import { parseTemplate } from "../common/refs.ts";
import type { FileSpec } from "../common/spec.ts";
import * as certs from "../certs/index.ts";
import { decodeBase64Strict, needsCerts, renderFiles, type SecretValues } from "./render.ts";
import type { FetchedSecret } from "./secret-source.ts";

const V = "0123456789abcdef0123456789abcdef";
const secret = (value: string, contentType?: string): FetchedSecret => ({
  value,
  contentType,
  version: V,
});
const file = (name: string, ref: string, format: FileSpec["format"] = "raw"): FileSpec => {
  const [n = "", version] = ref.split("/");
  return {
    file: name,
    format,
    source: { kind: "secret", ref: version === undefined ? { name: n } : { name: n, version } },
  };
};

function failure(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected an error");
}

describe("renderFiles", () => {
  it("writes raw values as UTF-8 and looks pinned versions up by NAME/VERSION", () => {
    const values: SecretValues = new Map([
      ["a", secret("héllo\n")],
      [`b/${V}`, secret("pinned")],
    ]);
    const out = renderFiles([file("a.txt", "a"), file("b", `b/${V}`)], values);
    expect(out.get("a.txt")?.toString("utf8")).toBe("héllo\n");
    expect(out.get("b")?.toString("utf8")).toBe("pinned");
  });

  it("decodes base64 strictly: padded standard alphabet, line breaks allowed", () => {
    const bytes = Buffer.from([0, 1, 2, 250, 251, 252, 253, 254, 255]);
    const b64 = bytes.toString("base64");
    const out = renderFiles(
      [file("bin", "x", "base64-decode")],
      new Map([["x", secret(`${b64.slice(0, 4)}\n${b64.slice(4)}\n`)]]),
    );
    expect(out.get("bin")).toEqual(bytes);
    for (const bad of ["aGk", "aGk=!", "a-_b", "aGk==="])
      expect(decodeBase64Strict(bad)).toBeUndefined();
    expect(decodeBase64Strict("")?.length).toBe(0);
  });

  it("names the file and the secret, never the value, when base64 is invalid", () => {
    const error = failure(() =>
      renderFiles(
        [file("key.bin", "blob", "base64-decode")],
        new Map([["blob", secret("s3cr3t-not-base64!")]]),
      ),
    );
    expect(isAkvError(error, ErrorCode.FORMAT_FAILED)).toBe(true);
    expect(error.message).toContain("file 'key.bin'");
    expect(error.message).toContain("secret 'blob'");
    expect(error.message).not.toContain("s3cr3t");
  });

  it("renders templates from parsed parts, substituting nothing else", () => {
    const parsed = parseTemplate(
      `user=app\npass={{ secret "db" }}\npinned={{ secret "db/${V}" }}\n`,
    );
    if (!parsed.ok) throw new Error(parsed.expected);
    const values: SecretValues = new Map([
      ["db", secret("p{{w}}d")],
      [`db/${V}`, secret("old")],
    ]);
    const out = renderFiles(
      [{ file: "app.env", format: "raw", source: { kind: "template", parts: parsed.value } }],
      values,
    );
    expect(out.get("app.env")?.toString()).toBe("user=app\npass=p{{w}}d\npinned=old\n");
  });

  describe("output bound (the volume's size)", () => {
    it("stops a template as soon as its output passes the bound, naming the file and the sizes", () => {
      // 5,000 references to one 25,000-character secret: 125 MB if rendered whole.
      const parts = Array.from({ length: 5000 }, () => ({ secret: { name: "big" } }));
      let furthest = 0;
      const watched = new Proxy(parts, {
        get(target, key, receiver) {
          if (typeof key === "string" && /^\d+$/.test(key))
            furthest = Math.max(furthest, Number(key));
          return Reflect.get(target, key, receiver) as unknown;
        },
      });
      const values: SecretValues = new Map([["big", secret("x".repeat(25_000))]]);
      const error = failure(() =>
        renderFiles(
          [
            file("small", "big"),
            { file: "app.conf", format: "raw", source: { kind: "template", parts: watched } },
          ],
          values,
          { maxBytes: 4 * 1024 * 1024 },
        ),
      );
      expect(isAkvError(error, ErrorCode.OUTPUT_TOO_LARGE)).toBe(true);
      expect(error.message).toContain("file 'app.conf'");
      expect(error.message).toContain("4194304 bytes");
      // Rendering stopped at the part that crossed 4 MiB (the 168th), not at the 5,000th.
      expect(furthest).toBeLessThan(170);
      expect(error.message).not.toContain("xxxx");
    });

    it("refuses a set whose total passes the bound, naming the file that crossed it", () => {
      const values: SecretValues = new Map([
        ["a", secret("a".repeat(3000))],
        ["b", secret("b".repeat(3000))],
      ]);
      const specs = [file("one", "a"), file("two", "b")];
      expect(renderFiles(specs, values, { maxBytes: 6000 }).size).toBe(2);
      const error = failure(() => renderFiles(specs, values, { maxBytes: 5999 }));
      expect(isAkvError(error, ErrorCode.OUTPUT_TOO_LARGE)).toBe(true);
      expect(error.message).toMatch(/file 'two' \(3000 bytes\).* 6000 bytes.* 5999 bytes/);
    });
  });

  it("knows when the certificate functions are needed", () => {
    expect(needsCerts([file("a", "a")])).toBe(false);
    expect(needsCerts([file("a", "a"), file("t", "t", "cert")])).toBe(true);
  });

  describe("certificate formats (real PKCS#12 and PEM, checked with node:crypto)", () => {
    const now = new Date();
    const ca = certs.createCertificateAuthority({ commonName: "test-ca", now });
    const leaf = certs.createServingCertificate(ca, { dnsNames: ["app.example"], now });
    const pkcs12 = certs.createPkcs12({
      keyPem: leaf.keyPem,
      certPems: [leaf.certPem, ca.certPem],
    });
    const pemBundle = `${ca.certPem}\n${leaf.keyPem}\n${leaf.certPem}`;
    const blocks = (text: string): string[] =>
      [...text.matchAll(/-----BEGIN ([A-Z ]+)-----/g)].map((m) => m[1] ?? "");

    for (const [kind, value, contentType] of [
      ["PKCS#12", pkcs12, "application/x-pkcs12"],
      ["PEM", pemBundle, "application/x-pem-file"],
      ["PEM without content type", pemBundle, undefined],
    ] as const) {
      it(`pem, cert and key from ${kind}`, () => {
        const values: SecretValues = new Map([["tls", secret(value, contentType)]]);
        const out = renderFiles(
          [
            file("tls.pem", "tls", "pem"),
            file("tls.crt", "tls", "cert"),
            file("tls.key", "tls", "key"),
          ],
          values,
          { certs },
        );
        const pem = out.get("tls.pem")?.toString() ?? "";
        const crt = out.get("tls.crt")?.toString() ?? "";
        const key = out.get("tls.key")?.toString() ?? "";
        expect(blocks(pem)).toEqual(["PRIVATE KEY", "CERTIFICATE", "CERTIFICATE"]);
        expect(blocks(crt)).toEqual(["CERTIFICATE", "CERTIFICATE"]);
        expect(blocks(key)).toEqual(["PRIVATE KEY"]);
        // Leaf first, and the key is the leaf's.
        const first = new X509Certificate(crt);
        expect(first.subject).toContain("app.example");
        expect(first.checkPrivateKey(createPrivateKey(key))).toBe(true);
        expect(first.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
      });
    }

    it("refuses a value that is no certificate, naming file and secret", () => {
      const error = failure(() =>
        renderFiles(
          [file("tls.pem", "tls", "pem")],
          new Map([["tls", secret("bm90IGEgY2VydA==")]]),
          { certs },
        ),
      );
      expect(isAkvError(error, ErrorCode.FORMAT_FAILED)).toBe(true);
      expect(error.message).toMatch(
        /file 'tls.pem': secret 'tls' .* is not a certificate-backed secret/,
      );
    });

    it("refuses pem and key from a bundle without a key; cert works", () => {
      const values: SecretValues = new Map([["ca", secret(ca.certPem)]]);
      expect(
        renderFiles([file("ca.crt", "ca", "cert")], values, { certs })
          .get("ca.crt")
          ?.toString(),
      ).toContain("BEGIN CERTIFICATE");
      expect(
        failure(() => renderFiles([file("k", "ca", "key")], values, { certs })).message,
      ).toContain("holds no private key");
      expect(
        failure(() => renderFiles([file("p", "ca", "pem")], values, { certs })).message,
      ).toContain("holds no private key");
    });
  });
});

describe("renderFiles: each refusal by its whole message", () => {
  const now = new Date();
  const ca = certs.createCertificateAuthority({ commonName: "msg-ca", now });
  const leaf = certs.createServingCertificate(ca, { dnsNames: ["msg.example"], now });

  it.each<[string, FileSpec, SecretValues, string]>([
    [
      "invalid base64",
      file("key.bin", "blob", "base64-decode"),
      new Map([["blob", secret("not base64!")]]),
      `file 'key.bin': secret 'blob' (version ${V}) is not valid base64 (standard alphabet, padded; line breaks allowed) for format base64-decode`,
    ],
    [
      "a pem of a key alone",
      file("p", "k", "pem"),
      new Map([["k", secret(leaf.keyPem, "application/x-pem-file")]]),
      `file 'p': secret 'k' (version ${V}) holds no certificate for format pem`,
    ],
    [
      "a cert of a key alone",
      file("c", "k", "cert"),
      new Map([["k", secret(leaf.keyPem, "application/x-pem-file")]]),
      `file 'c': secret 'k' (version ${V}) holds no certificate for format cert`,
    ],
    [
      "a key of certificates alone",
      file("k", "ca", "key"),
      new Map([["ca", secret(ca.certPem)]]),
      `file 'k': secret 'ca' (version ${V}) holds no private key for format key`,
    ],
  ])("%s", (_, spec, values, message) => {
    const error = failure(() => renderFiles([spec], values, { certs }));
    expect(isAkvError(error, ErrorCode.FORMAT_FAILED)).toBe(true);
    expect(error.message).toBe(message);
    expect(error.cause).toBeUndefined();
  });

  it("a value that is no certificate: the parser's reason, and the parser's error as the cause", () => {
    const error = failure(() =>
      renderFiles(
        [file("tls.pem", "tls", "pem")],
        new Map([["tls", secret("bm90IGEgY2VydA==", "application/x-pkcs12")]]),
        { certs },
      ),
    );
    const cause = error.cause as Error;
    expect(cause).toBeInstanceOf(Error);
    expect(error.message).toBe(
      `file 'tls.pem': secret 'tls' (version ${V}) is not a certificate-backed secret (PKCS#12 or PEM) for format pem: ${cause.message}`,
    );
  });

  it("a certificate format without the certificate functions names the format", () => {
    const error = failure(() =>
      renderFiles([file("tls.key", "tls", "key")], new Map([["tls", secret(leaf.keyPem)]])),
    );
    expect(error.message).toBe(
      `file 'tls.key': secret 'tls' (version ${V}) needs the certificate functions for format key`,
    );
  });

  it("a secret the loop did not fetch is named (a bug, never the user's)", () => {
    const error = failure(() => renderFiles([file("a", "missing")], new Map()));
    expect(isAkvError(error, ErrorCode.FORMAT_FAILED)).toBe(true);
    expect(error.message).toBe("file 'a': secret 'missing' was not fetched");
  });
});

describe("renderFiles: how a value is read", () => {
  const now = new Date();
  const ca = certs.createCertificateAuthority({ commonName: "read-ca", now });
  const leaf = certs.createServingCertificate(ca, { dnsNames: ["read.example"], now });

  it("takes PEM text with white space before it, without a content type", () => {
    const out = renderFiles(
      [file("c", "p", "cert")],
      new Map([["p", secret(`\n  ${leaf.certPem}`)]]),
      { certs },
    );
    expect(new X509Certificate(out.get("c") ?? "").subject).toContain("read.example");
  });

  it("reads a value labelled PKCS#12 as PKCS#12, even when it looks like PEM", () => {
    const error = failure(() =>
      renderFiles(
        [file("c", "p", "cert")],
        new Map([["p", secret(leaf.certPem, "application/x-pkcs12")]]),
        { certs },
      ),
    );
    expect(error.message).toContain("is not a certificate-backed secret (PKCS#12 or PEM)");
  });

  it("ends every PEM block with a line break and joins them with nothing else", () => {
    const key = leaf.keyPem.trimEnd();
    const cert = leaf.certPem.trimEnd();
    const out = renderFiles(
      [file("p", "b", "pem")],
      new Map([["b", secret(`${key}\n${cert}`, "application/x-pem-file")]]),
      { certs },
    );
    const text = out.get("p")?.toString() ?? "";
    expect(text.endsWith("-----END CERTIFICATE-----\n")).toBe(true);
    expect(text).toContain("-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----");
  });

  it("renders a template exactly as large as the bound, and refuses one byte more", () => {
    const parts = parseTemplate('{{ secret "a" }}-{{ secret "a" }}');
    if (!parts.ok) throw new Error(parts.expected);
    const spec: FileSpec = {
      file: "t",
      format: "raw",
      source: { kind: "template", parts: parts.value },
    };
    const values: SecretValues = new Map([["a", secret("abc")]]);
    expect(renderFiles([spec], values, { maxBytes: 7 }).get("t")?.toString()).toBe("abc-abc");
    expect(failure(() => renderFiles([spec], values, { maxBytes: 6 })).message).toBe(
      "file 't' (at least 7 bytes) brings the files to at least 7 bytes, more than the volume's 6 bytes; nothing is published",
    );
  });

  it("counts UTF-8 bytes, not characters, in a template", () => {
    const parts = parseTemplate('é{{ secret "a" }}');
    if (!parts.ok) throw new Error(parts.expected);
    const spec: FileSpec = {
      file: "t",
      format: "raw",
      source: { kind: "template", parts: parts.value },
    };
    const out = renderFiles([spec], new Map([["a", secret("ü")]]), { maxBytes: 4 });
    expect(out.get("t")).toEqual(Buffer.from("éü", "utf8"));
  });

  it("needs the certificate functions for each certificate format, and only those", () => {
    for (const format of ["pem", "cert", "key"] as const)
      expect(needsCerts([file("x", "x", format)])).toBe(true);
    for (const format of ["raw", "base64-decode"] as const)
      expect(needsCerts([file("x", "x", format)])).toBe(false);
  });

  it("decodes the two padded endings of base64", () => {
    expect(decodeBase64Strict("aA==")).toEqual(Buffer.from("h"));
    expect(decodeBase64Strict("aGk=")).toEqual(Buffer.from("hi"));
    expect(decodeBase64Strict("aGk")).toBeUndefined();
  });
});
