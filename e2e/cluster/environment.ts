/**
 * The whole installation, on this machine, as a user would have it in a
 * cluster: the real control plane; the mock Entra ID and Key Vault behind a
 * private CA; the chart rendered by Helm and applied to the apiserver; the
 * webhook's pods made from the chart's Deployment and run by the test
 * kubelet; the rendered MutatingWebhookConfiguration pointed at them through
 * a URL (a loopback forwarder stands in for the Service), as envtest does.
 * The e2e suite and the demo both start from here.
 *
 * This file is the start and the stop, in order, and what a test holds; the
 * parts are `release.ts` (the chart's values), `objects.ts` (what is applied
 * and what a controller would publish), `webhook-pods.ts` (the webhook's
 * pods and why they differ from a cluster's), `workload.ts`,
 * `api-request.ts` and `startup.ts` (timings, and stopping what started).
 */
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { pino } from "pino";
import { renderChart, type KubeObject } from "../../charts/helm.ts";
import { createLogger } from "../../common/logger.ts";
import { createMockTls, startMocks, type MockAad, type MockKeyVault } from "../../mocks/index.ts";
import { TestKubelet, type RunOptions, type RunningPod } from "../kubelet/kubelet.ts";
import { detectLayout } from "../kubelet/layout.ts";
import { apiRequest, type ApiResponse } from "./api-request.ts";
import { startBalancer, type Balancer } from "./balancer.ts";
import { startControlPlane, type ControlPlane } from "./control-plane.ts";
import { localImages } from "./images.ts";
import { applyObjects, ensureNamespace, pointWebhookAt, publishRootCa } from "./objects.ts";
import {
  createProvidedCertificate,
  e2eValues,
  imageRef,
  RELEASE,
  SIDECAR_IMAGE,
  storeProvidedCertificate,
  WEBHOOK_IMAGE,
  type E2eCertMode,
} from "./release.ts";
import { Startup } from "./startup.ts";
import { freeWebhookPorts, runWebhookPods } from "./webhook-pods.ts";
import { addWorkload, type Workload, type WorkloadOptions } from "./workload.ts";

export interface EnvironmentOptions {
  readonly onProgress?: (line: string) => void;
  /** Default `provided`: a certificate made with `certs/`, in a Secret the chart names. */
  readonly certMode?: E2eCertMode;
  /** Webhook pods to run; default 1. */
  readonly replicas?: number;
  /** Chart values merged over the e2e ones (one level deep per top key). */
  readonly values?: Record<string, unknown>;
  /** The chart's `sidecar.refreshInterval`; default `5m`. */
  readonly refreshInterval?: string;
  /** Keep the run folder (logs, PKI) after stop. */
  readonly keepDir?: boolean;
}

/** A running installation. Stop it with `stop()` or `await using`. */
export interface Environment extends AsyncDisposable {
  readonly cp: ControlPlane;
  readonly kubeConfig: KubeConfig;
  readonly core: CoreV1Api;
  readonly aad: MockAad;
  readonly vault: MockKeyVault;
  /** The same mock vault under a second host name (`https://localhost:<port>`), allowed by the chart's suffixes too. */
  readonly secondVaultUrl: string;
  readonly kubelet: TestKubelet;
  readonly tenantId: string;
  /** PEM of the CA behind both mocks (what the chart's `sidecar.extraCaCerts` holds). */
  readonly mockCaPem: string;
  /** The chart as rendered and applied (before the webhook URL was set). */
  readonly rendered: readonly KubeObject[];
  readonly webhookPods: readonly RunningPod[];
  /** `https://127.0.0.1:<port>/mutate`, the URL in the webhook configuration. */
  readonly webhookUrl: string;
  readonly balancer: Balancer;
  readonly sidecarImage: string;
  /** Milliseconds of each step of the start. */
  readonly timings: Readonly<Record<string, number>>;
  /** Creates the namespace (if new), the annotated service account, the app and federated credential in the mock tenant, and its role on the vault. */
  addWorkload(options: WorkloadOptions): Promise<Workload>;
  /** `POST`/`GET`/… to the apiserver as the admin, keeping the warnings. */
  api(method: string, path: string, body?: unknown): Promise<ApiResponse>;
  /** Runs a stored pod with the test kubelet; it is stopped with the environment if not before. */
  runPod(namespace: string, name: string, options?: RunOptions): Promise<RunningPod>;
  /** Every log of the run (file name → text): control plane, mocks, webhook and sidecar containers. */
  logs(): Promise<Map<string, string>>;
  stop(): Promise<void>;
}

