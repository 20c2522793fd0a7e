/**
 * A TCP proxy that puts a network between a client and a server on
 * loopback: a connect costs one round trip before the client's first byte
 * leaves, and every chunk of bytes arrives `oneWayMs` after it was sent, in
 * either direction, in order (a pipe whose delay does not depend on size: no
 * bandwidth limit, no loss). So a TLS 1.3 handshake on a new connection
 * costs 2 round trips (TCP, then TLS) and an HTTP request on a warm one 1,
 * as against a vault in the same region (`oneWayMs` 5: a 10 ms round trip).
 * TLS passes through untouched (the server's certificate names loopback,
 * the Host header names the proxy's port, which the mocks echo in links).
 */
import { createServer, connect, type Socket } from "node:net";

export interface LatencyProxy {
  /** `https://127.0.0.1:PORT`: the target's scheme, the proxy's port. */
  readonly url: string;
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

/** Starts a proxy to `targetUrl` (an `https://host:port` origin). */
export async function startLatencyProxy(
  targetUrl: string,
  oneWayMs: number,
): Promise<LatencyProxy> {
  const target = new URL(targetUrl);
  const open = new Set<Socket>();
  let accepted = 0;
  const server = createServer((client) => {
    accepted++;
    // The client's first byte reaches the server after SYN, SYN-ACK (one
    // round trip) and its own one-way trip.
    const connectedAt = performance.now() + 2 * oneWayMs;
    const upstream = connect({ host: target.hostname, port: Number(target.port) });
    for (const s of [client, upstream]) {
      open.add(s);
      s.setNoDelay(true);
      s.on("close", () => open.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    delayPipe(client, upstream, oneWayMs, connectedAt);
    delayPipe(upstream, client, oneWayMs, 0);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no port");
  return {
    url: `${target.protocol}//127.0.0.1:${address.port}`,
    connections: () => accepted,
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
    },
  };
}

/**
 * Forwards `from` to `to`, each chunk `delayMs` after it arrived (not before
 * `notBefore + delayMs`), in order: one queue and one timer per direction.
 */
function delayPipe(from: Socket, to: Socket, delayMs: number, notBefore: number): void {
  const queue: { at: number; chunk: Buffer | null }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const drain = (): void => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && (queue[0]?.at ?? 0) <= now + 0.5) {
      const { chunk } = queue.shift() ?? { chunk: null };
      if (to.destroyed) return;
      if (chunk === null) to.end();
      else to.write(chunk);
    }
    schedule();
  };
  const schedule = (): void => {
    const head = queue[0];
    if (timer === undefined && head !== undefined)
      timer = setTimeout(drain, Math.max(0, head.at - performance.now()));
  };
  const push = (chunk: Buffer | null): void => {
    queue.push({ at: Math.max(performance.now(), notBefore) + delayMs, chunk });
    schedule();
  };
  from.on("data", (chunk: Buffer) => {
    push(chunk);
  });
  from.on("end", () => {
    push(null);
  });
}
