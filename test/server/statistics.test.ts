/**
 * The statistics extension end to end: the engine's modelStatistics, GET
 * /v2/models[/<m>[/versions/<v>]]/stats and the ModelStatistics RPC over one
 * engine on real loopback ports. Which versions are listed and in what
 * order, the errors (the same as the model's metadata call gives), Triton's
 * shape with every field, Switchyard's batch_close_reasons on the wire, and
 * the counts after real inferences: successes, failures, inferences,
 * executions and batch sizes.
 *
 * The counts follow the contract in engine/observability/model-stats.ts: the
 * scheduler calls recordBatchClosed once per batch formed, recordExecution
 * once per successful execution, recordSuccess per answered request and
 * recordFailure per failed one.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import protobuf from 'protobufjs';
import type { ModelStatisticsResponse as StatsAnswer } from '../../engine/inference-engine.ts';
import type { ModelStatisticsJson } from '../../engine/observability/model-stats.ts';
import { addSubModel, mismatchModel } from '../../generator/models.ts';
import { grpcType } from '../../server/grpc/grpc-schema.ts';
import { addSubConfig, MISMATCH_CONFIG } from '../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../helpers/fixture-repository.ts';
import { RawGrpcClient, type Message } from '../helpers/grpc-raw-client.ts';

const CLOSE_REASONS = ['max_batch_size', 'preferred_batch_size', 'queue_delay', 'queue_empty', 'shape_mismatch'];

const zero = { count: 0, ns: 0 };

/** What a version that has served nothing reports. */
function zeroEntry(name: string, version: string): ModelStatisticsJson {
  return {
    name, version, last_inference: 0, inference_count: 0, execution_count: 0,
    inference_stats: {
      success: zero, fail: zero, queue: zero, compute_input: zero, compute_infer: zero, compute_output: zero, cache_hit: zero, cache_miss: zero,
    },
    response_stats: {},
    batch_stats: [],
    memory_usage: [],
    batch_close_reasons: { max_batch_size: 0, preferred_batch_size: 0, queue_delay: 0, shape_mismatch: 0, queue_empty: 0 },
    step_stats: [],
  };
}

const TO_OBJECT = { longs: Number, defaults: true, arrays: true, objects: true } as const;

