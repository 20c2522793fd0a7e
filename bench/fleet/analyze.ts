/** Pure arithmetic of the fleet bench: counter series, windows, percentiles. */

/** Cumulative counters sampled at a time (ms since the epoch). */
export interface Sample {
  readonly at: number;
  readonly kv: number;
  readonly kvThrottled: number;
  readonly tokens: number;
  readonly tokensThrottled: number;
}

/** The counter `key` at the last sample at or before `at` (the first sample before any). */
export function valueAt(samples: readonly Sample[], at: number, key: keyof Sample): number {
  let value = samples[0]?.[key] ?? 0;
  for (const s of samples) {
    if (s.at > at) break;
    value = s[key];
  }
  return value;
}

/** How much `key` grew between two times. */
export function growth(
  samples: readonly Sample[],
  from: number,
  to: number,
  key: keyof Sample,
): number {
  return valueAt(samples, to, key) - valueAt(samples, from, key);
}

/**
 * The largest growth of `key` over any `windowMs` between `from` and `to`,
 * at the samples' resolution.
 */
export function peakOver(
  samples: readonly Sample[],
  windowMs: number,
  key: keyof Sample,
  from = -Infinity,
  to = Infinity,
): number {
  let peak = 0;
  // Whole windows only: one that started before `from` would count what came before.
  const inRange = samples.filter((s) => s.at - windowMs >= from && s.at <= to);
  for (const s of inRange) {
    peak = Math.max(peak, growth(samples, s.at - windowMs, s.at, key));
  }
  return peak;
}

/** The p-th percentile (0–100) by nearest rank; NaN when empty. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1] ?? Number.NaN;
}
