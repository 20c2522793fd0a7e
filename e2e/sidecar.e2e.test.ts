/**
 * The sidecar really runs: pods injected by the webhook through the real
 * apiserver are run by the test kubelet (token minted by TokenRequest, tmpfs
 * volumes at the container's paths, the injected user and read-only root).
 * The mock Entra ID verifies each token against this apiserver's JWKS with a
 * federated credential for `system:serviceaccount:<ns>:<sa>`; the mock Key
 * Vault serves the secrets. Then: what the app sees, rotation that swaps all
 * files at once, outages of Entra ID and Key Vault that leave the files as
 * they were, the refusals a user must be able to act on, and finally the
 * logs of the whole run, which must hold no secret value and no token.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { readFile, readlink } from "node:fs/promises";
import { createServer } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.ts";
import { Injected } from "../common/names.ts";
import { startEnvironment, type Environment } from "./cluster/environment.ts";
import { freePort } from "./host/network.ts";
import type { RunningPod } from "./kubelet/kubelet.ts";
import {
  buildPod,
  checkAppView,
  eventually,
  findLeaks,
  freshValue,
  injectionScenarios,
  checkNotifiedOnce,
  notifyScenarios,
  readStatusView,
  WORKLOAD,
  type ScenarioContext,
} from "./scenarios.ts";

let env: Environment;
let ctx: ScenarioContext;
/** Every secret value this run put in the vault: the log scan looks for each. */
const values: string[] = [];

beforeAll(async () => {
  env = await startEnvironment();
  await env.addWorkload({ namespace: WORKLOAD.namespace, serviceAccount: WORKLOAD.serviceAccount });
  ctx = { vaultUrl: env.vault.url, secondVaultUrl: env.secondVaultUrl, appImage: "busybox:1.37" };
  // Tokens shorter than MSAL's 5-minute refresh margin are fetched for every
  // sync, so an Entra ID outage is felt at the next refresh, not in an hour.
  env.aad.setTokenLifetime(120);
});

afterAll(async () => {
  await env.stop();
});

/** Puts a new version in the mock vault; returns the version. */
function setSecret(name: string, value: string, contentType?: string): string {
  values.push(value);
  return env.vault.setSecret(name, value, contentType === undefined ? {} : { contentType }).version;
}

async function createPod(pod: V1Pod): Promise<void> {
  const namespace = pod.metadata?.namespace ?? WORKLOAD.namespace;
  const response = await env.api("POST", `/api/v1/namespaces/${namespace}/pods`, pod);
  if (response.status !== 201) {
    throw new Error(`pod not created (${response.status}): ${JSON.stringify(response.body)}`);
  }
}

/** A labelled pod with the given annotations (the vault added), created and run. */
async function runWith(
  name: string,
  annotations: Record<string, string>,
  serviceAccount: string = WORKLOAD.serviceAccount,
  namespace: string = WORKLOAD.namespace,
): Promise<RunningPod> {
  await createPod(
    buildPod(
      {
        pod: name,
        serviceAccount,
        annotations: { "akv-injector.io/vault": ctx.vaultUrl, ...annotations },
      },
      ctx,
      namespace,
    ),
  );
  return env.runPod(namespace, name);
}

const sidecarLog = async (pod: RunningPod): Promise<string> =>
  (await pod.process(Injected.containerName)?.readLog()) ?? "";

