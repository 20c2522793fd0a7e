/**
 * Where the webhook's apiserver is and how it proves who it is: in a pod,
 * the service account's mounted token and CA; else a kubeconfig file
 * (`KUBECONFIG`), of which it takes what a webhook needs (a server, a CA,
 * a client certificate or a bearer token) and refuses the rest by name
 * (exec plugins, auth providers), rather than half-load it.
 *
 * The parsing is pure ({@link readKubeconfig}); reading the files is in
 * {@link loadKubeconfig} and {@link inClusterConnection}.
 */
import { readFile } from "node:fs/promises";
import { isAbsolute, join, dirname } from "node:path";

/** The in-cluster service account's mounted files. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/**
 * A mounted token is re-read this often: the kubelet rotates a bound
 * service-account token well before it expires (client-go re-reads every
 * minute too).
 */
export const TOKEN_REREAD_MS = 60_000;

/** How to reach and authenticate to one apiserver. */
export interface KubeConnection {
  /** `https://host:port`, without a path. */
  readonly server: URL;
  /** PEM CAs the server's certificate must chain to; undefined: Node's roots. */
  readonly caPem?: string;
  /** `insecure-skip-tls-verify` (a kubeconfig for a test cluster). */
  readonly insecure: boolean;
  readonly clientCertPem?: string;
  readonly clientKeyPem?: string;
  /** The bearer token to send now, if any. */
  token(): Promise<string | undefined>;
}

/** What a kubeconfig's current context names, with file references not yet read. */
export interface KubeconfigRefs {
  readonly server: string;
  readonly insecure: boolean;
  readonly ca?: Source;
  readonly clientCert?: Source;
  readonly clientKey?: Source;
  readonly token?: Source;
}

/** Inline data, or a file to read (resolved against the kubeconfig's folder). */
export type Source = { readonly data: string } | { readonly file: string };

type Fields = Readonly<Record<string, unknown>>;

const isFields = (value: unknown): value is Fields =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The entry of a kubeconfig list (`clusters`, `users`, `contexts`) with that name. */
function named(doc: Fields, list: string, name: string, what: string): Fields {
  const entries = doc[list];
  const entry = Array.isArray(entries)
    ? (entries as unknown[]).find((e) => isFields(e) && e.name === name)
    : undefined;
  const body = isFields(entry) ? entry[what] : undefined;
  if (!isFields(body)) throw new Error(`no ${what} '${name}' in ${list}`);
  return body;
}

function text(fields: Fields, key: string): string | undefined {
  const value = fields[key];
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** `<key>-data` (base64) or `<key>` (a file), as kubeconfig writes certificates. */
function source(fields: Fields, key: string, baseDir: string): Source | undefined {
  const data = text(fields, `${key}-data`);
  if (data !== undefined) return { data: Buffer.from(data, "base64").toString("utf8") };
  const file = text(fields, key);
  if (file === undefined) return undefined;
  return { file: isAbsolute(file) ? file : join(baseDir, file) };
}

/**
 * Reads a kubeconfig's current context (the parsed YAML document) into what to read.
 * @param baseDir the kubeconfig's folder: relative file paths are relative to it.
 * @throws {Error} naming what is missing or not supported.
 */
export function readKubeconfig(doc: unknown, baseDir: string): KubeconfigRefs {
  if (!isFields(doc)) throw new Error("not a kubeconfig (not a YAML mapping)");
  const contextName = text(doc, "current-context");
  if (contextName === undefined) throw new Error("no current-context");
  const context = named(doc, "contexts", contextName, "context");
  const clusterName = text(context, "cluster");
  if (clusterName === undefined) throw new Error(`context '${contextName}' names no cluster`);
  const cluster = named(doc, "clusters", clusterName, "cluster");
  const server = text(cluster, "server");
  if (server === undefined) throw new Error(`cluster '${clusterName}' has no server`);
  const userName = text(context, "user");
  const user = userName === undefined ? {} : named(doc, "users", userName, "user");
  for (const unsupported of ["exec", "auth-provider", "username"]) {
    if (user[unsupported] !== undefined) {
      throw new Error(
        `user '${userName ?? ""}' authenticates with '${unsupported}', which the webhook does not run: give it a token, a token file or a client certificate`,
      );
    }
  }
  const token = text(user, "token");
  const tokenFile = text(user, "tokenFile");
  const ca = source(cluster, "certificate-authority", baseDir);
  const clientCert = source(user, "client-certificate", baseDir);
  const clientKey = source(user, "client-key", baseDir);
  return {
    server,
    insecure: cluster["insecure-skip-tls-verify"] === true,
    ...(ca === undefined ? {} : { ca }),
    ...(clientCert === undefined ? {} : { clientCert }),
    ...(clientKey === undefined ? {} : { clientKey }),
    ...(token !== undefined
      ? { token: { data: token } }
      : tokenFile !== undefined
        ? { token: { file: isAbsolute(tokenFile) ? tokenFile : join(baseDir, tokenFile) } }
        : {}),
  };
}

/** The server URL, checked: https, no path, query or credentials. */
export function parseServer(server: string): URL {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new Error(`server '${server}' is not a URL`);
  }
  if (url.protocol !== "https:") throw new Error(`server '${server}' is not https://`);
  if ((url.pathname !== "/" && url.pathname !== "") || url.search !== "" || url.username !== "") {
    throw new Error(`server '${server}' has a path, query or credentials`);
  }
  return url;
}

