/**
 * Switchyard's own series on /metrics, and Triton's on the models that
 * need more than one scheduler to produce them: open sequences of a
 * stateful ONNX model, ensemble step durations (Triton's config form and a
 * pipeline.yaml), failure reasons across an ensemble whose failing step
 * cancels its sibling, and the heap of TypeScript models' isolates.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel, lookupModel, stateAccumulatorModel } from '../../../generator/models.ts';
import type { ModelStatisticsJson } from '../../../engine/observability/model-stats.ts';
import { STEP_DURATION_BUCKETS_US } from '../../../engine/observability/server-metrics.ts';
import { startMetricsServer, type MetricsServer } from '../../../server/metrics/metrics-server.ts';
import {
  addSubMember, CHAIN_PIPELINE, chainEnsemble, forkEnsemble, int32Tensor, int64Tensor, lookupMember, range16, SLOW_BATCHING,
} from '../../helpers/ensemble-fixtures.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';
import { samplesOf, scrape, valueOf, type Scrape } from '../../helpers/prometheus-text.ts';
import { scriptConfig, writeScripts } from '../../helpers/script-fixtures.ts';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const SEQUENCE_CONFIG = `max_batch_size: 4
sequence_batching {
  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]
}`;

/** Y = X, and a little garbage per call so the heap has something to hold. */
const COPY_SCRIPT = `
export default class Copy {
  private seen: number[][] = [];
  async execute(requests: { inputs: { X: { datatype: string; shape: number[]; data: Int32Array } } }[]) {
    return requests.map(({ inputs: { X } }) => {
      this.seen.push(Array.from(X.data));
      return { outputs: { Y: { datatype: 'INT32', shape: X.shape, data: X.data } } };
    });
  }
}
`;

const m = (model: string, extra: Record<string, string> = {}): Record<string, string> => ({ model, version: '1', ...extra });

