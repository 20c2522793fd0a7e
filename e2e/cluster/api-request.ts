/**
 * A raw request to the apiserver as the admin, because client-node hides
 * what the admission tests assert on: the status of a refusal with its
 * message, and the `Warning` headers an admission webhook's warnings arrive
 * in.
 */
import { request as httpsRequest } from "node:https";
import type { ControlPlane } from "./control-plane.ts";

/** What the apiserver answered to a raw request. */
export interface ApiResponse {
  readonly status: number;
  readonly body: unknown;
  /** `Warning` headers (admission warnings among them), decoded. */
  readonly warnings: readonly string[];
}

/** A raw admin request, for what client-node hides: the status of a refusal and the warnings. */
export function apiRequest(
  cp: ControlPlane,
  method: string,
  path: string,
  body?: unknown,
): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = httpsRequest(
      `${cp.server}${path}`,
      {
        method,
        ca: cp.caPem,
        cert: cp.adminCertPem,
        key: cp.adminKeyPem,
        headers: {
          accept: "application/json",
          ...(payload === undefined
            ? {}
            : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }),
        },
        timeout: 30_000,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => {
          const raw = res.headers.warning;
          const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
          resolve({
            status: res.statusCode ?? 0,
            body: text === "" ? undefined : (JSON.parse(text) as unknown),
            warnings: list.flatMap(splitWarnings),
          });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`timeout: ${method} ${path}`)));
    req.on("error", reject);
    req.end(payload);
  });
}

/** `299 - "text", 299 - "more"` → the texts (RFC 7234 warn-text, as the apiserver writes it). */
function splitWarnings(header: string): string[] {
  return [...header.matchAll(/\d{3} \S+ "((?:[^"\\]|\\.)*)"/g)].map((m) =>
    (m[1] ?? "").replace(/\\(.)/g, "$1"),
  );
}
