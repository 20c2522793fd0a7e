/**
 * Notifications through the whole sidecar in this process (`runSidecar`,
 * real SDKs against the mocks): the first sync tells nobody, a rotation
 * makes exactly one POST to the app's loopback URL, and a refresh that
 * changes nothing makes none.
 */
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SidecarEnv } from "../common/names.ts";
import type { SyncSpec } from "../common/spec.ts";
import { trustCaInThisProcess } from "../mocks/tls.ts";
import {
  rawFiles,
  readSet,
  startMockWorld,
  type MockWorld,
  waitFor,
} from "../testing/sidecar-world.ts";
import { runSidecar } from "./app.ts";

let world: MockWorld;
let app: Server;
let appUrl: string;
const posts: { body: unknown; at: number }[] = [];

beforeAll(async () => {
  world = await startMockWorld();
  trustCaInThisProcess(world.caPem);
  app = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      posts.push({ body: JSON.parse(body), at: Date.now() });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
  appUrl = `http://localhost:${(app.address() as AddressInfo).port}/-/reload`;
}, 60_000);

afterAll(async () => {
  await new Promise((r) => app.close(r));
  await world.close();
});

describe("notify-<container> over HTTP, in process", () => {
  it("sends nothing for the first sync or an unchanged refresh, and one POST per rotation", async () => {
    world.vault.setSecret("n0", "notify-value-0");
    world.vault.setSecret("n1", "notify-value-1");
    let log = "";
    const sink = new Writable({
      write(c: Buffer, _e, cb) {
        log += c.toString();
        cb();
      },
    });
    const env: Record<string, string> = {
      ...world.env({ files: rawFiles(2, "n"), mode: "sidecar", refreshIntervalMs: 1000 }),
      [SidecarEnv.notify]: JSON.stringify([{ container: "app", target: appUrl }]),
    };
    const dir = (JSON.parse(env[SidecarEnv.spec] ?? "{}") as SyncSpec).outputDir;
    const stop = new AbortController();
    const running = runSidecar({
      env,
      signal: stop.signal,
      logDestination: sink,
      notifyTuning: { debounceMs: 200 },
    });
    await waitFor(() => (existsSync(join(dir, "..data")) ? true : undefined));
    // Two refreshes (1 s apart) that change nothing, and the debounce after each.
    await waitFor(() => ((log.match(/"event":"refreshed"/g) ?? []).length >= 2 ? true : undefined));
    await new Promise((r) => setTimeout(r, 400));
    expect(posts).toEqual([]);

    world.vault.setSecret("n1", "notify-value-1-rotated");
    await waitFor(() => (posts.length > 0 ? true : undefined), 10_000);
    expect((await readSet(dir)).n1).toBe("notify-value-1-rotated");
    // Two more refreshes that change nothing: still one POST.
    const refreshed = (log.match(/"event":"refreshed"/g) ?? []).length;
    await waitFor(() =>
      (log.match(/"event":"refreshed"/g) ?? []).length >= refreshed + 2 ? true : undefined,
    );
    await new Promise((r) => setTimeout(r, 400));
    stop.abort();
    await running;
    expect(posts).toHaveLength(1);
    const body = posts[0]?.body as { files: string[]; syncTime: string };
    expect(body.files).toEqual(["n1"]);
    expect(Date.now() - Date.parse(body.syncTime)).toBeLessThan(30_000);
    expect(JSON.stringify(body)).not.toContain("notify-value");
    expect(log).toContain('"event":"notify"');
    expect(log).toContain('"result":"success"');
    expect(log).not.toContain("notify-value");
  }, 40_000);
});
