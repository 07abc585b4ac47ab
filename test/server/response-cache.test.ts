/**
 * The response cache end to end, on real ONNX models over real HTTP and
 * gRPC: identical requests run the model once and the rest are hits, value
 * by value in the statistics; hits answer byte for byte what the miss
 * answered on every protocol; different inputs, strings or requested
 * outputs miss; failed requests are not kept; small caches drop the least
 * recently used answer; nothing is cached without --cache-config or without
 * response_cache in the model's config; unloading and reloading drop a
 * model's answers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { StatDuration } from '../../engine/observability/model-stats.ts';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import { addSubModel } from '../../generator/models.ts';
import { addSubConfig } from '../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startBoth, startEngine, startHttp, type DualFixture, type HttpFixture } from '../helpers/fixture-repository.ts';
import { EchoBackend, FailingBackend, withTestBackends } from '../helpers/test-backends.ts';
import { num, RawGrpcClient, type Message } from '../helpers/grpc-raw-client.ts';
import { int32x16, valuesOf } from '../helpers/script-fixtures.ts';
import { parseCliOptions } from '../../server/cli-options.ts';
import { startServer } from '../../server/cli.ts';

const CACHED = 'response_cache { enable: true }\n';
/** A BYTES identity on the echo test backend. */
const STRINGS_CONFIG = `backend: "test_echo"
max_batch_size: 4
input [ { name: "IN_BYTES" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "OUT_BYTES" data_type: TYPE_STRING dims: [ -1 ] } ]
${CACHED}`;
/** On the failing test backend: a request with the parameter fail: true fails, the others are echoed (INDEX as VALUE). */
const LOOKUP_CONFIG = `backend: "test_failing"
max_batch_size: 8
input [ { name: "INDEX" data_type: TYPE_INT64 dims: [ 1 ] } ]
output [ { name: "VALUE" data_type: TYPE_INT64 dims: [ 1 ] } ]
${CACHED}`;

const range = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));

/** JSON inputs of add_sub: INPUT0 = start..start+15, INPUT1 = 1..16. */
function addSubInputs(start: number): object[] {
  return [
    { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: range(16, (i) => start + i) },
    { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: range(16, (i) => i + 1) },
  ];
}

async function post(url: string, path: string, body: object): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() as Record<string, unknown> };
}

async function inferJson(url: string, model: string, body: object): Promise<{ status: number; json: Record<string, unknown> }> {
  return post(url, `/v2/models/${model}/infer`, body);
}

interface Counts {
  readonly success: StatDuration;
  readonly fail: StatDuration;
  readonly queue: StatDuration;
  readonly compute_infer: StatDuration;
  readonly cache_hit: StatDuration;
  readonly cache_miss: StatDuration;
  readonly inference_count: number;
  readonly execution_count: number;
}

async function statsOf(url: string, model: string): Promise<Counts> {
  const res = await fetch(`${url}/v2/models/${model}/stats`);
  assert.equal(res.status, 200);
  const body = await res.json() as { model_stats: Array<{ inference_count: number; execution_count: number; inference_stats: Record<string, StatDuration> }> };
  const entry = body.model_stats[0]!;
  const s = entry.inference_stats;
  return {
    success: s['success']!, fail: s['fail']!, queue: s['queue']!, compute_infer: s['compute_infer']!,
    cache_hit: s['cache_hit']!, cache_miss: s['cache_miss']!, inference_count: entry.inference_count, execution_count: entry.execution_count,
  };
}

const counts = (c: Counts): Record<string, number> => ({
  success: c.success.count, fail: c.fail.count, queue: c.queue.count, compute_infer: c.compute_infer.count,
  cache_hit: c.cache_hit.count, cache_miss: c.cache_miss.count, inference_count: c.inference_count, execution_count: c.execution_count,
});

