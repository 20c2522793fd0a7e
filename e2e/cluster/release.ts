/**
 * What this suite installs, in the chart's own terms: the release, the image
 * names the test kubelet maps to this checkout, and the values that point
 * the chart at the mocks and at a webhook certificate made with `certs/`.
 * In one place so a reader sees how the e2e install differs from a user's
 * `helm install`, and nowhere else.
 */
import type { CoreV1Api } from "@kubernetes/client-node";
import {
  createCertificateAuthority,
  createServingCertificate,
  type CertificateAndKey,
} from "../../certs/index.ts";

/** The images the chart is told to use (the kubelet maps them to this checkout). */
export const WEBHOOK_IMAGE = { repository: "localhost/akv-injector-webhook", tag: "e2e" } as const;
export const SIDECAR_IMAGE = { repository: "localhost/akv-injector-sidecar", tag: "e2e" } as const;

/** `repository:tag`, as a pod spec names an image. */
export const imageRef = (i: { repository: string; tag: string }): string =>
  `${i.repository}:${i.tag}`;

/** The Helm release. */
export const RELEASE = { name: "akv-injector", namespace: "akv-injector" } as const;

/** How the webhook gets its certificate, as the chart's `certificates.mode`. */
export type E2eCertMode = "provided" | "self";

/** The Secret that holds the `provided` certificate, named in the values. */
const PROVIDED_SECRET = `${RELEASE.name}-e2e-tls`;

/** The webhook's certificate in `provided` mode, and the CA the caBundle holds. */
export interface ProvidedCertificate {
  readonly ca: CertificateAndKey;
  readonly serving: CertificateAndKey;
}

/**
 * A CA and serving certificate from `certs/`, for the Service's names and
 * for 127.0.0.1 (the URL the apiserver calls here).
 */
export function createProvidedCertificate(now = new Date()): ProvidedCertificate {
  const ca = createCertificateAuthority({ commonName: "akv-injector e2e webhook CA", now });
  const serving = createServingCertificate(ca, {
    dnsNames: [`${RELEASE.name}.${RELEASE.namespace}.svc`],
    ipAddresses: ["127.0.0.1"],
    now,
  });
  return { ca, serving };
}

/** Stores the `provided` certificate where the values say it is, as a user would before installing. */
export async function storeProvidedCertificate(
  core: CoreV1Api,
  { serving }: ProvidedCertificate,
): Promise<void> {
  await core.createNamespacedSecret({
    namespace: RELEASE.namespace,
    body: {
      metadata: { name: PROVIDED_SECRET },
      type: "kubernetes.io/tls",
      stringData: { "tls.crt": serving.certPem, "tls.key": serving.keyPem },
    },
  });
}

/** What the values depend on: where the mocks are, and the choices of the test. */
export interface E2eValuesInput {
  readonly tenantId: string;
  /** The mock Entra ID's URL. */
  readonly aadUrl: string;
  /** The mock Key Vault's port on 127.0.0.1. */
  readonly vaultPort: number;
  /** PEM of the CA behind both mocks. */
  readonly mockCaPem: string;
  readonly replicas: number;
  readonly refreshInterval: string;
  readonly certMode: E2eCertMode;
  readonly provided: ProvidedCertificate;
  /** Chart values merged over these (one level deep per top key). */
  readonly overrides: Record<string, unknown>;
}

/** The chart's values for this installation. */
export function e2eValues(input: E2eValuesInput): Record<string, unknown> {
  return mergeValues(
    {
      tenantId: input.tenantId,
      cloud: "Custom",
      custom: {
        authorityHost: `${input.aadUrl}/`,
        // The mock vault under two host names: object identifiers of two vaults.
        vaultSuffixes: [`127.0.0.1:${input.vaultPort}`, `localhost:${input.vaultPort}`],
      },
      images: { webhook: WEBHOOK_IMAGE, sidecar: SIDECAR_IMAGE },
      webhook: { replicas: input.replicas },
      sidecar: { extraCaCerts: input.mockCaPem, refreshInterval: input.refreshInterval },
      certificates:
        input.certMode === "provided"
          ? {
              mode: "provided",
              provided: { secretName: PROVIDED_SECRET, caBundle: input.provided.ca.certPem },
            }
          : { mode: "self" },
    },
    input.overrides,
  );
}

/** Merges e2e values with overrides, one level deep per top key (so `webhook: {x}` keeps `webhook.replicas`). */
function mergeValues(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? { ...current, ...value } : value;
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
