/**
 * ModelStats' additions for metrics: failure reasons (counted beside, never
 * inside, the statistics extension's JSON) and observe(), which hands each
 * recorded event to its listeners until they unsubscribe. Also the pure
 * helpers of the metrics module: batch size buckets and option compiling.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileMetricsOptions, DEFAULT_LATENCY_BUCKETS_MS, DEFAULT_SUMMARY_QUANTILES } from '../../../engine/observability/metrics-options.ts';
import { ModelStats, type FailureReason } from '../../../engine/observability/model-stats.ts';
import { batchSizeBuckets } from '../../../engine/observability/batch-size-histogram.ts';

const timing = { inputNs: 1000, inferNs: 5000, outputNs: 2000 };

test('failures are counted by reason, default OTHER, adding up to fail.count; the JSON keeps its shape', () => {
  const stats = new ModelStats();
  const keysBefore = Object.keys(stats.snapshot('m', '1')).sort();
  stats.recordFailure(1000, 'REJECTED');
  stats.recordFailure(2000, 'REJECTED');
  stats.recordFailure(3000, 'CANCELED');
  stats.recordFailure(4000, 'BACKEND');
  stats.recordFailure(5000);
  assert.deepEqual(stats.failureCounts(), { REJECTED: 2, CANCELED: 1, BACKEND: 1, OTHER: 1 });
  const snapshot = stats.snapshot('m', '1');
  assert.deepEqual(snapshot.inference_stats.fail, { count: 5, ns: 15000 });
  assert.deepEqual(Object.keys(snapshot).sort(), keysBefore);
});

test('observe() hears every event with its arguments, in order, until it unsubscribes', () => {
  const stats = new ModelStats();
  stats.trackSteps([{ step: 'a', model: 'x' }]);
  const heard: unknown[] = [];
  const stop = stats.observe({
    success: (totalNs, queueNs, t) => heard.push(['success', totalNs, queueNs, t.inferNs]),
    failure: (totalNs, reason: FailureReason) => heard.push(['failure', totalNs, reason]),
    execution: (batchSize, t) => heard.push(['execution', batchSize, t.inputNs]),
    step: (index, ok, ns) => heard.push(['step', index, ok, ns]),
  });
  const onlySuccess: number[] = [];
  const stopSecond = stats.observe({ success: (totalNs) => onlySuccess.push(totalNs) });
  stats.recordExecution(3, timing);
  stats.recordSuccess(9000, 500, timing);
  stats.recordFailure(700, 'CANCELED');
  stats.recordStep(0, true, 4200);
  stats.recordBatchClosed('queue_empty');
  assert.deepEqual(heard, [['execution', 3, 1000], ['success', 9000, 500, 5000], ['failure', 700, 'CANCELED'], ['step', 0, true, 4200]]);
  assert.deepEqual(onlySuccess, [9000]);
  stop();
  stats.recordSuccess(1, 0, timing);
  assert.equal(heard.length, 4, 'nothing after unsubscribing');
  assert.deepEqual(onlySuccess, [9000, 1], 'the other listener stays');
  stopSecond();
  stats.recordSuccess(2, 0, timing);
  assert.deepEqual(onlySuccess, [9000, 1]);
  assert.equal(stats.snapshot('m', '1').inference_stats.success.count, 3, 'recording goes on without listeners');
});

test('batch size buckets: powers of two below max_batch_size, then max_batch_size', () => {
  assert.deepEqual(batchSizeBuckets(8), [1, 2, 4, 8]);
  assert.deepEqual(batchSizeBuckets(12), [1, 2, 4, 8, 12]);
  assert.deepEqual(batchSizeBuckets(1), [1]);
  assert.deepEqual(batchSizeBuckets(0), [1], 'a model that does not batch runs batches of 1');
});

test('metrics options: Triton\'s defaults, and a bad interval or bad buckets refused', () => {
  assert.deepEqual(compileMetricsOptions(), {
    summaryLatencies: false, summaryQuantiles: DEFAULT_SUMMARY_QUANTILES, counterLatencies: true, histogramLatencies: false,
    histogramBuckets: DEFAULT_LATENCY_BUCKETS_MS, cpuMetrics: true, intervalMs: 2000, processMetrics: true,
  });
  assert.deepEqual(DEFAULT_LATENCY_BUCKETS_MS, [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000]);
  // Options given in code are checked as the command line's are.
  assert.deepEqual(compileMetricsOptions({ histogramBuckets: [1, 2] }).histogramBuckets, [1, 2]);
  assert.throws(() => compileMetricsOptions({ histogramBuckets: [] }), /histogram_buckets is empty/);
  assert.throws(() => compileMetricsOptions({ histogramBuckets: [2, 1] }), /1 follows 2; bounds must strictly increase/);
  assert.throws(() => compileMetricsOptions({ histogramBuckets: [1, Number.NaN] }), /bound NaN is not a finite number/);
  assert.throws(() => compileMetricsOptions({ histogramBuckets: Array.from({ length: 65 }, (_, i) => i + 1) }), /65 bounds given, at most 64/);
  assert.deepEqual(DEFAULT_SUMMARY_QUANTILES.map((q) => `${q.quantile}:${q.error}`), ['0.5:0.05', '0.9:0.01', '0.95:0.001', '0.99:0.001', '0.999:0.001']);
  assert.throws(() => compileMetricsOptions({ intervalMs: 0 }), /intervalMs 0/);
});
