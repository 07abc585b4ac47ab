/**
 * Closed-loop load over any async call: `concurrency` workers each make their
 * next call as soon as the previous one settles. The HTTP load generator
 * runs on it; the ensemble benchmark calls it directly because its modes are
 * not one fixed HTTP request (a client chaining three requests, and
 * engine.infer called in-process). A call counts only if it both starts and
 * finishes inside the measured window.
 */
import { LatencyRecorder, nowMs } from './latencies.ts';
import type { LoadResult } from './load-generator.ts';

export interface CallLoopSpec {
  readonly concurrency: number;
  /** Load is applied but nothing is recorded for this long first. */
  readonly warmupMs: number;
  /** The measured window, right after the warmup. */
  readonly durationMs: number;
}

/** One request of the mode under test, on worker `index`; resolves with an error text, or undefined for a good answer. */
export type Call = (index: number) => Promise<string | undefined>;

export async function runCallLoop(spec: CallLoopSpec, call: Call): Promise<LoadResult> {
  const latencies = new LatencyRecorder();
  let errors = 0;
  let firstError: string | undefined;
  const start = nowMs();
  const windowStart = start + spec.warmupMs;
  const windowEnd = windowStart + spec.durationMs;

  const worker = async (index: number): Promise<void> => {
    for (;;) {
      const t0 = nowMs();
      if (t0 >= windowEnd) return;
      const error = await call(index).catch((err: unknown) => (err instanceof Error ? err.message : String(err)));
      const t1 = nowMs();
      if (t0 < windowStart || t1 > windowEnd) continue;
      if (error !== undefined) {
        errors++;
        firstError ??= error;
      } else {
        latencies.record(t1 - t0);
      }
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, (_, i) => worker(i)));

  const { count, p50, p99, mean, max } = latencies.summary();
  const seconds = spec.durationMs / 1000;
  return {
    requests: count, errors, ...(firstError !== undefined ? { firstError } : {}),
    seconds, requestsPerSecond: count / seconds, p50, p99, mean, max,
  };
}
