/**
 * The webhook's Prometheus metrics (`GET /metrics` on the health port),
 * counted in memory and written in the text exposition format.
 *
 * Hand-written, not prom-client: four series and a few process gauges need
 * no registry, and prom-client's module graph (its cluster aggregator loads
 * Node's `cluster`, `child_process` and `dgram`; its default collectors
 * `perf_hooks` observers) cost 10.8 MiB of RSS at rest, bundled, in a
 * process whose whole budget is 60 (bench/webhook/RESULTS.md). The sidecar
 * does the same (`sidecar/metrics.ts`).
 */
import { cpuUsage, memoryUsage, uptime, version } from "node:process";

/** The series, by name (docs/webhook.md "Metrics"). */
export const WebhookMetricName = {
  admissions: "akv_injector_admissions_total",
  duration: "akv_injector_admission_duration_seconds",
  certificateExpiry: "akv_injector_tls_certificate_expiry_timestamp_seconds",
  reloads: "akv_injector_tls_reloads_total",
} as const;

/** Upper bounds (seconds) of the admission duration histogram's buckets. */
export const DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
] as const;

/** The content type of the text exposition format. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** One histogram series: per-bucket counts (not cumulative), the sum and the count. */
interface Histogram {
  readonly buckets: number[];
  sum: number;
  count: number;
}

/** What the webhook counts; {@link createWebhookMetrics} makes one. */
export interface WebhookMetrics {
  /**
   * An admission answered with `outcome`, `seconds` after its body was
   * parsed; without `seconds` (a body fastify could not read) it is counted
   * and not timed.
   */
  admission(outcome: string, seconds?: number): void;
  /** The serving certificate in use expires at `notAfterMs`. */
  certificateInUse(notAfterMs: number): void;
  /** A certificate reload after a file change ended with `result`. */
  reloaded(result: "success" | "failure"): void;
  /** The exposition text, process gauges read now. */
  render(): string;
}

/**
 * Counters and histograms in memory. Every outcome of `outcomes` has its
 * series from the start, at zero, so `rate()` works before the first of each.
 */
export function createWebhookMetrics(outcomes: readonly string[]): WebhookMetrics {
  const admissions = new Map(outcomes.map((o) => [o, 0]));
  const durations = new Map<string, Histogram>(
    outcomes.map((o) => [o, { buckets: DURATION_BUCKETS.map(() => 0), sum: 0, count: 0 }]),
  );
  const reloads = new Map<string, number>();
  let notAfterSeconds: number | undefined;
  return {
    admission(outcome, seconds) {
      admissions.set(outcome, (admissions.get(outcome) ?? 0) + 1);
      if (seconds === undefined) return;
      let series = durations.get(outcome);
      if (series === undefined) {
        series = { buckets: DURATION_BUCKETS.map(() => 0), sum: 0, count: 0 };
        durations.set(outcome, series);
      }
      const bucket = DURATION_BUCKETS.findIndex((le) => seconds <= le);
      if (bucket >= 0) series.buckets[bucket] = (series.buckets[bucket] ?? 0) + 1;
      series.sum += seconds;
      series.count++;
    },
    certificateInUse(notAfterMs) {
      notAfterSeconds = notAfterMs / 1000;
    },
    reloaded(result) {
      reloads.set(result, (reloads.get(result) ?? 0) + 1);
    },
    render() {
      const lines = [
        ...family(
          WebhookMetricName.admissions,
          "counter",
          "AdmissionReviews answered, by outcome (skipped, unchanged, remounted, injected, refused, error, invalid).",
          [...admissions].map(([outcome, n]) => [`{outcome="${outcome}"}`, n]),
        ),
        ...histogramLines(durations),
        ...family(
          WebhookMetricName.certificateExpiry,
          "gauge",
          "notAfter of the serving certificate in use, as a Unix timestamp.",
          notAfterSeconds === undefined ? [] : [["", notAfterSeconds]],
        ),
        ...family(
          WebhookMetricName.reloads,
          "counter",
          "Certificate reloads after a file change, by result (success, failure).",
          [...reloads].map(([result, n]) => [`{result="${result}"}`, n]),
        ),
        ...processLines(),
      ];
      return `${lines.join("\n")}\n`;
    },
  };
}

/** A metric family: HELP, TYPE and one line per series (`[labels, value]`). */
function family(
  name: string,
  type: "counter" | "gauge" | "histogram",
  help: string,
  series: readonly (readonly [string, number])[],
): string[] {
  return [
    `# HELP ${name} ${help}`,
    `# TYPE ${name} ${type}`,
    ...series.map(([labels, value]) => `${name}${labels} ${String(value)}`),
  ];
}

function histogramLines(durations: ReadonlyMap<string, Histogram>): string[] {
  const name = WebhookMetricName.duration;
  const series: [string, number][] = [];
  for (const [outcome, h] of durations) {
    let cumulative = 0;
    DURATION_BUCKETS.forEach((le, i) => {
      cumulative += h.buckets[i] ?? 0;
      series.push([`_bucket{le="${String(le)}",outcome="${outcome}"}`, cumulative]);
    });
    series.push([`_bucket{le="+Inf",outcome="${outcome}"}`, h.count]);
    series.push([`_sum{outcome="${outcome}"}`, h.sum]);
    series.push([`_count{outcome="${outcome}"}`, h.count]);
  }
  return family(
    name,
    "histogram",
    "Time from request body parsed to response ready, by outcome.",
    series,
  );
}

/** Read once: `uptime()` moves with the clock, the start does not. */
const START_SECONDS = Math.round(Date.now() / 1000 - uptime());

/** The usual process gauges, under the names prom-client's defaults use. */
function processLines(): string[] {
  const cpu = cpuUsage();
  const memory = memoryUsage();
  const [major = "", minor = "", patch = ""] = version.slice(1).split(".");
  return [
    ...family("process_cpu_user_seconds_total", "counter", "User CPU time spent in seconds.", [
      ["", cpu.user / 1e6],
    ]),
    ...family("process_cpu_system_seconds_total", "counter", "System CPU time spent in seconds.", [
      ["", cpu.system / 1e6],
    ]),
    ...family(
      "process_cpu_seconds_total",
      "counter",
      "Total user and system CPU time spent in seconds.",
      [["", (cpu.user + cpu.system) / 1e6]],
    ),
    ...family(
      "process_start_time_seconds",
      "gauge",
      "Start time of the process since unix epoch in seconds.",
      [["", START_SECONDS]],
    ),
    ...family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", [
      ["", memory.rss],
    ]),
    ...family("nodejs_heap_size_total_bytes", "gauge", "Process heap size from Node.js in bytes.", [
      ["", memory.heapTotal],
    ]),
    ...family(
      "nodejs_heap_size_used_bytes",
      "gauge",
      "Process heap size used from Node.js in bytes.",
      [["", memory.heapUsed]],
    ),
    ...family("nodejs_external_memory_bytes", "gauge", "Node.js external memory size in bytes.", [
      ["", memory.external],
    ]),
    ...family("nodejs_version_info", "gauge", "Node.js version info.", [
      [`{version="${version}",major="${major}",minor="${minor}",patch="${patch}"}`, 1],
    ]),
  ];
}
