/** The benchmarks' latency summary: nearest-rank percentiles over a growing sample buffer. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LatencyRecorder, percentile } from '../../bench/latencies.ts';

test('percentile uses nearest rank', () => {
  const sorted = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(percentile(sorted, 50), 5);
  assert.equal(percentile(sorted, 99), 10);
  assert.equal(percentile(sorted, 1), 1);
  assert.ok(Number.isNaN(percentile(new Float64Array(0), 50)));
});

test('LatencyRecorder grows past its first buffer and summarises every sample', () => {
  const recorder = new LatencyRecorder();
  const n = (1 << 16) + 5;
  for (let i = n; i >= 1; i--) recorder.record(i);
  const summary = recorder.summary();
  assert.equal(summary.count, n);
  assert.equal(summary.max, n);
  assert.equal(summary.p50, Math.ceil(n / 2));
  assert.equal(summary.mean, (n + 1) / 2);
});

test('an empty recorder summarises to NaN', () => {
  const summary = new LatencyRecorder().summary();
  assert.equal(summary.count, 0);
  assert.ok(Number.isNaN(summary.p50) && Number.isNaN(summary.mean) && Number.isNaN(summary.max));
});
