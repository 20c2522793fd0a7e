/**
 * Loopback networking of the harness: every server it starts (etcd,
 * kube-apiserver, the webhook's pods, the mocks) listens on a free port of
 * this machine, and is known to be up when a plain GET answers. Shared by the
 * control plane, the installation and the tests that check them.
 */
import { request as httpsRequest, type RequestOptions } from "node:https";
import { createServer } from "node:net";

/** A free TCP port on 127.0.0.1 (the kernel's pick; a start retries on a lost race). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", ok);
  });
  const address = server.address();
  await new Promise<void>((ok) => {
    server.close(() => {
      ok();
    });
  });
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** A small HTTPS/HTTP GET for readiness checks and discovery. */
export async function httpGet(
  url: string,
  tls: Pick<RequestOptions, "ca" | "cert" | "key"> = {},
): Promise<{ status: number; body: string }> {
  if (url.startsWith("http://")) {
    const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
    return { status: response.status, body: await response.text() };
  }
  return new Promise((ok, fail) => {
    const req = httpsRequest(url, { ...tls, timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => {
        ok({ status: res.statusCode ?? 0, body });
      });
      res.on("error", fail);
    });
    req.on("timeout", () => req.destroy(new Error(`timeout: GET ${url}`)));
    req.on("error", fail);
    req.end();
  });
}