describe('response cache', () => {
  let root: string;
  let fixture: DualFixture;
  let grpc: RawGrpcClient;

  before(async () => {
    root = await makeRepository({
      cached: { config: addSubConfig('cached', CACHED), versions: { 1: addSubModel() } },
      uncached: { config: addSubConfig('uncached'), versions: { 1: addSubModel() } },
      strings: { config: STRINGS_CONFIG, versions: { 1: null } },
      lookup: { config: LOOKUP_CONFIG, versions: { 1: null } },
      http_json: { config: addSubConfig('http_json', CACHED), versions: { 1: addSubModel() } },
      http_binary: { config: addSubConfig('http_binary', CACHED), versions: { 1: addSubModel() } },
      grpc_raw: { config: addSubConfig('grpc_raw', CACHED), versions: { 1: addSubModel() } },
      pooled: { config: addSubConfig('pooled', CACHED), versions: { 1: addSubModel() } },
    });
    fixture = await startBoth(root, { responseCache: { sizeBytes: 1 << 20 }, backends: withTestBackends(new EchoBackend(), new FailingBackend()) });
    grpc = new RawGrpcClient(fixture.grpcAddress);
  });

  after(async () => {
    grpc.close();
    await fixture.close();
    await removeRepository(root);
  });

  test('N identical requests: one miss runs the model, N-1 hits do not; Triton\'s counts', async () => {
    const N = 5;
    const answers = [];
    for (let i = 0; i < N; i++) answers.push(await inferJson(fixture.httpUrl, 'cached', { id: `r${i}`, inputs: addSubInputs(10) }));
    for (const [i, answer] of answers.entries()) {
      assert.equal(answer.status, 200, JSON.stringify(answer.json));
      assert.equal(answer.json['id'], `r${i}`, 'a hit carries its own request id');
      assert.deepEqual(answer.json['outputs'], answers[0]!.json['outputs']);
    }
    const outputs = answers[0]!.json['outputs'] as Array<{ name: string; data: number[] }>;
    assert.deepEqual(outputs[0]!.data, range(16, (i) => 10 + i + i + 1));
    const stats = await statsOf(fixture.httpUrl, 'cached');
    assert.deepEqual(counts(stats), {
      success: N, fail: 0, queue: N, compute_infer: 1, cache_hit: N - 1, cache_miss: 1, inference_count: 1, execution_count: 1,
    });
    assert.ok(stats.cache_hit.ns > 0 && stats.cache_miss.ns > 0, 'lookups and the insert are timed');
    assert.ok(stats.success.ns >= stats.cache_hit.ns + stats.cache_miss.ns);
    const cache = fixture.engine.cache!.stats();
    assert.ok(cache.entries >= 1 && cache.hits >= N - 1 && cache.bytes > 0);
  });

  test('different inputs, different strings and different requested outputs miss', async () => {
    await inferJson(fixture.httpUrl, 'cached', { inputs: addSubInputs(1000) });
    await inferJson(fixture.httpUrl, 'cached', { inputs: addSubInputs(1001) });
    await inferJson(fixture.httpUrl, 'cached', { inputs: addSubInputs(1000), outputs: [{ name: 'OUTPUT1' }] });
    const only = await inferJson(fixture.httpUrl, 'cached', { inputs: addSubInputs(1000), outputs: [{ name: 'OUTPUT1' }] });
    assert.deepEqual((only.json['outputs'] as Array<{ name: string }>).map((o) => o.name), ['OUTPUT1']);
    const before = await statsOf(fixture.httpUrl, 'cached');
    await inferJson(fixture.httpUrl, 'cached', { inputs: addSubInputs(1001) });
    const after = await statsOf(fixture.httpUrl, 'cached');
    assert.equal(after.cache_hit.count - before.cache_hit.count, 1);
    assert.equal(after.execution_count, before.execution_count);

    const strings = (data: string[]) => inferJson(fixture.httpUrl, 'strings', { inputs: [{ name: 'IN_BYTES', datatype: 'BYTES', shape: [1, data.length], data }] });
    const first = await strings(['ab', 'c']);
    assert.deepEqual((first.json['outputs'] as Array<{ data: string[] }>)[0]!.data, ['ab', 'c']);
    await strings(['ab', 'c']);
    await strings(['a', 'bc']);
    await strings(['ab', 'd']);
    const byStrings = await statsOf(fixture.httpUrl, 'strings');
    assert.deepEqual([byStrings.cache_hit.count, byStrings.cache_miss.count, byStrings.execution_count], [1, 3, 3]);
  });

  test('a failed request is not kept: the same request runs (and fails) again; a good one is then kept', async () => {
    const bad = { parameters: { fail: true }, inputs: [{ name: 'INDEX', datatype: 'INT64', shape: [1, 1], data: [9] }] };
    const first = await inferJson(fixture.httpUrl, 'lookup', bad);
    const second = await inferJson(fixture.httpUrl, 'lookup', bad);
    assert.notEqual(first.status, 200);
    assert.equal(second.status, first.status);
    assert.equal(second.json['error'], first.json['error']);
    const good = { inputs: [{ name: 'INDEX', datatype: 'INT64', shape: [1, 1], data: [2] }] };
    assert.deepEqual((await inferJson(fixture.httpUrl, 'lookup', good)).json['outputs'], (await inferJson(fixture.httpUrl, 'lookup', good)).json['outputs']);
    const stats = await statsOf(fixture.httpUrl, 'lookup');
    assert.deepEqual(counts(stats), {
      success: 2, fail: 2, queue: 2, compute_infer: 1, cache_hit: 1, cache_miss: 1, inference_count: 1, execution_count: 1,
    });
  });

  test('HTTP JSON: a hit answers exactly the bytes the miss answered', async () => {
    const body = JSON.stringify({ inputs: addSubInputs(7) });
    const send = () => fetch(`${fixture.httpUrl}/v2/models/http_json/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const miss = await send();
    const hit = await send();
    assert.equal(hit.headers.get('content-type'), miss.headers.get('content-type'));
    assert.deepEqual(Buffer.from(await hit.arrayBuffer()), Buffer.from(await miss.arrayBuffer()));
    assert.deepEqual(counts(await statsOf(fixture.httpUrl, 'http_json')).cache_hit, 1);
  });

  test('HTTP binary tensor data: a hit answers exactly the bytes the miss answered', async () => {
    const header = Buffer.from(JSON.stringify({
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], parameters: { binary_data_size: 64 } },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], parameters: { binary_data_size: 64 } },
      ],
      parameters: { binary_data_output: true },
    }));
    const body = Buffer.concat([header, Buffer.from(Int32Array.from(range(16, (i) => 3 * i)).buffer), Buffer.from(Int32Array.from(range(16, (i) => i)).buffer)]);
    const send = () => fetch(`${fixture.httpUrl}/v2/models/http_binary/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.byteLength) },
      body,
    });
    const miss = await send();
    const hit = await send();
    assert.equal(miss.status, 200);
    assert.equal(hit.headers.get('inference-header-content-length'), miss.headers.get('inference-header-content-length'));
    const missBody = Buffer.from(await miss.arrayBuffer());
    assert.deepEqual(Buffer.from(await hit.arrayBuffer()), missBody);
    const json = Number(miss.headers.get('inference-header-content-length'));
    assert.deepEqual([...new Int32Array(missBody.buffer.slice(missBody.byteOffset + json, missBody.byteOffset + json + 64))], range(16, (i) => 4 * i));
    const stats = await statsOf(fixture.httpUrl, 'http_binary');
    assert.deepEqual([stats.cache_hit.count, stats.execution_count], [1, 1]);
  });

  test('gRPC: a hit answers the same message the miss answered; HTTP then hits the same entry', async () => {
    const request = (id: string): Message => ({
      model_name: 'grpc_raw', id,
      inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] }],
      raw_input_contents: [Buffer.from(Int32Array.from(range(16, (i) => 100 + i)).buffer), Buffer.from(Int32Array.from(range(16, (i) => i)).buffer)],
    });
    const miss = await grpc.call('ModelInfer', request('g1'));
    const hit = await grpc.call('ModelInfer', request('g2'));
    assert.equal(miss.error, undefined);
    assert.equal(hit.error, undefined);
    assert.equal(hit.response!['id'], 'g2');
    assert.deepEqual({ ...hit.response, id: '' }, { ...miss.response, id: '' });
    assert.deepEqual((hit.response!['outputs'] as Message[])[0]!['shape'].map(num), [1, 16]);
    const http = await inferJson(fixture.httpUrl, 'grpc_raw', { inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: range(16, (i) => 100 + i) },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: range(16, (i) => i) },
    ] });
    assert.deepEqual((http.json['outputs'] as Array<{ data: number[] }>)[0]!.data, range(16, (i) => 100 + 2 * i));
    const stats = await statsOf(fixture.httpUrl, 'grpc_raw');
    assert.deepEqual([stats.cache_hit.count, stats.cache_miss.count, stats.execution_count], [2, 1, 1]);
  });

  test('a cached answer survives the pooled memory of its miss being reused by many later requests', async () => {
    const first = await inferJson(fixture.httpUrl, 'pooled', { inputs: addSubInputs(5) });
    for (let i = 0; i < 20; i++) await inferJson(fixture.httpUrl, 'pooled', { inputs: addSubInputs(5000 + i) });
    const again = await inferJson(fixture.httpUrl, 'pooled', { inputs: addSubInputs(5) });
    assert.deepEqual(again.json['outputs'], first.json['outputs']);
    assert.deepEqual((again.json['outputs'] as Array<{ data: number[] }>)[0]!.data, range(16, (i) => 5 + 2 * i + 1));
    const stats = await statsOf(fixture.httpUrl, 'pooled');
    assert.deepEqual([stats.cache_hit.count, stats.execution_count], [1, 21]);
  });

  test('a model without response_cache is never cached, even on a server with a cache', async () => {
    for (let i = 0; i < 3; i++) await inferJson(fixture.httpUrl, 'uncached', { inputs: addSubInputs(1) });
    assert.deepEqual(counts(await statsOf(fixture.httpUrl, 'uncached')), {
      success: 3, fail: 0, queue: 3, compute_infer: 3, cache_hit: 0, cache_miss: 0, inference_count: 3, execution_count: 3,
    });
  });
});

