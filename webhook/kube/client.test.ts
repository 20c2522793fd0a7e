import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { fakeApiServerTls } from "../../testing/webhook-apiserver.ts";
import { createKubeClient, KubeApiError, type KubeClient, type WatchEvent } from "./client.ts";

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

const tls = fakeApiServerTls();
let server: Server;
let handler: Handler = (_req, _body, res) => res.writeHead(500).end();
let client: KubeClient;

beforeAll(async () => {
  server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      handler(req, body, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  client = createKubeClient({
    server: new URL(`https://127.0.0.1:${String(port)}`),
    caPem: tls.caPem,
    insecure: false,
    token: () => Promise.resolve("the-token"),
  });
});
afterAll(async () => {
  client.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe("createKubeClient: requests", () => {
  it("sends the bearer token and the JSON body with its content type; parses the answer", async () => {
    let seen: Record<string, string | undefined> = {};
    handler = (req, body, res) => {
      seen = {
        method: req.method,
        url: req.url,
        auth: req.headers.authorization,
        type: req.headers["content-type"],
        body,
      };
      res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    };
    const answer = await client.request("PATCH", "/apis/x/v1/things/a", {
      body: [{ op: "test", path: "/metadata/resourceVersion", value: "7" }],
      contentType: "application/json-patch+json",
    });
    expect(answer).toEqual({ ok: true });
    expect(seen).toEqual({
      method: "PATCH",
      url: "/apis/x/v1/things/a",
      auth: "Bearer the-token",
      type: "application/json-patch+json",
      body: '[{"op":"test","path":"/metadata/resourceVersion","value":"7"}]',
    });
  });

  it("an answer of 400 or more is a KubeApiError with the status, the body and the Status message", async () => {
    const status = { kind: "Status", code: 404, message: 'secrets "x" not found' };
    handler = (_req, _body, res) => res.writeHead(404).end(JSON.stringify(status));
    const error = (await client
      .request("GET", "/api/v1/namespaces/a/secrets/x")
      .catch((e: unknown) => e)) as KubeApiError;
    expect(error).toBeInstanceOf(KubeApiError);
    expect(error.code).toBe(404);
    expect(JSON.parse(error.body)).toEqual(status);
    expect(error.message).toBe(
      'GET /api/v1/namespaces/a/secrets/x: HTTP 404: secrets "x" not found',
    );

    handler = (_req, _body, res) => res.writeHead(502).end("<html>bad gateway</html>");
    await expect(client.request("GET", "/x")).rejects.toThrow(/^GET \/x: HTTP 502$/);
  });

  it("trusts only its CA", async () => {
    const { port } = server.address() as AddressInfo;
    const stranger = createKubeClient({
      server: new URL(`https://127.0.0.1:${String(port)}`),
      caPem: fakeApiServerTls().caPem,
      insecure: false,
      token: () => Promise.resolve(undefined),
    });
    handler = (_req, _body, res) => res.writeHead(200).end("{}");
    await expect(stranger.request("GET", "/x")).rejects.toThrow(/certificate/);
    stranger.close();
  });
});

describe("createKubeClient: watches", () => {
  it("delivers each line's event, across chunk boundaries, and resolves when the server ends", async () => {
    handler = (_req, _body, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      const a = `${JSON.stringify({ type: "ADDED", object: { metadata: { name: "a" } } })}\n`;
      const b = `${JSON.stringify({ type: "DELETED", object: { metadata: { name: "b" } } })}\n`;
      res.write(a.slice(0, 10));
      setTimeout(() => {
        res.write(a.slice(10) + b.slice(0, 5));
        setTimeout(() => res.end(b.slice(5)), 10);
      }, 10);
    };
    const events: WatchEvent[] = [];
    const open = await client.watch(
      "/w?watch=true",
      (e) => events.push(e),
      new AbortController().signal,
    );
    await open.ended;
    expect(events.map((e) => e.type)).toEqual(["ADDED", "DELETED"]);
  });

  it("a watch answered with an error status is refused with it", async () => {
    handler = (_req, _body, res) => res.writeHead(410).end('{"code":410,"message":"too old"}');
    await expect(
      client.watch("/w?watch=true", () => undefined, new AbortController().signal),
    ).rejects.toMatchObject({ code: 410 });
  });

  it("an abort ends the stream with a rejection", async () => {
    handler = (_req, _body, res) => {
      res.writeHead(200).write("");
    };
    const abort = new AbortController();
    const open = await client.watch("/w?watch=true", () => undefined, abort.signal);
    const ended = open.ended.then(
      () => "resolved",
      () => "rejected",
    );
    abort.abort();
    await vi.waitFor(async () => {
      expect(await ended).toBe("rejected");
    });
  });

  it("a line that is not JSON ends the stream with an error", async () => {
    handler = (_req, _body, res) => {
      res.writeHead(200).write("{not json}\n");
    };
    const open = await client.watch("/w?watch=true", () => undefined, new AbortController().signal);
    await expect(open.ended).rejects.toThrow(/JSON/);
  });
});