describe('switchyard series', () => {
  let root: string;
  let fixture: HttpFixture;
  let metrics: MetricsServer;

  before(async () => {
    root = await makeRepository({
      acc: { config: SEQUENCE_CONFIG, versions: { 1: stateAccumulatorModel() } },
      add_sub: { config: addSubMember('add_sub'), versions: { 1: addSubModel() } },
      chain: { config: chainEnsemble(), versions: { 1: null } },
      chain_yaml: { versions: {} },
      lookup: { config: lookupMember('lookup'), versions: { 1: lookupModel(4) } },
      slow_lookup: { config: lookupMember('slow_lookup', SLOW_BATCHING), versions: { 1: lookupModel(4) } },
      fork: { config: forkEnsemble('lookup', 'slow_lookup'), versions: { 1: null } },
      copy: { config: scriptConfig({ extra: 'instance_group [ { count: 2 } ]' }), versions: {} },
    });
    await writeFile(join(root, 'chain_yaml', 'pipeline.yaml'), CHAIN_PIPELINE);
    await writeScripts(root, { copy: { 1: COPY_SCRIPT } });
    fixture = await startHttp(root);
    metrics = await startMetricsServer(fixture.engine, { port: 0, address: '127.0.0.1', processMetrics: false, cpuMetrics: false });
  });

  after(async () => {
    await metrics?.close();
    await fixture?.close();
    if (root) await removeRepository(root);
  });

  const stats = (model: string): ModelStatisticsJson => fixture.engine.modelStatistics(model, '1').model_stats[0]!;

  /** One request of sequence `id` to the accumulator over HTTP. */
  async function step(id: number, value: number, flags: { start?: boolean; end?: boolean } = {}): Promise<void> {
    const res = await fetch(`${fixture.url}/v2/models/acc/infer`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, 1], data: [value] }],
        parameters: { sequence_id: id, ...(flags.start ? { sequence_start: true } : {}), ...(flags.end ? { sequence_end: true } : {}) },
      }),
    });
    assert.equal(res.status, 200, await res.text());
  }

  const active = async (): Promise<number> => valueOf(await scrape(metrics.url), 'switchyard_active_sequences', m('acc'));

  test('switchyard_active_sequences counts sequences from START to END, and only stateful models have it', async () => {
    assert.equal(await active(), 0);
    for (const id of [1, 2, 3]) await step(id, id, { start: true });
    assert.equal(await active(), 3);
    await step(2, 10);
    assert.equal(await active(), 3, 'a request in the middle of a sequence changes nothing');
    await step(1, 10, { end: true });
    assert.equal(await active(), 2);
    await step(2, 10, { end: true });
    await step(3, 10, { end: true });
    assert.equal(await active(), 0);
    const all = await scrape(metrics.url);
    assert.deepEqual(samplesOf(all, 'switchyard_active_sequences').map((s) => s.labels['model']), ['acc']);
    assert.equal(valueOf(all, 'nv_inference_request_success', m('acc')), 7);
    // The direct strategy forms no batches of its own, so it counts no close reasons.
    assert.equal(samplesOf(all, 'switchyard_batch_close_total', m('acc')).length, 0);
  });

  test('ensemble step durations: one histogram per step, counted and summed as step_stats has them', async () => {
    const request = (model: string) => fixture.engine.infer({
      modelName: model, inputs: [int32Tensor('A', range16((i) => i)), int32Tensor('B', range16((i) => 2 * i))],
    });
    for (let i = 0; i < 3; i++) await request('chain');
    for (let i = 0; i < 2; i++) await request('chain_yaml');
    const scraped = await scrape(metrics.url);
    assert.equal(scraped.types.get('switchyard_ensemble_step_duration_us'), 'histogram');
    const expectations: Array<[string, number, string[]]> = [
      ['chain', 3, ["step 1 ('add_sub')", "step 2 ('add_sub')"]],
      ['chain_yaml', 2, ["step 'first' (model 'add_sub')", "step 'second' (model 'add_sub')"]],
    ];
    for (const [model, calls, steps] of expectations) {
      const stepStats = stats(model).step_stats;
      assert.deepEqual(stepStats.map((s) => s.step), steps);
      for (const entry of stepStats) {
        const labels = m(model, { step: entry.step, step_model: 'add_sub' });
        assert.equal(entry.success.count, calls);
        assert.equal(valueOf(scraped, 'switchyard_ensemble_step_duration_us_count', labels), calls, `${model} ${entry.step}`);
        const sum = valueOf(scraped, 'switchyard_ensemble_step_duration_us_sum', labels);
        assert.ok(sum > 0 && Math.abs(sum - entry.success.ns / 1000) < 0.001 * calls, `${model} ${entry.step}: sum ${sum} vs ${entry.success.ns / 1000}`);
        const buckets = samplesOf(scraped, 'switchyard_ensemble_step_duration_us_bucket', labels);
        assert.deepEqual(buckets.map((b) => b.labels['le']), [...STEP_DURATION_BUCKETS_US.map(String), '+Inf']);
        const counts = buckets.map((b) => b.value);
        assert.ok(counts.every((c, i) => i === 0 || c >= counts[i - 1]!), 'buckets are cumulative');
        assert.equal(counts.at(-1), calls);
      }
      assert.equal(valueOf(scraped, 'nv_inference_request_success', m(model)), calls);
    }
    // Each ensemble call ran add_sub twice, through add_sub's own scheduler.
    assert.equal(valueOf(scraped, 'nv_inference_request_success', m('add_sub')), 10);
    assert.equal(samplesOf(scraped, 'switchyard_ensemble_step_duration_us_count', m('add_sub')).length, 0);
  });

  test('a failing ensemble step: BACKEND for the ensemble and the member that failed, CANCELED for the sibling it withdrew', async () => {
    await assert.rejects(fixture.engine.infer({ modelName: 'fork', inputs: [int64Tensor('INDEX', [9])] }), /step 1 \('lookup'\) failed/);
    const scraped = await scrape(metrics.url);
    const failures = (model: string): Record<string, number> => Object.fromEntries(['REJECTED', 'CANCELED', 'BACKEND', 'OTHER']
      .map((reason) => [reason, valueOf(scraped, 'nv_inference_request_failure', m(model, { reason }))]));
    assert.deepEqual(failures('fork'), { REJECTED: 0, CANCELED: 0, BACKEND: 1, OTHER: 0 });
    assert.deepEqual(failures('lookup'), { REJECTED: 0, CANCELED: 0, BACKEND: 1, OTHER: 0 });
    assert.deepEqual(failures('slow_lookup'), { REJECTED: 0, CANCELED: 1, BACKEND: 0, OTHER: 0 });
    assert.equal(valueOf(scraped, 'nv_inference_pending_request_count', m('slow_lookup')), 0);
    // Only successful step calls are timed: nothing succeeded in fork.
    assert.equal(samplesOf(scraped, 'switchyard_ensemble_step_duration_us_count', m('fork')).length, 0);
  });

  test('switchyard_script_isolate_heap_bytes: one sample per isolate of a TypeScript model, each a plausible heap size', async () => {
    for (let i = 0; i < 4; i++) {
      await fixture.engine.infer({ modelName: 'copy', inputs: [int32Tensor('X', range16((k) => k + i))] });
    }
    const scraped: Scrape = await scrape(metrics.url);
    const heaps = samplesOf(scraped, 'switchyard_script_isolate_heap_bytes');
    assert.deepEqual(heaps.map((s) => [s.labels['model'], s.labels['version'], s.labels['model_instance']]).sort(),
      fixture.engine.instancesOf('copy').map((instance) => ['copy', '1', instance.name]).sort());
    assert.equal(heaps.length, 2);
    for (const heap of heaps) assert.ok(heap.value > 64 * 1024 && heap.value < 128 * 1024 * 1024, `heap ${heap.value}`);
    assert.equal(scraped.types.get('switchyard_script_isolate_heap_bytes'), 'gauge');
  });
});
