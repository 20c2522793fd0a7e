/**
 * The sidecar's optional Prometheus metrics (`akv-injector.io/metrics-port`):
 * a few series, counted in memory and written in the text exposition format
 * at `GET /metrics` on the given port.
 *
 * Hand-written, not prom-client: five series of counters and gauges need
 * no registry, and prom-client would add its whole module
 * graph (and its default collectors' `perf_hooks` and `cluster`) to a
 * process that starts in every pod. app.ts imports this module only when the
 * port is set, so with metrics off the sidecar loads none of it
 * (bench/RESULTS.md).
 */
import type { GetTokenOptions, TokenCredential } from "@azure/core-auth";
import { createServer, type Server } from "node:http";
import { isAkvError } from "../common/errors.ts";
import type { SecretSource } from "./secret-source.ts";
import type { SyncObserver } from "./sync-loop.ts";

/** The series, by name (docs/sidecar.md "Metrics"). */
export const MetricName = {
  lastSuccess: "akv_injector_sidecar_last_success_timestamp_seconds",
  syncFailures: "akv_injector_sidecar_sync_failures_total",
  requests: "akv_injector_sidecar_requests_total",
  files: "akv_injector_sidecar_files_published",
  notifications: "akv_injector_sidecar_notifications_total",
} as const;

/** The services the sidecar calls. */
export type Service = "key-vault" | "entra";

/** What the sidecar counts; {@link createMetrics} makes one. */
export interface SidecarMetrics extends SyncObserver {
  /** One request to a service ended: `success`, or the stable error code. */
  request(service: Service, outcome: string): void;
  /** One notification attempt (`notify-<container>`) ended: `success`, `failure` (retried or replaced) or `gave-up`. */
  notified(container: string, outcome: string): void;
  /** The exposition text. */
  render(): string;
}

/** Counters and gauges in memory. */
export function createMetrics(): SidecarMetrics {
  let lastSuccess = 0;
  let files = 0;
  const failures = new Map<string, number>();
  const requests = new Map<string, number>();
  const notifications = new Map<string, number>();
  const bump = (map: Map<string, number>, key: string): void => {
    map.set(key, (map.get(key) ?? 0) + 1);
  };
  return {
    synced(nowMs, count) {
      lastSuccess = nowMs / 1000;
      files = count;
    },
    syncFailed(code) {
      bump(failures, code);
    },
    request(service, outcome) {
      bump(requests, `${service}\u0000${outcome}`);
    },
    notified(container, outcome) {
      bump(notifications, `${container}\u0000${outcome}`);
    },
    render() {
      const lines = [
        `# HELP ${MetricName.lastSuccess} Unix time of the last successful sync (0 before the first).`,
        `# TYPE ${MetricName.lastSuccess} gauge`,
        `${MetricName.lastSuccess} ${lastSuccess}`,
        `# HELP ${MetricName.syncFailures} Failed syncs, by stable error code.`,
        `# TYPE ${MetricName.syncFailures} counter`,
        ...[...failures].map(
          ([code, n]) => `${MetricName.syncFailures}{code="${label(code)}"} ${n}`,
        ),
        `# HELP ${MetricName.requests} Requests to Key Vault (secret reads) and Entra ID (token exchanges), by outcome: success or the stable error code.`,
        `# TYPE ${MetricName.requests} counter`,
        ...[...requests].map(([key, n]) => {
          const [service = "", outcome = ""] = key.split("\u0000");
          return `${MetricName.requests}{service="${label(service)}",outcome="${label(outcome)}"} ${n}`;
        }),
        `# HELP ${MetricName.files} Files in the published set.`,
        `# TYPE ${MetricName.files} gauge`,
        `${MetricName.files} ${files}`,
        `# HELP ${MetricName.notifications} Notification attempts (notify-<container>), by container and outcome: success, failure (retried or replaced by a newer change), gave-up.`,
        `# TYPE ${MetricName.notifications} counter`,
        ...[...notifications].map(([key, n]) => {
          const [container = "", outcome = ""] = key.split("\u0000");
          return `${MetricName.notifications}{container="${label(container)}",outcome="${label(outcome)}"} ${n}`;
        }),
      ];
      return `${lines.join("\n")}\n`;
    },
  };
}

/** `success`, or the stable code of a failure (`AKV_…`), else `error`. */
function outcomeOf(error: unknown): string {
  return isAkvError(error) ? error.code : "error";
}

/** The source, each read counted as one Key Vault request by outcome. */
export function countSourceRequests(source: SecretSource, metrics: SidecarMetrics): SecretSource {
  return {
    async fetch(ref, options) {
      try {
        const secret = await source.fetch(ref, options);
        metrics.request("key-vault", "success");
        return secret;
      } catch (error) {
        metrics.request("key-vault", outcomeOf(error));
        throw error;
      }
    },
  };
}

/**
 * The credential, each token request counted as one Entra request by
 * outcome. The Key Vault client asks only when its cached token is near its
 * end, and MSAL may still answer from its own cache: an upper bound on token
 * exchanges, in practice one per token lifetime.
 */
export function countTokenRequests(
  credential: TokenCredential,
  metrics: SidecarMetrics,
): TokenCredential {
  return {
    async getToken(scopes: string | string[], options?: GetTokenOptions) {
      try {
        const token = await credential.getToken(scopes, options);
        metrics.request("entra", "success");
        return token;
      } catch (error) {
        metrics.request("entra", outcomeOf(error));
        throw error;
      }
    },
  };
}

/** A label value escaped as the text format wants (backslash, quote, newline). */
function label(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** The content type of the text exposition format. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * Serves `GET /metrics` on every address of `port`; anything else is 404.
 * Resolves once listening.
 * @throws the listen error (a port in use), which the caller reports.
 */
export async function startMetricsServer(metrics: SidecarMetrics, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    const body = metrics.render();
    res.writeHead(200, { "content-type": EXPOSITION_CONTENT_TYPE });
    res.end(req.method === "HEAD" ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}
