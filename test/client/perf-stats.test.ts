/**
 * The perf tool's numbers: windows, percentiles as perf_analyzer picks
 * them, the stability rule, Triton's statistics JSON, and one load level
 * measured end to end against a local send function.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Recorder, RequestPlanner, startConcurrencyLoad, type RequestRecord } from '../../client/perf/load.ts';
import { AllRequestsFailedError, profileLevel } from '../../client/perf/profiler.ts';
import { readCounters, ServerStatsError, subtract, summarizeServer, toBigInt, ZERO_COUNTERS } from '../../client/perf/server-stats.ts';
import {
  inferPerSec, isStable, mergeWindows, percentileOf, stabilizingLatencyNs, summarizeLatency, summarizeWindow,
} from '../../client/perf/stats.ts';

const record = (startNs: bigint, endNs: bigint, extra: Partial<RequestRecord> = {}): RequestRecord =>
  ({ startNs, endNs, ok: true, error: undefined, sequenceEnd: false, delayed: false, ...extra });

describe('windows and latencies', () => {
  test('a window counts successes, failures by message, finished sequences and delays', () => {
    const window = summarizeWindow([
      record(0n, 300n),
      record(0n, 100n, { sequenceEnd: true, delayed: true }),
      record(0n, 50n, { ok: false, error: 'bad input' }),
      record(0n, 60n, { ok: false, error: 'bad input' }),
      record(0n, 70n, { ok: false, error: 'other' }),
    ], 0n, 1_000_000_000n);
    assert.equal(window.requestCount, 2);
    assert.equal(window.errorCount, 3);
    assert.deepEqual([...window.errors], [['bad input', 2], ['other', 1]]);
    assert.equal(window.sequenceCount, 1);
    assert.equal(window.delayedCount, 1);
    assert.deepEqual(window.latenciesNs, [100, 300], 'only successes, sorted');
    assert.equal(inferPerSec(window, 4), 8, '2 requests of batch 4 in one second');
  });

  test('merged windows add counts and durations and pool samples', () => {
    const a = summarizeWindow([record(0n, 30n), record(0n, 10n)], 0n, 500_000_000n);
    const b = summarizeWindow([record(0n, 20n), record(0n, 5n, { ok: false, error: 'x' })], 0n, 500_000_000n);
    const merged = mergeWindows([a, b]);
    assert.equal(merged.durationNs, 1e9);
    assert.equal(merged.requestCount, 3);
    assert.equal(merged.errorCount, 1);
    assert.deepEqual(merged.latenciesNs, [10, 20, 30]);
    assert.equal(inferPerSec(merged, 1), 3);
  });

  test('percentiles pick the sample at round(p/100 * (n-1)), as perf_analyzer does', () => {
    const samples = Array.from({ length: 10 }, (_, i) => (i + 1) * 100);
    assert.equal(percentileOf(samples, 50), 600);
    assert.equal(percentileOf(samples, 90), 900);
    assert.equal(percentileOf(samples, 95), 1000);
    assert.equal(percentileOf(samples, 99), 1000);
    assert.equal(percentileOf([7], 99), 7);
    assert.throws(() => percentileOf([], 50), RangeError);
  });

  test('latency summary: average, deviation, the four percentiles plus --percentile, in order', () => {
    const summary = summarizeLatency([100, 200, 300, 400], 85)!;
    assert.equal(summary.avgNs, 250);
    assert.ok(Math.abs(summary.stdNs - Math.sqrt(12500)) < 1e-9);
    assert.deepEqual([...summary.percentilesNs.keys()], [50, 85, 90, 95, 99]);
    assert.equal(stabilizingLatencyNs(summary, undefined), 250);
    assert.equal(stabilizingLatencyNs(summary, 85), summary.percentilesNs.get(85));
    assert.equal(summarizeLatency([], undefined), undefined);
  });
});

describe('stability', () => {
  const point = (inferPerSec: number, latencyNs: number | undefined) => ({ inferPerSec, latencyNs });

  test('needs 3 windows whose throughput and latency max/min are within 1 + pct/100', () => {
    assert.equal(isStable([point(100, 1000), point(100, 1000)], 10), false);
    assert.equal(isStable([point(100, 1000), point(105, 1050), point(109, 1000)], 10), true);
    assert.equal(isStable([point(100, 1000), point(105, 1050), point(111, 1000)], 10), false, 'throughput spread 11%');
    assert.equal(isStable([point(100, 1000), point(100, 1111), point(100, 1000)], 10), false, 'latency spread 11.1%');
    assert.equal(isStable([point(100, 1000), point(200, 5000), point(100, 1000), point(101, 1001), point(102, 1002)], 10), true, 'only the last 3 count');
    assert.equal(isStable([point(0, 1000), point(0, 1000), point(0, 1000)], 10), false, 'zero throughput is never stable');
    assert.equal(isStable([point(100, undefined), point(100, 1000), point(100, 1000)], 10), false);
    assert.equal(isStable([point(100, 1000), point(100, 1000), point(100, 1000)], 0), true);
  });
});

describe('server statistics', () => {
  const stats = (count: number | string, extra: Record<string, unknown> = {}) => ({
    name: 'add_sub', version: '1', inference_count: count, execution_count: count,
    inference_stats: {
      success: { count, ns: Number(count) * 1000 },
      fail: { count: 0, ns: 0 },
      queue: { count, ns: Number(count) * 100 },
      compute_input: { count: String(count), ns: String(Number(count) * 10) },
      compute_infer: { count, ns: Number(count) * 500 },
      compute_output: { count, ns: Number(count) * 20 },
    },
    ...extra,
  });

  test('counts as numbers or strings; versions of the model are summed unless -x picks one', () => {
    const response = { model_stats: [stats(10), stats('30', { version: '2' }), stats(99, { name: 'other' })] };
    assert.equal(readCounters(response, 'add_sub', undefined).successCount, 40n);
    assert.equal(readCounters(response, 'add_sub', '2').successCount, 30n);
    assert.equal(readCounters(response, 'add_sub', '2').computeInputNs, 300n);
    assert.throws(() => readCounters(response, 'missing', undefined), ServerStatsError);
    assert.throws(() => readCounters({}, 'add_sub', undefined), /no model_stats list/);
    assert.equal(toBigInt('18446744073709551615'), 18446744073709551615n, 'uint64 counts survive');
    assert.throws(() => toBigInt('ten'), ServerStatsError);
  });

  test('a window is the difference of two readings, averaged per request', () => {
    const before = readCounters({ model_stats: [stats(10)] }, 'add_sub', undefined);
    const after = readCounters({ model_stats: [stats(30)] }, 'add_sub', undefined);
    const summary = summarizeServer(subtract(after, before));
    assert.equal(summary.successCount, 20);
    assert.equal(summary.inferenceCount, 20);
    assert.equal(summary.avgRequestNs, 1000);
    assert.equal(summary.avgQueueNs, 100);
    assert.equal(summary.avgComputeInputNs, 10);
    assert.equal(summary.avgComputeInferNs, 500);
    assert.equal(summary.avgComputeOutputNs, 20);
    assert.equal(summary.avgOverheadNs, 370);
    assert.equal(summarizeServer(ZERO_COUNTERS).avgQueueNs, 0, 'no requests: zero, not NaN');
  });
});

describe('one load level', () => {
  // Windows long enough that each holds answers even when a neighbouring test file holds the CPU
  // (npm test runs two at a time): a window with none is never stable, which would add a trial.
  const settings = { measurementIntervalMs: 100, maxTrials: 5, stabilityPercentage: 1e12, percentile: undefined, batchSize: 2 };
  const quickSend = () => new Promise<void>((resolve) => setImmediate(resolve));
  const startLoad = (send: () => Promise<void>) => (recorder: Recorder) =>
    startConcurrencyLoad(2, new RequestPlanner([{ payloads: [{ inputs: [] }], requestsPerPass: 1 }], undefined), send, recorder);

  test('stops at the first 3 agreeing windows and reports them merged, with server deltas', async () => {
    let reading = 0;
    const trials: number[] = [];
    const result = await profileLevel(settings, {
      startLoad: startLoad(quickSend),
      async readServerStats() {
        reading += 1;
        return { ...ZERO_COUNTERS, successCount: BigInt(reading * 10), successNs: BigInt(reading * 10_000), queueCount: BigInt(reading * 10), queueNs: BigInt(reading * 3000) };
      },
      onTrial: (t) => trials.push(t.trial),
    });
    assert.equal(result.stable, true);
    assert.equal(result.trials, 3);
    assert.deepEqual(trials, [1, 2, 3]);
    assert.ok(result.client.requestCount > 0);
    assert.equal(result.client.latenciesNs.length, result.client.requestCount);
    assert.ok(Math.abs(result.inferPerSec - (result.client.requestCount * 2 * 1e9) / result.client.durationNs) < 1e-6);
    assert.equal(result.server?.successCount, 30, '3 windows of 10 requests each');
    assert.equal(result.server?.avgRequestNs, 1000);
    assert.equal(result.server?.avgQueueNs, 300);
    assert.equal(result.serverStatsError, undefined);
  });

  test('gives up after max-trials unstable, still reporting the last windows', async () => {
    const result = await profileLevel({ ...settings, maxTrials: 2 }, { startLoad: startLoad(quickSend), readServerStats: undefined });
    assert.equal(result.stable, false);
    assert.equal(result.trials, 2);
    assert.ok(result.client.requestCount > 0);
    assert.equal(result.server, undefined);
  });

  test('statistics that start failing are dropped with their reason', async () => {
    let calls = 0;
    const result = await profileLevel(settings, {
      startLoad: startLoad(quickSend),
      async readServerStats() {
        if (++calls > 1) throw new Error('statistics went away');
        return ZERO_COUNTERS;
      },
    });
    assert.equal(result.server, undefined);
    assert.equal(result.serverStatsError, 'statistics went away');
  });

  test('a window where every request failed aborts with the server\'s message', async () => {
    await assert.rejects(
      profileLevel(settings, {
        startLoad: startLoad(async () => {
          await quickSend();
          throw new Error("unexpected shape for input 'INPUT0'");
        }),
        readServerStats: undefined,
      }),
      (error: unknown) => error instanceof AllRequestsFailedError && error.message === "unexpected shape for input 'INPUT0'",
    );
  });
});
