/**
 * How a mock goes on the network, the same for both: one HTTPS port where
 * `/_mock/` paths go to the admin API (never faulted, throttled or counted,
 * so a test can always reach it) and every other path to the service, and
 * the handle fields every mock has.
 */
import type { Logger } from "../common/logger.ts";
import { ADMIN_PREFIX, serveAdmin, type AdminHandler } from "./admin.ts";
import { startHttpsServer, type Call, type Reply } from "./https-server.ts";
import { createMockTls, type ServingTls } from "./tls.ts";

/** Where and how a mock listens: the options both mocks take alike. */
export interface MockListenOptions {
  /** Bind address; default `127.0.0.1`. */
  readonly host?: string | undefined;
  /** Default 0: a free port. */
  readonly port?: number | undefined;
  /** The origin clients use, if not what their `Host` header says. */
  readonly publicUrl?: string | undefined;
  /** Default: a fresh CA and a leaf for localhost/127.0.0.1/::1. */
  readonly tls?: ServingTls | undefined;
  /** Required in `x-mock-admin-token` on admin calls when set. */
  readonly adminToken?: string | undefined;
}

/** The handle fields of a listening mock. */
export interface ListeningMock {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** PEM of the CA clients must trust, when known. */
  readonly ca: string | undefined;
  close(): Promise<void>;
}

/** What {@link listenMock} serves. */
export interface MockServer {
  /** The mock's name, for its `<name> listening` log line. */
  readonly name: string;
  readonly options: MockListenOptions;
  readonly adminRoutes: Readonly<Record<string, AdminHandler>>;
  /** The service: every request outside `/_mock/`. */
  readonly serve: (call: Call) => Promise<Reply>;
  readonly logger: Logger;
}

/** Starts a mock's HTTPS server and logs `<name> listening`. */
export async function listenMock(mock: MockServer): Promise<ListeningMock> {
  const { options } = mock;
  const tls = options.tls ?? createMockTls();
  const server = await startHttpsServer({
    host: options.host,
    port: options.port,
    publicUrl: options.publicUrl,
    tls,
    handle: (call) =>
      call.url.pathname.startsWith(ADMIN_PREFIX)
        ? Promise.resolve(serveAdmin(call, options.adminToken, mock.adminRoutes))
        : mock.serve(call),
    logger: mock.logger,
  });
  mock.logger.info({ url: server.url }, `${mock.name} listening`);
  return {
    url: server.url,
    host: server.host,
    port: server.port,
    ca: tls.caPem,
    close: () => server.close(),
  };
}
