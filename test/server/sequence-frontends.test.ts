/**
 * Sequences over real HTTP and a real grpc-js connection: `sequence_id`,
 * `sequence_start` and `sequence_end` as request parameters, with a string
 * ID and uint64 IDs past 2^53 (two that a double could not tell apart run
 * side by side), on the implicit-state accumulator. Errors keep Triton's
 * wording and map to 400 / INVALID_ARGUMENT.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { stateAccumulatorModel } from '../../generator/models.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../helpers/fixture-repository.ts';
import { RawGrpcClient, type Message } from '../helpers/grpc-raw-client.ts';

const CONFIG = `max_batch_size: 4
sequence_batching {
  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]
}`;

const TOP = '18446744073709551615';
const NEXT = '18446744073709551614';

let root: string;
let fixture: DualFixture;
let client: RawGrpcClient;

before(async () => {
  root = await makeRepository({ acc: { config: CONFIG, versions: { 1: stateAccumulatorModel() } } });
  fixture = await startBoth(root);
  client = new RawGrpcClient(fixture.grpcAddress);
});

after(async () => {
  client.close();
  await fixture.close();
  await removeRepository(root);
});

describe('HTTP', () => {
  /** Writes the JSON by hand so a uint64 ID goes on the wire as a bare integer. */
  async function step(id: string, value: number, flags: { start?: boolean; end?: boolean } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
    const parameters = [`"sequence_id":${id}`];
    if (flags.start) parameters.push('"sequence_start":true');
    if (flags.end) parameters.push('"sequence_end":true');
    const body = `{"inputs":[{"name":"INPUT","datatype":"FP32","shape":[1,1],"data":[${value}]}],"parameters":{${parameters.join(',')}}}`;
    const res = await fetch(`${fixture.httpUrl}/v2/models/acc/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    return { status: res.status, body: await res.json() as Record<string, unknown> };
  }
  const output = (r: { body: Record<string, unknown> }): unknown => {
    const outputs = r.body['outputs'] as Array<{ name: string; data: number[] }>;
    assert.deepEqual(outputs.map((o) => o.name), ['OUTPUT'], 'the state output stays on the server');
    return outputs[0]!.data[0];
  };

  test('a 3-step sequence with a string ID', async () => {
    const outcomes = [];
    outcomes.push(await step('"session-1"', 1, { start: true }));
    outcomes.push(await step('"session-1"', 2));
    outcomes.push(await step('"session-1"', 3, { end: true }));
    assert.deepEqual(outcomes.map(output), [1, 3, 6]);
  });

  test('3-step sequences with uint64 IDs that only differ past 2^53, side by side', async () => {
    const top = [];
    const next = [];
    for (const [i, flags] of [{ start: true }, {}, { end: true }].entries()) {
      const [a, b] = await Promise.all([step(TOP, i + 1, flags), step(NEXT, 10 * (i + 1), flags)]);
      top.push(output(a));
      next.push(output(b));
    }
    assert.deepEqual(top, [1, 3, 6]);
    assert.deepEqual(next, [10, 30, 60]);
  });

  test('errors in Triton\'s words, as 400', async () => {
    const notStarted = await step('"never"', 1);
    assert.equal(notStarted.status, 400);
    assert.equal(notStarted.body['error'], "inference request for sequence never to model 'acc' must specify the START flag on the first request of the sequence");
    const res = await fetch(`${fixture.httpUrl}/v2/models/acc/infer`, {
      method: 'POST', body: JSON.stringify({ inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, 1], data: [1] }] }),
    });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as Record<string, unknown>)['error'], "inference request to model 'acc' must specify a non-zero or non-empty correlation ID");
  });
});

describe('gRPC', () => {
  function infer(id: Message, value: number, flags: { start?: boolean; end?: boolean } = {}) {
    const parameters: Message = { sequence_id: id };
    if (flags.start) parameters['sequence_start'] = { bool_param: true };
    if (flags.end) parameters['sequence_end'] = { bool_param: true };
    return client.call('ModelInfer', {
      model_name: 'acc',
      inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, 1], contents: { fp32_contents: [value] } }],
      parameters,
    });
  }
  const output = (outcome: { response?: Message; error?: Error }): number => {
    assert.ifError(outcome.error);
    const outputs = outcome.response!['outputs'] as Message[];
    assert.deepEqual(outputs.map((o) => o['name']), ['OUTPUT']);
    const raw = Uint8Array.from((outcome.response!['raw_output_contents'] as Uint8Array[])[0]!);
    return new Float32Array(raw.buffer)[0]!;
  };

  test('a 3-step sequence with a string ID (string_param)', async () => {
    const id = { string_param: 'session-2' };
    const values = [output(await infer(id, 1, { start: true })), output(await infer(id, 2)), output(await infer(id, 3, { end: true }))];
    assert.deepEqual(values, [1, 3, 6]);
  });

  test('3-step sequences with uint64 IDs (uint64_param) that only differ past 2^53, side by side', async () => {
    const top = { uint64_param: TOP };
    const next = { uint64_param: NEXT };
    const a = [];
    const b = [];
    for (const [i, flags] of [{ start: true }, {}, { end: true }].entries()) {
      const [x, y] = await Promise.all([infer(top, i + 1, flags), infer(next, 10 * (i + 1), flags)]);
      a.push(output(x));
      b.push(output(y));
    }
    assert.deepEqual(a, [1, 3, 6]);
    assert.deepEqual(b, [10, 30, 60]);
  });

  test('an int64_param ID, as Triton\'s clients send it', async () => {
    const id = { int64_param: 12345 };
    const values = [output(await infer(id, 4, { start: true })), output(await infer(id, 4)), output(await infer(id, 4, { end: true }))];
    assert.deepEqual(values, [4, 8, 12]);
  });

  test('errors in Triton\'s words, as INVALID_ARGUMENT', async () => {
    const notStarted = await infer({ int64_param: 999 }, 1);
    assert.equal(notStarted.error?.code, 3);
    assert.equal(notStarted.error?.details, "inference request for sequence 999 to model 'acc' must specify the START flag on the first request of the sequence");
    const wrongType = await client.call('ModelInfer', {
      model_name: 'acc',
      inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, 1], contents: { fp32_contents: [1] } }],
      parameters: { sequence_id: { int64_param: 5 }, sequence_start: { string_param: 'true' } },
    });
    assert.equal(wrongType.error?.details, "invalid value type for 'sequence_start' parameter, expected a boolean, got 'true'");
  });
});
