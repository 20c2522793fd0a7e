/**
 * The HTTPS plumbing both mocks share, on `node:https` rather than a
 * framework because faults need the raw socket (drop it, or never answer) and
 * exact control of status, headers and body. A handler sees one buffered
 * request and returns one {@link Reply}.
 */
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:https";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Logger } from "../common/logger.ts";
import type { ServingTls } from "./tls.ts";

/** One request, as a handler sees it. */
export interface Call {
  readonly method: string;
  /** The full URL as the client addressed it (origin from `publicUrl` or the `Host` header). */
  readonly url: URL;
  /** `https://host[:port]` as the client addressed it; what ids and links in answers use. */
  readonly origin: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  /** Peer address, for logs. */
  readonly remoteAddress: string;
}

/** What a handler answers. */
export type Reply =
  | {
      readonly status: number;
      readonly headers?: Readonly<Record<string, string>>;
      /** Serialized as JSON with `application/json; charset=utf-8`. */
      readonly json?: unknown;
    }
  | { readonly drop: true }
  | { readonly hang: true };

/** Options of {@link startHttpsServer}. */
export interface HttpsServerOptions {
  /** Bind address; default `127.0.0.1`. */
  readonly host?: string | undefined;
  /** Port; default 0 (any free port). */
  readonly port?: number | undefined;
  readonly tls: ServingTls;
  /**
   * The origin clients use (`https://mock-aad.ns.svc:8443`) when it differs
   * from what the `Host` header says; default: the `Host` header of each request.
   */
  readonly publicUrl?: string | undefined;
  readonly handle: (call: Call) => Promise<Reply>;
  readonly logger: Logger;
}

/** A listening server. */
export interface RunningServer {
  /** `https://host:port` for clients on this machine (a wildcard bind address reads as loopback). */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Stops listening and destroys every connection, including ones left hanging by faults. */
  close(): Promise<void>;
}

/** Request bodies above this are refused (413): the token and admin calls are small. */
const MAX_BODY_BYTES = 1024 * 1024;

/** Starts the server; resolves once it listens. */
export async function startHttpsServer(options: HttpsServerOptions): Promise<RunningServer> {
  const host = options.host ?? "127.0.0.1";
  const publicOrigin =
    options.publicUrl === undefined ? undefined : new URL(options.publicUrl).origin;
  const server: Server = createServer(
    { cert: options.tls.certPem, key: options.tls.keyPem },
    (req, res) => {
      void serve(req, res);
    },
  );
  // A client may give up on a hanging request; its socket error is expected noise.
  server.on("clientError", (_err: Error, socket: Socket) => socket.destroy());

  let listenPort = 0;
  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const origin =
      publicOrigin ?? `https://${req.headers.host ?? `${urlHost(host)}:${listenPort}`}`;
    let reply: Reply;
    let call: Call | undefined;
    try {
      const body = await readBody(req);
      call = {
        method: req.method ?? "GET",
        url: new URL(req.url ?? "/", origin),
        origin,
        headers: req.headers,
        body,
        remoteAddress: req.socket.remoteAddress ?? "",
      };
      reply = await options.handle(call);
    } catch (error) {
      if (error instanceof BodyTooLarge) reply = { status: 413, json: { error: "body too large" } };
      else {
        options.logger.error({ err: error, path: call?.url.pathname }, "mock handler failed");
        reply = { status: 500, json: { error: "mock handler failed" } };
      }
    }
    if ("drop" in reply) {
      req.socket.destroy();
      return;
    }
    if ("hang" in reply) return;
    const payload = reply.json === undefined ? undefined : JSON.stringify(reply.json);
    res.writeHead(reply.status, {
      ...(payload === undefined ? {} : { "content-type": "application/json; charset=utf-8" }),
      ...reply.headers,
    });
    res.end(payload);
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  listenPort = (server.address() as AddressInfo).port;
  const url = publicOrigin ?? `https://${urlHost(loopbackFor(host))}:${listenPort}`;
  return {
    url,
    host,
    port: listenPort,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}

class BodyTooLarge extends Error {}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new BodyTooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** A wildcard bind address is reached on loopback. */
function loopbackFor(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "::1";
  return host;
}

/** IPv6 literals go in brackets in URLs. */
function urlHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** Reads a JSON request body (admin API); `undefined` for an empty body. */
export function parseJsonBody(call: Call): unknown {
  if (call.body.length === 0) return undefined;
  return JSON.parse(call.body.toString("utf8")) as unknown;
}

/** The value of a single-valued header. */
export function header(call: Call, name: string): string | undefined {
  const v = call.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** A fresh GUID, as Azure's trace and request ids are. */
export function newGuid(): string {
  return randomUUID();
}

/** Waits, for latency faults. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
