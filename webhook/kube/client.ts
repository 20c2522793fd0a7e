/**
 * The few Kubernetes API calls the webhook makes, over `node:https` with
 * one keep-alive agent: JSON requests ({@link KubeClient.request}) and a
 * watch stream of newline-delimited events ({@link KubeClient.watch}).
 * `@kubernetes/client-node` would do this too, but its generated API, auth
 * plugins and their dependencies were 52% of the webhook's bundle and
 * 40-55 MiB of its idle memory (bench/webhook/RESULTS.md), for five calls.
 */
import type { IncomingMessage } from "node:http";
import { Agent, request } from "node:https";
import type { KubeConnection } from "./connection.ts";

/** A request's answer is read up to this size; a list page of 500 service accounts is far smaller. */
export const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;
/** One watch event (one object) is read up to this size. */
export const MAX_EVENT_BYTES = 4 * 1024 * 1024;
/** A request without an answer for this long fails. */
export const REQUEST_TIMEOUT_MS = 30_000;

/** An answer of 400 or more: the status, and the apiserver's Status body. */
export class KubeApiError extends Error {
  /** The HTTP status (named `code` as client-node's errors are, which callers test). */
  readonly code: number;
  /** The body as the apiserver sent it (a `Status` object's JSON, usually). */
  readonly body: string;

  constructor(what: string, code: number, body: string) {
    super(`${what}: HTTP ${String(code)}${statusMessage(body)}`);
    this.name = "KubeApiError";
    this.code = code;
    this.body = body;
  }
}

function statusMessage(body: string): string {
  try {
    const status = JSON.parse(body) as { message?: unknown };
    return typeof status.message === "string" ? `: ${status.message}` : "";
  } catch {
    return "";
  }
}

/** One event of a watch. */
export interface WatchEvent {
  readonly type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  readonly object: unknown;
}

/** An open watch. */
export interface OpenWatch {
  /** Settles when the stream ends: resolved when the server ended it, rejected on an error or abort. */
  readonly ended: Promise<void>;
}

/** What the webhook asks of the apiserver. */
export interface KubeClient {
  /**
   * Sends one request; resolves with the parsed JSON body of a 2xx answer.
   * @throws {KubeApiError} for an answer of 400 or more.
   */
  request(
    method: "GET" | "POST" | "PUT" | "PATCH",
    path: string,
    options?: { readonly body?: unknown; readonly contentType?: string },
  ): Promise<unknown>;
  /**
   * Opens a watch (`path` with `watch=true` in its query); resolves once the
   * apiserver has answered 200, then calls `onEvent` for each event until
   * the stream ends or `signal` aborts it.
   */
  watch(
    path: string,
    onEvent: (event: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<OpenWatch>;
  /** Closes the kept-alive connections. */
  close(): void;
}

/** Builds a client over one connection; nothing is sent until a call. */
export function createKubeClient(connection: KubeConnection): KubeClient {
  const agent = new Agent({
    keepAlive: true,
    ...(connection.caPem === undefined ? {} : { ca: connection.caPem }),
    ...(connection.clientCertPem === undefined ? {} : { cert: connection.clientCertPem }),
    ...(connection.clientKeyPem === undefined ? {} : { key: connection.clientKeyPem }),
    rejectUnauthorized: !connection.insecure,
  });

  const send = async (
    method: string,
    path: string,
    body: string | undefined,
    contentType: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<IncomingMessage> => {
    const token = await connection.token();
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(path, connection.server),
        {
          method,
          agent,
          timeout: timeoutMs,
          headers: {
            accept: "application/json",
            ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
            ...(body === undefined
              ? {}
              : { "content-type": contentType, "content-length": Buffer.byteLength(body) }),
          },
          ...(signal === undefined ? {} : { signal }),
        },
        resolve,
      );
      req.on("timeout", () => {
        req.destroy(new Error(`${method} ${path}: no answer in ${String(timeoutMs)} ms`));
      });
      req.on("error", reject);
      req.end(body);
    });
  };

  return {
    request: async (method, path, options = {}) => {
      const body = options.body === undefined ? undefined : JSON.stringify(options.body);
      const res = await send(
        method,
        path,
        body,
        options.contentType ?? "application/json",
        REQUEST_TIMEOUT_MS,
      );
      const text = await readBody(res, `${method} ${path}`);
      const status = res.statusCode ?? 0;
      if (status >= 400 || status < 200) throw new KubeApiError(`${method} ${path}`, status, text);
      return JSON.parse(text) as unknown;
    },
    watch: async (path, onEvent, signal) => {
      // The apiserver ends a watch after its timeoutSeconds; silence far past that is a dead connection.
      const res = await send("GET", path, undefined, "", 10 * 60_000, signal);
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        throw new KubeApiError(`GET ${path}`, status, await readBody(res, `GET ${path}`));
      }
      return { ended: readEvents(res, onEvent) };
    },
    close: () => {
      agent.destroy();
    },
  };
}

/** The whole body as text, up to {@link MAX_RESPONSE_BYTES}. */
function readBody(res: IncomingMessage, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) {
        res.destroy(new Error(`${what}: the answer is over ${String(MAX_RESPONSE_BYTES)} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    res.on("end", () => {
      resolve(Buffer.concat(chunks).toString("utf8"));
    });
    res.on("error", reject);
  });
}

/** Calls `onEvent` for each JSON line of a watch; settles when the stream ends. */
function readEvents(res: IncomingMessage, onEvent: (event: WatchEvent) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let pending: Buffer = Buffer.alloc(0);
    res.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      for (let newline = pending.indexOf(10); newline >= 0; newline = pending.indexOf(10)) {
        const line = pending.subarray(0, newline).toString("utf8").trim();
        pending = pending.subarray(newline + 1);
        if (line === "") continue;
        try {
          onEvent(JSON.parse(line) as WatchEvent);
        } catch (error) {
          res.destroy(error as Error);
          return;
        }
      }
      if (pending.length > MAX_EVENT_BYTES)
        res.destroy(new Error(`a watch event over ${String(MAX_EVENT_BYTES)} bytes`));
    });
    res.on("end", resolve);
    res.on("error", reject);
    res.on("close", () => {
      // Destroyed without an error event (an abort): the watch ended anyway.
      if (!res.complete) reject(new Error("the watch connection closed"));
    });
  });
}
