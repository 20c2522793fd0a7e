/**
 * The load side of the webhook benchmark: a realistic mix of AdmissionReview
 * bodies, and two drivers over an undici Pool: closed loop (N connections,
 * each sending as soon as the last answer came) and open loop at a fixed rate.
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Pool } from "undici";
import { testPod, testReview } from "../../testing/webhook.ts";

/** Which answer a body is meant to get. */
export type Expected = "injected" | "skipped" | "refused";

/** One request of the mix. */
export interface Case {
  readonly expected: Expected;
  readonly body: string;
}

/** A pod as the apiserver hands it to mutating webhooks: defaults set, the API-access volume added, managed fields. */
function realisticPod(index: number, annotations: Record<string, string> | null, optedIn: boolean) {
  const env = Array.from({ length: 12 }, (_, i) => ({
    name: `APP_SETTING_${i}`,
    value: `value-${index}-${i}`,
  }));
  const container = (name: string, port: number) => ({
    name,
    image: `registry.example.com/team/${name}:1.${index % 7}.0`,
    imagePullPolicy: "IfNotPresent",
    ports: [{ name: "http", containerPort: port, protocol: "TCP" }],
    env,
    resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "256Mi" } },
    readinessProbe: {
      httpGet: { path: "/ready", port, scheme: "HTTP" },
      periodSeconds: 5,
      timeoutSeconds: 1,
      successThreshold: 1,
      failureThreshold: 3,
    },
    volumeMounts: [
      {
        name: "kube-api-access-x7k2p",
        readOnly: true,
        mountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
      },
    ],
    terminationMessagePath: "/dev/termination-log",
    terminationMessagePolicy: "File",
  });
  const pod = testPod(
    annotations,
    {
      serviceAccountName: index % 3 === 0 ? "web" : "app",
      containers:
        index % 4 === 0
          ? [container("app", 8080), container("proxy", 15001)]
          : [container("app", 8080)],
      volumes: [
        {
          name: "kube-api-access-x7k2p",
          projected: {
            defaultMode: 420,
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: "token" } },
              {
                configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] },
              },
              {
                downwardAPI: {
                  items: [
                    {
                      path: "namespace",
                      fieldRef: { apiVersion: "v1", fieldPath: "metadata.namespace" },
                    },
                  ],
                },
              },
            ],
          },
        },
      ],
      restartPolicy: "Always",
      terminationGracePeriodSeconds: 30,
      dnsPolicy: "ClusterFirst",
      securityContext: {},
      schedulerName: "default-scheduler",
      enableServiceLinks: true,
      preemptionPolicy: "PreemptLowerPriority",
      priority: 0,
      tolerations: [
        {
          key: "node.kubernetes.io/not-ready",
          operator: "Exists",
          effect: "NoExecute",
          tolerationSeconds: 300,
        },
        {
          key: "node.kubernetes.io/unreachable",
          operator: "Exists",
          effect: "NoExecute",
          tolerationSeconds: 300,
        },
      ],
    },
    {
      name: undefined,
      generateName: `web-5f7d9c${index % 10}-`,
      namespace: "team-a",
      labels: {
        app: "web",
        "pod-template-hash": `5f7d9c${index % 10}`,
        ...(optedIn ? { "akv-injector.io/inject": "true" } : {}),
      },
      ownerReferences: [
        {
          apiVersion: "apps/v1",
          kind: "ReplicaSet",
          name: `web-5f7d9c${index % 10}`,
          uid: "6b1c3f5e-2a7d-4e9b-8f10-3c2d1e0f9a8b",
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
      managedFields: [
        {
          manager: "kube-controller-manager",
          operation: "Update",
          apiVersion: "v1",
          time: "2026-11-29T12:00:00Z",
          fieldsType: "FieldsV1",
          fieldsV1: {
            "f:metadata": { "f:generateName": {}, "f:labels": { ".": {}, "f:app": {} } },
            "f:spec": {},
          },
        },
      ],
    },
  );
  delete (pod.metadata as Record<string, unknown>).name;
  return pod;
}

