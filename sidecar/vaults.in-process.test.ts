/**
 * Several vaults per pod (object identifiers), in process with the real SDKs
 * against mock vaults over real HTTPS: files from each vault, one token for
 * all of them, Key Vault requests N + 1 per cold sync per vault and N per
 * refresh, and a refusal that names the vault it came from.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, isAkvError } from "../common/errors.ts";
import { SidecarEnv } from "../common/names.ts";
import type { FileSpec, SyncSpec } from "../common/spec.ts";
import type { MockKeyVault } from "../mocks/index.ts";
import { trustCaInThisProcess } from "../mocks/tls.ts";
import {
  readSet,
  readStatus,
  startMockWorld,
  type MockWorld,
  waitFor,
} from "../testing/sidecar-world.ts";
import { runSidecar } from "./app.ts";

let world: MockWorld;
let second: MockKeyVault;

const devNull = (): Writable =>
  new Writable({
    write(_c, _e, cb) {
      cb();
    },
  });
const outputDirOf = (env: Record<string, string>): string =>
  (JSON.parse(env[SidecarEnv.spec] ?? "{}") as SyncSpec).outputDir;
const plain = (name: string): FileSpec => ({
  file: name,
  format: "raw",
  source: { kind: "secret", ref: { name } },
});
const identified = (vault: MockKeyVault, name: string, file = name): FileSpec => ({
  file,
  format: "raw",
  source: { kind: "secret", ref: { name, vaultUrl: vault.url, kind: "secret" } },
});

beforeAll(async () => {
  world = await startMockWorld();
  trustCaInThisProcess(world.caPem);
  second = await world.startVault();
}, 60_000);

afterAll(async () => {
  await world.close();
});

describe("several vaults per pod", () => {
  it("reads each vault's files with one token: N + 1 requests per vault cold, N per refresh", async () => {
    for (const n of ["a0", "a1", "a2"]) world.vault.setSecret(n, `first-${n}`);
    for (const n of ["b0", "b1"]) second.setSecret(n, `second-${n}`);
    // Same name in both vaults: the identifier's file gets the second vault's value.
    second.setSecret("a0", "second-a0");
    world.vault.resetCounters();
    second.resetCounters();
    world.aad.resetCounters();
    const stop = new AbortController();
    const env = world.env({
      files: [
        plain("a0"),
        plain("a1"),
        plain("a2"),
        identified(second, "b0"),
        identified(second, "b1"),
        identified(second, "a0", "a0-from-second"),
      ],
      mode: "sidecar",
      refreshIntervalMs: 1000,
    });
    const dir = outputDirOf(env);
    const running = runSidecar({ env, signal: stop.signal, logDestination: devNull() });
    await waitFor(() => (existsSync(join(dir, "..data")) ? true : undefined));
    expect(await readSet(dir)).toEqual({
      a0: "first-a0",
      a1: "first-a1",
      a2: "first-a2",
      b0: "second-b0",
      b1: "second-b1",
      "a0-from-second": "second-a0",
    });
    expect(world.vault.counters()).toMatchObject({ total: 4, challenges: 1, authenticated: 3 });
    expect(second.counters()).toMatchObject({ total: 4, challenges: 1, authenticated: 3 });
    // Both vaults share the token's scope: one exchange serves both.
    expect(world.aad.counters().tokenRequests).toBe(1);
    // The status names each object's vault when it is not the pod's.
    const status = await readStatus(dir);
    expect(status.files.find((f) => f.name === "b0")?.secrets[0]).toMatchObject({
      name: "b0",
      vault: second.url,
    });
    expect(status.files.find((f) => f.name === "a0")?.secrets[0]).not.toHaveProperty("vault");

    await waitFor(() => (second.counters().total >= 7 ? true : undefined), 10_000);
    stop.abort();
    await running;
    const refreshes = (second.counters().total - 4) / 3;
    expect(Number.isInteger(refreshes) && refreshes >= 1).toBe(true);
    expect(world.vault.counters()).toMatchObject({ total: 4 + 3 * refreshes, challenges: 1 });
    expect(second.counters()).toMatchObject({ challenges: 1 });
    expect(world.aad.counters().tokenRequests).toBe(1);
  }, 30_000);

  it("needs no pod vault when every ref names its vault", async () => {
    second.setSecret("only", "only-value");
    const spec = JSON.parse(
      world.env({ files: [identified(second, "only")] })[SidecarEnv.spec] ?? "{}",
    ) as Record<string, unknown>;
    delete spec.vaultUrl;
    const env = { ...world.env({ files: [] }), [SidecarEnv.spec]: JSON.stringify(spec) };
    await runSidecar({ env, signal: new AbortController().signal, logDestination: devNull() });
    expect(await readSet(spec.outputDir as string)).toEqual({ only: "only-value" });
  });

  it("a refusal by the second vault names that vault and the identifier", async () => {
    const third = await world.startVault({ roles: [] });
    third.setSecret("locked", "x");
    const env = world.env({ files: [plain("a1"), identified(third, "locked")], mode: "init" });
    const error = await runSidecar({
      env,
      signal: new AbortController().signal,
      logDestination: devNull(),
    }).catch((e: unknown) => e);
    expect(isAkvError(error, ErrorCode.SECRET_FORBIDDEN)).toBe(true);
    expect((error as Error).message).toContain(`secret '${third.url}/secrets/locked'`);
    expect((error as Error).message).toContain(
      `grant 'Key Vault Secrets User' on vault ${third.url}`,
    );
  });

  it("refuses a spec whose identifier names a vault outside the allowed suffixes", async () => {
    const env = world.env({
      files: [
        {
          file: "x",
          format: "raw",
          source: {
            kind: "secret",
            ref: { name: "x", vaultUrl: "https://evil.example.com", kind: "secret" },
          },
        },
      ],
    });
    const error = await runSidecar({
      env,
      signal: new AbortController().signal,
      logDestination: devNull(),
    }).catch((e: unknown) => e);
    expect(isAkvError(error, ErrorCode.SIDECAR_CONFIG_INVALID)).toBe(true);
    expect((error as Error).message).toContain("not https://evil.example.com");
  });
});