test('without --cache-config, a model with response_cache is not cached', async () => {
  const root = await makeRepository({ cached: { config: addSubConfig('cached', CACHED), versions: { 1: addSubModel() } } });
  const fixture = await startHttp(root);
  try {
    assert.equal(fixture.engine.cache, undefined);
    for (let i = 0; i < 3; i++) assert.equal((await inferJson(fixture.url, 'cached', { inputs: addSubInputs(1) })).status, 200);
    assert.deepEqual(counts(await statsOf(fixture.url, 'cached')), {
      success: 3, fail: 0, queue: 3, compute_infer: 3, cache_hit: 0, cache_miss: 0, inference_count: 3, execution_count: 3,
    });
  } finally {
    await fixture.close();
    await removeRepository(root);
  }
});

test('a small cache drops the least recently used answer first; one used again stays', async () => {
  const root = await makeRepository({ cached: { config: addSubConfig('cached', CACHED), versions: { 1: addSubModel() } } });
  // One add_sub answer takes about 240 bytes (key, two INT32 [1,16] outputs): two fit, three do not.
  const fixture = await startHttp(root, { responseCache: { sizeBytes: 600 } });
  const send = async (start: number): Promise<void> => {
    assert.equal((await inferJson(fixture.url, 'cached', { inputs: addSubInputs(start) })).status, 200);
  };
  const executions = async (): Promise<number> => (await statsOf(fixture.url, 'cached')).execution_count;
  try {
    await send(1);
    await send(2);
    assert.equal(fixture.engine.cache!.stats().entries, 2);
    await send(1);
    assert.equal(await executions(), 2, 'A is a hit and now the most recently used');
    await send(3);
    const stats = fixture.engine.cache!.stats();
    assert.deepEqual([stats.entries, stats.evictions], [2, 1]);
    await send(1);
    assert.equal(await executions(), 3, 'A stayed');
    await send(2);
    assert.equal(await executions(), 4, 'B, the least recently used, went');
  } finally {
    await fixture.close();
    await removeRepository(root);
  }
});