const goodAnnotations = (i: number): Record<string, string> => ({
  "akv-injector.io/vault": "myvault",
  "akv-injector.io/secrets": `db-password,api-key-${i % 5}`,
  "akv-injector.io/template-app.env": 'DB_PASSWORD={{ secret "db-password" }}\nMODE=production\n',
  ...(i % 2 === 0
    ? { "akv-injector.io/secret-tls.pem": "tls-cert", "akv-injector.io/format-tls.pem": "pem" }
    : {}),
  "kubectl.kubernetes.io/restartedAt": "2026-11-29T11:00:00Z",
});

/**
 * `count` bodies: 60% opted in and valid, 30% not opted in (a misconfigured
 * selector, or `namespaceSelector`-only setups), 10% refused (a bad annotation).
 */
export function buildMix(count: number): Case[] {
  const cases: Case[] = [];
  for (let i = 0; i < count; i++) {
    const slot = i % 10;
    let expected: Expected;
    let pod;
    if (slot < 6) {
      expected = "injected";
      pod = realisticPod(i, goodAnnotations(i), true);
    } else if (slot < 9) {
      expected = "skipped";
      pod = realisticPod(i, { "kubectl.kubernetes.io/restartedAt": "2026-11-29T11:00:00Z" }, false);
    } else {
      expected = "refused";
      pod = realisticPod(
        i,
        { ...goodAnnotations(i), "akv-injector.io/secret-../x": "db-password" },
        true,
      );
    }
    cases.push({ expected, body: JSON.stringify(testReview(pod, { namespace: "team-a" })) });
  }
  return cases;
}

/** What the answer says happened, read the way the apiserver reads it. */
export function outcomeOf(answer: string): Expected | "other" {
  const response = (JSON.parse(answer) as { response?: { allowed?: boolean; patch?: string } })
    .response;
  if (response === undefined) return "other";
  if (!response.allowed) return "refused";
  return response.patch === undefined ? "skipped" : "injected";
}

/** A pool of HTTPS connections that trust only the benchmark's CA. */
export function createPool(port: number, caPem: string, connections: number): Pool {
  return new Pool(`https://127.0.0.1:${port}`, {
    connections,
    pipelining: 1,
    connect: { ca: caPem, rejectUnauthorized: true },
  });
}

const HEADERS = { "content-type": "application/json" };

async function send(pool: Pool, body: string): Promise<number> {
  const res = await pool.request({ path: "/mutate", method: "POST", headers: HEADERS, body });
  await res.body.text();
  return res.statusCode;
}

/** Latency summary in milliseconds. */
export interface Summary {
  readonly requests: number;
  readonly errors: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

function summarize(latencies: number[], errors: number, seconds: number): Summary {
  const sorted = Float64Array.from(latencies).sort();
  const at = (q: number): number =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return {
    requests: latencies.length,
    errors,
    seconds,
    perSecond: latencies.length / seconds,
    p50: at(0.5),
    p99: at(0.99),
    p999: at(0.999),
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

/** Closed loop: `connections` senders, each sending again as soon as it is answered. */
export async function closedLoop(
  pool: Pool,
  cases: readonly Case[],
  connections: number,
  seconds: number,
): Promise<Summary> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const c = cases[next++ % cases.length];
      if (c === undefined) continue;
      const t0 = performance.now();
      const status = await send(pool, c.body).catch(() => 0);
      if (status === 200) latencies.push(performance.now() - t0);
      else errors += 1;
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  return summarize(latencies, errors, (performance.now() - start) / 1000);
}

/**
 * Open loop at `rate` requests per second: request i is sent when due
 * (start + i/rate), whatever happened to earlier ones, so a server stall shows
 * up in the latencies instead of slowing the sender down (no coordinated
 * omission). Latency counts from the send; the pacing sleeps between sends
 * rather than spinning, so the scheduler does not treat the load as a CPU hog.
 */
export async function openLoop(
  pool: Pool,
  cases: readonly Case[],
  rate: number,
  seconds: number,
): Promise<Summary> {
  const total = Math.round(rate * seconds);
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  let errors = 0;
  const start = performance.now();
  let i = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      while (i < total && start + (i * 1000) / rate <= now) {
        const sent = performance.now();
        const c = cases[i % cases.length];
        i += 1;
        if (c === undefined) continue;
        pending.push(
          send(pool, c.body).then(
            (status) => {
              if (status === 200) latencies.push(performance.now() - sent);
              else errors += 1;
            },
            () => {
              errors += 1;
            },
          ),
        );
      }
      if (i < total) setTimeout(tick, Math.max(0, start + (i * 1000) / rate - performance.now()));
      else resolve();
    };
    tick();
  });
  await Promise.all(pending);
  return summarize(latencies, errors, (performance.now() - start) / 1000);
}

