import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { PREVIEW_SERVICE_ACCOUNT as SA } from "../testing/cli.ts";
import { preview, type PreviewInput } from "./preview.ts";

const pod = (annotations: string): string => `apiVersion: v1
kind: Pod
metadata:
  name: app
  namespace: team-a
  labels:
    akv-injector.io/inject: "true"
  annotations:
${annotations}
spec:
  serviceAccountName: app
  containers:
    - name: app
      image: busybox
`;
const input = (annotations: string): PreviewInput => ({
  manifests: { text: pod(annotations), source: "pod.yaml" },
  serviceAccount: { text: SA, source: "sa.yaml" },
  env: {},
});

interface OutPod {
  spec: { initContainers: { env?: { name: string; value: string }[] }[] };
}

describe("preview with object identifiers", () => {
  it("admits a pod whose refs all name their vaults, without vault, and shows each ref's vault in the spec", async () => {
    const result = await preview(
      input(
        "    akv-injector.io/secrets: https://kv1.vault.azure.net/secrets/db,https://kv2.vault.azure.net/secrets/api",
      ),
    );
    expect(result.stderr).toEqual([]);
    expect(result.exitCode).toBe(0);
    const out = parse(result.stdout ?? "") as OutPod;
    const spec = JSON.parse(
      out.spec.initContainers[0]?.env?.find((e) => e.name === "AKV_INJECTOR_SPEC")?.value ?? "{}",
    ) as { vaultUrl?: string; files: { file: string; source: { ref: unknown } }[] };
    expect(spec.vaultUrl).toBeUndefined();
    expect(spec.files.map((f) => [f.file, f.source.ref])).toEqual([
      ["db", { name: "db", vaultUrl: "https://kv1.vault.azure.net", kind: "secret" }],
      ["api", { name: "api", vaultUrl: "https://kv2.vault.azure.net", kind: "secret" }],
    ]);
  });

  it("refuses an identifier outside the allowed suffixes, and a bare name without vault", async () => {
    const result = await preview(
      input(
        "    akv-injector.io/secrets: db\n    akv-injector.io/secret-x: https://evil.example.com/secrets/x",
      ),
    );
    expect(result.exitCode).toBe(1);
    expect(result.stderr[0]).toContain(
      'akv-injector.io/secret-x: expected a vault host under one of the allowed suffixes: .vault.azure.net, .vault.azure.cn, .vault.usgovcloudapi.net in the object identifier (got "https://evil.example.com/secrets/x")',
    );
    expect(result.stderr[0]).toContain(
      "akv-injector.io/vault: is required for 'db' in akv-injector.io/secrets",
    );
  });

  it("admits certificate and key identifiers as raw files, refuses another format and a template use", async () => {
    const ok = await preview(
      input(
        "    akv-injector.io/secrets: https://kv1.vault.azure.net/certificates/web,https://kv1.vault.azure.net/keys/signing",
      ),
    );
    expect(ok.exitCode).toBe(0);
    const refused = await preview(
      input(
        "    akv-injector.io/secret-web.pem: https://kv1.vault.azure.net/certificates/web\n    akv-injector.io/format-web.pem: pem\n    akv-injector.io/template-t: '{{ secret \"https://kv1.vault.azure.net/keys/k\" }}'",
      ),
    );
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr[0]).toContain(
      "akv-injector.io/format-web.pem: expected raw for a certificate identifier",
    );
    expect(refused.stderr[0]).toContain(
      "a certificate or key is written whole to a file of its own",
    );
  });
});
