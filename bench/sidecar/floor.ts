/**
 * CPU per secret read: the sidecar's SDK path against the floor under it.
 *
 * The floor is the same Key Vault reads with Node's `https.request` and
 * nothing else (no SDK, no MSAL); the SDK path is the sidecar's own
 * (`sdk-reads.ts`: its credential and Key Vault source, bundled with the
 * sidecar's esbuild options as the image ships them). Both run against the
 * same mocks on loopback HTTPS, in a child process pinned to the last CPU
 * (as `run.ts` pins the sidecar), each as a cold sidecar would: one token,
 * `s0` read (the connection the challenge opens), then the other 99 secrets
 * over C keep-alive sockets; each reports its own CPU time (user + sys,
 * `process.cpuUsage`) for those 99. Medians over the runs; the two clients'
 * runs interleaved, so both see the same load.
 *
 * Node flags: none, and the image's (`NODE_OPTIONS` of Dockerfile.sidecar,
 * read from the file), so the `--jitless` cost per read shows.
 *
 * Target (issue 13): the SDK path's CPU per read ≤ 1.3× the floor's.
 *
 * Run: `node bench/sidecar/floor.ts [runs] [--sockets 16,4,1]` (Node 24). Prints a table.
 */
import { spawn } from "node:child_process";
import { rawFiles, startMockWorld, CLIENT_ID, TENANT_ID } from "../../testing/sidecar-world.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";
import { sidecarBuildOptions } from "../../scripts/sidecar-bundle.ts";
import { median } from "../stats.ts";
import { choosePinning } from "./harness.ts";

const args = process.argv.slice(2);
const RUNS = Number(args.find((a) => /^\d+$/.test(a)) ?? 9);
const SECRETS = 100;
const root = new URL("../../", import.meta.url).pathname;
const imageFlags = (
  /^ENV NODE_OPTIONS="([^"]*)"/m.exec(
    readFileSync(join(root, "Dockerfile.sidecar"), "utf8"),
  )?.[1] ?? ""
)
  .split(/\s+/)
  .filter((w) => w !== "");
/** `--node-args "FLAGS"` (repeatable) replaces the default rows: none, and the image's. */
const extraFlags = args.flatMap((a, i) => (a === "--node-args" ? [args[i + 1] ?? ""] : []));
const FLAGS: readonly (readonly string[])[] =
  extraFlags.length > 0
    ? extraFlags.map((f) => f.split(/\s+/).filter((w) => w !== ""))
    : [[], imageFlags];
const socketsArg = args[args.indexOf("--sockets") + 1];
const SOCKETS = (args.includes("--sockets") && socketsArg !== undefined ? socketsArg : "16")
  .split(",")
  .map(Number);

/** The floor's child: plain https, one token, then the reads. Prints `wallMs cpuMs`. */
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
  const { child: pin, note: pinNote } = choosePinning();
  const sdkDir = join(root, "bench/out/sdk-reads");
  await build({
    ...sidecarBuildOptions(sdkDir, join(root, "bench/sidecar/sdk-reads.ts")),
    logLevel: "error",
  });
  const clients = {
    floor: ["-e", CLIENT, world.vault.url, tokenUrl, CLIENT_ID, world.tokenFile],
    sdk: [
      join(sdkDir, "sidecar.mjs"),
      world.vault.url,
      world.aad.url,
      TENANT_ID,
      CLIENT_ID,
      world.tokenFile,
    ],
  } as const;
  type Client = keyof typeof clients;
  const once = (
    client: Client,
    flags: readonly string[],
    sockets: number,
  ): Promise<[number, number]> => {
    const argv = [
      ...pin,
      process.execPath,
      ...flags,
      ...clients[client],
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
  console.log(`${SECRETS - 1} reads after the first, ${RUNS} runs each (medians), ${pinNote}`);
  console.log(
    "| node flags | sockets | client | 99 reads, wall ms | CPU ms | CPU per read ms | SDK ÷ floor |",
  );
  console.log("|---|---|---|---|---|---|---|");
  for (const flags of FLAGS) {
    for (const sockets of SOCKETS) {
      const runs: Record<Client, { wall: number[]; cpu: number[] }> = {
        floor: { wall: [], cpu: [] },
        sdk: { wall: [], cpu: [] },
      };
      for (let i = 0; i < RUNS + 1; i++) {
        for (const client of ["floor", "sdk"] as const) {
          const [wall, cpu] = await once(client, flags, sockets);
          // The first run of each warms the page cache and the mocks.
          if (i === 0) continue;
          runs[client].wall.push(wall);
          runs[client].cpu.push(cpu);
        }
      }
      const perRead = (c: Client): number => median(runs[c].cpu) / (SECRETS - 1);
      for (const client of ["floor", "sdk"] as const) {
        console.log(
          `| ${flags.join(" ") || "(none)"} | ${sockets} | ${client} | ${median(runs[client].wall).toFixed(1)} | ${median(runs[client].cpu).toFixed(1)} | ${perRead(client).toFixed(3)} | ${client === "sdk" ? `${(perRead("sdk") / perRead("floor")).toFixed(2)}×` : ""} |`,
        );
      }
    }
  }
} finally {
  await world.close();
}
