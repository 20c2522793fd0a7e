/**
 * The HTTPS agent of the Key Vault client: keep-alive, and connections that
 * can be opened ahead of the requests that will use them.
 *
 * Why: a cold sync sends one read alone until Key Vault's challenge and the
 * Entra token are cached (N + 1 requests, key-vault-source.ts), which takes
 * several round trips (the vault's TCP and TLS handshakes and its 401, then
 * Entra's). Every other read then needs a connection of its own, and a new
 * one costs two more round trips (TCP, TLS) before its request leaves.
 * Opening those connections while the first read waits for its token takes
 * them off the path: the reads leave on connections already up. It costs no
 * request (a connection is not a Key Vault transaction) and no more
 * connections than the reads would open anyway.
 *
 * How: `createConnection` is the documented way to give an agent its
 * sockets (https.Agent's own creates a TLS socket and shares the TLS session
 * cache); this one hands out a pre-opened socket for the same origin first.
 * A pre-opened socket that nobody takes holds no process open (unref'd) and
 * one that fails or closes first is dropped.
 */
import { Agent, type AgentOptions, type RequestOptions } from "node:https";
import { isIP } from "node:net";
import type { Duplex } from "node:stream";

export class WarmingAgent extends Agent {
  readonly #spare = new Map<string, Duplex[]>();
  /** Each spare socket's own listener, removed when a request takes it. */
  readonly #drop = new WeakMap<Duplex, () => void>();

  constructor(options: AgentOptions = {}) {
    super({ keepAlive: true, ...options });
  }

  /**
   * Opens `count` connections to the origin of `url` (https) for the next
   * requests to take; fewer if some are still spare.
   */
  warm(url: string, count: number): void {
    const { hostname, port } = new URL(url);
    const host = hostname.startsWith("[") ? hostname.slice(1, -1) : hostname;
    const options: RequestOptions = {
      ...this.options,
      host,
      port: Number(port || 443),
      servername: isIP(host) === 0 ? host : "",
    };
    const key = originKey(options);
    const spare = this.#spare.get(key) ?? [];
    this.#spare.set(key, spare);
    for (let i = spare.length; i < count; i++) {
      // The agent's own TLS connect (session reuse included), keyed as its requests are.
      const socket = super.createConnection({
        ...options,
        _agentKey: this.getName(options),
      } as RequestOptions);
      if (socket === null || socket === undefined) return;
      const drop = (): void => {
        const at = spare.indexOf(socket);
        if (at >= 0) spare.splice(at, 1);
        socket.destroy();
      };
      socket.on("error", drop);
      socket.on("close", drop);
      this.#drop.set(socket, drop);
      (socket as Duplex & { unref?: () => void }).unref?.();
      spare.push(socket);
    }
  }

  /** Spare connections now open, for tests. */
  spareCount(): number {
    return [...this.#spare.values()].reduce((n, list) => n + list.length, 0);
  }

  override createConnection(
    options: RequestOptions,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    const spare = this.#spare.get(originKey(options));
    let socket = spare?.shift();
    while (socket?.destroyed === true) socket = spare?.shift();
    if (socket === undefined) return super.createConnection(options, callback);
    const drop = this.#drop.get(socket);
    if (drop !== undefined) socket.off("error", drop).off("close", drop);
    (socket as Duplex & { ref?: () => void }).ref?.();
    return socket;
  }
}

function originKey(options: RequestOptions): string {
  const host = options.host ?? options.hostname ?? "";
  return `${host.startsWith("[") ? host.slice(1, -1) : host}:${Number(options.port) || 443}`;
}

/**
 * Returns `arrive`, to call as each read of a cold sync starts: the reads
 * that start together (in one turn of the event loop: the sync loop starts
 * its workers at once) get a connection each opened by `agent`, but the
 * first, which opens its own. Once per source: later syncs find the gate
 * open and their reads leave at once.
 */
export function warmOnArrival(agent: WarmingAgent, url: string): () => void {
  let arrived = 0;
  return () => {
    if (arrived++ === 0)
      setImmediate(() => {
        agent.warm(url, arrived - 1);
      });
  };
}
