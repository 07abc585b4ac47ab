/**
 * --metrics-config histogram_latencies=true: nv_inference_first_response_histogram_ms
 * with tritonserver's buckets, one observation per request. A decoupled
 * model's first response is timed from the request's arrival, not its last;
 * any other model's answer is its first response. Off by default.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { startMetricsServer, type MetricsServer } from '../../../server/metrics/metrics-server.ts';
import { makeStreamingRepository } from '../../helpers/decoupled-fixtures.ts';
import { removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { samplesOf, scrape, valueOf } from '../../helpers/prometheus-text.ts';
import { bytesTensor, within } from '../../helpers/script-fixtures.ts';

const NAME = 'nv_inference_first_response_histogram_ms';
let root: string;
let engine: InferenceEngine;
let histograms: MetricsServer;
let plain: MetricsServer;

before(async () => {
  root = await makeStreamingRepository();
  engine = await startEngine(root);
  const quiet = { port: 0, address: '127.0.0.1', processMetrics: false, cpuMetrics: false } as const;
  histograms = await startMetricsServer(engine, { ...quiet, histogramLatencies: true });
  plain = await startMetricsServer(engine, quiet);
});

after(async () => {
  await histograms?.close();
  await plain?.close();
  await engine?.close();
  await removeRepository(root);
});

test('one observation per request, first responses of a decoupled model included, with tritonserver\'s buckets', async () => {
  const started = performance.now();
  for (let i = 0; i < 3; i++) {
    const stream = await engine.inferStream({ modelName: 'streamer', inputs: [bytesTensor('text_input', [1], ['tok'])], parameters: { tokens: 4 } });
    let responses = 0;
    await within(10_000, 'stream', (async () => { for await (const item of stream) if (item.response) responses++; })());
    assert.equal(responses, 4);
  }
  for (let i = 0; i < 2; i++) await engine.infer({ modelName: 'shout', inputs: [bytesTensor('text_input', [1, 1], ['hi'])] });
  const elapsedMs = performance.now() - started;

  const metrics = await scrape(histograms.url);
  assert.equal(metrics.types.get(NAME), 'histogram');
  const streamer = { model: 'streamer', version: '1' };
  const shout = { model: 'shout', version: '1' };
  assert.equal(valueOf(metrics, `${NAME}_count`, streamer), 3, 'three requests, twelve responses: three first responses');
  assert.equal(valueOf(metrics, `${NAME}_count`, shout), 2);
  assert.deepEqual(samplesOf(metrics, `${NAME}_bucket`, shout).map((s) => s.labels['le']), ['100', '500', '2000', '5000', '+Inf']);
  assert.equal(valueOf(metrics, `${NAME}_bucket`, { ...shout, le: '+Inf' }), 2);
  // Each first response came within the time the requests took; a non-decoupled answer's time is its request's total.
  const shoutSum = valueOf(metrics, `${NAME}_sum`, shout);
  const stats = engine.modelStatistics('shout', '1').model_stats[0]!.inference_stats.success;
  assert.ok(Math.abs(shoutSum - stats.ns / 1e6) < 0.01, `${shoutSum} vs ${stats.ns / 1e6}`);
  const streamerSum = valueOf(metrics, `${NAME}_sum`, streamer);
  assert.ok(streamerSum > 0 && streamerSum <= elapsedMs, `${streamerSum} within ${elapsedMs}`);

  const without = await scrape(plain.url);
  assert.equal(without.types.has(NAME), false, 'off unless asked for, as in tritonserver');
});
