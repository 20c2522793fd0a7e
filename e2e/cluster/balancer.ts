/**
 * A round-robin TCP forwarder on 127.0.0.1: the Service in front of the
 * webhook replicas. TLS passes through untouched, so the apiserver checks
 * each replica's own certificate against the caBundle, as it does through a
 * real Service.
 */
import { connect, createServer, type Socket } from "node:net";

/** A running forwarder. */
export interface Balancer extends AsyncDisposable {
  readonly port: number;
  /** Connections forwarded to each target, in target order. */
  readonly counts: readonly number[];
  close(): Promise<void>;
}

/** Starts a forwarder to `targets` (ports on 127.0.0.1). */
export async function startBalancer(targets: readonly number[]): Promise<Balancer> {
  const counts = targets.map(() => 0);
  const sockets = new Set<Socket>();
  let next = 0;
  const server = createServer((client) => {
    const index = next++ % targets.length;
    counts[index] = (counts[index] ?? 0) + 1;
    const upstream = connect({ host: "127.0.0.1", port: targets[index] ?? 0 });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.once("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  const close = async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
  };
  return { port: address.port, counts, close, [Symbol.asyncDispose]: close };
}
