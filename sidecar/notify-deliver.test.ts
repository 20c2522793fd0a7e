import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createDeliver,
  findMainProcesses,
  postNotification,
  signalContainer,
} from "./notify-deliver.ts";

const change = { files: ["db", "tls.key"], syncTime: Date.UTC(2026, 10, 30, 12, 0, 0) };

describe("postNotification", () => {
  let server: Server;
  let base: string;
  let answer: (req: IncomingMessage, body: string) => { status: number; headers?: object };
  const seen: {
    method: string | undefined;
    url: string | undefined;
    type: string | undefined;
    body: string;
  }[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        seen.push({
          method: req.method,
          url: req.url,
          type: req.headers["content-type"],
          body,
        });
        const a = answer(req, body);
        if (a.status === 0) return; // never answers
        res.writeHead(a.status, { ...a.headers });
        res.end("ok");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(() => {
    seen.length = 0;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it("POSTs the changed files and the sync time as JSON, never a value; 2xx is success", async () => {
    answer = () => ({ status: 204 });
    await expect(
      postNotification(`${base}/-/reload?x=1`, change, AbortSignal.timeout(5000)),
    ).resolves.toBe("HTTP 204");
    expect(seen).toEqual([
      {
        method: "POST",
        url: "/-/reload?x=1",
        type: "application/json",
        body: '{"files":["db","tls.key"],"syncTime":"2026-11-30T12:00:00.000Z"}',
      },
    ]);
  });

  it("fails on a status other than 2xx, and does not follow a redirect", async () => {
    answer = () => ({ status: 500 });
    await expect(postNotification(`${base}/r`, change, AbortSignal.timeout(5000))).rejects.toThrow(
      `HTTP 500 from ${base}/r`,
    );
    answer = () => ({ status: 307, headers: { location: "http://169.254.169.254/" } });
    await expect(postNotification(`${base}/r`, change, AbortSignal.timeout(5000))).rejects.toThrow(
      `HTTP 307 from ${base}/r`,
    );
    expect(seen).toHaveLength(2);
  });

  it("fails when nothing listens, and when no answer comes in time", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    await expect(
      postNotification(`http://127.0.0.1:${port}/r`, change, AbortSignal.timeout(5000)),
    ).rejects.toThrow(`POST http://127.0.0.1:${port}/r: ECONNREFUSED`);
    answer = () => ({ status: 0 });
    const started = Date.now();
    await expect(postNotification(`${base}/r`, change, AbortSignal.timeout(200))).rejects.toThrow(
      `POST ${base}/r: no answer in time`,
    );
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe("findMainProcesses and signalContainer, against a fake /proc", () => {
  let proc: string;
  const add = (pid: number, ppid: number, env: string[] | "unreadable"): void => {
    const dir = join(proc, String(pid));
    mkdirSync(dir);
    writeFileSync(
      join(dir, "status"),
      `Name:\tx\nState:\tS (sleeping)\nPPid:\t${ppid}\nUid:\t1000\n`,
    );
    if (env !== "unreadable") writeFileSync(join(dir, "environ"), `${env.join("\0")}\0`);
  };

  beforeAll(() => {
    proc = mkdtempSync(join(tmpdir(), "akv-proc-"));
    add(1, 0, ["AKV_INJECTOR_CONTAINER=app"]); // pause: never
    add(7, 0, ["PATH=/bin", "AKV_INJECTOR_CONTAINER=app", "HOME=/"]); // app's main process
    add(8, 7, ["AKV_INJECTOR_CONTAINER=app"]); // its child: not the main process
    add(9, 0, ["AKV_INJECTOR_CONTAINER=application"]); // another container, a longer name
    add(10, 0, ["AKV_INJECTOR_CONTAINER=app"]); // the sidecar itself (selfPid)
    add(11, 0, "unreadable"); // another user's, or gone
    add(12, 0, ["X_AKV_INJECTOR_CONTAINER=app"]); // not the marker
    mkdirSync(join(proc, "self"));
    writeFileSync(join(proc, "uptime"), "1 1");
  });
  afterAll(() => {
    rmSync(proc, { recursive: true, force: true });
  });

  it("finds the process with PPid 0 and the marker, not pid 1, not itself, not a child", () => {
    expect(findMainProcesses(proc, "app", 10)).toEqual([7]);
    expect(findMainProcesses(proc, "application", 10)).toEqual([9]);
    expect(findMainProcesses(proc, "web", 10)).toEqual([]);
  });

  it("signals what it found, and says why when there is nothing or the kill fails", () => {
    const killed: [number, string][] = [];
    const deps = {
      procDir: proc,
      selfPid: 10,
      kill: (pid: number, s: NodeJS.Signals) => killed.push([pid, s]),
    };
    expect(signalContainer("app", "SIGHUP", deps)).toBe("SIGHUP to pid 7");
    expect(killed).toEqual([[7, "SIGHUP"]]);
    expect(() => signalContainer("web", "SIGHUP", deps)).toThrow(
      `no main process of container web found in ${proc} (PPid 0 with AKV_INJECTOR_CONTAINER=web)`,
    );
    const eperm = {
      ...deps,
      kill: () => {
        throw Object.assign(new Error("kill EPERM"), { code: "EPERM" });
      },
    };
    expect(() => signalContainer("app", "SIGUSR1", eperm)).toThrow(
      "SIGUSR1 to pid 7 of container app: EPERM",
    );
  });

  it("createDeliver sends a signal target as a signal, and rejects rather than throws", async () => {
    const killed: number[] = [];
    const deliver = createDeliver({ procDir: proc, selfPid: 10, kill: (pid) => killed.push(pid) });
    const signal = AbortSignal.timeout(1000);
    await expect(
      deliver({ container: "app", action: { kind: "signal", signal: "SIGTERM" } }, change, signal),
    ).resolves.toBe("SIGTERM to pid 7");
    await expect(
      deliver({ container: "web", action: { kind: "signal", signal: "SIGTERM" } }, change, signal),
    ).rejects.toThrow("no main process of container web");
    expect(killed).toEqual([7]);
  });
});