test('unloading or reloading a model drops its cached answers', async () => {
  const root = await makeRepository({ cached: { config: addSubConfig('cached', CACHED), versions: { 1: addSubModel() } } });
  const engine: InferenceEngine = await startEngine(root, { responseCache: { sizeBytes: 1 << 16 }, modelControlMode: 'explicit', startupModels: ['cached'] });
  const request = { modelName: 'cached', inputs: [int32x16('INPUT0'), int32x16('INPUT1', 1)] };
  const executions = (): number => engine.modelStatistics('cached').model_stats[0]!.execution_count;
  try {
    const first = await engine.infer(request);
    await engine.infer(request);
    assert.equal(executions(), 1);
    assert.equal(engine.cache!.stats().entries, 1);

    await engine.loadModel('cached');
    assert.equal(engine.cache!.stats().entries, 0, 'a reload drops the answers of the version it replaces');
    const reloaded = await engine.infer(request);
    assert.deepEqual(valuesOf(reloaded.outputs[0]), valuesOf(first.outputs[0]));
    assert.equal(executions(), 1, 'the new version ran the request itself');

    await engine.unloadModel('cached');
    assert.equal(engine.cache!.stats().entries, 0);
    assert.equal(engine.cache!.stats().invalidations, 2);
  } finally {
    await engine.close();
    await removeRepository(root);
  }
});