describe("the injected sidecar, run by the test kubelet", () => {
  it.each(
    injectionScenarios({ vaultUrl: "", secondVaultUrl: "", appImage: "" }).map((s) => [
      s.name,
      s.pod,
    ]),
  )("%s", async (_title, podName) => {
    const scenario = injectionScenarios(ctx).find((s) => s.pod === podName);
    if (scenario === undefined) throw new Error(podName);
    for (const secret of scenario.secrets) setSecret(secret.name, secret.value, secret.contentType);
    for (const o of scenario.objects ?? []) {
      if (o.kind === "certificate")
        env.vault.addCertificate(o.name, { keyPem: o.keyPem, certPems: o.certPems });
      else env.vault.addKey(o.name, { pem: o.pem });
    }
    await createPod(buildPod(scenario, ctx));
    const pod = await env.runPod(WORKLOAD.namespace, scenario.pod);
    console.log(
      `${scenario.pod}: ready ${pod.startMs} ms after the sidecar started (${pod.layout} layout)`,
    );
    await checkAppView(pod, scenario);

    const sidecar = pod.process(Injected.containerName);
    if (scenario.annotations["akv-injector.io/mode"] === "init") {
      // One sync, then done: the app starts after it.
      expect(sidecar?.exit()).toEqual({ code: 0, signal: null });
    } else if (pod.layout === "namespace") {
      // The injected security context, really applied.
      const status = await readFile(`/proc/${String(sidecar?.pid)}/status`, "utf8");
      expect(status).toMatch(/^Uid:\s+65532\s/m);
    }
    const exits = await pod.stop();
    if (scenario.annotations["akv-injector.io/mode"] !== "init") {
      // SIGTERM ends it promptly and cleanly, as a Job's sidecar must.
      expect(exits.get(Injected.containerName)).toEqual({ code: 0, signal: null });
    }
  });

  it("pays the request budget: N + 1 Key Vault requests and one token per cold start, N per refresh", async () => {
    const names = ["budget-1", "budget-2", "budget-3", "budget-4", "budget-5"];
    for (const name of names) setSecret(name, freshValue(name));
    // Entra's usual lifetime: the short one of this file is under the SDK's
    // refresh margin, where every request would ask for a new token.
    env.aad.setTokenLifetime(3599);
    env.vault.resetCounters();
    env.aad.resetCounters();
    // The first sync: one challenge, then the N reads with the token. An
    // hour between refreshes, so that none falls in the count: the first
    // refresh comes at a random point of the first interval.
    const cold = await runWith("budget", {
      "akv-injector.io/secrets": names.join(","),
      "akv-injector.io/refresh-interval": "1h",
    });
    expect(env.vault.counters().total).toBeLessThanOrEqual(names.length + 1);
    expect(env.aad.counters().tokensIssued).toBe(1);
    await cold.stop();
    // Refreshes reuse the challenge and the token.
    const warm = await runWith("budget-refresh", {
      "akv-injector.io/secrets": names.join(","),
      "akv-injector.io/refresh-interval": "2s",
    });
    env.vault.resetCounters();
    env.aad.resetCounters();
    await eventually(() => {
      expect(env.vault.counters().authenticated).toBeGreaterThanOrEqual(names.length);
    }, 10_000);
    await warm.stop();
    env.aad.setTokenLifetime(120);
    expect(env.vault.counters().challenges).toBe(0);
    expect(env.aad.counters().tokensIssued).toBe(0);
  });

  it("rotates every file of a pod together, atomically", async () => {
    setSecret("rot-a", freshValue("a1"));
    setSecret("rot-b", freshValue("b1"));
    const before = [values.at(-2), values.at(-1)];
    const pod = await runWith("rotate", {
      "akv-injector.io/secrets": "rot-a,rot-b",
      "akv-injector.io/refresh-interval": "2s",
    });
    const dir = pod.hostPath("app", "/mnt/secrets");
    expect(await readFile(join(dir, "rot-a"), "utf8")).toBe(before[0]);

    setSecret("rot-a", freshValue("a2"));
    setSecret("rot-b", freshValue("b2"));
    const after = [values.at(-2), values.at(-1)];
    // Read as fast as possible until the new set shows: through the visible
    // names, every file is always one whole version; through one `..data`
    // target, both files are always of the same generation.
    const seen = new Set<string>();
    const deadline = Date.now() + 15_000;
    for (;;) {
      const a = await readFile(join(dir, "rot-a"), "utf8");
      expect([before[0], after[0]]).toContain(a);
      const target = await readlink(join(dir, "..data"));
      try {
        const pair = [
          await readFile(join(dir, target, "rot-a"), "utf8"),
          await readFile(join(dir, target, "rot-b"), "utf8"),
        ];
        const generation = pair[0] === after[0] ? "new" : "old";
        expect(pair).toEqual(generation === "new" ? after : before);
        seen.add(generation);
        if (generation === "new") break;
      } catch (error) {
        // The old generation's folder is removed after the swap: read again.
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
      if (Date.now() > deadline) throw new Error("the rotated values never appeared");
    }
    expect(seen.has("new")).toBe(true);
    await pod.stop();
  });

  it("serves Prometheus metrics on the pod's metrics-port, and the app reads the status beside its files", async () => {
    const version = setSecret("met-a", freshValue("met"));
    const port = await freePort();
    const pod = await runWith("metrics", {
      "akv-injector.io/secrets": "met-a",
      "akv-injector.io/refresh-interval": "1s",
      "akv-injector.io/metrics-port": String(port),
    });
    // The webhook declared the port on the sidecar, to be scraped as pods are.
    const created = await env.api("GET", `/api/v1/namespaces/${WORKLOAD.namespace}/pods/metrics`);
    const sidecar = (created.body as V1Pod).spec?.initContainers?.find(
      (c) => c.name === Injected.containerName,
    );
    expect(sidecar?.ports).toEqual([
      { name: Injected.metricsPortName, containerPort: port, protocol: "TCP" },
    ]);
    // The test kubelet's containers share this machine's network, as a pod's share the pod's.
    await eventually(async () => {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).toMatch(/^akv_injector_sidecar_files_published 1$/m);
      expect(text).toMatch(/^akv_injector_sidecar_last_success_timestamp_seconds [1-9]\d{9}/m);
      expect(text).toMatch(
        /^akv_injector_sidecar_requests_total\{service="key-vault",outcome="success"\} ([2-9]|\d{2,})$/m,
      );
      expect(text).toMatch(
        /^akv_injector_sidecar_requests_total\{service="entra",outcome="success"\} [1-9]/m,
      );
    }, 15_000);
    const status = await readStatusView(pod, "app", "/mnt/secrets");
    expect(status.files).toEqual([{ name: "met-a", secrets: [{ name: "met-a", version }] }]);
    expect(status.consecutiveFailures).toBe(0);
    await pod.stop();
  });

  it("notifies the app over HTTP after a rotation, once, and not for the first sync (shared scenario)", async () => {
    // The test kubelet runs no app: this test answers on the app's port, on
    // the network the sidecar shares with it, and counts the POSTs.
    const port = await freePort();
    const bodies: string[] = [];
    const app = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        if (req.method === "POST" && req.url === "/cgi-bin/notify") bodies.push(body);
        res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      });
    });
    await new Promise<void>((r) => app.listen(port, "127.0.0.1", r));
    try {
      const scenario = notifyScenarios(ctx, port).find((s) => !s.nodeOnly);
      if (scenario === undefined) throw new Error("no HTTP notify scenario");
      setSecret(scenario.secret, freshValue("notify"));
      await createPod(buildPod(scenario, ctx));
      const pod = await env.runPod(WORKLOAD.namespace, scenario.pod);
      await checkNotifiedOnce(scenario, {
        notifications: () => Promise.resolve(bodies.length),
        rotate: (value) => {
          setSecret(scenario.secret, value);
          return Promise.resolve();
        },
        pod,
      });
      const body = JSON.parse(bodies[0] ?? "{}") as { files?: unknown; syncTime?: unknown };
      expect(body.files).toEqual([scenario.secret]);
      expect(typeof body.syncTime).toBe("string");
      expect(await sidecarLog(pod)).toMatch(/"event":"notify".*"result":"success"/);
      await pod.stop();
    } finally {
      await new Promise((r) => app.close(r));
    }
  });

  it("keeps the files when Entra ID is down, and catches up when it is back", async () => {
    // Access tokens that outlive the outage would hide it (the SDK rightly
    // keeps using a valid token): make them short, and wait one out.
    env.aad.setTokenLifetime(3);
    setSecret("aad-down", freshValue("v1"));
    const first = values.at(-1);
    const pod = await runWith("aad-down", {
      "akv-injector.io/secrets": "aad-down",
      "akv-injector.io/refresh-interval": "1s",
    });
    const file = pod.hostPath("app", "/mnt/secrets/aad-down");
    // Connections dropped: Entra ID unreachable. (An HTTP 5xx would do too,
    // but MSAL then answers every identical request from its own throttle
    // cache for 60 s, which only slows this test down.)
    const fault = env.aad.injectFault({
      action: { type: "drop" },
      match: { endpoint: "token" },
      times: 100_000,
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 4000));
      setSecret("aad-down", freshValue("v2"));
      const before = env.aad.counters().faults;
      await eventually(() => {
        expect(env.aad.counters().faults).toBeGreaterThan(before + 2);
      }, 30_000);
      expect(await readFile(file, "utf8")).toBe(first);
      expect(pod.process(Injected.containerName)?.exit()).toBeUndefined();
    } finally {
      env.aad.clearFaults(fault);
      env.aad.setTokenLifetime(120);
    }
    await eventually(async () => {
      expect(await readFile(file, "utf8")).toBe(values.at(-1));
    }, 60_000);
    expect(await sidecarLog(pod)).toMatch(/retrying|failed/);
    await pod.stop();
  });

  it.each([
    ["HTTP 500", { type: "status", status: 500 }],
    ["HTTP 429 without Retry-After", { type: "status", status: 429 }],
    ["HTTP 429 with Retry-After", { type: "status", status: 429, retryAfterSeconds: 1 }],
    ["dropped connections", { type: "drop" }],
  ] as const)(
    "keeps the files through a Key Vault outage (%s), and catches up",
    async (label, action) => {
      const name = `kv-${label
        .replace(/[^a-z0-9]+/gi, "-")
        .toLowerCase()
        .replace(/-+$/, "")}`;
      const firstVersion = setSecret("kv-down", freshValue("v1"));
      const first = values.at(-1);
      const pod = await runWith(name, {
        "akv-injector.io/secret-value": "kv-down",
        "akv-injector.io/refresh-interval": "1s",
      });
      const file = pod.hostPath("app", "/mnt/secrets/value");
      expect(await readFile(file, "utf8")).toBe(first);
      const atInjection = env.vault.counters().faults;
      const id = env.vault.injectFault({
        action,
        match: { secret: "kv-down", authenticated: true },
        times: 100_000,
      });
      try {
        // A read already past the mock's fault check when the fault was
        // injected is still answered; rotate only once a read has been
        // refused, so that no read can publish the new value during the outage.
        await eventually(() => {
          expect(env.vault.counters().faults).toBeGreaterThan(atInjection);
        }, 30_000);
        setSecret("kv-down", freshValue("v2"));
        const before = env.vault.counters().faults;
        await eventually(() => {
          expect(env.vault.counters().faults).toBeGreaterThan(before + 1);
        }, 30_000);
        // Never removed, never truncated, never half-written.
        expect(await readFile(file, "utf8")).toBe(first);
        expect(pod.process(Injected.containerName)?.exit()).toBeUndefined();
        // The app can see that the refresh fails, and why: the status file,
        // read in the app container, still describes the files it has.
        await eventually(async () => {
          const status = await readStatusView(pod, "app", "/mnt/secrets");
          expect(status.consecutiveFailures).toBeGreaterThan(0);
          expect([ErrorCode.THROTTLED, ErrorCode.UNAVAILABLE]).toContain(status.lastError?.code);
          expect(status.lastError?.message).toContain("kv-down");
          expect(status.files).toEqual([
            { name: "value", secrets: [{ name: "kv-down", version: firstVersion }] },
          ]);
        }, 45_000);
      } finally {
        env.vault.clearFaults(id);
      }
      await eventually(async () => {
        expect(await readFile(file, "utf8")).toBe(values.at(-1));
      }, 60_000);
      await eventually(async () => {
        const status = await readStatusView(pod, "app", "/mnt/secrets");
        expect(status.consecutiveFailures).toBe(0);
        expect(status.files[0]?.secrets[0]?.version).not.toBe(firstVersion);
        expect(status.lastError).not.toBeNull();
      }, 10_000);
      await pod.stop();
    },
  );

  it("says why when the federated credential does not match", async () => {
    const unfederated = await env.addWorkload({
      namespace: WORKLOAD.namespace,
      serviceAccount: "unfederated",
      federate: false,
    });
    setSecret("fed", freshValue("fed"));
    await createPod(
      buildPod(
        {
          pod: "unfederated",
          serviceAccount: unfederated.serviceAccount,
          annotations: { "akv-injector.io/vault": ctx.vaultUrl, "akv-injector.io/secrets": "fed" },
        },
        ctx,
      ),
    );
    const run = env.runPod(WORKLOAD.namespace, "unfederated", { startupTimeoutMs: 8000 });
    await expect(run).rejects.toThrow(/did not become started/);
    const log = await readFile(
      join(env.cp.logDir, `${WORKLOAD.namespace}.unfederated.${Injected.containerName}.log`),
      "utf8",
    );
    expect(log).toContain("AADSTS70021");
    expect(log).toContain(unfederated.clientId);
    expect(log).toContain(env.cp.issuer);
    expect(log).toContain(unfederated.subject);
    expect(log).toContain(Injected.tokenAudience);
  });

  it("says which role is missing when the identity may not read the vault", async () => {
    const noRole = await env.addWorkload({
      namespace: WORKLOAD.namespace,
      serviceAccount: "no-role",
      grantVault: false,
    });
    setSecret("locked", freshValue("locked"));
    await createPod(
      buildPod(
        {
          pod: "no-role",
          serviceAccount: noRole.serviceAccount,
          annotations: {
            "akv-injector.io/vault": ctx.vaultUrl,
            "akv-injector.io/secrets": "locked",
          },
        },
        ctx,
      ),
    );
    const run = env.runPod(WORKLOAD.namespace, "no-role", { startupTimeoutMs: 8000 });
    await expect(run).rejects.toThrow(/did not become started/);
    const log = await readFile(
      join(env.cp.logDir, `${WORKLOAD.namespace}.no-role.${Injected.containerName}.log`),
      "utf8",
    );
    expect(log).toContain("403");
    expect(log).toContain("locked");
    expect(log).toContain("Key Vault Secrets User");
  });

  it("logs of the whole run hold no secret value and no token", async () => {
    const logs = await env.logs();
    // What ran: the control plane, both mocks, the webhook, the sidecars.
    const names = [...logs.keys()];
    expect(names).toEqual(
      expect.arrayContaining(["kube-apiserver.log", "mock-aad.log", "mock-key-vault.log"]),
    );
    expect(names.some((n) => n.endsWith(".webhook.log"))).toBe(true);
    expect(
      names.filter((n) => n.endsWith(`.${Injected.containerName}.log`)).length,
    ).toBeGreaterThan(3);
    expect(values.length).toBeGreaterThan(5);
    expect(findLeaks(logs, values)).toEqual([]);
    // The scan works: it finds a planted value and a planted token.
    const planted = new Map([
      [
        "planted.log",
        `x ${values[0] ?? ""} eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXh5eg`,
      ],
    ]);
    expect(findLeaks(planted, values)).toHaveLength(2);
  });
});
