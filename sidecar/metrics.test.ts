import { request } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import {
  createMetrics,
  EXPOSITION_CONTENT_TYPE,
  MetricName,
  startMetricsServer,
} from "./metrics.ts";

function get(
  port: number,
  path: string,
  method = "GET",
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body });
      });
    });
    req.on("error", reject);
    req.end();
  });
}

describe("createMetrics", () => {
  it("renders every series with HELP and TYPE, zero before the first sync", () => {
    const text = createMetrics().render();
    expect(text).toBe(
      [
        `# HELP ${MetricName.lastSuccess} Unix time of the last successful sync (0 before the first).`,
        `# TYPE ${MetricName.lastSuccess} gauge`,
        `${MetricName.lastSuccess} 0`,
        `# HELP ${MetricName.syncFailures} Failed syncs, by stable error code.`,
        `# TYPE ${MetricName.syncFailures} counter`,
        `# HELP ${MetricName.requests} Requests to Key Vault (secret reads) and Entra ID (token exchanges), by outcome: success or the stable error code.`,
        `# TYPE ${MetricName.requests} counter`,
        `# HELP ${MetricName.files} Files in the published set.`,
        `# TYPE ${MetricName.files} gauge`,
        `${MetricName.files} 0`,
        `# HELP ${MetricName.notifications} Notification attempts (notify-<container>), by container and outcome: success, failure (retried or replaced by a newer change), gave-up.`,
        `# TYPE ${MetricName.notifications} counter`,
        "",
      ].join("\n"),
    );
  });

  it("counts syncs, failures by code and requests by service and outcome", () => {
    const m = createMetrics();
    m.synced(1_764_530_000_500, 3);
    m.syncFailed("AKV_THROTTLED");
    m.syncFailed("AKV_THROTTLED");
    m.syncFailed("AKV_SECRET_FORBIDDEN");
    m.request("key-vault", "success");
    m.request("key-vault", "success");
    m.request("key-vault", "AKV_THROTTLED");
    m.request("entra", "success");
    const lines = m.render().split("\n");
    expect(lines).toContain(`${MetricName.lastSuccess} 1764530000.5`);
    expect(lines).toContain(`${MetricName.files} 3`);
    expect(lines).toContain(`${MetricName.syncFailures}{code="AKV_THROTTLED"} 2`);
    expect(lines).toContain(`${MetricName.syncFailures}{code="AKV_SECRET_FORBIDDEN"} 1`);
    expect(lines).toContain(`${MetricName.requests}{service="key-vault",outcome="success"} 2`);
    expect(lines).toContain(
      `${MetricName.requests}{service="key-vault",outcome="AKV_THROTTLED"} 1`,
    );
    expect(lines).toContain(`${MetricName.requests}{service="entra",outcome="success"} 1`);
  });

  it("counts notification attempts by container and outcome", () => {
    const m = createMetrics();
    m.notified("app", "failure");
    m.notified("app", "success");
    m.notified("app", "success");
    m.notified("web", "gave-up");
    const lines = m.render().split("\n");
    expect(lines).toContain(`${MetricName.notifications}{container="app",outcome="success"} 2`);
    expect(lines).toContain(`${MetricName.notifications}{container="app",outcome="failure"} 1`);
    expect(lines).toContain(`${MetricName.notifications}{container="web",outcome="gave-up"} 1`);
  });

  it("escapes label values as the text format wants", () => {
    const m = createMetrics();
    m.syncFailed('a"b\\c\nd');
    expect(m.render()).toContain(`${MetricName.syncFailures}{code="a\\"b\\\\c\\nd"} 1`);
  });
});

describe("startMetricsServer", () => {
  it("serves GET /metrics in the text format, 404 elsewhere", async () => {
    const m = createMetrics();
    m.synced(2000, 1);
    const server = await startMetricsServer(m, 0);
    try {
      const { port } = server.address() as AddressInfo;
      const ok = await get(port, "/metrics");
      expect(ok.status).toBe(200);
      expect(ok.type).toBe(EXPOSITION_CONTENT_TYPE);
      expect(ok.body).toBe(m.render());
      expect((await get(port, "/metrics?x=1")).status).toBe(200);
      expect((await get(port, "/")).status).toBe(404);
      expect((await get(port, "/metrics", "POST")).status).toBe(404);
    } finally {
      server.close();
    }
  });

  it("rejects when the port is taken", async () => {
    const first = await startMetricsServer(createMetrics(), 0);
    try {
      const { port } = first.address() as AddressInfo;
      await expect(startMetricsServer(createMetrics(), port)).rejects.toMatchObject({
        code: "EADDRINUSE",
      });
    } finally {
      first.close();
    }
  });
});
