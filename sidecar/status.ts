/**
 * The status file's content (`..status.json`, docs/sidecar.md "The status
 * file"): when the files were last synced, which Key Vault versions each file
 * came from, the last error and how many syncs in a row have failed since the
 * last good one. So an app, or `kubectl exec … cat`, can tell whether rotation
 * works without reading the sidecar's logs.
 *
 * Pure: the sync loop keeps a {@link SyncStatus} and hands the encoded bytes
 * to the atomic writer, which publishes them with the files. It holds names,
 * versions, codes and the messages the log has (which never hold a value or a
 * token), never a secret's value.
 */
import type { AkvError } from "../common/errors.ts";
import { formatSecretRef, type SecretRef } from "../common/refs.ts";
import type { FileSpec } from "../common/spec.ts";

/** One Key Vault secret a file was made from. */
export interface SecretVersion {
  /** The secret's name. */
  readonly name: string;
  /** The version read (32 hex digits); for a pinned ref, the pinned one. */
  readonly version: string;
  /** The vault, for an object identifier of another vault than the pod's; absent otherwise. */
  readonly vault?: string;
  /** `certificate` or `key` for those objects; absent for a secret. */
  readonly kind?: string;
}

/** One published file and where its content came from. */
export interface FileStatus {
  /** The file name, as the app sees it under its mount path. */
  readonly name: string;
  /** Each secret of the file once, in the order the file uses them (one for a secret file). */
  readonly secrets: readonly SecretVersion[];
}

/** The last failure of a sync. */
export interface LastError {
  /** The stable code (docs/errors.md), e.g. `AKV_THROTTLED`. */
  readonly code: string;
  /** The message as the log line has it: names, statuses, advice; never a value. */
  readonly message: string;
  /** When it failed, RFC 3339 UTC. */
  readonly time: string;
}

/** The status file's JSON. */
export interface SyncStatus {
  /** Bumped only when a field changes meaning or goes away. */
  readonly schemaVersion: 1;
  /** The last sync that published (or confirmed) every file, RFC 3339 UTC. */
  readonly lastSuccessTime: string;
  /** The published files, in the spec's order. */
  readonly files: readonly FileStatus[];
  /** The most recent failed sync, also once a later one succeeded; null when none failed yet. */
  readonly lastError: LastError | null;
  /** Syncs failed since the last good one: 0 when the files are current. */
  readonly consecutiveFailures: number;
}

/** RFC 3339 UTC with milliseconds, as the log lines' `time`. */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * Each file's secrets and the versions read for them.
 * @param versions secret ref (`NAME` or `NAME/VERSION`) → version read.
 */
export function describeFiles(
  files: readonly FileSpec[],
  versions: ReadonlyMap<string, string>,
): FileStatus[] {
  return files.map((f) => {
    const refs: SecretRef[] =
      f.source.kind === "secret"
        ? [f.source.ref]
        : f.source.parts.flatMap((p) => ("secret" in p ? [p.secret] : []));
    const seen = new Set<string>();
    const secrets: SecretVersion[] = [];
    for (const ref of refs) {
      const key = formatSecretRef(ref);
      if (seen.has(key)) continue;
      seen.add(key);
      secrets.push({
        name: ref.name,
        version: versions.get(key) ?? ref.version ?? "",
        ...(ref.vaultUrl === undefined ? {} : { vault: ref.vaultUrl }),
        ...(ref.kind === undefined || ref.kind === "secret" ? {} : { kind: ref.kind }),
      });
    }
    return { name: f.file, secrets };
  });
}

/** A failure as the status shows it. */
export function describeError(error: AkvError, now: number): LastError {
  return { code: error.code, message: error.message, time: formatTime(now) };
}

/**
 * The status after a sync that published (or confirmed) `files` at `now`.
 * @param lastError the most recent failure, kept so that a retry that
 *   succeeded still shows what went wrong before it.
 */
export function statusAfterSuccess(
  files: readonly FileStatus[],
  now: number,
  lastError: LastError | null,
): SyncStatus {
  return {
    schemaVersion: 1,
    lastSuccessTime: formatTime(now),
    files,
    lastError,
    consecutiveFailures: 0,
  };
}

/** The status after a failed sync: the files (and their versions) as they were, the failure counted. */
export function statusAfterFailure(previous: SyncStatus, lastError: LastError): SyncStatus {
  return { ...previous, lastError, consecutiveFailures: previous.consecutiveFailures + 1 };
}

/** The file's bytes: indented JSON and a final newline, for `cat`. */
export function encodeStatus(status: SyncStatus): Uint8Array {
  return Buffer.from(`${JSON.stringify(status, null, 2)}\n`);
}

/**
 * The files whose Key Vault versions differ between two published sets (new
 * files included); with versions fixed by the spec, a file's content changes
 * only with them. Every file when nothing tells them apart (the set was
 * published by an earlier run of the sidecar, whose versions this one never saw).
 */
export function changedFiles(
  before: readonly FileStatus[] | undefined,
  after: readonly FileStatus[],
): string[] {
  const key = (f: FileStatus): string => JSON.stringify(f.secrets.map((s) => [s.name, s.version]));
  const old = new Map((before ?? []).map((f) => [f.name, key(f)]));
  const changed = after.filter((f) => old.get(f.name) !== key(f)).map((f) => f.name);
  return (changed.length > 0 ? changed : after.map((f) => f.name)).sort();
}
