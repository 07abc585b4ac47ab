/**
 * The response cache's series on /metrics: a model with response_cache on a
 * server with a cache gets Triton's nv_cache_* series from the start, hits
 * and misses counted as the statistics count them, and cached answers
 * observed in the latency summaries (Triton's request and queue summaries
 * include cached requests; the compute ones do not), and so in the
 * latency histograms. A model without
 * response_cache has no cache series.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { addSubModel } from '../../../generator/models.ts';
import { startMetricsServer, type MetricsServer } from '../../../server/metrics/metrics-server.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';
import { samplesOf, scrape, valueOf } from '../../helpers/prometheus-text.ts';

let root: string;
let fixture: HttpFixture;
let metrics: MetricsServer;

before(async () => {
  root = await makeRepository({
    cached: { config: addSubConfig('cached', 'response_cache { enable: true }\n'), versions: { 1: addSubModel() } },
    uncached: { config: addSubConfig('uncached'), versions: { 1: addSubModel() } },
  });
  fixture = await startHttp(root, { responseCache: { sizeBytes: 1 << 20 } });
  metrics = await startMetricsServer(fixture.engine, { port: 0, address: '127.0.0.1', processMetrics: false, cpuMetrics: false, summaryLatencies: true, histogramLatencies: true });
});

after(async () => {
  await metrics?.close();
  await fixture?.close();
  if (root) await removeRepository(root);
});

const m = (model: string): Record<string, string> => ({ model, version: '1' });

const send = async (model: string, start: number): Promise<void> => {
  const inputs = ['INPUT0', 'INPUT1'].map((name) => ({ name, datatype: 'INT32', shape: [1, 16], data: Array.from({ length: 16 }, (_, i) => start + i) }));
  const res = await fetch(`${fixture.url}/v2/models/${model}/infer`, { method: 'POST', body: JSON.stringify({ inputs }) });
  assert.equal(res.status, 200, await res.text());
};

test('hits and misses of the response cache, as the statistics count them, and only for the model that uses it', async () => {
  const before = await scrape(metrics.url);
  assert.equal(valueOf(before, 'nv_cache_num_hits_per_model', m('cached')), 0, 'listed from the start');
  assert.equal(valueOf(before, 'nv_cache_num_misses_per_model', m('cached')), 0);

  for (const start of [1, 1, 1, 2, 2]) await send('cached', start);
  await send('uncached', 1);
  await send('uncached', 1);

  const after = await scrape(metrics.url);
  const stats = fixture.engine.modelStatistics('cached', '1').model_stats[0]!.inference_stats;
  assert.equal(stats.cache_hit.count, 3);
  assert.equal(stats.cache_miss.count, 2);
  assert.equal(valueOf(after, 'nv_cache_num_hits_per_model', m('cached')), 3);
  assert.equal(valueOf(after, 'nv_cache_num_misses_per_model', m('cached')), 2);
  assert.equal(valueOf(after, 'nv_cache_hit_duration_per_model', m('cached')), Math.round(stats.cache_hit.ns / 1000));
  assert.equal(valueOf(after, 'nv_cache_miss_duration_per_model', m('cached')), Math.round(stats.cache_miss.ns / 1000));
  assert.equal(after.types.get('nv_cache_num_hits_per_model'), 'counter');
  assert.equal(valueOf(after, 'nv_inference_request_success', m('cached')), 5);
  assert.equal(valueOf(after, 'nv_inference_exec_count', m('cached')), 2, 'hits do not run the model');
  assert.equal(valueOf(after, 'nv_inference_request_duration_us', m('cached')), Math.round(stats.success.ns / 1000));

  // Every request served is a latency sample; only the two that ran have compute times.
  assert.equal(valueOf(after, 'nv_inference_request_summary_us_count', m('cached')), 5);
  assert.equal(valueOf(after, 'nv_inference_queue_summary_us_count', m('cached')), 5);
  assert.equal(valueOf(after, 'nv_inference_compute_infer_summary_us_count', m('cached')), 2);
  assert.equal(valueOf(after, 'switchyard_request_duration_ms_count', m('cached')), 5);
  assert.equal(valueOf(after, 'switchyard_queue_duration_ms_count', m('cached')), 5);
  assert.equal(valueOf(after, 'switchyard_compute_duration_ms_count', m('cached')), 2);

  for (const name of ['nv_cache_num_hits_per_model', 'nv_cache_num_misses_per_model', 'nv_cache_hit_duration_per_model', 'nv_cache_miss_duration_per_model']) {
    assert.equal(samplesOf(after, name, m('uncached')).length, 0, name);
  }
});
