/**
 * The Prometheus endpoint end to end: a real engine behind a real HTTP
 * frontend, known traffic sent over HTTP (and, for a cancellation, through
 * the engine with an AbortSignal), then GET /metrics over a real socket and
 * every Triton series checked number by number against the traffic and
 * against the statistics extension: successes, failures by reason,
 * inference and execution counts, the duration counters, the pending gauge,
 * load times, batch sizes and close reasons, the latency summaries (only
 * with summary_latencies), the host gauges, errors of the endpoint itself,
 * an unloaded model dropping out, and the CLI wiring.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel, mismatchModel } from '../../../generator/models.ts';
import type { ModelStatisticsJson } from '../../../engine/observability/model-stats.ts';
import { parseCliOptions } from '../../../server/cli-options.ts';
import { startServer } from '../../../server/cli.ts';
import { startMetricsServer, type MetricsServer } from '../../../server/metrics/metrics-server.ts';
import { addSubConfig, MISMATCH_CONFIG } from '../../helpers/fixture-configs.ts';
import { SLOW_BATCHING, int32Tensor, range16, until } from '../../helpers/ensemble-fixtures.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';
import { samplesOf, scrape, valueOf, type Scrape } from '../../helpers/prometheus-text.ts';
import { pollFor } from '../../helpers/wait.ts';

/** A lone request waits 1.5 s for company (ample time, even on a busy machine); the queue holds one, so a second and third are refused. */
const GUARDED = 'dynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 1500000 default_queue_policy { max_queue_size: 1 } }';

const MODELS = ['counted', 'guarded', 'held', 'mismatch'];

const addSubInputs = (batch: number): object[] => ['INPUT0', 'INPUT1'].map((name, k) => ({
  name, datatype: 'INT32', shape: [batch, 16], data: Array.from({ length: batch * 16 }, (_, i) => i * (k + 1)),
}));

