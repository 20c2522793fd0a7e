/**
 * The floor under the sidecar's per-secret cost: the same Key Vault reads
 * with Node's `https.request` and nothing else (no SDK, no MSAL), against
 * the same mocks on loopback HTTPS. A child process (pinned to the last CPU,
 * as `run.ts` pins the sidecar) exchanges the service-account token for an
 * access token once, reads `s0` (the connection the sidecar's challenge
 * request would open), then reads the other 99 secrets over C keep-alive
 * sockets and reports the wall time and its own CPU time for those 99.
 *
 * `run.ts` measures the sidecar; this tells how much of its per-secret cost
 * is Node's HTTPS client itself (bench/sidecar/RESULTS.md, fourth pass).
 *
 * Run: `node bench/sidecar/floor.ts [runs]` (Node 24). Prints a table.
 */
import { spawn } from "node:child_process";
import { rawFiles, startMockWorld, CLIENT_ID, TENANT_ID } from "../../testing/sidecar-world.ts";
import { choosePinning, median } from "./harness.ts";

const RUNS = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 9);
const SECRETS = 100;
const FLAGS = [[], ["--jitless"]] as const;
const SOCKETS = [16, 4, 1] as const;

/** The child: plain https, one token, then the reads. Prints `wallMs cpuMs`. */
const CLIENT = `
const https = require("node:https");
const { readFileSync } = require("node:fs");
const [vaultUrl, tokenUrl, clientId, tokenFile, n, sockets] = process.argv.slice(1);
const agent = new https.Agent({ keepAlive: true });
const call = (url, options, body) => new Promise((resolve, reject) => {
  const req = https.request(url, { agent, ...options }, (res) => {
    let text = "";
    res.setEncoding("utf8");
    res.on("data", (d) => (text += d));
    res.on("end", () => (res.statusCode === 200 ? resolve(text) : reject(new Error(res.statusCode + " " + text))));
  });
  req.on("error", reject);
  req.end(body);
});
(async () => {
  const form = new URLSearchParams({
    grant_type: "client_credentials", client_id: clientId, scope: "https://vault.azure.net/.default",
    client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    client_assertion: readFileSync(tokenFile, "utf8").trim(),
  }).toString();
  const token = JSON.parse(await call(tokenUrl, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" } }, form)).access_token;
  const read = (i) => call(vaultUrl + "/secrets/s" + i + "?api-version=2025-07-01", { headers: { authorization: "Bearer " + token, accept: "application/json" } }).then(JSON.parse);
  await read(0);
  const cpu = process.cpuUsage();
  const start = performance.now();
  let next = 1;
  const worker = async () => { while (next < +n) await read(next++); };
  await Promise.all(Array.from({ length: Math.min(+sockets, +n - 1) }, worker));
  const wall = performance.now() - start;
  const used = process.cpuUsage(cpu);
  console.log(wall.toFixed(2), ((used.user + used.system) / 1000).toFixed(2));
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
`;

const world = await startMockWorld({
  secrets: Object.fromEntries(Array.from({ length: SECRETS }, (_, i) => [`s${i}`, `value-${i}`])),
});
try {
  // The sidecar's own environment for this world: its vault, authority, token file.
  const env = world.env({ files: rawFiles(1) });
  const tokenUrl = `${world.aad.url}/${TENANT_ID}/oauth2/v2.0/token`;
  const pin = choosePinning().child;
  const once = (flags: readonly string[], sockets: number): Promise<[number, number]> => {
    const argv = [
      ...pin,
      process.execPath,
      ...flags,
      "-e",
      CLIENT,
      world.vault.url,
      tokenUrl,
      CLIENT_ID,
      world.tokenFile,
      String(SECRETS),
      String(sockets),
    ];
    const [file = "", ...rest] = argv;
    const child = spawn(file, rest, {
      env: { PATH: process.env.PATH ?? "", NODE_EXTRA_CA_CERTS: world.caFile, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    return new Promise((resolve, reject) =>
      child.on("exit", (code) => {
        const [wall, cpu] = out.trim().split(" ").map(Number);
        if (code !== 0 || wall === undefined || cpu === undefined)
          reject(new Error(`exit ${code}`));
        else resolve([wall, cpu]);
      }),
    );
  };
  console.log(`${SECRETS - 1} reads after the first, plain https, ${RUNS} runs each (medians)`);
  console.log("| node flags | sockets | wall ms | client CPU ms | CPU per read ms |");
  console.log("|---|---|---|---|---|");
  for (const flags of FLAGS) {
    for (const sockets of SOCKETS) {
      const walls: number[] = [];
      const cpuTimes: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const [wall, cpu] = await once(flags, sockets);
        walls.push(wall);
        cpuTimes.push(cpu);
      }
      const cpu = median(cpuTimes);
      console.log(
        `| ${flags.join(" ") || "(none)"} | ${sockets} | ${median(walls).toFixed(1)} | ${cpu.toFixed(1)} | ${(cpu / (SECRETS - 1)).toFixed(2)} |`,
      );
    }
  }
} finally {
  await world.close();
}
