/**
 * What the kind path deploys besides the chart, written to a folder for the
 * scripts to apply: the mocks' serving certificate (made with `certs/`, for
 * their in-cluster Service names), their Deployment and Services, and the
 * Helm values that point akv-injector at them and make every sidecar trust
 * their CA through the chart's `sidecar.extraCaCerts`.
 *
 * Usage: node e2e/kind/setup.ts OUT_DIR   (writes state.json, mocks.yaml, values.yaml)
 * The e2e suite applies the same manifests and values to its real apiserver,
 * so they stay valid even where kind cannot run.
 */
import { randomUUID } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { createCertificateAuthority, createServingCertificate } from "../../certs/index.ts";

/** Names shared by the scripts, the checks and the suite. */
export const Kind = {
  cluster: "akv-injector-e2e",
  mocksNamespace: "akv-e2e",
  release: "akv-injector",
  releaseNamespace: "akv-injector",
  aadHost: "mock-aad.akv-e2e.svc",
  vaultHost: "mock-key-vault.akv-e2e.svc",
  /** The mock vault under a second name (a second Service), for object identifiers of two vault hosts. */
  secondVaultHost: "mock-key-vault-2.akv-e2e.svc",
  /** Image tags the scripts build and load into the cluster. */
  images: {
    webhook: { repository: "localhost/akv-injector-webhook", tag: "kind" },
    sidecar: { repository: "localhost/akv-injector-sidecar", tag: "kind" },
    mocks: { repository: "localhost/akv-injector-mocks", tag: "kind" },
  },
  /** The app containers' image (`sleep`, `cat`, `stat`, `ls`). */
  appImage: "busybox:1.37",
  /** The webhook's uid and gid on kind: not the image's 65532, as on OpenShift, which picks one from a range. */
  arbitraryUid: 1000680000,
} as const;

/** What `setup.ts` decided, read back by `checks.ts`. */
export interface KindState {
  readonly tenantId: string;
  readonly mockCaPem: string;
}

/** A Kubernetes object, as written to the manifests. */
type Manifest = Record<string, unknown>;

/** The mocks in the cluster: one pod serving both, three Services (the vault under two names), their certificate. */
export function mocksManifests(
  state: KindState,
  tls: { certPem: string; keyPem: string },
): Manifest[] {
  const ns = Kind.mocksNamespace;
  const labels = { "app.kubernetes.io/name": "akv-injector-mocks" };
  const image = `${Kind.images.mocks.repository}:${Kind.images.mocks.tag}`;
  return [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "mocks-tls", namespace: ns },
      type: "kubernetes.io/tls",
      stringData: { "tls.crt": tls.certPem, "tls.key": tls.keyPem, "ca.crt": state.mockCaPem },
    },
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "mocks", namespace: ns, labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            securityContext: {
              runAsNonRoot: true,
              runAsUser: 65532,
              runAsGroup: 65532,
              fsGroup: 65532,
              seccompProfile: { type: "RuntimeDefault" },
            },
            containers: [
              {
                name: "mocks",
                image,
                imagePullPolicy: "IfNotPresent",
                args: [
                  "--host=0.0.0.0",
                  "--aad-port=8443",
                  "--key-vault-port=9443",
                  `--aad-public-url=https://${Kind.aadHost}`,
                  `--key-vault-public-url=https://${Kind.vaultHost}`,
                  `--tenant=${state.tenantId}`,
                  "--tls-cert=/etc/mocks/tls/tls.crt",
                  "--tls-key=/etc/mocks/tls/tls.key",
                  "--tls-ca=/etc/mocks/tls/ca.crt",
                  // Entra ID reads the cluster's OIDC discovery, served by the
                  // apiserver behind the cluster CA.
                  "--trust-ca=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
                  "--out-dir=/tmp/mocks",
                ],
                ports: [
                  { name: "aad", containerPort: 8443 },
                  { name: "key-vault", containerPort: 9443 },
                ],
                readinessProbe: { tcpSocket: { port: "aad" }, periodSeconds: 2 },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ["ALL"] },
                },
                volumeMounts: [
                  { name: "tls", mountPath: "/etc/mocks/tls", readOnly: true },
                  { name: "tmp", mountPath: "/tmp/mocks" },
                ],
              },
            ],
            volumes: [
              { name: "tls", secret: { secretName: "mocks-tls" } },
              { name: "tmp", emptyDir: { medium: "Memory", sizeLimit: "1Mi" } },
            ],
          },
        },
      },
    },
    ...(
      [
        ["mock-aad", "aad"],
        ["mock-key-vault", "key-vault"],
        ["mock-key-vault-2", "key-vault"],
      ] as const
    ).map(([name, port]) => ({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, namespace: ns },
      spec: { selector: labels, ports: [{ name: "https", port: 443, targetPort: port }] },
    })),
  ];
}

