/**
 * How the `self` mode's certificates look in the apiserver: the Secret's keys
 * and encoding, and the JSON Patch that publishes the caBundle. Pure, like the
 * decisions (`cert-reconcile.ts`), and apart from the calls that send them
 * (`self-managed-certs.ts`), so the wire shapes are in one place and checked
 * round trip.
 */
import type { StoredCerts } from "./cert-reconcile.ts";

/** Keys of the certificate Secret; `tls.crt`/`tls.key`/`ca.crt` as cert-manager writes them, plus the CA's key. */
export const CertSecretKey = {
  /** PEM bundle of trusted CAs, the signing CA first; the caBundle published to the apiserver. */
  caCert: "ca.crt",
  /** PKCS#8 PEM key of the first CA in `ca.crt`. */
  caKey: "ca.key",
  /** PEM serving certificate (leaf). */
  tlsCert: "tls.crt",
  /** PKCS#8 PEM serving key. */
  tlsKey: "tls.key",
} as const;

/** Reads the Secret's data; `undefined` when a key is missing (the whole set is then made anew). */
export function readStoredCerts(secret: {
  readonly data?: Readonly<Record<string, string>> | undefined;
}): StoredCerts | undefined {
  const data = secret.data ?? {};
  const get = (key: string): string | undefined => {
    const value = data[key];
    return value === undefined ? undefined : Buffer.from(value, "base64").toString("utf8");
  };
  const caBundle = get(CertSecretKey.caCert);
  const caKeyPem = get(CertSecretKey.caKey);
  const tlsCertPem = get(CertSecretKey.tlsCert);
  const tlsKeyPem = get(CertSecretKey.tlsKey);
  if (
    caBundle === undefined ||
    caKeyPem === undefined ||
    tlsCertPem === undefined ||
    tlsKeyPem === undefined
  ) {
    return undefined;
  }
  const caCertPems =
    caBundle.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
  return { caCertPems, caKeyPem, tlsCertPem, tlsKeyPem };
}

/** The Secret's data for `certs`: the inverse of {@link readStoredCerts}. */
export function secretDataOf(certs: StoredCerts): Record<string, string> {
  const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");
  return {
    [CertSecretKey.caCert]: b64(caBundleOf(certs)),
    [CertSecretKey.caKey]: b64(certs.caKeyPem),
    [CertSecretKey.tlsCert]: b64(certs.tlsCertPem),
    [CertSecretKey.tlsKey]: b64(certs.tlsKeyPem),
  };
}

/** The caBundle text: every trusted CA, signing one first. */
export function caBundleOf(certs: StoredCerts): string {
  return certs.caCertPems.map((pem) => (pem.endsWith("\n") ? pem : `${pem}\n`)).join("");
}

/** What {@link caBundlePatch} reads of a MutatingWebhookConfiguration. */
export interface WebhookConfigurationCaBundles {
  readonly metadata?: { readonly resourceVersion?: string | undefined } | undefined;
  readonly webhooks?:
    readonly { readonly clientConfig: { readonly caBundle?: string | undefined } }[] | undefined;
}

/**
 * The JSON Patch that puts `caBundle` into every webhook of `config` whose
 * bundle differs, behind a `test` of the `resourceVersion` it was read at, so
 * a concurrent change (a `helm upgrade`, another replica) fails the patch
 * rather than being overwritten; `undefined` when every webhook has it.
 */
export function caBundlePatch(
  config: WebhookConfigurationCaBundles,
  caBundle: string,
): { readonly body: object[]; readonly webhooks: number } | undefined {
  const wanted = Buffer.from(caBundle, "utf8").toString("base64");
  const operations: object[] = (config.webhooks ?? []).flatMap((webhook, index) =>
    webhook.clientConfig.caBundle === wanted
      ? []
      : [{ op: "add", path: `/webhooks/${index}/clientConfig/caBundle`, value: wanted }],
  );
  if (operations.length === 0) return undefined;
  return {
    body: [
      { op: "test", path: "/metadata/resourceVersion", value: config.metadata?.resourceVersion },
      ...operations,
    ],
    webhooks: operations.length,
  };
}
