// The `self` mode's certificates as the apiserver holds them: the Secret's
// data both ways, and the caBundle patch of the webhook configuration, checked
// by applying it as the apiserver would.
import jsonpatch from "fast-json-patch";
import { describe, expect, it } from "vitest";
import {
  CertSecretKey,
  caBundleOf,
  caBundlePatch,
  readStoredCerts,
  secretDataOf,
  type WebhookConfigurationCaBundles,
} from "./cert-objects.ts";
import { reconcile } from "../testing/certs.ts";
import { serviceDnsNames, type CertRequirements } from "./cert-reconcile.ts";

const DAY = 86_400_000;
const START = new Date("2031-05-06T07:08:09.000Z");
const requirements: CertRequirements = {
  dnsNames: serviceDnsNames("svc", "ns"),
  ipAddresses: [],
  servingValidityMs: 10 * DAY,
  caValidityMs: 100 * DAY,
};
const made = reconcile(undefined, requirements, START);
const b64 = (text: string): string => Buffer.from(text).toString("base64");

describe("the Secret's data", () => {
  it("round-trips through the Secret's data", () => {
    const data = {
      [CertSecretKey.caCert]: Buffer.from(caBundleOf(made.certs)).toString("base64"),
      [CertSecretKey.caKey]: Buffer.from(made.certs.caKeyPem).toString("base64"),
      [CertSecretKey.tlsCert]: Buffer.from(made.certs.tlsCertPem).toString("base64"),
      [CertSecretKey.tlsKey]: Buffer.from(made.certs.tlsKeyPem).toString("base64"),
    };
    expect(readStoredCerts({ data })).toEqual(made.certs);
    expect(
      readStoredCerts({ data: { [CertSecretKey.caCert]: data[CertSecretKey.caCert] } }),
    ).toBeUndefined();
    expect(secretDataOf(made.certs)).toEqual(data);
  });

  it.each(Object.values(CertSecretKey))("reads nothing when %s is missing", (key) => {
    const data: Record<string, string> = secretDataOf(made.certs);
    Reflect.deleteProperty(data, key);
    expect(readStoredCerts({ data })).toBeUndefined();
  });

  it("reads nothing from a Secret without data", () => {
    expect(readStoredCerts({})).toBeUndefined();
  });

  it("keeps every CA of a bundle, in order, whatever its line ends", () => {
    const [ca = ""] = made.certs.caCertPems;
    const other = reconcile(undefined, requirements, START).certs.caCertPems[0] ?? "";
    const bundle = [ca.trimEnd(), other.trimEnd()];
    expect(caBundleOf({ ...made.certs, caCertPems: bundle })).toBe(`${bundle.join("\n")}\n`);
    const stored = readStoredCerts({
      data: { ...secretDataOf(made.certs), [CertSecretKey.caCert]: b64(bundle.join("\n")) },
    });
    expect(stored?.caCertPems.map((pem) => pem.trimEnd())).toEqual(bundle);
  });
});

describe("caBundlePatch", () => {
  const bundle = caBundleOf(made.certs);
  const config = (...caBundles: (string | undefined)[]): WebhookConfigurationCaBundles => ({
    metadata: { resourceVersion: "42" },
    webhooks: caBundles.map((caBundle) => ({
      clientConfig: caBundle === undefined ? {} : { caBundle },
    })),
  });

  it.each<[string, WebhookConfigurationCaBundles, number | undefined]>([
    ["every webhook has it", config(b64(bundle), b64(bundle)), undefined],
    ["no webhooks at all", { metadata: { resourceVersion: "42" } }, undefined],
    ["one webhook lacks it", config(b64(bundle), undefined), 1],
    ["one has a stale bundle and one none", config(b64("stale"), undefined), 2],
  ])("%s", (_name, before, webhooks) => {
    const patch = caBundlePatch(before, bundle);
    expect(patch?.webhooks).toBe(webhooks);
    if (patch === undefined) return;
    expect(patch.body[0]).toEqual({ op: "test", path: "/metadata/resourceVersion", value: "42" });
    const after = jsonpatch.applyPatch(
      structuredClone(before),
      patch.body as jsonpatch.Operation[],
    ).newDocument;
    expect(after.webhooks?.map((w) => w.clientConfig.caBundle)).toEqual(
      before.webhooks?.map(() => b64(bundle)),
    );
  });

  it("fails when the configuration changed since it was read", () => {
    const patch = caBundlePatch(config(undefined), bundle);
    const changed = { ...config(undefined), metadata: { resourceVersion: "43" } };
    expect(() =>
      jsonpatch.applyPatch(changed, (patch?.body ?? []) as jsonpatch.Operation[], true),
    ).toThrow();
  });
});
