/**
 * --metrics-config histogram_latencies=true: switchyard_request_duration_ms,
 * switchyard_queue_duration_ms and switchyard_compute_duration_ms, one
 * observation per successful request, from the same numbers as the
 * statistics extension. Real requests over HTTP to an ONNX model, then a
 * real scrape: counts, sums against the statistics, cumulative buckets
 * ending at +Inf, the default buckets and histogram_buckets set through the
 * command line, and none of it without the setting.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel } from '../../../generator/models.ts';
import { DEFAULT_LATENCY_BUCKETS_MS } from '../../../engine/observability/metrics-options.ts';
import type { StatDuration } from '../../../engine/observability/model-stats.ts';
import { parseCliOptions } from '../../../server/cli-options.ts';
import { startServer } from '../../../server/cli.ts';
import { startMetricsServer, type MetricsServer } from '../../../server/metrics/metrics-server.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';
import { samplesOf, scrape, valueOf, type Scrape } from '../../helpers/prometheus-text.ts';

const FAMILIES = ['switchyard_request_duration_ms', 'switchyard_queue_duration_ms', 'switchyard_compute_duration_ms'] as const;
const REQUESTS = 7;
const ADD_SUB = { model: 'add_sub', version: '1' };

const addSubBody = JSON.stringify({
  inputs: ['INPUT0', 'INPUT1'].map((name, k) => ({ name, datatype: 'INT32', shape: [1, 16], data: Array.from({ length: 16 }, (_, i) => i * (k + 1)) })),
});

async function sendRequests(baseUrl: string, count: number): Promise<void> {
  const answers = await Promise.all(Array.from({ length: count }, () => fetch(`${baseUrl}/v2/models/add_sub/infer`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: addSubBody,
  })));
  for (const res of answers) {
    assert.equal(res.status, 200, await res.text());
  }
}

/** Checks `family` is a histogram for add_sub with exactly these bounds, cumulative, ending at +Inf = `count`; returns its _sum. */
function checkHistogram(metrics: Scrape, family: string, bounds: readonly number[], count: number): number {
  assert.equal(metrics.types.get(family), 'histogram', family);
  const buckets = samplesOf(metrics, `${family}_bucket`, ADD_SUB);
  assert.deepEqual(buckets.map((s) => s.labels['le']), [...bounds.map(String), '+Inf'], `${family} buckets`);
  buckets.forEach((s, i) => {
    if (i > 0) assert.ok(s.value >= buckets[i - 1]!.value, `${family} is cumulative at le=${s.labels['le']}`);
  });
  assert.equal(buckets.at(-1)!.value, count, `${family} +Inf`);
  assert.equal(valueOf(metrics, `${family}_count`, ADD_SUB), count, `${family}_count`);
  return valueOf(metrics, `${family}_sum`, ADD_SUB);
}

/** Statistics round each observation to whole nanoseconds; the histogram does not. */
const closeTo = (ms: number, d: StatDuration, what: string): void => {
  assert.ok(Math.abs(ms - d.ns / 1e6) <= d.count * 1e-6 + 1e-9, `${what}: ${ms} ms against the statistics' ${d.ns / 1e6} ms`);
};

describe('latency histograms', () => {
  let root: string;
  let fixture: HttpFixture;
  let histograms: MetricsServer;
  let plain: MetricsServer;

  before(async () => {
    root = await makeRepository({ add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel() } } });
    fixture = await startHttp(root);
    const quiet = { port: 0, address: '127.0.0.1', processMetrics: false, cpuMetrics: false } as const;
    histograms = await startMetricsServer(fixture.engine, { ...quiet, histogramLatencies: true });
    plain = await startMetricsServer(fixture.engine, quiet);
  });

  after(async () => {
    await histograms?.close();
    await plain?.close();
    await fixture?.close();
    if (root) await removeRepository(root);
  });

  test('each successful request is observed once in each family, with the statistics\' numbers and the default buckets', async () => {
    await sendRequests(fixture.url, REQUESTS);
    const metrics = await scrape(histograms.url);
    const stats = fixture.engine.modelStatistics('add_sub', '1').model_stats[0]!.inference_stats;
    assert.equal(stats.success.count, REQUESTS);

    const [requestSum, queueSum, computeSum] = FAMILIES.map((family) => checkHistogram(metrics, family, DEFAULT_LATENCY_BUCKETS_MS, REQUESTS));
    assert.ok(requestSum! > 0 && computeSum! > 0, `request ${requestSum} ms, compute ${computeSum} ms`);
    closeTo(requestSum!, stats.success, 'request');
    closeTo(queueSum!, stats.queue, 'queue');
    const compute = [stats.compute_input, stats.compute_infer, stats.compute_output];
    closeTo(computeSum!, { count: REQUESTS, ns: compute.reduce((total, d) => total + d.ns, 0) }, 'compute');
    assert.match(metrics.text, /# HELP switchyard_queue_duration_ms How long each successful request waited in the queue/);
  });

  test('off by default: no such family in the scrape', async () => {
    const without = await scrape(plain.url);
    for (const family of FAMILIES) assert.equal(without.types.has(family), false, family);
    assert.equal(without.samples.filter((s) => s.name.startsWith('switchyard_') && s.name.includes('duration_ms')).length, 0);
    assert.equal(without.types.has('nv_inference_first_response_histogram_ms'), false);
  });
});

describe('latency histograms from the command line', () => {
  test('--metrics-config histogram_buckets sets the buckets of the three families, not the first-response histogram\'s', async () => {
    const root = await makeRepository({ add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel() } } });
    const running = await startServer(parseCliOptions([
      `--model-repository=${root}`, '--http-port=0', '--http-address=127.0.0.1', '--allow-grpc=false',
      '--metrics-port=0', '--metrics-address=127.0.0.1', '--allow-cpu-metrics=false',
      '--metrics-config=histogram_latencies=true', '--metrics-config', 'histogram_buckets=0.5, 2,7.5,1000',
    ]));
    try {
      await sendRequests(`http://127.0.0.1:${running.httpPort}`, 3);
      const metrics = await scrape(`http://127.0.0.1:${running.metricsPort}/metrics`);
      for (const family of FAMILIES) checkHistogram(metrics, family, [0.5, 2, 7.5, 1000], 3);
      checkHistogram(metrics, 'nv_inference_first_response_histogram_ms', [100, 500, 2000, 5000], 3);
    } finally {
      await running.close();
      await removeRepository(root);
    }
  });
});