describe('metrics endpoint', () => {
  let root: string;
  let fixture: HttpFixture;
  let plain: MetricsServer;
  let withSummaries: MetricsServer;

  before(async () => {
    root = await makeRepository({
      counted: { config: addSubConfig('counted', 'dynamic_batching { }\n'), versions: { 1: addSubModel() } },
      guarded: { config: addSubConfig('guarded', `${GUARDED}\n`), versions: { 1: addSubModel() } },
      held: { config: addSubConfig('held', `${SLOW_BATCHING}\n`), versions: { 1: addSubModel() } },
      mismatch: { config: MISMATCH_CONFIG, versions: { 1: mismatchModel() } },
    });
    fixture = await startHttp(root, { modelControlMode: 'explicit' });
    plain = await startMetricsServer(fixture.engine, { port: 0, address: '127.0.0.1', intervalMs: 50 });
    withSummaries = await startMetricsServer(fixture.engine, {
      port: 0, address: '127.0.0.1', processMetrics: false, cpuMetrics: false, counterLatencies: false,
      summaryLatencies: true, summaryQuantiles: [{ quantile: 0.5, error: 0.05 }, { quantile: 0.99, error: 0.001 }],
    });
  });

  after(async () => {
    await plain?.close();
    await withSummaries?.close();
    await fixture?.close();
    if (root) await removeRepository(root);
  });

  const infer = (model: string, inputs: object[]): Promise<Response> => fetch(`${fixture.url}/v2/models/${model}/infer`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs }),
  });

  const stats = (model: string): ModelStatisticsJson => fixture.engine.modelStatistics(model, '1').model_stats[0]!;
  const m = (model: string, extra: Record<string, string> = {}): Record<string, string> => ({ model, version: '1', ...extra });

  test('before any traffic: every version is listed with zeros, its load time, and each failure reason', async () => {
    const before = await scrape(plain.url);
    for (const model of MODELS) {
      assert.equal(valueOf(before, 'nv_inference_request_success', m(model)), 0, model);
      assert.equal(valueOf(before, 'nv_inference_count', m(model)), 0);
      assert.equal(valueOf(before, 'nv_inference_exec_count', m(model)), 0);
      assert.equal(valueOf(before, 'nv_inference_pending_request_count', m(model)), 0);
      assert.equal(valueOf(before, 'nv_inference_request_duration_us', m(model)), 0);
      for (const reason of ['REJECTED', 'CANCELED', 'BACKEND', 'OTHER']) {
        assert.equal(valueOf(before, 'nv_inference_request_failure', m(model, { reason })), 0);
      }
      const load = valueOf(before, 'nv_model_load_duration_secs', m(model));
      assert.ok(load > 0 && load < 60, `${model} loaded in ${load} s`);
      assert.equal(valueOf(before, 'switchyard_batch_size_count', m(model)), 0);
    }
    assert.deepEqual(samplesOf(before, 'nv_inference_request_success').map((s) => s.labels['model']).sort(), MODELS);
    assert.equal(before.types.get('nv_inference_request_success'), 'counter');
    assert.equal(before.types.get('nv_inference_pending_request_count'), 'gauge');
    assert.equal(before.types.get('nv_model_load_duration_secs'), 'gauge');
    assert.equal(before.types.get('switchyard_batch_size'), 'histogram');
    // Only models that form batches count close reasons; no model is a sequence or ensemble model here.
    assert.equal(samplesOf(before, 'switchyard_batch_close_total', m('mismatch')).length, 0);
    assert.equal(samplesOf(before, 'switchyard_batch_close_total', m('counted')).length, 5);
    assert.equal(samplesOf(before, 'switchyard_active_sequences').length, 0);
    assert.equal(samplesOf(before, 'nv_cache_num_hits_per_model').length, 0, 'no cache series while no model has used a cache');
  });

  test('5 successful requests: counts, durations, batch sizes and close reasons match the traffic and the statistics', async () => {
    for (const batch of [1, 2, 1, 3, 1]) {
      const res = await infer('counted', addSubInputs(batch));
      assert.equal(res.status, 200, await res.text());
    }
    const after = await scrape(plain.url);
    const s = stats('counted');
    assert.equal(valueOf(after, 'nv_inference_request_success', m('counted')), 5);
    assert.equal(valueOf(after, 'nv_inference_count', m('counted')), 8);
    assert.equal(valueOf(after, 'nv_inference_exec_count', m('counted')), 5);
    for (const reason of ['REJECTED', 'CANCELED', 'BACKEND', 'OTHER']) {
      assert.equal(valueOf(after, 'nv_inference_request_failure', m('counted', { reason })), 0);
    }
    const durations: Array<[string, keyof ModelStatisticsJson['inference_stats']]> = [
      ['nv_inference_request_duration_us', 'success'], ['nv_inference_queue_duration_us', 'queue'],
      ['nv_inference_compute_input_duration_us', 'compute_input'], ['nv_inference_compute_infer_duration_us', 'compute_infer'],
      ['nv_inference_compute_output_duration_us', 'compute_output'],
    ];
    for (const [name, field] of durations) {
      assert.equal(valueOf(after, name, m('counted')), Math.round(s.inference_stats[field].ns / 1000), name);
      assert.equal(after.types.get(name), 'counter');
    }
    assert.ok(valueOf(after, 'nv_inference_request_duration_us', m('counted')) > 0);
    assert.ok(valueOf(after, 'nv_inference_compute_infer_duration_us', m('counted')) > 0);
    assert.equal(valueOf(after, 'nv_inference_pending_request_count', m('counted')), 0);

    // Batch sizes 1, 2, 1, 3, 1 under buckets 1, 2, 4, 8 (max_batch_size 8).
    const bucket = (le: string): number => valueOf(after, 'switchyard_batch_size_bucket', m('counted', { le }));
    assert.deepEqual(['1', '2', '4', '8', '+Inf'].map(bucket), [3, 4, 5, 5, 5]);
    assert.equal(samplesOf(after, 'switchyard_batch_size_bucket', m('counted')).length, 5);
    assert.equal(valueOf(after, 'switchyard_batch_size_sum', m('counted')), 8);
    assert.equal(valueOf(after, 'switchyard_batch_size_count', m('counted')), 5);
    assert.deepEqual(s.batch_stats.map((b) => [b.batch_size, b.compute_infer.count]), [[1, 3], [2, 1], [3, 1]]);

    // Each request ran alone: nothing else was queued and there is no queue delay.
    for (const [reason, count] of Object.entries(s.batch_close_reasons)) {
      assert.equal(valueOf(after, 'switchyard_batch_close_total', m('counted', { reason })), count, reason);
    }
    assert.equal(valueOf(after, 'switchyard_batch_close_total', m('counted', { reason: 'queue_empty' })), 5);
  });

  test('a full queue: the refused requests count as REJECTED, and the one queued is pending until it runs', async () => {
    const first = infer('guarded', addSubInputs(1));
    await until(() => fixture.engine.pendingRequestCount('guarded') === 1, 5000, 'the first request to queue');
    const refused = await Promise.all([infer('guarded', addSubInputs(1)), infer('guarded', addSubInputs(1))]);
    assert.deepEqual(refused.map((r) => r.status), [503, 503]);
    const during = await scrape(plain.url);
    assert.equal(valueOf(during, 'nv_inference_request_failure', m('guarded', { reason: 'REJECTED' })), 2);
    assert.equal(valueOf(during, 'nv_inference_pending_request_count', m('guarded')), 1);
    assert.equal(valueOf(during, 'nv_inference_request_success', m('guarded')), 0);

    assert.equal((await first).status, 200);
    const after = await scrape(plain.url);
    assert.equal(valueOf(after, 'nv_inference_request_failure', m('guarded', { reason: 'REJECTED' })), 2);
    assert.equal(valueOf(after, 'nv_inference_request_success', m('guarded')), 1);
    assert.equal(valueOf(after, 'nv_inference_pending_request_count', m('guarded')), 0);
    assert.equal(valueOf(after, 'switchyard_batch_close_total', m('guarded', { reason: 'queue_delay' })), 1);
    assert.equal(stats('guarded').inference_stats.fail.count, 2);
  });

  test('a model that fails to run counts as BACKEND', async () => {
    const res = await infer('mismatch', [
      { name: 'A', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] },
      { name: 'B', datatype: 'FP32', shape: [1, 2], data: [1, 2] },
    ]);
    assert.equal(res.status, 500, await res.text());
    const after = await scrape(plain.url);
    assert.equal(valueOf(after, 'nv_inference_request_failure', m('mismatch', { reason: 'BACKEND' })), 1);
    assert.equal(valueOf(after, 'nv_inference_request_failure', m('mismatch', { reason: 'REJECTED' })), 0);
    assert.equal(valueOf(after, 'nv_inference_request_success', m('mismatch')), 0);
    assert.equal(valueOf(after, 'nv_inference_exec_count', m('mismatch')), 0);
    // A request refused while its inputs are checked never reaches the scheduler: no failure is counted.
    const bad = await infer('mismatch', [{ name: 'A', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] }]);
    assert.equal(bad.status, 400);
    assert.equal(valueOf(await scrape(plain.url), 'nv_inference_request_failure', m('mismatch', { reason: 'BACKEND' })), 1);
  });

  test('a request cancelled while queued counts as CANCELED and stops being pending', async () => {
    const controller = new AbortController();
    const pending = fixture.engine.infer({
      modelName: 'held', inputs: [int32Tensor('INPUT0', range16((i) => i)), int32Tensor('INPUT1', range16((i) => i))], signal: controller.signal,
    });
    const settled = pending.then(() => 'answered', (err: { code?: string }) => err.code);
    await until(() => fixture.engine.pendingRequestCount('held') === 1, 5000, 'the request to queue');
    assert.equal(valueOf(await scrape(plain.url), 'nv_inference_pending_request_count', m('held')), 1);
    controller.abort();
    assert.equal(await settled, 'CANCELLED');
    const after = await scrape(plain.url);
    assert.equal(valueOf(after, 'nv_inference_request_failure', m('held', { reason: 'CANCELED' })), 1);
    assert.equal(valueOf(after, 'nv_inference_pending_request_count', m('held')), 0);
    assert.equal(valueOf(after, 'nv_inference_request_success', m('held')), 0);
  });

  test('latency summaries only with summary_latencies, with the configured quantiles and a count per success', async () => {
    const without = await scrape(plain.url);
    assert.equal(without.samples.filter((s) => s.name.includes('_summary_us')).length, 0);
    assert.equal(without.types.has('nv_inference_request_summary_us'), false);

    const summaries = await scrape(withSummaries.url);
    const s = stats('counted');
    const names: Array<[string, keyof ModelStatisticsJson['inference_stats']]> = [
      ['nv_inference_request_summary_us', 'success'], ['nv_inference_queue_summary_us', 'queue'],
      ['nv_inference_compute_input_summary_us', 'compute_input'], ['nv_inference_compute_infer_summary_us', 'compute_infer'],
      ['nv_inference_compute_output_summary_us', 'compute_output'],
    ];
    for (const [name, field] of names) {
      assert.equal(summaries.types.get(name), 'summary', name);
      assert.equal(valueOf(summaries, `${name}_count`, m('counted')), 5, name);
      const sum = valueOf(summaries, `${name}_sum`, m('counted'));
      assert.ok(Math.abs(sum - s.inference_stats[field].ns / 1000) < 0.01, `${name}_sum ${sum} vs ${s.inference_stats[field].ns / 1000}`);
      assert.deepEqual(samplesOf(summaries, name, m('counted')).map((x) => x.labels['quantile']), ['0.5', '0.99']);
    }
    const median = valueOf(summaries, 'nv_inference_request_summary_us', m('counted', { quantile: '0.5' }));
    assert.ok(median > 0 && median <= valueOf(summaries, 'nv_inference_request_summary_us', m('counted', { quantile: '0.99' })));
    // Failures are not latencies: guarded has one success, and its two refusals add nothing.
    assert.equal(valueOf(summaries, 'nv_inference_request_summary_us_count', m('guarded')), 1);
    assert.equal(samplesOf(summaries, 'nv_inference_request_summary_us_count', m('mismatch')).length, 0);
    // That endpoint was asked for no duration counters, and no CPU or process series.
    assert.equal(samplesOf(summaries, 'nv_inference_request_duration_us').length, 0);
    assert.equal(summaries.types.has('nv_inference_compute_infer_duration_us'), false);
    assert.equal(valueOf(summaries, 'nv_inference_request_success', m('counted')), 5);
    assert.equal(samplesOf(summaries, 'nv_cpu_utilization').length, 0);
    assert.equal(samplesOf(summaries, 'process_resident_memory_bytes').length, 0);
  });

  test('CPU and memory gauges of the machine, and the process series', async () => {
    // The gauge reads 0 until the first 50 ms sample; this process keeps a core busy scraping, so a sample above 0 comes.
    let host = await scrape(plain.url);
    const cpu = await pollFor('nv_cpu_utilization above 0 (a CPU sample taken)', 10_000, async () => {
      host = await scrape(plain.url);
      const value = valueOf(host, 'nv_cpu_utilization');
      return value > 0 && value;
    }, () => host.text, 10);
    assert.ok(cpu > 0 && cpu <= 1, `nv_cpu_utilization ${cpu}`);
    const total = valueOf(host, 'nv_cpu_memory_total_bytes');
    const used = valueOf(host, 'nv_cpu_memory_used_bytes');
    assert.ok(total > 64 * 1024 * 1024, `total ${total}`);
    assert.ok(used > 0 && used <= total, `used ${used} of ${total}`);
    assert.equal(host.types.get('nv_cpu_utilization'), 'gauge');
    assert.ok(valueOf(host, 'process_resident_memory_bytes') > 0);
  });

  test('the endpoint answers GET and HEAD /metrics only: 405 with Allow for other methods, 404 elsewhere', async () => {
    const post = await fetch(plain.url, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.match(await post.text(), /Method POST is not allowed on \/metrics; use GET/);
    const base = plain.url.replace(/\/metrics$/, '');
    for (const path of ['/nope', '/', '/metrics/extra', '/v2/health/ready']) {
      const res = await fetch(`${base}${path}`);
      assert.equal(res.status, 404, path);
      assert.match(await res.text(), /Metrics are served at GET \/metrics/);
    }
    const head = await fetch(plain.url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
    const query = await fetch(`${plain.url}?name[]=nv_inference_count`);
    assert.equal(query.status, 200);
  });

  test('an unloaded model drops out of every series', async () => {
    await fixture.engine.unloadModel('mismatch');
    const after = await scrape(withSummaries.url);
    assert.equal(after.samples.filter((s) => s.labels['model'] === 'mismatch').length, 0);
    assert.ok(valueOf(after, 'nv_inference_request_success', m('counted')) === 5);
  });
});