/** wrk's Lua: cycle through the bodies of a file, one JSON document a line. */
const WRK_SCRIPT = `
local bodies = {}
for line in io.lines(os.getenv("AKV_BENCH_BODIES")) do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i + 1
  return wrk.format(nil, "/mutate", nil, bodies[(i % #bodies) + 1])
end
`;

/** Milliseconds from one of wrk's durations (`812.00us`, `1.23ms`, `2.01s`). */
function wrkMs(text: string | undefined): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text ?? "");
  if (match === null) return Number.NaN;
  const scale = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[match[2] as "us" | "ms" | "s" | "m"];
  return Number(match[1]) * scale;
}

/**
 * Closed loop with wrk (C, epoll; one thread), for when a Node client on one
 * core would saturate before the server does. `prefix` runs it pinned, e.g.
 * `["taskset", "-c", "1"]`.
 */
export async function closedLoopWrk(
  port: number,
  cases: readonly Case[],
  connections: number,
  seconds: number,
  dir: string,
  prefix: readonly string[],
): Promise<Summary> {
  const bodies = join(dir, "bodies.jsonl");
  const script = join(dir, "mix.lua");
  await writeFile(bodies, `${cases.map((c) => c.body).join("\n")}\n`);
  await writeFile(script, WRK_SCRIPT);
  const args = [
    "wrk",
    "-t1",
    `-c${connections}`,
    `-d${seconds}s`,
    "--latency",
    "-s",
    script,
    `https://127.0.0.1:${port}/mutate`,
  ];
  const [command = "wrk", ...rest] = [...prefix, ...args];
  const output = await new Promise<string>((resolve, reject) => {
    execFile(
      command,
      rest,
      { env: { ...process.env, AKV_BENCH_BODIES: bodies } },
      (error, stdout, stderr) => {
        if (error !== null) reject(new Error(`wrk failed: ${stderr || error.message}`));
        else resolve(stdout);
      },
    );
  });
  const requests = Number(/(\d+) requests in ([\d.]+)(s|m)/.exec(output)?.[1] ?? Number.NaN);
  const percentile = (p: string): number =>
    wrkMs(new RegExp(`^\\s+${p}%\\s+(\\S+)`, "m").exec(output)?.[1]);
  const errors =
    Number(/Non-2xx or 3xx responses: (\d+)/.exec(output)?.[1] ?? 0) +
    [...output.matchAll(/(connect|read|write|timeout) (\d+)/g)].reduce(
      (n, m) => n + Number(m[2]),
      0,
    );
  const perSecond = Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1] ?? Number.NaN);
  return {
    requests,
    errors,
    seconds,
    perSecond,
    p50: percentile("50"),
    p99: percentile("99"),
    p999: Number.NaN,
    max: wrkMs(/Latency\s+\S+\s+\S+\s+(\S+)/.exec(output)?.[1]),
  };
}