const readSource = async (s: Source | undefined): Promise<string | undefined> =>
  s === undefined ? undefined : "data" in s ? s.data : readFile(s.file, "utf8");

/**
 * A token that a file holds, read again after {@link TOKEN_REREAD_MS}; a
 * failed re-read keeps the last token (the next request says whether it
 * still works).
 */
export function fileToken(path: string, now: () => number = Date.now): () => Promise<string> {
  let cached: { token: string; at: number } | undefined;
  return async () => {
    if (cached !== undefined && now() - cached.at < TOKEN_REREAD_MS) return cached.token;
    try {
      cached = { token: (await readFile(path, "utf8")).trim(), at: now() };
    } catch (error) {
      if (cached === undefined) throw error;
    }
    return cached.token;
  };
}

/** Reads a kubeconfig file and the files it names. */
export async function loadKubeconfig(path: string): Promise<KubeConnection> {
  // The YAML parser is loaded here only: in a cluster the webhook never reads a kubeconfig.
  const { parse } = await import("./yaml.ts");
  const refs = readKubeconfig(parse(await readFile(path, "utf8")), dirname(path));
  const server = parseServer(refs.server);
  const [caPem, clientCertPem, clientKeyPem] = await Promise.all([
    readSource(refs.ca),
    readSource(refs.clientCert),
    readSource(refs.clientKey),
  ]);
  if ((clientCertPem === undefined) !== (clientKeyPem === undefined))
    throw new Error("a client certificate needs its key, and a key its certificate");
  const token =
    refs.token === undefined
      ? () => Promise.resolve(undefined)
      : "data" in refs.token
        ? (
            (t: string) => () =>
              Promise.resolve(t)
          )(refs.token.data)
        : fileToken(refs.token.file);
  return {
    server,
    insecure: refs.insecure,
    ...(caPem === undefined ? {} : { caPem }),
    ...(clientCertPem === undefined ? {} : { clientCertPem }),
    ...(clientKeyPem === undefined ? {} : { clientKeyPem }),
    token,
  };
}

/**
 * The connection a pod has: `KUBERNETES_SERVICE_HOST`/`_PORT` and the
 * service account's mounted CA and token.
 */
export async function inClusterConnection(
  env: Readonly<Record<string, string | undefined>>,
  dir = SERVICE_ACCOUNT_DIR,
): Promise<KubeConnection> {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? "443";
  if (host === undefined || host === "")
    throw new Error("not in a cluster (no KUBERNETES_SERVICE_HOST)");
  const server = parseServer(`https://${host.includes(":") ? `[${host}]` : host}:${port}`);
  const caPem = await readFile(join(dir, "ca.crt"), "utf8");
  const token = fileToken(join(dir, "token"));
  await token(); // a missing token is a start-up error, not a 401 later
  return { server, insecure: false, caPem, token };
}
