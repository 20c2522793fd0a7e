/**
 * Startup and readiness probes, run as the kubelet runs them (exec, httpGet,
 * tcpSocket; period, timeout, threshold): the sidecar's startup probe is what
 * holds the app back until the first sync, so the suite must gate containers
 * on it exactly as a node would. A startup probe that keeps failing fails the
 * pod here instead of restarting the container: a test wants to know.
 */
import type { V1Container, V1Probe } from "@kubernetes/client-node";
import { get as httpGet } from "node:http";
import { get as httpsGet } from "node:https";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { describeExit, logTail, type ManagedProcess } from "../host/processes.ts";
import { KubeletError, type ExecResult, type KubeletOptions, type RunOptions } from "./api.ts";

/** A running container as its probes see it. */
export interface ProbedContainer {
  /** `<namespace>/<pod>`, for messages. */
  readonly pod: string;
  readonly spec: V1Container;
  readonly process: ManagedProcess;
  /** Runs a command in the container, image paths mapped to this machine (exec probes). */
  exec(argv: readonly string[], timeoutMs: number): Promise<ExecResult>;
}

/** How long the kubelet's caller lets probes take. */
export type ProbeLimits = Pick<KubeletOptions, "readyTimeoutMs"> & RunOptions;

export type ProbeKind = "startup" | "readiness";

/**
 * Probes until one attempt passes. A startup probe that fails
 * `failureThreshold` times in a row fails the pod here (the kubelet would
 * restart the container; a test wants to know). A readiness probe is
 * retried until `readyTimeoutMs`.
 */
export async function probeUntilPassed(
  container: ProbedContainer,
  probe: V1Probe,
  kind: ProbeKind,
  limits: ProbeLimits,
): Promise<void> {
  const proc = container.process;
  const period = (probe.periodSeconds ?? 10) * 1000;
  const threshold = failureThreshold(probe, kind, period, limits);
  const timeout = (probe.timeoutSeconds ?? 1) * 1000;
  await Promise.race([sleep((probe.initialDelaySeconds ?? 0) * 1000), proc.exited]);
  let last = "";
  for (let failures = 0; failures < threshold; failures++) {
    if (proc.exit() !== undefined) break;
    const outcome = await probeOnce(container, probe, timeout);
    if (outcome === true) return;
    last = outcome;
    await Promise.race([sleep(period), proc.exited]);
  }
  const exit = proc.exit();
  throw new KubeletError(
    `${container.pod}: ${container.spec.name} did not become ${kind === "startup" ? "started" : "ready"}: ` +
      (exit === undefined
        ? `${kind} probe failed ${threshold} times (last: ${last})`
        : `it exited (${describeExit(exit)})`) +
      `\n${await logTail(proc)}`,
  );
}

/** How many failed attempts give up: the probe's own for startup (capped by `startupTimeoutMs`), `readyTimeoutMs` worth for readiness. */
function failureThreshold(
  probe: V1Probe,
  kind: ProbeKind,
  periodMs: number,
  limits: ProbeLimits,
): number {
  if (kind === "readiness") return Math.ceil((limits.readyTimeoutMs ?? 60_000) / periodMs);
  const cap = limits.startupTimeoutMs;
  return Math.min(
    probe.failureThreshold ?? 3,
    cap === undefined ? Infinity : Math.ceil(cap / periodMs),
  );
}

/** One probe attempt: true, or why not. */
async function probeOnce(
  container: ProbedContainer,
  probe: V1Probe,
  timeoutMs: number,
): Promise<true | string> {
  if (probe.exec?.command !== undefined) {
    const result = await container.exec(probe.exec.command, timeoutMs);
    return result.code === 0 ? true : `exit ${result.code ?? "?"} ${result.stderr.trim()}`;
  }
  const target = probe.httpGet ?? probe.tcpSocket;
  if (target === undefined) return "no exec, httpGet or tcpSocket handler";
  const port = resolvePort(container.spec, target.port);
  if (port === undefined) return `unknown port ${String(target.port)}`;
  if (probe.tcpSocket !== undefined) return probeTcp(port, timeoutMs);
  const scheme = probe.httpGet?.scheme === "HTTPS" ? "https" : "http";
  const url = `${scheme}://127.0.0.1:${port}${probe.httpGet?.path ?? "/"}`;
  // The kubelet does not verify an HTTPS probe's certificate.
  const status = await probeHttp(url, timeoutMs);
  return typeof status === "number" && status >= 200 && status < 400
    ? true
    : `GET ${url}: ${String(status)}`;
}

/** A container port by number or by name. */
function resolvePort(container: V1Container, port: number | string): number | undefined {
  if (typeof port === "number") return port;
  if (/^[0-9]+$/.test(port)) return Number(port);
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

/** A tcpSocket probe: true once a connection opens, or why not. */
function probeTcp(port: number, timeoutMs: number): Promise<true | string> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, timeout: timeoutMs });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", (error) => {
      resolve(error.message);
    });
    socket.once("timeout", () => {
      socket.destroy();
      resolve("timeout");
    });
  });
}

/** GET for an httpGet probe: the status, or why there is none. */
function probeHttp(url: string, timeoutMs: number): Promise<number | string> {
  return new Promise((resolve) => {
    const get = url.startsWith("https:") ? httpsGet : httpGet;
    const req = get(url, { timeout: timeoutMs, rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once("timeout", () => req.destroy(new Error("timeout")));
    req.once("error", (error) => {
      resolve(error.message);
    });
  });
}
