import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import {
  fileToken,
  inClusterConnection,
  loadKubeconfig,
  readKubeconfig,
  parseServer,
  TOKEN_REREAD_MS,
} from "./connection.ts";

const parseKubeconfig = (text: string, baseDir: string) => readKubeconfig(parse(text), baseDir);

const kubeconfig = (cluster: Record<string, unknown>, user: Record<string, unknown>): string =>
  stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      { name: "other", cluster: { server: "https://wrong.example" } },
      { name: "c", cluster },
    ],
    users: [{ name: "u", user }],
    contexts: [{ name: "ctx", context: { cluster: "c", user: "u" } }],
    "current-context": "ctx",
  });

const b64 = (text: string) => Buffer.from(text).toString("base64");

describe("parseKubeconfig: the current context's cluster and user", () => {
  it("inline CA and token", () => {
    expect(
      parseKubeconfig(
        kubeconfig(
          { server: "https://api.example:6443", "certificate-authority-data": b64("CA") },
          { token: "t0k" },
        ),
        "/cfg",
      ),
    ).toEqual({
      server: "https://api.example:6443",
      insecure: false,
      ca: { data: "CA" },
      token: { data: "t0k" },
    });
  });

  it("files relative to the kubeconfig's folder; a client certificate; insecure", () => {
    expect(
      parseKubeconfig(
        kubeconfig(
          {
            server: "https://api",
            "certificate-authority": "ca.crt",
            "insecure-skip-tls-verify": true,
          },
          { "client-certificate": "/abs/me.crt", "client-key-data": b64("KEY"), tokenFile: "tok" },
        ),
        "/cfg",
      ),
    ).toEqual({
      server: "https://api",
      insecure: true,
      ca: { file: "/cfg/ca.crt" },
      clientCert: { file: "/abs/me.crt" },
      clientKey: { data: "KEY" },
      token: { file: "/cfg/tok" },
    });
  });

  it.each([
    ["not YAML mapping", "- a\n- b\n", "not a kubeconfig (not a YAML mapping)"],
    ["no current context", stringify({ clusters: [] }), "no current-context"],
    [
      "a context naming a missing cluster",
      stringify({
        contexts: [{ name: "x", context: { cluster: "gone" } }],
        "current-context": "x",
      }),
      "no cluster 'gone' in clusters",
    ],
    [
      "an exec plugin",
      kubeconfig({ server: "https://api" }, { exec: { command: "kubelogin" } }),
      "user 'u' authenticates with 'exec', which the webhook does not run: give it a token, a token file or a client certificate",
    ],
    [
      "an auth provider",
      kubeconfig({ server: "https://api" }, { "auth-provider": { name: "azure" } }),
      "user 'u' authenticates with 'auth-provider'",
    ],
    ["a cluster without a server", kubeconfig({}, {}), "cluster 'c' has no server"],
  ])("refuses %s, naming it", (_case, text, message) => {
    expect(() => parseKubeconfig(text, "/")).toThrow(message);
  });
});

describe("parseServer", () => {
  it.each([
    ["https://10.0.0.1:443", "https://10.0.0.1/"],
    ["https://[fd00::1]:6443", "https://[fd00::1]:6443/"],
  ])("takes %s", (text, href) => {
    expect(parseServer(text).href).toBe(href);
  });
  it.each([
    ["http://api", "is not https://"],
    ["https://api/prefix", "has a path, query or credentials"],
    ["https://user@api", "has a path, query or credentials"],
    ["api:443", "is not https://"],
    ["not a url", "is not a URL"],
  ])("refuses %s", (text, message) => {
    expect(() => parseServer(text)).toThrow(message);
  });
});

describe("reading the files", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "akv-kube-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("re-reads a token file after a minute, and keeps the last token when a re-read fails", async () => {
    const path = join(dir, "token");
    await writeFile(path, "one\n");
    let now = 0;
    const token = fileToken(path, () => now);
    expect(await token()).toBe("one");
    await writeFile(path, "two");
    now = TOKEN_REREAD_MS - 1;
    expect(await token()).toBe("one");
    now = TOKEN_REREAD_MS;
    expect(await token()).toBe("two");
    await rm(path);
    now = 3 * TOKEN_REREAD_MS;
    expect(await token()).toBe("two");
  });

  it("in a pod: the service host and port, the mounted CA and token", async () => {
    await writeFile(join(dir, "ca.crt"), "CA PEM");
    await writeFile(join(dir, "token"), "pod-token");
    const c = await inClusterConnection(
      { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "6443" },
      dir,
    );
    expect(c.server.href).toBe("https://[fd00::1]:6443/");
    expect(c.caPem).toBe("CA PEM");
    expect(await c.token()).toBe("pod-token");
    await expect(inClusterConnection({}, dir)).rejects.toThrow(
      "not in a cluster (no KUBERNETES_SERVICE_HOST)",
    );
    await rm(join(dir, "token"));
    await expect(inClusterConnection({ KUBERNETES_SERVICE_HOST: "10.0.0.1" }, dir)).rejects.toThrow(
      /ENOENT/,
    );
  });

  it("a kubeconfig's files are read; a certificate without its key is refused", async () => {
    await writeFile(join(dir, "ca.crt"), "CA PEM");
    await writeFile(join(dir, "tok"), "file-token\n");
    await writeFile(
      join(dir, "config"),
      kubeconfig(
        { server: "https://api:6443", "certificate-authority": "ca.crt" },
        { tokenFile: "tok" },
      ),
    );
    const c = await loadKubeconfig(join(dir, "config"));
    expect(c.caPem).toBe("CA PEM");
    expect(await c.token()).toBe("file-token");
    await writeFile(
      join(dir, "half"),
      kubeconfig({ server: "https://api" }, { "client-certificate-data": b64("CERT") }),
    );
    await expect(loadKubeconfig(join(dir, "half"))).rejects.toThrow(
      "a client certificate needs its key, and a key its certificate",
    );
  });
});
