/**
 * The SDK side of `floor.ts`: the sidecar's own read path (the credential
 * with its prefetch, `createKeyVaultSource` with its warm-up gate and
 * `SecretClient`), bundled with the sidecar's esbuild options as the image
 * ships it, doing what the floor's plain-https client does: read `s0` (the
 * challenge, the token, the first read), then the other N − 1 over C
 * workers, printing the wall time and this process's CPU time (user + sys)
 * for those N − 1.
 *
 * Run by floor.ts: `node [flags] sdk-reads.mjs VAULT_URL AUTHORITY TENANT CLIENT_ID TOKEN_FILE N C`.
 */
import { readFileSync } from "node:fs";
import { createCredential, withTokenPrefetch } from "../../sidecar/credential.ts";
import { createKeyVaultSource } from "../../sidecar/key-vault-source.ts";

const [
  vaultUrl = "",
  authorityHost = "",
  tenantId = "",
  clientId = "",
  tokenFile = "",
  n = "",
  c = "",
] = process.argv.slice(2);
const credential = withTokenPrefetch(
  createCredential({
    tenantId,
    clientId,
    tokenFile,
    authorityHost,
    disableInstanceDiscovery: true,
    readFile: (path) => Promise.resolve(readFileSync(path, "utf8")),
    now: Date.now,
  }),
  tenantId,
);
const source = createKeyVaultSource({
  vaultUrl,
  credential,
  prefetchToken: (scope) => {
    credential.prefetch(scope);
  },
  clientId,
  disableChallengeResourceVerification: true,
  now: Date.now,
});
const read = (i: number): Promise<unknown> => source.fetch({ name: `s${i}` });

await read(0);
const cpu = process.cpuUsage();
const start = performance.now();
let next = 1;
const worker = async (): Promise<void> => {
  while (next < Number(n)) await read(next++);
};
await Promise.all(Array.from({ length: Math.min(Number(c), Number(n) - 1) }, worker));
const wall = performance.now() - start;
const used = process.cpuUsage(cpu);
console.log(wall.toFixed(2), ((used.user + used.system) / 1000).toFixed(2));
process.exit(0);
