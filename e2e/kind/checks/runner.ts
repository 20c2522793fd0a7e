/**
 * How the kind checks run and report: one line per check (`ok` or `FAIL`
 * with what differed), a closing `N passed, N failed` line, and the shared
 * state every group of checks works with.
 */
import type { ObjectSeed, ScenarioContext } from "../../scenarios.ts";
import type { Admin } from "./kubectl.ts";

/** Runs one named check. */
export type Check = (name: string, body: () => Promise<void>) => Promise<void>;

/** Counts and prints checks as they run. */
export class CheckRunner {
  passed = 0;
  failed = 0;

  /** Only checks whose name holds this text run (AKV_KIND_ONLY, to look at one again on a kept cluster). */
  private readonly only: string | undefined;

  constructor(only?: string) {
    this.only = only;
  }

  readonly check: Check = async (name, body) => {
    if (this.only !== undefined && !name.includes(this.only)) return;
    const started = Date.now();
    try {
      await body();
      this.passed++;
      process.stdout.write(`ok   ${name} (${seconds(started)})\n`);
    } catch (error) {
      this.failed++;
      const message = error instanceof Error ? error.message : String(error);
      process.stdout.write(`FAIL ${name} (${seconds(started)}): ${message}\n`);
    }
  };

  /** The closing line that CI reads. */
  summary(): string {
    return `${String(this.passed)} passed, ${String(this.failed)} failed`;
  }
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}

/** How the checks reinstall the chart (helm uninstall/upgrade checks). */
export interface HelmRelease {
  readonly helm: string;
  readonly chart: string;
  readonly valuesFile: string;
  readonly release: string;
  readonly namespace: string;
  readonly kubeContext: string;
}

/** What every group of checks shares. */
export interface KindKit {
  readonly ctx: ScenarioContext;
  /** The workload namespace, made afresh by each run. */
  readonly namespace: string;
  readonly aad: Admin;
  readonly vault: Admin;
  readonly release: HelmRelease;
  /** Puts a secret in the mock vault and remembers its value for the log scan. */
  setSecret(name: string, value: string, contentType?: string): Promise<void>;
  /** Puts a certificate or key in the mock vault (the admin API's `certificates` and `keys`). */
  setObject(seed: ObjectSeed): Promise<void>;
  /** Every secret value set so far. */
  readonly values: readonly string[];
}
