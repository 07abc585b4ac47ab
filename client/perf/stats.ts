/**
 * Client-side numbers, computed the way perf_analyzer computes them: a
 * window counts the requests that ended inside it; throughput is successful
 * requests times the batch size over the window; percentiles pick the
 * sorted sample at round(p/100 * (n-1)); a load level is stable when the
 * last 3 windows' throughput and latency each have max/min within
 * 1 + stability-percentage/100.
 */
import type { RequestRecord } from './load.ts';

/** The percentiles always reported; --percentile adds one. */
export const REPORTED_PERCENTILES: readonly number[] = [50, 90, 95, 99];

/** The percentiles reported for a run: the fixed ones plus --percentile, ascending. */
export function reportedPercentiles(extraPercentile: number | undefined): number[] {
  return [...new Set([...REPORTED_PERCENTILES, ...(extraPercentile === undefined ? [] : [extraPercentile])])].sort((a, b) => a - b);
}

/** Consecutive windows that must agree before a level counts as stable. */
export const STABILITY_WINDOW = 3;

export interface ClientWindow {
  readonly durationNs: number;
  /** Successful requests. */
  readonly requestCount: number;
  readonly errorCount: number;
  /** Failed requests by server message, in first-seen order. */
  readonly errors: ReadonlyMap<string, number>;
  readonly sequenceCount: number;
  readonly delayedCount: number;
  /** Latencies of successful requests, sorted ascending. */
  readonly latenciesNs: readonly number[];
}

export function summarizeWindow(records: readonly RequestRecord[], startNs: bigint, endNs: bigint): ClientWindow {
  const latencies: number[] = [];
  const errors = new Map<string, number>();
  let errorCount = 0;
  let sequenceCount = 0;
  let delayedCount = 0;
  for (const record of records) {
    if (record.delayed) delayedCount++;
    if (record.ok) {
      latencies.push(Number(record.endNs - record.startNs));
      if (record.sequenceEnd) sequenceCount++;
    } else {
      errorCount++;
      const message = record.error ?? 'unknown error';
      errors.set(message, (errors.get(message) ?? 0) + 1);
    }
  }
  latencies.sort((a, b) => a - b);
  return {
    durationNs: Number(endNs - startNs),
    requestCount: latencies.length,
    errorCount,
    errors,
    sequenceCount,
    delayedCount,
    latenciesNs: latencies,
  };
}

/** Several windows as one: counts and durations add, samples pool. */
export function mergeWindows(windows: readonly ClientWindow[]): ClientWindow {
  const errors = new Map<string, number>();
  for (const window of windows) {
    for (const [message, count] of window.errors) errors.set(message, (errors.get(message) ?? 0) + count);
  }
  const sum = (pick: (w: ClientWindow) => number): number => windows.reduce((n, w) => n + pick(w), 0);
  return {
    durationNs: sum((w) => w.durationNs),
    requestCount: sum((w) => w.requestCount),
    errorCount: sum((w) => w.errorCount),
    errors,
    sequenceCount: sum((w) => w.sequenceCount),
    delayedCount: sum((w) => w.delayedCount),
    latenciesNs: windows.flatMap((w) => w.latenciesNs).sort((a, b) => a - b),
  };
}

/** perf_analyzer's pick: the sample at index round(p/100 * (n-1)) of the sorted latencies. */
export function percentileOf(sortedNs: readonly number[], percentile: number): number {
  if (sortedNs.length === 0) throw new RangeError('no samples');
  const index = Math.floor((percentile / 100) * (sortedNs.length - 1) + 0.5);
  return sortedNs[Math.min(index, sortedNs.length - 1)] as number;
}

export interface LatencySummary {
  readonly avgNs: number;
  readonly stdNs: number;
  /** Percentile -> latency in ns, ascending by percentile. */
  readonly percentilesNs: ReadonlyMap<number, number>;
}

export function summarizeLatency(sortedNs: readonly number[], extraPercentile: number | undefined): LatencySummary | undefined {
  if (sortedNs.length === 0) return undefined;
  let total = 0;
  for (const latency of sortedNs) total += latency;
  const avgNs = total / sortedNs.length;
  let squares = 0;
  for (const latency of sortedNs) squares += (latency - avgNs) ** 2;
  const wanted = reportedPercentiles(extraPercentile);
  return {
    avgNs,
    stdNs: Math.sqrt(squares / sortedNs.length),
    percentilesNs: new Map(wanted.map((p) => [p, percentileOf(sortedNs, p)])),
  };
}

export function inferPerSec(window: ClientWindow, batchSize: number): number {
  return window.durationNs > 0 ? (window.requestCount * batchSize * 1e9) / window.durationNs : 0;
}

export function sequencesPerSec(window: ClientWindow): number {
  return window.durationNs > 0 ? (window.sequenceCount * 1e9) / window.durationNs : 0;
}

/** The latency a level stabilises on: the chosen percentile, or the average. */
export function stabilizingLatencyNs(latency: LatencySummary | undefined, percentile: number | undefined): number | undefined {
  if (latency === undefined) return undefined;
  return percentile === undefined ? latency.avgNs : latency.percentilesNs.get(percentile);
}

export interface TrialPoint {
  readonly inferPerSec: number;
  /** undefined when the window completed no request. */
  readonly latencyNs: number | undefined;
}

/**
 * perf_analyzer's rule over the last 3 trials: none may have zero
 * throughput, and max/min of throughput and of latency must each be at
 * most 1 + stabilityPercentage/100.
 */
export function isStable(trials: readonly TrialPoint[], stabilityPercentage: number): boolean {
  if (trials.length < STABILITY_WINDOW) return false;
  const recent = trials.slice(-STABILITY_WINDOW);
  if (recent.some((t) => t.inferPerSec <= 0 || t.latencyNs === undefined || t.latencyNs <= 0)) return false;
  const limit = 1 + stabilityPercentage / 100;
  const within = (values: number[]): boolean => Math.max(...values) / Math.min(...values) <= limit;
  return within(recent.map((t) => t.inferPerSec)) && within(recent.map((t) => t.latencyNs as number));
}
