/** Latency samples of one measured window, and their summary. */

export interface LatencySummary {
  readonly count: number;
  /** Milliseconds. */
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
  readonly max: number;
}

/** Nearest-rank percentile of an ascending sorted array. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** Collects latencies in a growing Float64Array: a plain number[] of millions of entries is slower to sort. */
export class LatencyRecorder {
  private samples = new Float64Array(1 << 16);
  private count = 0;

  record(ms: number): void {
    if (this.count === this.samples.length) {
      const grown = new Float64Array(this.samples.length * 2);
      grown.set(this.samples);
      this.samples = grown;
    }
    this.samples[this.count++] = ms;
  }

  summary(): LatencySummary {
    const count = this.count;
    const sorted = this.samples.subarray(0, count).sort();
    let sum = 0;
    for (const v of sorted) sum += v;
    return {
      count,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      mean: count > 0 ? sum / count : Number.NaN,
      max: count > 0 ? sorted[count - 1]! : Number.NaN,
    };
  }
}

/** Milliseconds on a monotonic clock. */
export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;
