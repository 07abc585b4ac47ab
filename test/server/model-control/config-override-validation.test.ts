/**
 * A load request's parameters.config (JSON) is validated as config.pbtxt
 * is, never coerced (issue 15, class 12): a value of the wrong type, a
 * fraction for an integer, or a number outside its field's range is refused
 * with 400 / INVALID_ARGUMENT naming the field, and the model that serves
 * keeps serving. Edge values inside the range load. An instance_group with
 * no kind is KIND_AUTO: CPU here.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { addSubModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../../helpers/fixture-repository.ts';
import { RawGrpcClient } from '../../helpers/grpc-raw-client.ts';

const io = (name: string) => ({ name, data_type: 'TYPE_INT32', dims: [16] });
/** add_sub's config as Triton's JSON, with `fields` on top. */
const configWith = (fields: Record<string, unknown>): string => JSON.stringify({
  name: 'add_sub', platform: 'onnxruntime_onnx', max_batch_size: 8,
  input: [io('INPUT0'), io('INPUT1')], output: [io('OUTPUT0'), io('OUTPUT1')], ...fields,
});

const INT32_RANGE = /Fix: write a whole number between -2147483648 and 2147483647/;
const BAD_VALUES: ReadonlyArray<[string, string, RegExp]> = [
  ['max_batch_size "abc"', configWith({ max_batch_size: 'abc' }), /max_batch_size: is 'abc', not a whole number/],
  ['max_batch_size null', configWith({ max_batch_size: null }), /max_batch_size: is null/],
  ['max_batch_size 1e308', configWith({ max_batch_size: 1e308 }), /max_batch_size: is 1e\+308, outside the int32 range/],
  ['max_batch_size 1e10', configWith({ max_batch_size: 1e10 }), /max_batch_size: is 10000000000, outside the int32 range/],
  ['max_batch_size 2147483648', configWith({ max_batch_size: 2147483648 }), /max_batch_size: is 2147483648, outside the int32 range/],
  ['max_batch_size 2.5', configWith({ max_batch_size: 2.5 }), /max_batch_size: is 2\.5, not a whole number/],
  ['max_batch_size true', configWith({ max_batch_size: true }), /max_batch_size: is true, not a whole number/],
  ['max_batch_size -1', configWith({ max_batch_size: -1 }), /max_batch_size: is -1/],
  ['a dim "abc"', configWith({ input: [{ ...io('INPUT0'), dims: ['abc'] }, io('INPUT1')] }), /input\[0\]\.dims\[0\]: is 'abc', not a whole number/],
  ['a uint64 below 0', configWith({ dynamic_batching: { max_queue_delay_microseconds: -1 } }),
    /dynamic_batching\.max_queue_delay_microseconds: is -1, not a whole number of 0 or more \(Expected integer, got: -\)/],
  ['an instance count as text', configWith({ instance_group: [{ count: 'two' }] }), /instance_group\[0\]\.count: is 'two', not a whole number/],
  ['an enum number that is no value', configWith({ instance_group: [{ kind: 99 }] }), /instance_group\[0\]\.kind: 99 is not a valid value/],
  ['a bool as text', configWith({ dynamic_batching: { preserve_ordering: 'yes' } }), /dynamic_batching\.preserve_ordering: is 'yes', not true or false/],
  ['a string as a number', configWith({ default_model_filename: 7 }), /default_model_filename: is 7, not a string/],
  ['a message as a number', configWith({ dynamic_batching: 5 }), /dynamic_batching: must be an object/],
];

describe('load request configs are validated, not coerced', () => {
  let root: string;
  let fixture: DualFixture;
  let client: RawGrpcClient;

  before(async () => {
    root = await makeRepository({ add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } } });
    fixture = await startBoth(root, { modelControlMode: 'explicit', startupModels: ['add_sub'] });
    client = new RawGrpcClient(fixture.grpcAddress);
  });

  after(async () => {
    client.close();
    await fixture.close();
    await removeRepository(root);
  });

  const load = async (config: string): Promise<{ status: number; error: string }> => {
    const res = await fetch(`${fixture.httpUrl}/v2/repository/models/add_sub/load`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ parameters: { config } }),
    });
    return { status: res.status, error: res.ok ? '' : ((await res.json()) as { error: string }).error };
  };
  const served = async (): Promise<{ max_batch_size: number; instance_group: Array<{ kind: string }> }> =>
    await (await fetch(`${fixture.httpUrl}/v2/models/add_sub/config`)).json() as { max_batch_size: number; instance_group: Array<{ kind: string }> };
  const inferOk = async (): Promise<boolean> => {
    const a = Array.from({ length: 16 }, (_, i) => i);
    const res = await fetch(`${fixture.httpUrl}/v2/models/add_sub/infer`, {
      method: 'POST', body: JSON.stringify({ inputs: ['INPUT0', 'INPUT1'].map((name) => ({ name, datatype: 'INT32', shape: [1, 16], data: a })) }),
    });
    const body = await res.json() as { outputs?: Array<{ name: string; data: number[] }> };
    return res.status === 200 && body.outputs!.find((o) => o.name === 'OUTPUT0')!.data.every((v, i) => v === 2 * i);
  };

  test('over HTTP each bad value is refused with 400 naming the field; the loaded config keeps serving unchanged', async (t) => {
    const rssBefore = process.memoryUsage().rss;
    for (const [title, config, expected] of BAD_VALUES) {
      const { status: code, error } = await load(config);
      assert.equal(code, 400, `${title}: ${error}`);
      assert.match(error, /^failed to load 'add_sub': (version 1: )?parameters\.config of the load request for 'add_sub'/, title);
      assert.match(error, expected, title);
    }
    assert.equal((await served()).max_batch_size, 8, 'no bad value reached the served config');
    assert.ok(await inferOk());
    const growth = process.memoryUsage().rss - rssBefore;
    t.diagnostic(`RSS growth: ${(growth / 1048576).toFixed(1)} MiB`);
    assert.ok(growth < 100 * 1024 * 1024, `RSS grew ${growth} bytes; the bound is 100 MiB`);
  });

  test('over gRPC the same values are INVALID_ARGUMENT naming the field', async () => {
    for (const [title, config, expected] of BAD_VALUES.slice(0, 5)) {
      const { error } = await client.call('RepositoryModelLoad', { model_name: 'add_sub', parameters: { config: { string_param: config } } });
      assert.equal(error?.code, status.INVALID_ARGUMENT, title);
      assert.match(error!.details, expected, title);
    }
    assert.ok(await inferOk());
  });

  test('max_batch_size 2147483647, the int32 edge, loads and serves; one more is refused', async () => {
    assert.deepEqual(await load(configWith({ max_batch_size: 2147483647 })), { status: 200, error: '' });
    assert.equal((await served()).max_batch_size, 2147483647);
    assert.ok(await inferOk());
    const over = await load(configWith({ max_batch_size: 2147483648 }));
    assert.equal(over.status, 400);
    assert.match(over.error, INT32_RANGE);
    assert.equal((await served()).max_batch_size, 2147483647, 'the refused reload left the loaded one serving');
  });

  test('an instance_group with no kind is KIND_AUTO: it runs on CPU here instead of failing as KIND_GPU', async () => {
    assert.deepEqual(await load(configWith({ instance_group: [{ count: 2 }] })), { status: 200, error: '' });
    assert.deepEqual((await served()).instance_group.map((g) => g.kind), ['KIND_CPU']);
    assert.ok(await inferOk());
  });
});
