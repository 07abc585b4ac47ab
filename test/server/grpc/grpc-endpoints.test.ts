/**
 * The non-inference RPCs over a real grpc-js connection: health (both the
 * inference service's and grpc.health.v1), metadata, config, repository
 * index, statistics (listing and errors; the numbers are tested in
 * test/server/statistics.test.ts), and the RPCs that answer UNIMPLEMENTED
 * until their issue lands.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel } from '../../../generator/models.ts';
import { modelConfigType } from '../../../engine/config/model-config-schema.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startGrpc, type GrpcFixture } from '../../helpers/fixture-repository.ts';
import { num, RawGrpcClient } from '../../helpers/grpc-raw-client.ts';

describe('gRPC endpoints', () => {
  let root: string;
  let fixture: GrpcFixture;
  let client: RawGrpcClient;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubConfig('add_sub', 'version_policy: { all { } }\n'), versions: { 1: addSubModel(), 2: addSubModel() } },
      broken: { config: 'name: "broken"\nplatform: "onnxruntime_onnx"\n', versions: { 1: new Uint8Array([1, 2, 3]) } },
    });
    fixture = await startGrpc(root, { strictReadiness: false });
    client = new RawGrpcClient(fixture.address);
  });

  after(async () => {
    client.close();
    await fixture.close();
    await removeRepository(root);
  });

  test('ServerLive and ServerReady', async () => {
    assert.equal((await client.call('ServerLive', {})).response!['live'], true);
    assert.equal((await client.call('ServerReady', {})).response!['ready'], true);
  });

  test('ModelReady: ready, unknown model, unknown version, failed model', async () => {
    const ready = async (name: string, version = ''): Promise<unknown> => (await client.call('ModelReady', { name, version })).response?.['ready'];
    assert.equal(await ready('add_sub'), true);
    assert.equal(await ready('add_sub', '2'), true);
    assert.equal(await ready('add_sub', '9'), false);
    assert.equal(await ready('nope'), false);
    assert.equal(await ready('broken'), false);
  });

  test('ServerMetadata lists name, version and extensions', async () => {
    const { response } = await client.call('ServerMetadata', {});
    assert.equal(response!['name'], 'switchyard');
    assert.match(response!['version'], /^\d+\.\d+\.\d+$/);
    assert.deepEqual(response!['extensions'], fixture.engine.serverMetadata().extensions);
  });

  test('ModelMetadata matches the engine, with the batch dimension as -1', async () => {
    const { response } = await client.call('ModelMetadata', { name: 'add_sub' });
    assert.equal(response!['name'], 'add_sub');
    assert.deepEqual([...response!['versions']].sort(), ['1', '2']);
    assert.equal(response!['platform'], 'onnxruntime_onnx');
    assert.deepEqual(response!['inputs'].map((t: { name: string; datatype: string; shape: unknown[] }) => [t.name, t.datatype, t.shape.map(num)]),
      [['INPUT0', 'INT32', [-1, 16]], ['INPUT1', 'INT32', [-1, 16]]]);
    const missing = await client.call('ModelMetadata', { name: 'nope' });
    assert.equal(missing.error?.code, 5);
    assert.equal(missing.error?.details, "Request for unknown model: 'nope' is not found");
  });

  test('ModelConfig carries the same completed config as the HTTP JSON', async () => {
    const { response, error } = await client.call('ModelConfig', { name: 'add_sub', version: '1' });
    assert.equal(error, undefined);
    const fromGrpc = modelConfigType().toObject(response!['config'], {
      enums: String, longs: Number, defaults: true, arrays: true, objects: true,
    }) as Record<string, unknown>;
    const json = fixture.engine.modelConfig('add_sub', '1');
    assert.equal(fromGrpc['name'], 'add_sub');
    assert.equal(fromGrpc['max_batch_size'], json['max_batch_size']);
    const io = (list: unknown): unknown[] => (list as { name: string; data_type: string; dims: number[] }[]).map((t) => [t.name, t.data_type, t.dims]);
    assert.deepEqual(io(fromGrpc['input']), io(json['input']));
    assert.deepEqual(io(fromGrpc['output']), io(json['output']));
    const bad = await client.call('ModelConfig', { name: 'add_sub', version: 'x' });
    assert.equal(bad.error?.code, 3);
    assert.match(bad.error!.details, /^failed to get model version from specified version string 'x'/);
  });

  test('RepositoryIndex lists every version with state and reason, or only ready ones', async () => {
    const all = (await client.call('RepositoryIndex', {})).response!['models'] as { name: string; version: string; state: string; reason: string }[];
    assert.deepEqual(all.filter((m) => m.name === 'add_sub').map((m) => [m.version, m.state]).sort(), [['1', 'READY'], ['2', 'READY']]);
    const broken = all.find((m) => m.name === 'broken');
    assert.equal(broken?.state, 'UNAVAILABLE');
    assert.ok(broken!.reason.length > 0);
    const ready = (await client.call('RepositoryIndex', { ready: true })).response!['models'] as { name: string }[];
    assert.deepEqual([...new Set(ready.map((m) => m.name))], ['add_sub']);
    // Triton's wording and code (UNSUPPORTED -> UNIMPLEMENTED) for all three repository RPCs; load and unload refuse before acting.
    for (const [rpc, request] of [['RepositoryIndex', {}], ['RepositoryModelLoad', { model_name: 'add_sub' }], ['RepositoryModelUnload', { model_name: 'add_sub' }]] as const) {
      const named = await client.call(rpc, { ...request, repository_name: 'other' });
      assert.equal(named.error?.code, 12, rpc);
      assert.equal(named.error?.details, "'repository_name' specification is not supported", rpc);
    }
    assert.equal((await client.call('ModelReady', { name: 'add_sub' })).response!['ready'], true, 'the refused unload left the model serving');
  });

  test('ModelStatistics: every READY version by name then version, one model, one version; errors as ModelMetadata gives them', async () => {
    const listed = async (request: object): Promise<string[][]> =>
      ((await client.call('ModelStatistics', request)).response!['model_stats'] as { name: string; version: string }[]).map((e) => [e.name, e.version]);
    assert.deepEqual(await listed({}), [['add_sub', '1'], ['add_sub', '2']], 'the model that failed to load is left out');
    assert.deepEqual(await listed({ name: 'add_sub' }), [['add_sub', '1'], ['add_sub', '2']]);
    assert.deepEqual(await listed({ name: 'add_sub', version: '2' }), [['add_sub', '2']]);
    const abc = { name: 'add_sub', version: 'abc' };
    const [stats, metadata] = [await client.call('ModelStatistics', abc), await client.call('ModelMetadata', abc)];
    assert.deepEqual([stats.error?.code, stats.error?.details], [metadata.error?.code, metadata.error?.details]);
    // A model or version that is not available is INVALID_ARGUMENT in Triton's words (its core's TRITONSERVER_ServerModelStatistics).
    for (const [request, details] of [
      [{ name: 'nope' }, "requested model 'nope' is not available"],
      [{ name: 'broken' }, "requested model 'broken' is not available"],
      [{ name: 'add_sub', version: '9' }, "requested model version is not available for model 'add_sub' (version 9; ready versions: 1, 2)"],
    ] as const) {
      const { error } = await client.call('ModelStatistics', request);
      assert.deepEqual([error?.code, error?.details], [3, details], JSON.stringify(request));
    }
  });

  test('load and unload are refused with UNAVAILABLE and Triton\'s wording in model control mode none', async () => {
    for (const rpc of ['RepositoryModelLoad', 'RepositoryModelUnload'] as const) {
      const { error } = await client.call(rpc, { model_name: 'add_sub' });
      assert.equal(error?.code, 14, rpc);
      assert.match(error!.details, /^explicit model load \/ unload is not allowed/, rpc);
    }
  });

  test('shared memory registration without --allow-client-shm, and a trace_file change, answer UNIMPLEMENTED with a reason', async () => {
    for (const [rpc, request, words] of [
      ['SystemSharedMemoryRegister', { name: 'r', key: '/k', byte_size: 4 }, /^Client shared memory is disabled/],
      ['CudaSharedMemoryRegister', { name: 'r' }, /^Client shared memory is disabled/],
      ['TraceSetting', { settings: { trace_file: { value: ['x.log'] } } }, /^trace file location can not be updated through network protocol$/],
    ] as const) {
      const { error } = await client.call(rpc, request);
      assert.equal(error?.code, 12, rpc);
      assert.match(error!.details, words, rpc);
    }
  });

  test('grpc.health.v1 Check reports server readiness whatever the service name, as Triton does', async () => {
    assert.equal((await client.call('Check', {})).response!['status'], 1);
    assert.equal((await client.call('Check', { service: 'inference.GRPCInferenceService' })).response!['status'], 1);
    assert.equal((await client.call('Check', { service: 'anything' })).response!['status'], 1);
  });
});

describe('gRPC health while not ready', () => {
  test('ServerReady is false and Check says NOT_SERVING when a model failed under strict readiness', async () => {
    const root = await makeRepository({
      broken: { config: 'name: "broken"\nplatform: "onnxruntime_onnx"\n', versions: { 1: new Uint8Array([9]) } },
    });
    const fixture = await startGrpc(root);
    const client = new RawGrpcClient(fixture.address);
    try {
      assert.equal((await client.call('ServerReady', {})).response!['ready'], false);
      assert.equal((await client.call('ServerLive', {})).response!['live'], true);
      assert.equal((await client.call('Check', {})).response!['status'], 2);
    } finally {
      client.close();
      await fixture.close();
      await removeRepository(root);
    }
  });
});
