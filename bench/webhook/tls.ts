/**
 * The benches' serving certificate: a throwaway CA and a certificate for
 * localhost and 127.0.0.1, written as `tls.crt` and `tls.key` where
 * `bench/webhook/server.ts` (and `createWebhookServer`) read them.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createCertificateAuthority, createServingCertificate } from "../../certs/index.ts";

/** Writes the pair into `dir`; returns the CA's PEM, which clients trust. */
export async function writeServingCertificate(dir: string, commonName: string): Promise<string> {
  const now = new Date();
  const ca = createCertificateAuthority({ commonName, now });
  const serving = createServingCertificate(ca, {
    dnsNames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    now,
  });
  await writeFile(join(dir, "tls.crt"), serving.certPem);
  await writeFile(join(dir, "tls.key"), serving.keyPem);
  return ca.certPem;
}
