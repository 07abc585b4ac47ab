/**
 * Model control over real gRPC, explicit mode: RepositoryModelLoad with the
 * config as string_param and files as bytes_param (as Triton's clients send
 * them), RepositoryModelUnload with unload_dependents as bool_param, and bad
 * parameters answered INVALID_ARGUMENT naming them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { addSubModel, subAddModel } from '../../../generator/models.ts';
import { chainEnsemble } from '../../helpers/ensemble-fixtures.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startGrpc, type GrpcFixture } from '../../helpers/fixture-repository.ts';
import { RawGrpcClient } from '../../helpers/grpc-raw-client.ts';

const io = (n: string) => ({ name: n, data_type: 'TYPE_INT32', dims: [16] });
const configJson = (name: string): string => JSON.stringify({
  name, platform: 'onnxruntime_onnx', max_batch_size: 8, input: [io('INPUT0'), io('INPUT1')], output: [io('OUTPUT0'), io('OUTPUT1')],
});

describe('gRPC model control (explicit mode)', () => {
  let root: string;
  let fixture: GrpcFixture;
  let client: RawGrpcClient;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } },
      twice: { config: chainEnsemble('add_sub', 'add_sub'), versions: { 1: null } },
    });
    fixture = await startGrpc(root, { modelControlMode: 'explicit', startupModels: ['twice'] });
    client = new RawGrpcClient(fixture.address);
  });

  after(async () => {
    client.close();
    await fixture.close();
    await removeRepository(root);
  });

  const infer = async (model: string): Promise<number[]> => {
    const a = Array.from({ length: 16 }, (_, i) => i);
    const { response, error } = await client.call('ModelInfer', {
      model_name: model,
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { int_contents: a } },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { int_contents: a.map(() => 1) } },
      ],
    });
    assert.equal(error, undefined, error?.details);
    const raw = response!['raw_output_contents'][0] as Uint8Array;
    return [...new Int32Array(Uint8Array.from(raw).buffer)];
  };

  test('RepositoryModelLoad with string_param config and bytes_param file loads a model from the request', async () => {
    const { error } = await client.call('RepositoryModelLoad', {
      model_name: 'uploaded',
      parameters: { config: { string_param: configJson('uploaded') }, 'file:1/model.onnx': { bytes_param: subAddModel() } },
    });
    assert.equal(error, undefined, error?.details);
    assert.deepEqual(await infer('uploaded'), Array.from({ length: 16 }, (_, i) => i - 1));
    const models = (await client.call('RepositoryIndex', { ready: true })).response!['models'] as Array<{ name: string }>;
    assert.deepEqual(models.map((m) => m.name), ['add_sub', 'twice', 'uploaded']);
  });

  test('bad parameters are INVALID_ARGUMENT naming them; an unknown model is INVALID_ARGUMENT with the load failure', async () => {
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['RepositoryModelLoad', { model_name: 'uploaded', parameters: { config: { bool_param: true } } }, /'parameters\.config': expected the model config as a JSON string/],
      ['RepositoryModelLoad', { model_name: 'uploaded', parameters: { 'file:1/model.onnx': { bytes_param: subAddModel() } } }, /file overrides need the model config too/],
      ['RepositoryModelLoad', { model_name: 'uploaded', parameters: { extra: { int64_param: 3 } } }, /'parameters\.extra': not a load parameter/],
      ['RepositoryModelLoad', { model_name: 'missing' }, /^failed to load 'missing': no folder named 'missing'/],
      ['RepositoryModelLoad', { model_name: '../etc' }, /invalid model name/],
      ['RepositoryModelUnload', { model_name: 'add_sub', parameters: { unload_dependents: { string_param: 'true' } } }, /'parameters\.unload_dependents': expected true or false/],
    ];
    for (const [rpc, request, message] of cases) {
      const { error } = await client.call(rpc, request);
      assert.equal(error?.code, status.INVALID_ARGUMENT, `${rpc} ${JSON.stringify(request)}`);
      assert.match(error!.details, message);
    }
    assert.deepEqual(await infer('uploaded'), Array.from({ length: 16 }, (_, i) => i - 1), 'still serving');
  });

  test('RepositoryModelUnload with unload_dependents takes the ensemble along', async () => {
    const { error } = await client.call('RepositoryModelUnload', { model_name: 'add_sub', parameters: { unload_dependents: { bool_param: true } } });
    assert.equal(error, undefined, error?.details);
    const models = (await client.call('RepositoryIndex', {})).response!['models'] as Array<{ name: string; state: string; reason: string }>;
    assert.deepEqual(models.filter((m) => m.name !== 'uploaded').map((m) => [m.name, m.state, m.reason]), [
      ['add_sub', 'UNAVAILABLE', 'unloaded'],
      ['twice', 'UNAVAILABLE', "member model 'add_sub' was unloaded"],
    ]);
    const notFound = await client.call('RepositoryModelUnload', { model_name: 'nope' });
    assert.equal(notFound.error?.code, status.NOT_FOUND);
  });
});

test('gRPC load and unload in model control mode none are UNAVAILABLE with Triton\'s wording', async () => {
  const root = await makeRepository({ add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } } });
  const fixture = await startGrpc(root);
  const client = new RawGrpcClient(fixture.address);
  try {
    for (const rpc of ['RepositoryModelLoad', 'RepositoryModelUnload']) {
      const { error } = await client.call(rpc, { model_name: 'add_sub' });
      assert.equal(error?.code, status.UNAVAILABLE);
      assert.match(error!.details, /^explicit model load \/ unload is not allowed if polling is enabled/);
    }
  } finally {
    client.close();
    await fixture.close();
    await removeRepository(root);
  }
});