/** Starts everything; on any failure, stops what had started. */
export async function startEnvironment(options: EnvironmentOptions = {}): Promise<Environment> {
  const progress = options.onProgress ?? (() => undefined);
  const startup = new Startup();
  try {
    const cp = await startup.step("controlPlane", () =>
      startControlPlane({
        onProgress: progress,
        ...(options.keepDir === undefined ? {} : { keepDir: options.keepDir }),
      }),
    );
    startup.onStop(() => cp.stop());
    const kubeConfig = cp.kubeConfig();
    const core = kubeConfig.makeApiClient(CoreV1Api);

    progress("mocks: starting Entra ID and Key Vault (HTTPS, private CA)");
    const tenantId = randomUUID();
    const tls = createMockTls({ dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
    const mockCaPem = tls.caPem;
    const fileLogger = (name: string) =>
      createLogger({
        name,
        destination: pino.destination({ dest: join(cp.logDir, `${name}.log`), sync: true }),
      });
    const mocks = await startup.step("mocks", () =>
      startMocks({
        tls,
        aad: {
          tenants: [{ id: tenantId }],
          // Entra ID reads the issuer's discovery and keys; here the issuer is
          // the apiserver, behind its own CA.
          trustedCaPems: [cp.caPem],
          logger: fileLogger("mock-aad"),
        },
        keyVault: { logger: fileLogger("mock-key-vault") },
      }),
    );
    startup.onStop(() => mocks.close());
    const { aad, keyVault: vault } = mocks;

    const certMode = options.certMode ?? "provided";
    const replicas = options.replicas ?? 1;
    const ports = await freeWebhookPorts(replicas);
    const balancer = await startBalancer(ports.map((p) => p.https));
    startup.onStop(() => balancer.close());
    const webhookUrl = `https://127.0.0.1:${balancer.port}/mutate`;

    const provided = createProvidedCertificate();
    const values = e2eValues({
      tenantId,
      aadUrl: aad.url,
      vaultPort: vault.port,
      mockCaPem,
      replicas,
      refreshInterval: options.refreshInterval ?? "5m",
      certMode,
      provided,
      overrides: options.values ?? {},
    });
    progress("chart: helm template, then server-side apply to the apiserver");
    const rendered = await startup.step("helmTemplate", () =>
      renderChart({ values, releaseName: RELEASE.name, namespace: RELEASE.namespace }),
    );
    await startup.step("apply", async () => {
      await ensureNamespace(core, RELEASE.namespace);
      await publishRootCa(core, RELEASE.namespace, cp.caPem);
      if (certMode === "provided") await storeProvidedCertificate(core, provided);
      await applyObjects(
        kubeConfig,
        rendered.map((o) => pointWebhookAt(o, webhookUrl)),
      );
    });

    const layout = await detectLayout();
    const { images, files } = localImages({
      webhook: imageRef(WEBHOOK_IMAGE),
      sidecar: imageRef(SIDECAR_IMAGE),
    });
    const kubelet = new TestKubelet({
      kubeConfig,
      logDir: cp.logDir,
      images,
      files,
      layout,
      apiserver: cp.server,
    });

    progress(
      `webhook: running ${replicas} pod(s) of the chart's Deployment with the test kubelet (${layout} layout)`,
    );
    const webhookPods = await startup.step("webhookPods", () =>
      runWebhookPods({
        cp,
        core,
        kubelet,
        layout,
        rendered,
        ports,
        onRunning: (running) => {
          startup.onStop(async () => {
            await running.stop();
          });
        },
      }),
    );

    const pods: RunningPod[] = [];
    startup.onStop(async () => {
      for (const pod of pods) await pod.stop();
      // And any pod still starting when stop was called (Ctrl-C in the demo).
      await kubelet.stopAll();
    });
    const stop = (): Promise<void> => startup.stop();
    progress(
      `ready: control plane ${cp.timings.total} ms, webhook ${startup.timings.webhookPods ?? 0} ms`,
    );
    return {
      cp,
      kubeConfig,
      core,
      aad,
      vault,
      secondVaultUrl: `https://localhost:${vault.port}`,
      kubelet,
      tenantId,
      mockCaPem,
      rendered,
      webhookPods,
      webhookUrl,
      balancer,
      sidecarImage: imageRef(SIDECAR_IMAGE),
      timings: startup.timings,
      addWorkload: (w) => addWorkload({ core, aad, vault, tenantId, issuer: cp.issuer }, w),
      api: (method, path, body) => apiRequest(cp, method, path, body),
      async runPod(namespace, name, runOptions) {
        const pod = await kubelet.runPod(namespace, name, runOptions);
        pods.push(pod);
        return pod;
      },
      async logs() {
        const out = new Map<string, string>();
        for (const name of await readdir(cp.logDir)) {
          out.set(name, await readFile(join(cp.logDir, name), "utf8"));
        }
        return out;
      },
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (error) {
    await startup.stop();
    throw error;
  }
}
