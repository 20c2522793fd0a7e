/**
 * The control plane's own PKI, made fresh for every run with the `openssl`
 * CLI: a CA for the apiserver's serving certificate, a CA for client
 * certificates with an admin user in `system:masters`, and the RSA key that
 * signs service-account tokens. It is test infrastructure, not product code:
 * the product's certificates come from `certs/`. P-256 keys keep TLS key
 * generation in milliseconds; the token key is RSA because RS256 is what
 * Entra ID expects of a federated issuer.
 */
import { generateKeyPairSync } from "node:crypto";
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A certificate and its key, as PEM text and as files. */
export interface KeyPair {
  readonly certFile: string;
  readonly keyFile: string;
  readonly certPem: string;
  readonly keyPem: string;
}

/** Everything the apiserver and its admin client need. */
export interface ControlPlanePki {
  /** Issues the apiserver's serving certificate; clients trust it. */
  readonly servingCa: KeyPair;
  /** Serving certificate for 127.0.0.1 and localhost. */
  readonly serving: KeyPair;
  /** `--client-ca-file`: issues the admin client certificate. */
  readonly clientCa: KeyPair;
  /** CN=akv-e2e-admin, O=system:masters. */
  readonly admin: KeyPair;
  /** `--service-account-signing-key-file` (private) and `--service-account-key-file` (public). */
  readonly serviceAccountKeyFile: string;
  readonly serviceAccountPublicKeyFile: string;
}

async function openssl(args: readonly string[]): Promise<void> {
  try {
    await run("openssl", args);
  } catch (cause) {
    throw new Error(`openssl ${args.slice(0, 2).join(" ")} failed`, { cause });
  }
}

const DAYS = "2";

async function readPair(dir: string, name: string): Promise<KeyPair> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  return {
    certFile,
    keyFile,
    certPem: await readFile(certFile, "utf8"),
    keyPem: await readFile(keyFile, "utf8"),
  };
}

/** `openssl req` arguments for a new unencrypted P-256 key, written to `<name>.key` in `dir`. */
function newKeyArgs(dir: string, name: string): string[] {
  return [
    "-nodes",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-keyout",
    join(dir, `${name}.key`),
  ];
}

async function makeCa(dir: string, name: string, commonName: string): Promise<KeyPair> {
  await openssl([
    "req",
    "-x509",
    "-new",
    ...newKeyArgs(dir, name),
    "-out",
    join(dir, `${name}.crt`),
    "-subj",
    `/CN=${commonName}`,
    "-days",
    DAYS,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return readPair(dir, name);
}

async function makeLeaf(
  dir: string,
  name: string,
  ca: KeyPair,
  subject: string,
  extensions: readonly string[],
): Promise<KeyPair> {
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  await openssl(["req", "-new", ...newKeyArgs(dir, name), "-out", csr, "-subj", subject]);
  await writeFile(ext, extensions.join("\n") + "\n");
  await openssl([
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    ca.certFile,
    "-CAkey",
    ca.keyFile,
    "-set_serial",
    `0x${Date.now().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`,
    "-days",
    DAYS,
    "-extfile",
    ext,
    "-out",
    join(dir, `${name}.crt`),
  ]);
  return readPair(dir, name);
}

/** Makes the PKI in `dir` (files stay there for the apiserver to read). */
export async function createControlPlanePki(dir: string): Promise<ControlPlanePki> {
  const [servingCa, clientCa] = await Promise.all([
    makeCa(dir, "serving-ca", "akv-e2e-apiserver-ca"),
    makeCa(dir, "client-ca", "akv-e2e-client-ca"),
  ]);
  const [serving, admin] = await Promise.all([
    makeLeaf(dir, "apiserver", servingCa, "/CN=kube-apiserver", [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc",
    ]),
    makeLeaf(dir, "admin", clientCa, "/O=system:masters/CN=akv-e2e-admin", [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=clientAuth",
    ]),
  ]);
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  const serviceAccountKeyFile = join(dir, "sa.key");
  const serviceAccountPublicKeyFile = join(dir, "sa.pub");
  await writeFile(serviceAccountKeyFile, privateKey, { mode: 0o600 });
  await writeFile(serviceAccountPublicKeyFile, publicKey);
  return {
    servingCa,
    serving,
    clientCa,
    admin,
    serviceAccountKeyFile,
    serviceAccountPublicKeyFile,
  };
}