describe('metrics from the command line', () => {
  test('startServer serves /metrics on --metrics-port; --allow-metrics=false serves none', async () => {
    const root = await makeRepository({ counted: { config: addSubConfig('counted'), versions: { 1: addSubModel() } } });
    const common = [`--model-repository=${root}`, '--http-port=0', '--http-address=127.0.0.1', '--allow-grpc=false'];
    const running = await startServer(parseCliOptions([...common, '--metrics-port=0', '--metrics-address=127.0.0.1',
      '--metrics-config=summary_latencies=true', '--metrics-interval-ms=100']));
    try {
      assert.ok(running.metrics && running.metricsPort && running.metricsPort > 0);
      const res = await fetch(`http://127.0.0.1:${running.httpPort}/v2/models/counted/infer`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: addSubInputs(2) }),
      });
      assert.equal(res.status, 200);
      const metrics: Scrape = await scrape(`http://127.0.0.1:${running.metricsPort}/metrics`);
      assert.equal(valueOf(metrics, 'nv_inference_count', { model: 'counted', version: '1' }), 2);
      assert.equal(valueOf(metrics, 'nv_inference_request_summary_us_count', { model: 'counted', version: '1' }), 1);
    } finally {
      await running.close();
    }
    const port = running.metricsPort!;
    await assert.rejects(fetch(`http://127.0.0.1:${port}/metrics`), 'the metrics port is closed with the server');

    const without = await startServer(parseCliOptions([...common, '--allow-metrics=false']));
    try {
      assert.equal(without.metrics, undefined);
      assert.equal(without.metricsPort, undefined);
    } finally {
      await without.close();
      await removeRepository(root);
    }
  });
});
