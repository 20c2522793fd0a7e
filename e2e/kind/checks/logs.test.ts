/**
 * The kind log-format check's judgement, without a cluster: lines as the
 * images write them pass; pino's old numeric level and epoch time, a local
 * time, or no line at all fail.
 */
import { describe, expect, it } from "vitest";
import { Injected } from "../../../common/names.ts";
import { Kind } from "../setup.ts";
import { findOffFormatLines } from "./logs.ts";

const NOW = Date.parse("2026-11-30T20:32:11.092Z");
const webhook = `${Kind.releaseNamespace}/akv-injector-7c9d-x1/webhook`;
const sidecar = `team-a/api-5f6b-q2/${Injected.containerName}`;

function line(fields: Record<string, unknown>): string {
  return JSON.stringify({ pid: 1, hostname: "h", name: "n", msg: "m", ...fields });
}
const good = line({ level: "info", time: "2026-11-30T20:32:10.001Z" });

describe("findOffFormatLines", () => {
  it("passes level names and RFC 3339 UTC times, skipping other containers and non-JSON lines", () => {
    const logs = new Map([
      [webhook, `${good}\n(node:1) ExperimentalWarning: something\n`],
      [sidecar, `${line({ level: "warn", time: "2026-11-30T20:32:11.092Z" })}\n`],
      [`team-a/api-5f6b-q2/app`, `{"level":30,"time":1}\n`],
    ]);
    expect(findOffFormatLines(logs, NOW)).toEqual([]);
  });

  it.each([
    ["a numeric level", { level: 30, time: "2026-11-30T20:32:10.001Z" }, /level 30/],
    ["an epoch time", { level: "info", time: NOW }, /time 1796/],
    ["a local time", { level: "info", time: "2026-11-30T21:32:10.001+01:00" }, /time/],
    ["no milliseconds", { level: "info", time: "2026-11-30T20:32:10Z" }, /time/],
    ["an impossible date", { level: "info", time: "2026-02-30T20:32:10.001Z" }, /time/],
    ["no date at all", { level: "info", time: "2026-13-01T20:32:10.001Z" }, /time/],
    ["no time", { level: "info" }, /time undefined/],
    ["a time in the future", { level: "info", time: "2026-11-30T20:40:00.000Z" }, /time/],
  ])("fails %s", (_name, fields, message) => {
    const logs = new Map([
      [webhook, good],
      [sidecar, line(fields)],
    ]);
    const problems = findOffFormatLines(logs, NOW);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${sidecar}:1: `));
    expect(problems[0]).toMatch(message);
  });

  it("fails when the webhook or the sidecars wrote no JSON line", () => {
    expect(findOffFormatLines(new Map([[webhook, good]]), NOW)).toEqual([
      "no JSON log line of the sidecar to check",
    ]);
    expect(findOffFormatLines(new Map([[sidecar, good]]), NOW)).toEqual([
      "no JSON log line of the webhook to check",
    ]);
  });
});