/** The chart's values for kind: the mocks as the cloud, the local images, self certificates. */
export function kindValues(state: KindState): Record<string, unknown> {
  return {
    tenantId: state.tenantId,
    cloud: "Custom",
    custom: {
      authorityHost: `https://${Kind.aadHost}/`,
      vaultSuffixes: [Kind.vaultHost, Kind.secondVaultHost],
    },
    images: {
      webhook: { ...Kind.images.webhook, pullPolicy: "IfNotPresent" },
      sidecar: { ...Kind.images.sidecar, pullPolicy: "IfNotPresent" },
    },
    sidecar: { extraCaCerts: state.mockCaPem },
    certificates: { mode: "self" },
    webhook: {
      // An arbitrary uid, as OpenShift's restricted SCC assigns one (docs/chart.md).
      podSecurityContext: {
        runAsUser: Kind.arbitraryUid,
        runAsGroup: Kind.arbitraryUid,
        fsGroup: Kind.arbitraryUid,
      },
      securityContext: { runAsUser: Kind.arbitraryUid, runAsGroup: Kind.arbitraryUid },
      extraEnv: [{ name: "TZ", value: "UTC" }],
      extraVolumes: [{ name: "scratch", emptyDir: { sizeLimit: "1Mi" } }],
      extraVolumeMounts: [{ name: "scratch", mountPath: "/scratch" }],
    },
  };
}

/** Makes the mocks' CA and certificate (for their Service names, and localhost for port-forwards). */
export function makeMocksTls(now = new Date()): { caPem: string; certPem: string; keyPem: string } {
  const ca = createCertificateAuthority({ commonName: "akv-injector kind mocks CA", now });
  const leaf = createServingCertificate(ca, {
    dnsNames: [Kind.aadHost, Kind.vaultHost, Kind.secondVaultHost, "localhost"],
    ipAddresses: ["127.0.0.1"],
    now,
  });
  return { caPem: ca.certPem, certPem: leaf.certPem, keyPem: leaf.keyPem };
}

async function main(): Promise<void> {
  const out = resolve(process.argv[2] ?? "e2e/kind/out");
  await mkdir(out, { recursive: true });
  const tls = makeMocksTls();
  const state: KindState = { tenantId: randomUUID(), mockCaPem: tls.caPem };
  await writeFile(join(out, "state.json"), `${JSON.stringify(state, null, 2)}\n`);
  await writeFile(join(out, "mocks-ca.pem"), tls.caPem);
  await writeFile(
    join(out, "mocks.yaml"),
    mocksManifests(state, tls)
      .map((m) => stringify(m))
      .join("---\n"),
    { mode: 0o600 },
  );
  await writeFile(join(out, "values.yaml"), stringify(kindValues(state)));
  process.stdout.write(`wrote ${out}/{state.json,mocks-ca.pem,mocks.yaml,values.yaml}\n`);
}

if (import.meta.main) await main();
