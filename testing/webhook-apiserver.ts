/**
 * A loopback apiserver for tests: just enough of the API for the webhook's
 * service-account list, watch (a held-open stream) and get, over HTTPS with
 * its own CA. Not part of any bundle.
 */
import type { ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { stringify } from "yaml";
import { createCertificateAuthority, createServingCertificate } from "../certs/index.ts";
import { createKubeClient, type KubeClient } from "../webhook/kube/client.ts";

/** A service account as the fake stores it. */
export interface FakeServiceAccount {
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    annotations?: Record<string, string>;
  };
}

/** A service account annotated with a client id. */
export const fakeServiceAccount = (
  namespace: string,
  name: string,
  annotations: Record<string, string> = { "azure.workload.identity/client-id": "x" },
): FakeServiceAccount => ({ metadata: { name, namespace, resourceVersion: "1", annotations } });

/** A fake apiserver's TLS: its own CA, and a serving certificate for localhost and 127.0.0.1. */
export function fakeApiServerTls(): { caPem: string; certPem: string; keyPem: string } {
  const now = new Date();
  const ca = createCertificateAuthority({ commonName: "fake-apiserver-ca", now });
  const serving = createServingCertificate(ca, {
    dnsNames: ["localhost"],
    ipAddresses: ["127.0.0.1"],
    now,
  });
  return { caPem: ca.certPem, certPem: serving.certPem, keyPem: serving.keyPem };
}

/** The fake apiserver. */
export class FakeApiServer {
  readonly accounts = new Map<string, FakeServiceAccount>();
  readonly requests: string[] = [];
  watchers: ServerResponse[] = [];
  failLists = 0;
  resourceVersion = 10;
  server: Server;
  readonly caPem: string;

  constructor() {
    const tls = fakeApiServerTls();
    this.caPem = tls.caPem;
    this.server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      const url = new URL(req.url ?? "/", "https://127.0.0.1");
      this.requests.push(
        `${url.pathname}${url.searchParams.get("watch") === "true" ? "?watch" : ""}`,
      );
      const json = (status: number, body: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      if (url.pathname === "/api/v1/serviceaccounts" && url.searchParams.get("watch") === "true") {
        res.writeHead(200, { "content-type": "application/json" });
        res.flushHeaders();
        this.watchers.push(res);
        return;
      }
      if (url.pathname === "/api/v1/serviceaccounts") {
        if (this.failLists > 0) {
          this.failLists -= 1;
          json(503, { kind: "Status", apiVersion: "v1", status: "Failure", code: 503 });
          return;
        }
        json(200, {
          kind: "ServiceAccountList",
          apiVersion: "v1",
          metadata: { resourceVersion: String(this.resourceVersion) },
          items: [...this.accounts.values()],
        });
        return;
      }
      const get = /^\/api\/v1\/namespaces\/([^/]+)\/serviceaccounts\/([^/]+)$/.exec(url.pathname);
      if (get !== null) {
        const found = this.accounts.get(`${get[1] ?? ""}/${get[2] ?? ""}`);
        if (found === undefined) {
          json(404, {
            kind: "Status",
            apiVersion: "v1",
            status: "Failure",
            reason: "NotFound",
            code: 404,
          });
        } else json(200, { kind: "ServiceAccount", apiVersion: "v1", ...found });
        return;
      }
      json(404, {});
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Stores an account, and sends it to the open watches; `readable: false` hides it from GET. */
  add(account: FakeServiceAccount, inWatch: boolean, readable = true): void {
    this.resourceVersion += 1;
    account.metadata.resourceVersion = String(this.resourceVersion);
    if (readable) {
      this.accounts.set(`${account.metadata.namespace}/${account.metadata.name}`, account);
    }
    if (inWatch) {
      for (const w of this.watchers)
        w.write(`${JSON.stringify({ type: "ADDED", object: account })}\n`);
    }
  }

  async close(): Promise<void> {
    for (const w of this.watchers) w.end();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** The fake's bearer token. */
export const FAKE_TOKEN = "test-token";

/** A client of the fake (token auth, its CA), and a kubeconfig saying the same, as YAML text. */
export function fakeKubeConfig(
  server: string,
  caPem: string,
): { client: KubeClient; yaml: string } {
  const client = createKubeClient({
    server: new URL(server),
    caPem,
    insecure: false,
    token: () => Promise.resolve(FAKE_TOKEN),
  });
  const yaml = stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: "fake",
        cluster: { server, "certificate-authority-data": Buffer.from(caPem).toString("base64") },
      },
    ],
    users: [{ name: "admin", user: { token: FAKE_TOKEN } }],
    contexts: [{ name: "fake", context: { cluster: "fake", user: "admin" } }],
    "current-context": "fake",
  });
  return { client, yaml };
}