test('switchyard --cache-config local,size=N serves models with response_cache from the cache', async () => {
  const root = await makeRepository({ cached: { config: addSubConfig('cached', CACHED), versions: { 1: addSubModel() } } });
  const running = await startServer(parseCliOptions([
    `--model-repository=${root}`, '--cache-config=local,size=65536',
    '--http-address=127.0.0.1', '--http-port=0', '--allow-grpc=false', '--allow-metrics=false', '--log-info=false',
  ]));
  const url = `http://127.0.0.1:${running.httpPort!}`;
  try {
    assert.equal(running.engine.cache!.capacityBytes, 65536);
    for (let i = 0; i < 3; i++) assert.equal((await inferJson(url, 'cached', { inputs: addSubInputs(3) })).status, 200);
    const stats = await statsOf(url, 'cached');
    assert.deepEqual([stats.cache_miss.count, stats.cache_hit.count, stats.execution_count], [1, 2, 1]);
  } finally {
    await running.close();
    await removeRepository(root);
  }
});

/** A + B and A - B, then the same on those: DOUBLE_A = 2A, DOUBLE_B = 2B; `extra` goes into the ensemble's config. */
function twiceConfig(first: string, second: string, extra = ''): string {
  return `platform: "ensemble"
max_batch_size: 8
input [ { name: "A" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "B" data_type: TYPE_INT32 dims: [ 16 ] } ]
output [ { name: "DOUBLE_A" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "DOUBLE_B" data_type: TYPE_INT32 dims: [ 16 ] } ]
ensemble_scheduling { step [
  { model_name: "${first}" model_version: -1 input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "B" }
    output_map { key: "OUTPUT0" value: "sum" } output_map { key: "OUTPUT1" value: "difference" } },
  { model_name: "${second}" model_version: -1 input_map { key: "INPUT0" value: "sum" } input_map { key: "INPUT1" value: "difference" }
    output_map { key: "OUTPUT0" value: "DOUBLE_A" } output_map { key: "OUTPUT1" value: "DOUBLE_B" } }
] }
${extra}`;
}

test('inside an ensemble a step model caches by its own config, and an ensemble can cache its own answers', async () => {
  const root = await makeRepository({
    first: { config: addSubConfig('first'), versions: { 1: addSubModel() } },
    second: { config: addSubConfig('second', CACHED), versions: { 1: addSubModel() } },
    twice: { config: twiceConfig('first', 'second'), versions: {} },
    twice_cached: { config: twiceConfig('first', 'first', CACHED), versions: {} },
  });
  const engine = await startEngine(root, { responseCache: { sizeBytes: 1 << 16 } });
  const ask = (model: string) => engine.infer({ modelName: model, inputs: [int32x16('A', 3), int32x16('B', 1)] });
  const executions = (model: string): number => engine.modelStatistics(model).model_stats[0]!.execution_count;
  const inference = (model: string) => engine.modelStatistics(model).model_stats[0]!.inference_stats;
  try {
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await ask('twice'));
    for (const answer of answers) {
      assert.deepEqual(valuesOf(answer.outputs.find((t) => t.name === 'DOUBLE_A')), range(16, (i) => 2 * (i + 3)));
      assert.deepEqual(valuesOf(answer.outputs.find((t) => t.name === 'DOUBLE_B')), range(16, (i) => 2 * (i + 1)));
    }
    assert.equal(executions('first'), 3);
    assert.deepEqual([executions('second'), inference('second').cache_miss.count, inference('second').cache_hit.count], [1, 1, 2]);
    // The step's pooled inputs go back to the pool on a hit, so repeated hits allocate nothing new.
    const allocated = engine.bufferPoolStats().allocated;
    for (let i = 0; i < 5; i++) await ask('twice');
    assert.equal(engine.bufferPoolStats().allocated, allocated);

    const before = executions('first');
    const own = [await ask('twice_cached'), await ask('twice_cached')];
    assert.deepEqual(valuesOf(own[1]!.outputs[0]), valuesOf(own[0]!.outputs[0]));
    assert.deepEqual([inference('twice_cached').cache_miss.count, inference('twice_cached').cache_hit.count], [1, 1]);
    assert.equal(executions('first'), before + 2, 'the hit ran no step');
  } finally {
    await engine.close();
    await removeRepository(root);
  }
});
