/**
 * The warming agent against a real HTTPS server on loopback: connections it
 * opens ahead are the ones the next requests use (the server sees no new
 * connection), one per read that arrived together but the first, and a
 * spare the server closed is never handed out.
 */
import { createServer, request, type Server } from "node:https";
import type { Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMockTls } from "../mocks/tls.ts";
import { warmOnArrival, WarmingAgent } from "./warm-agent.ts";

const tls = createMockTls();
let server: Server;
let url: string;
let connections = 0;
const sockets = new Set<Socket>();

beforeAll(async () => {
  server = createServer({ cert: tls.certPem, key: tls.keyPem }, (_req, res) => res.end("ok"));
  server.on("connection", (s: Socket) => {
    connections++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  url = `https://127.0.0.1:${address.port}`;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => server.close(resolve));
});

const get = (agent: WarmingAgent): Promise<string> =>
  new Promise((resolve, reject) => {
    const req = request(`${url}/x`, { agent }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => {
        resolve(body);
      });
    });
    req.on("error", reject);
    req.end();
  });
const until = async (ok: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(ok()).toBe(true);
};

describe("WarmingAgent", () => {
  it("opens connections ahead, and the next requests use them instead of connecting", async () => {
    const agent = new WarmingAgent({ ca: tls.caPem });
    const before = connections;
    agent.warm(url, 3);
    await until(() => connections === before + 3);
    expect(agent.spareCount()).toBe(3);

    expect(await Promise.all([get(agent), get(agent), get(agent)])).toEqual(["ok", "ok", "ok"]);
    expect(connections).toBe(before + 3);
    expect(agent.spareCount()).toBe(0);
    // A fourth request at once connects anew; a later one reuses a kept-alive socket.
    await Promise.all([get(agent), get(agent), get(agent), get(agent)]);
    expect(connections).toBe(before + 4);
    agent.destroy();
  });

  it("hands out no spare the server has closed", async () => {
    const agent = new WarmingAgent({ ca: tls.caPem });
    const before = connections;
    agent.warm(url, 1);
    await until(() => connections === before + 1);
    for (const s of sockets) s.destroy();
    await until(() => agent.spareCount() === 0);
    expect(await get(agent)).toBe("ok");
    expect(connections).toBe(before + 2);
    agent.destroy();
  });

  it("warms one connection per read that arrived together, but the first", async () => {
    const agent = new WarmingAgent({ ca: tls.caPem });
    const arrive = warmOnArrival(agent, url);
    const before = connections;
    for (let i = 0; i < 5; i++) arrive();
    await until(() => agent.spareCount() === 4);
    // Later arrivals (a refresh) open nothing more.
    arrive();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 50));
    expect(connections).toBe(before + 4);
    agent.destroy();
  });
});