describe('statistics extension', () => {
  let root: string;
  let fixture: DualFixture;
  let client: RawGrpcClient;

  before(async () => {
    root = await makeRepository({
      batched: { config: addSubConfig('batched', 'dynamic_batching { }\n'), versions: { 1: addSubModel() } },
      plain: { config: addSubConfig('plain', 'version_policy: { all { } }\n'), versions: { 1: addSubModel(), 2: addSubModel() } },
      mismatch: { config: MISMATCH_CONFIG, versions: { 1: mismatchModel() } },
      broken: { config: 'name: "broken"\nplatform: "onnxruntime_onnx"\n', versions: { 1: new Uint8Array([1, 2, 3]) } },
    });
    fixture = await startBoth(root, { strictReadiness: false });
    client = new RawGrpcClient(fixture.grpcAddress);
  });

  after(async () => {
    client?.close();
    await fixture?.close();
    if (root) await removeRepository(root);
  });

  const httpStats = async (urlPath: string): Promise<{ status: number; body: unknown }> => {
    const res = await fetch(`${fixture.httpUrl}${urlPath}`);
    return { status: res.status, body: await res.json() };
  };

  const grpcStats = async (request: Message): Promise<StatsAnswer> => {
    const { response, error } = await client.call('ModelStatistics', request);
    assert.ifError(error);
    return grpcType('inference.ModelStatisticsResponse').toObject(response as never, TO_OBJECT) as StatsAnswer;
  };

  /** The same question over the engine, HTTP and gRPC; all three must agree, and the engine's answer is returned. */
  async function statsEverywhere(model?: string, version?: string): Promise<StatsAnswer> {
    const engine = fixture.engine.modelStatistics(model, version);
    const urlPath = model === undefined ? '/v2/models/stats' : `/v2/models/${model}${version === undefined ? '' : `/versions/${version}`}/stats`;
    const http = await httpStats(urlPath);
    assert.equal(http.status, 200, urlPath);
    assert.deepStrictEqual(http.body, engine, `HTTP ${urlPath}`);
    assert.deepStrictEqual(await grpcStats({ name: model ?? '', version: version ?? '' }), engine, 'gRPC');
    return engine;
  }

  const ids = (answer: StatsAnswer): string[][] => answer.model_stats.map((e) => [e.name, e.version]);

  /** POSTs JSON tensors to /v2/models/<model>/infer; `model` may name a version ('m/versions/1'). */
  const sendJson = (model: string, inputs: object[]): Promise<Response> => fetch(`${fixture.httpUrl}/v2/models/${model}/infer`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs }),
  });

  const addSubInputs = (batch: number): object[] => ['INPUT0', 'INPUT1'].map((name, k) => ({
    name, datatype: 'INT32', shape: [batch, 16], data: Array.from({ length: batch * 16 }, (_, i) => i * (k + 1)),
  }));

  const fp32 = (name: string, n: number): object => ({ name, datatype: 'FP32', shape: [1, n], data: Array.from({ length: n }, (_, i) => i) });

  test('before any inference a version reports zeros in Triton\'s shape, every field present', async () => {
    const answer = await statsEverywhere('plain');
    assert.deepStrictEqual(answer, { model_stats: [zeroEntry('plain', '1'), zeroEntry('plain', '2')] });
  });

  test('no name: every READY version of every model, by name then version; a model that failed to load is left out', async () => {
    assert.deepEqual(ids(await statsEverywhere()), [['batched', '1'], ['mismatch', '1'], ['plain', '1'], ['plain', '2']]);
  });

  test('a name: that model\'s READY versions; a version: only that one', async () => {
    assert.deepEqual(ids(await statsEverywhere('plain')), [['plain', '1'], ['plain', '2']]);
    assert.deepEqual(ids(await statsEverywhere('plain', '2')), [['plain', '2']]);
    assert.deepEqual(ids(await statsEverywhere('batched', '1')), [['batched', '1']]);
  });

  test('HTTP: a bad version string gets what GET /v2/models/<m> gives; a model or version that is not available is 400 in Triton\'s words', async () => {
    for (const model of ['plain/versions/abc', 'plain/versions/0']) {
      const stats = await httpStats(`/v2/models/${model}/stats`);
      assert.equal(stats.status, 400, model);
      assert.deepEqual(stats, await httpStats(`/v2/models/${model}`), model);
    }
    for (const model of ['nope', 'broken', 'broken/versions/1']) {
      const name = model.split('/')[0];
      assert.deepEqual(await httpStats(`/v2/models/${model}/stats`), { status: 400, body: { error: `requested model '${name}' is not available` } }, model);
    }
    assert.deepEqual(await httpStats('/v2/models/plain/versions/9/stats'),
      { status: 400, body: { error: "requested model version is not available for model 'plain' (version 9; ready versions: 1, 2)" } });
  });

  test('gRPC: a bad version string gets what ModelMetadata gives; a model or version that is not available is INVALID_ARGUMENT in Triton\'s words', async () => {
    const abc = { name: 'plain', version: 'abc' };
    const [stats, metadata] = [await client.call('ModelStatistics', abc), await client.call('ModelMetadata', abc)];
    assert.deepEqual([stats.error?.code, stats.error?.details], [metadata.error?.code, metadata.error?.details]);
    for (const [request, details] of [
      [{ name: 'nope' }, "requested model 'nope' is not available"],
      [{ name: 'broken' }, "requested model 'broken' is not available"],
      [{ name: 'broken', version: '1' }, "requested model 'broken' is not available"],
      [{ name: 'plain', version: '9' }, "requested model version is not available for model 'plain' (version 9; ready versions: 1, 2)"],
    ] as const) {
      const { error } = await client.call('ModelStatistics', request);
      assert.deepEqual([error?.code, error?.details], [3, details], JSON.stringify(request));
    }
  });

  test('gRPC: batch_close_reasons is field 100, and a client built from Triton\'s proto (without it) reads the rest unchanged', async () => {
    const { response } = await client.call('ModelStatistics', { name: 'plain', version: '1' });
    const entry = (response!['model_stats'] as Message[])[0]!;
    assert.deepEqual(Object.keys(entry['batch_close_reasons']).sort(), CLOSE_REASONS, 'every reason is on the wire, zero counts included');
    const ours = grpcType('inference.ModelStatisticsResponse');
    const bytes = ours.encode(response as never).finish();

    const protoDir = fileURLToPath(new URL('../../proto/', import.meta.url));
    const tritons = new protobuf.Root();
    tritons.resolvePath = (_origin, target) => path.join(protoDir, path.basename(target));
    tritons.loadSync('grpc_service.proto', { keepCase: true });
    const modelStatistics = tritons.lookupType('inference.ModelStatistics');
    assert.equal(modelStatistics.fields['batch_close_reasons']?.id, 100);
    assert.equal(modelStatistics.fields['step_stats']?.id, 101);
    modelStatistics.remove(modelStatistics.fields['batch_close_reasons']!);
    modelStatistics.remove(modelStatistics.fields['step_stats']!);
    tritons.resolveAll();
    const decoded = tritons.lookupType('inference.ModelStatisticsResponse').toObject(
      tritons.lookupType('inference.ModelStatisticsResponse').decode(bytes), TO_OBJECT) as StatsAnswer;
    const { batch_close_reasons: _dropped, step_stats: _steps, ...rest } = zeroEntry('plain', '1');
    assert.deepStrictEqual(decoded, { model_stats: [rest] });
  });

  // ---- counts after real inferences (need the scheduler to call the record* methods) ----

  test('dynamic batching: successes, inferences, executions, batch sizes and close reasons add up', async () => {
    const startedMs = Date.now();
    const batchSizes = [1, 2, 3, 1, 4, 1, 2, 1, 1, 3, 2, 1];
    const responses = await Promise.all(batchSizes.map((b) => sendJson('batched', addSubInputs(b))));
    assert.deepEqual(responses.map((r) => r.status), batchSizes.map(() => 200));
    const [entry] = (await statsEverywhere('batched', '1')).model_stats;
    const s = entry!;
    const requests = batchSizes.length;
    const inferences = batchSizes.reduce((a, b) => a + b, 0);

    assert.equal(s.inference_stats.success.count, requests, 'one success per request');
    assert.ok(s.inference_stats.success.ns > 0, 'success time recorded');
    assert.equal(s.inference_stats.fail.count, 0);
    for (const key of ['queue', 'compute_input', 'compute_infer', 'compute_output'] as const) {
      assert.equal(s.inference_stats[key].count, requests, `${key}: one per successful request`);
    }
    assert.equal(s.inference_count, inferences, 'inference_count is the summed batch sizes');
    assert.ok(s.execution_count >= 1 && s.execution_count <= requests, `execution_count ${s.execution_count}`);
    assert.ok(s.last_inference >= startedMs && s.last_inference <= Date.now(), `last_inference ${s.last_inference} is ms since the epoch`);

    assert.ok(s.batch_stats.length > 0, 'batch_stats has entries');
    assert.deepEqual(s.batch_stats.map((b) => b.batch_size), [...s.batch_stats.map((b) => b.batch_size)].sort((a, b) => a - b), 'by batch size');
    assert.ok(s.batch_stats.every((b) => b.batch_size >= 1 && b.batch_size <= 8), 'within max_batch_size');
    assert.equal(s.batch_stats.reduce((n, b) => n + b.compute_infer.count, 0), s.execution_count, 'batch_stats counts sum to execution_count');
    assert.equal(s.batch_stats.reduce((n, b) => n + b.batch_size * b.compute_infer.count, 0), s.inference_count, 'batch sizes times counts sum to inference_count');

    assert.deepEqual(Object.keys(s.batch_close_reasons).sort(), CLOSE_REASONS);
    assert.equal(Object.values(s.batch_close_reasons).reduce((a, b) => a + b, 0), s.execution_count,
      'one close reason per batch formed, and every batch ran');
  });

  test('without dynamic batching: one execution per request, and no close reasons', async () => {
    const batchSizes = [2, 1, 3];
    for (const b of batchSizes) assert.equal((await sendJson('plain/versions/1', addSubInputs(b))).status, 200);
    const [s] = (await statsEverywhere('plain', '1')).model_stats;
    assert.equal(s!.inference_stats.success.count, 3);
    assert.equal(s!.inference_count, 6);
    assert.equal(s!.execution_count, 3);
    assert.deepEqual(s!.batch_stats.map((b) => [b.batch_size, b.compute_infer.count]), [[1, 1], [2, 1], [3, 1]]);
    assert.ok(Object.values(s!.batch_close_reasons).every((n) => n === 0), JSON.stringify(s!.batch_close_reasons));
    assert.deepStrictEqual((await statsEverywhere('plain', '2')).model_stats, [zeroEntry('plain', '2')], 'the other version counted nothing');
  });

  test('failures are counted in fail and nowhere else', async () => {
    const good = [fp32('A', 3), fp32('B', 3)];
    const bad = [fp32('A', 3), fp32('B', 2)];
    const statuses = [];
    for (const inputs of [good, bad, bad, good, bad]) statuses.push((await sendJson('mismatch', inputs)).status);
    assert.deepEqual(statuses.map((s) => s === 200), [true, false, false, true, false], `statuses ${statuses.join(',')}`);
    const [s] = (await statsEverywhere('mismatch', '1')).model_stats;
    assert.equal(s!.inference_stats.fail.count, 3, 'one failure per failed request');
    assert.ok(s!.inference_stats.fail.ns > 0, 'failure time recorded');
    assert.equal(s!.inference_stats.success.count, 2);
    assert.equal(s!.inference_count, 2, 'failed executions run no inferences');
    assert.equal(s!.execution_count, 2, 'only successful executions count');
    assert.equal(s!.batch_stats.reduce((n, b) => n + b.compute_infer.count, 0), 2);
  });

  test('after traffic the engine, HTTP and gRPC still give the same answer for every model', async () => {
    const answer = await statsEverywhere();
    assert.equal(answer.model_stats.length, 4);
  });
});
