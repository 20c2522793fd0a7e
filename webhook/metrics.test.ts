import { describe, expect, it } from "vitest";
import { createWebhookMetrics, DURATION_BUCKETS, WebhookMetricName } from "./metrics.ts";

const OUTCOMES = ["injected", "refused", "invalid"];

/** `name{labels} value` lines, by the part before the value. */
function samples(text: string): Map<string, number> {
  const map = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    map.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return map;
}

describe("createWebhookMetrics", () => {
  it("has every outcome's series at zero from the start, and no expiry before a certificate", () => {
    const text = createWebhookMetrics(OUTCOMES).render();
    const s = samples(text);
    for (const outcome of OUTCOMES) {
      expect(s.get(`${WebhookMetricName.admissions}{outcome="${outcome}"}`)).toBe(0);
      expect(s.get(`${WebhookMetricName.duration}_count{outcome="${outcome}"}`)).toBe(0);
    }
    expect(text).toContain(`# TYPE ${WebhookMetricName.certificateExpiry} gauge`);
    expect([...s.keys()].some((k) => k.startsWith(WebhookMetricName.certificateExpiry))).toBe(
      false,
    );
    expect(text.endsWith("\n")).toBe(true);
  });

  it("counts admissions and puts each duration in cumulative buckets", () => {
    const metrics = createWebhookMetrics(OUTCOMES);
    metrics.admission("injected", 0.0004);
    metrics.admission("injected", 0.003);
    metrics.admission("injected", 7);
    metrics.admission("refused", 0.001);
    const s = samples(metrics.render());
    const bucket = (le: string, outcome = "injected") =>
      s.get(`${WebhookMetricName.duration}_bucket{le="${le}",outcome="${outcome}"}`);
    expect(s.get(`${WebhookMetricName.admissions}{outcome="injected"}`)).toBe(3);
    expect(bucket("0.0005")).toBe(1);
    expect(bucket("0.0025")).toBe(1);
    expect(bucket("0.005")).toBe(2);
    expect(bucket(String(DURATION_BUCKETS.at(-1)))).toBe(2);
    expect(bucket("+Inf")).toBe(3);
    // A duration equal to a bound falls in that bucket (le: less or equal).
    expect(bucket("0.001", "refused")).toBe(1);
    expect(bucket("0.0005", "refused")).toBe(0);
    expect(s.get(`${WebhookMetricName.duration}_sum{outcome="injected"}`)).toBeCloseTo(7.0034);
    expect(s.get(`${WebhookMetricName.duration}_count{outcome="injected"}`)).toBe(3);
  });

  it("counts a body fastify could not read without timing it", () => {
    const metrics = createWebhookMetrics(OUTCOMES);
    metrics.admission("invalid");
    const s = samples(metrics.render());
    expect(s.get(`${WebhookMetricName.admissions}{outcome="invalid"}`)).toBe(1);
    expect(s.get(`${WebhookMetricName.duration}_count{outcome="invalid"}`)).toBe(0);
  });

  it("reports the certificate in use and reloads by result", () => {
    const metrics = createWebhookMetrics(OUTCOMES);
    metrics.certificateInUse(Date.UTC(2027, 0, 1));
    metrics.reloaded("failure");
    metrics.reloaded("failure");
    metrics.reloaded("success");
    const s = samples(metrics.render());
    expect(s.get(WebhookMetricName.certificateExpiry)).toBe(Date.UTC(2027, 0, 1) / 1000);
    expect(s.get(`${WebhookMetricName.reloads}{result="failure"}`)).toBe(2);
    expect(s.get(`${WebhookMetricName.reloads}{result="success"}`)).toBe(1);
  });

  it("reports the process under prom-client's default names", () => {
    const s = samples(createWebhookMetrics(OUTCOMES).render());
    expect(s.get("process_resident_memory_bytes")).toBeGreaterThan(1024 * 1024);
    expect(s.get("nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
    expect(s.get("process_cpu_seconds_total")).toBeGreaterThan(0);
    const start = s.get("process_start_time_seconds") ?? 0;
    expect(Math.abs(start - (Date.now() / 1000 - process.uptime()))).toBeLessThan(2);
    expect(
      s.get(
        `nodejs_version_info{version="${process.version}",major="${process.versions.node.split(".")[0] ?? ""}",minor="${process.versions.node.split(".")[1] ?? ""}",patch="${process.versions.node.split(".")[2] ?? ""}"}`,
      ),
    ).toBe(1);
  });

  it("writes one HELP and TYPE per family, each before its samples", () => {
    const text = createWebhookMetrics(OUTCOMES).render();
    const types = text.split("\n").filter((l) => l.startsWith("# TYPE "));
    const names = types.map((l) => l.split(" ")[2]);
    expect(new Set(names).size).toBe(names.length);
    for (const line of text.split("\n").filter((l) => l !== "" && !l.startsWith("#"))) {
      expect(line).toMatch(/^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[\d.e+-]+$/);
    }
  });
});
