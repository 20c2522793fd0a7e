/**
 * An in-process fake of the apiserver for the `self` certificate mode's tests:
 * enough of the Secret and MutatingWebhookConfiguration semantics (409 on
 * create of an existing name, 409 on a stale resourceVersion, JSON Patch with
 * `test`, 422 when it fails) to race two managers for real, with hooks to
 * answer instead (`intercept`) or hold requests (`gate`, {@link barrier}).
 * Not part of any bundle.
 */
import { once } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import jsonpatch from "fast-json-patch";
import { expect } from "vitest";
import type { KubeClient } from "../webhook/kube/client.ts";
import { fakeApiServerTls, fakeKubeConfig } from "./webhook-apiserver.ts";

export type KubeObject = Record<string, unknown> & { metadata: Record<string, unknown> };
export type Handler = (
  req: IncomingMessage,
  body: unknown,
) => { status: number; body: unknown } | undefined;

/** Whose Secret the fake keeps, and whose Service its webhook configurations call. */
export interface FakeCertApiNames {
  /** The namespace of the Secret and of the webhook's Service. */
  readonly namespace: string;
  readonly secretName: string;
  readonly serviceName: string;
}

/** A few routes of the apiserver, in memory, around one Secret and the webhook configurations. */
export class FakeCertApiServer {
  readonly secrets = new Map<string, KubeObject>();
  readonly configs = new Map<string, KubeObject>();
  readonly requests: string[] = [];
  /** Runs before the built-in handling: answer instead, or return undefined to carry on. */
  intercept: Handler | undefined;
  /** Awaited before each request is handled: lets a test hold requests to force an interleaving. */
  gate: ((req: IncomingMessage) => Promise<void>) | undefined;
  private version = 100;
  private server: Server | undefined;
  private caPem = "";
  private readonly names: FakeCertApiNames;

  constructor(names: FakeCertApiNames) {
    this.names = names;
  }

  async start(): Promise<void> {
    const tls = fakeApiServerTls();
    this.caPem = tls.caPem;
    this.server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        res.writeHead(500).end(String(error));
      });
    });
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((resolve) => this.server?.close(resolve));
  }

  client(): KubeClient {
    const { port } = this.server?.address() as AddressInfo;
    return fakeKubeConfig(`https://127.0.0.1:${port}`, this.caPem).client;
  }

  nextVersion(): string {
    this.version += 1;
    return String(this.version);
  }

  addConfig(name: string, webhookCount = 2): void {
    this.configs.set(name, {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingWebhookConfiguration",
      metadata: { name, resourceVersion: this.nextVersion() },
      webhooks: Array.from({ length: webhookCount }, (_, i) => ({
        name: `pods-${i}.akv-injector.io`,
        admissionReviewVersions: ["v1"],
        sideEffects: "None",
        clientConfig: {
          service: {
            name: this.names.serviceName,
            namespace: this.names.namespace,
            path: "/mutate",
            port: 443,
          },
        },
      })),
    });
  }

  /** The stored configuration's webhooks, to edit in place. */
  webhooks(name: string): { clientConfig: { caBundle?: string } }[] {
    return (this.configs.get(name)?.webhooks ?? []) as { clientConfig: { caBundle?: string } }[];
  }

  /** The stored Secret's data, to edit in place. */
  secretData(): Record<string, string> {
    const { namespace, secretName } = this.names;
    return (this.secrets.get(`${namespace}/${secretName}`)?.data ?? {}) as Record<string, string>;
  }

  caBundles(name: string): (string | undefined)[] {
    const webhooks = this.webhooks(name);
    return webhooks.map((w) =>
      w.clientConfig.caBundle === undefined ? undefined : decode(w.clientConfig.caBundle),
    );
  }

  secretText(key: string): string {
    return decode(this.secretData()[key] ?? "");
  }

  writes(): string[] {
    return this.requests.filter((r) => !r.startsWith("GET "));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const body: unknown = text === "" ? undefined : JSON.parse(text);
    const path = new URL(req.url ?? "/", "https://x").pathname;
    this.requests.push(`${req.method ?? ""} ${path}`);
    await this.gate?.(req);
    const answer = this.intercept?.(req, body) ?? this.route(req.method ?? "", path, body, req);
    res
      .writeHead(answer.status, { "content-type": "application/json" })
      .end(JSON.stringify(answer.body));
  }

  private route(
    method: string,
    path: string,
    body: unknown,
    req: IncomingMessage,
  ): { status: number; body: unknown } {
    let match = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(path);
    if (match) {
      const [, ns = "", name] = match;
      if (method === "POST") {
        const secret = structuredClone(body) as KubeObject;
        const key = `${ns}/${String(secret.metadata.name)}`;
        if (this.secrets.has(key))
          return status(
            409,
            "AlreadyExists",
            `secrets "${String(secret.metadata.name)}" already exists`,
          );
        secret.metadata.resourceVersion = this.nextVersion();
        this.secrets.set(key, secret);
        return { status: 201, body: secret };
      }
      const key = `${ns}/${name ?? ""}`;
      const existing = this.secrets.get(key);
      if (existing === undefined)
        return status(404, "NotFound", `secrets "${name ?? ""}" not found`);
      if (method === "GET") return { status: 200, body: existing };
      if (method === "PUT") {
        const secret = structuredClone(body) as KubeObject;
        if (secret.metadata.resourceVersion !== existing.metadata.resourceVersion) {
          return status(
            409,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version and try again",
          );
        }
        secret.metadata.resourceVersion = this.nextVersion();
        this.secrets.set(key, secret);
        return { status: 200, body: secret };
      }
    }
    match =
      /^\/apis\/admissionregistration\.k8s\.io\/v1\/mutatingwebhookconfigurations\/([^/]+)$/.exec(
        path,
      );
    if (match) {
      const name = match[1] ?? "";
      const existing = this.configs.get(name);
      if (existing === undefined) return status(404, "NotFound", "not found");
      if (method === "GET") return { status: 200, body: existing };
      if (method === "PATCH") {
        expect(req.headers["content-type"]).toBe("application/json-patch+json");
        try {
          const patched = jsonpatch.applyPatch(
            structuredClone(existing),
            body as jsonpatch.Operation[],
            true,
          ).newDocument;
          patched.metadata.resourceVersion = this.nextVersion();
          this.configs.set(name, patched);
          return { status: 200, body: patched };
        } catch (error) {
          // As kube-apiserver 1.36 (measured): a failed `test`, like any patch error, is 422.
          return status(422, "Invalid", String(error));
        }
      }
    }
    return status(404, "NotFound", `no route for ${method} ${path}`);
  }
}

/** A `Status` answer, as the apiserver words a failure. */
export function status(
  code: number,
  reason: string,
  message: string,
): { status: number; body: unknown } {
  return {
    status: code,
    body: { kind: "Status", apiVersion: "v1", status: "Failure", reason, message, code },
  };
}

function decode(b64: string): string {
  return Buffer.from(b64, "base64").toString("utf8");
}

/** A gate that holds the first `count` matching requests until all have arrived. */
export function barrier(
  count: number,
  matches: (req: IncomingMessage) => boolean,
): (req: IncomingMessage) => Promise<void> {
  let waiting = 0;
  let release: () => void = () => undefined;
  const all = new Promise<void>((resolve) => {
    release = resolve;
  });
  return async (req) => {
    if (!matches(req) || waiting >= count) return;
    waiting += 1;
    if (waiting === count) release();
    await all;
  };
}
