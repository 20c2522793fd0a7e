/**
 * The images as built, each run once with `docker run` outside the cluster:
 * both start as their non-root user, the sidecar without configuration exits
 * 2 naming what is missing, and the webhook serves `/healthz`.
 */
import { mkdtemp, rm, writeFile, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createCertificateAuthority, createServingCertificate } from "../../../certs/index.ts";
import { Injected, SidecarEnv, WebhookEnv } from "../../../common/names.ts";
import { Kind } from "../setup.ts";
import { runCommand, type Run } from "./kubectl.ts";
import type { Check } from "./runner.ts";

const ref = (i: { repository: string; tag: string }): string => `${i.repository}:${i.tag}`;

function docker(args: readonly string[]): Promise<Run> {
  return runCommand(process.env.DOCKER ?? "docker", args);
}

async function dockerOk(args: readonly string[]): Promise<string> {
  const run = await docker(args);
  if (run.code !== 0) throw new Error(`docker ${args.join(" ")}: ${run.stderr.trim()}`);
  return run.stdout;
}

/** The uid the image's own user runs node as. */
async function runtimeUid(image: string): Promise<string> {
  return (
    await dockerOk([
      "run",
      "--rm",
      "--entrypoint",
      "/nodejs/bin/node",
      image,
      "-e",
      "process.stdout.write(String(process.getuid()))",
    ])
  ).trim();
}

export async function runImageChecks(check: Check): Promise<void> {
  const sidecar = ref(Kind.images.sidecar);
  const webhook = ref(Kind.images.webhook);

  await check("the sidecar image runs as 65532 and exits 2 without configuration", async () => {
    const uid = await runtimeUid(sidecar);
    if (uid !== String(Injected.sidecarUser)) throw new Error(`runs as uid ${uid}`);
    const run = await docker(["run", "--rm", "--read-only", sidecar, ...Injected.sidecarRunArgs]);
    if (run.code !== 2) throw new Error(`exited ${String(run.code)}: ${run.stderr.trim()}`);
    if (!run.stderr.includes(SidecarEnv.spec) && !run.stdout.includes(SidecarEnv.spec))
      throw new Error(`the error does not name ${SidecarEnv.spec}: ${run.stderr.trim()}`);
  });

  await check("the webhook image runs as 65532 and serves /healthz", async () => {
    const uid = await runtimeUid(webhook);
    if (uid !== "65532") throw new Error(`runs as uid ${uid}`);
    const dir = await mkdtemp(join(tmpdir(), "akv-image-check-"));
    let container: string | undefined;
    try {
      const now = new Date();
      const ca = createCertificateAuthority({ commonName: "image check CA", now });
      const leaf = createServingCertificate(ca, { dnsNames: ["localhost"], now });
      await writeFile(join(dir, "tls.crt"), leaf.certPem);
      await writeFile(join(dir, "tls.key"), leaf.keyPem);
      // A cluster that is not there: the health port must answer anyway.
      await writeFile(
        join(dir, "kubeconfig"),
        JSON.stringify({
          apiVersion: "v1",
          kind: "Config",
          clusters: [
            {
              name: "none",
              cluster: { server: "https://127.0.0.1:9", "insecure-skip-tls-verify": true },
            },
          ],
          users: [{ name: "none", user: { token: "none" } }],
          contexts: [{ name: "none", context: { cluster: "none", user: "none" } }],
          "current-context": "none",
        }),
      );
      await chmod(dir, 0o755);
      for (const f of ["tls.crt", "tls.key", "kubeconfig"]) await chmod(join(dir, f), 0o644);
      container = (
        await dockerOk([
          "run",
          "-d",
          "--read-only",
          "-p",
          "127.0.0.1::8080",
          "-v",
          `${dir}:/config:ro`,
          "-e",
          `${WebhookEnv.tlsCertFile}=/config/tls.crt`,
          "-e",
          `${WebhookEnv.tlsKeyFile}=/config/tls.key`,
          "-e",
          `${WebhookEnv.sidecarImage}=${sidecar}`,
          "-e",
          `${WebhookEnv.tenantId}=11111111-2222-3333-4444-555555555555`,
          "-e",
          `${WebhookEnv.kubeconfig}=/config/kubeconfig`,
          webhook,
        ])
      ).trim();
      const port = (await dockerOk(["port", container, "8080/tcp"])).trim().split(":").pop() ?? "";
      const deadline = Date.now() + 30_000;
      for (;;) {
        const answer = await fetch(`http://127.0.0.1:${port}/healthz`).then(
          async (r) => `${String(r.status)} ${await r.text()}`,
          (error: unknown) => String(error),
        );
        if (answer.startsWith("200")) break;
        if (Date.now() > deadline) {
          const logs = await docker(["logs", container]);
          throw new Error(`/healthz answered ${answer}; logs: ${logs.stdout}${logs.stderr}`);
        }
        await sleep(500);
      }
    } finally {
      if (container !== undefined) await docker(["rm", "-f", container]);
      await rm(dir, { recursive: true, force: true });
    }
  });
}
