/**
 * Fixtures shared by the mocks' tests: the tenant, app and service account
 * they federate, and a raw HTTPS call for wire details the SDKs hide. Not
 * part of any bundle.
 */
import type { IncomingHttpHeaders } from "node:http";
import { request, type RequestOptions } from "node:https";

export const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/** The client id of the app the tests' assertions act as. */
export const CLIENT = "0b6e3f7a-5d1c-4a8e-9f2b-3c4d5e6f7a8b";
export const SUBJECT = "system:serviceaccount:shop:api";

/** What {@link rawCall} answers: the status, the headers and the body as JSON (`undefined` if empty). */
export interface RawAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly json: unknown;
}

/** One HTTPS request to `url`, with `body` if given. */
export function rawCall(url: URL, options: RequestOptions, body?: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          json: text === "" ? undefined : (JSON.parse(text) as unknown),
        });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}
