/**
 * ModelInfer and ModelStreamInfer over a real grpc-js connection on real
 * ONNX models: typed contents and raw_input_contents, every datatype through
 * an identity model, exact 64-bit integers, requested outputs, ids, the
 * stream's per-request errors, and deadlines.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel, ORT_DATA_TYPES } from '../../../generator/models.ts';
import type { DataType } from '../../../engine/tensor.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startGrpc, type GrpcFixture } from '../../helpers/fixture-repository.ts';
import { EchoBackend, SlowBackend, withTestBackends } from '../../helpers/test-backends.ts';
import { num, RawGrpcClient, type Message } from '../../helpers/grpc-raw-client.ts';
import { pollFor } from '../../helpers/wait.ts';

const configType = (t: DataType): string => (t === 'BYTES' ? 'TYPE_STRING' : `TYPE_${t}`);

/** An identity over the in-memory echo backend: the codec is what is under test. */
function identityConfig(name: string, types: readonly DataType[]): string {
  return `
name: "${name}"
backend: "test_echo"
max_batch_size: 4
input [
${types.map((t) => `  { name: "IN_${t}" data_type: ${configType(t)} dims: [ -1 ] }`).join(',\n')}
]
output [
${types.map((t) => `  { name: "OUT_${t}" data_type: ${configType(t)} dims: [ -1 ] }`).join(',\n')}
]
`;
}

const TYPED: readonly DataType[] = ['INT64', 'UINT64', 'BOOL', 'INT8', 'UINT16', 'FP32', 'FP64', 'BYTES'];

/** A model whose executions wait until the test lets them through (the in-memory slow backend). */
const SLOW_SIZES = [512];
const SLOW_CONFIG = `name: "slow"\nbackend: "test_slow"\nmax_batch_size: 256\ndynamic_batching { }
input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ ${SLOW_SIZES[0]} ] } ]
output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ ${SLOW_SIZES[0]} ] } ]
`;
const slowBackend = new SlowBackend();

const range = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));
const int32Raw = (values: number[]): Buffer => Buffer.from(Int32Array.from(values).buffer);
const ints = (raw: Uint8Array): number[] => [...new Int32Array(Uint8Array.from(raw).buffer)];

function addSubRequest(extra: Message = {}): Message {
  return {
    model_name: 'add_sub',
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { int_contents: range(16, (i) => i) } },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { int_contents: range(16, () => 1) } },
    ],
    ...extra,
  };
}

let root: string;
let fixture: GrpcFixture;
let client: RawGrpcClient;

before(async () => {
  root = await makeRepository({
    add_sub: { config: addSubConfig('add_sub', 'dynamic_batching { }\n'), versions: { 1: addSubModel() } },
    identity: { config: identityConfig('identity', ORT_DATA_TYPES), versions: { 1: null } },
    typed: { config: identityConfig('typed', TYPED), versions: { 1: null } },
    half: { config: identityConfig('half', ['INT32', 'FP16']), versions: { 1: null } },
    slow: { config: SLOW_CONFIG, versions: { 1: null } },
  });
  fixture = await startGrpc(root, { backends: withTestBackends(new EchoBackend(), slowBackend) });
  client = new RawGrpcClient(fixture.address);
});

after(async () => {
  slowBackend.open();
  client.close();
  await fixture.close();
  await removeRepository(root);
});

const streamAll = (messages: readonly (Message | Buffer)[]): Promise<Message[]> => client.streamAll(messages);

describe('gRPC ModelInfer', () => {
  test('typed contents in; outputs in raw_output_contents, as Triton sends them; id echoed', async () => {
    const { response, error } = await client.call('ModelInfer', addSubRequest({ id: 'req-7' }));
    assert.equal(error, undefined);
    assert.equal(response!['model_name'], 'add_sub');
    assert.equal(response!['model_version'], '1');
    assert.equal(response!['id'], 'req-7');
    const [out0, out1] = response!['outputs'];
    assert.equal(out0.name, 'OUTPUT0');
    assert.equal(out0.datatype, 'INT32');
    assert.deepEqual(out0.shape.map(num), [1, 16]);
    assert.equal(out0.contents, null);
    const raw = response!['raw_output_contents'] as Uint8Array[];
    assert.deepEqual(ints(raw[0]!), range(16, (i) => i + 1));
    assert.deepEqual(ints(raw[1]!), range(16, (i) => i - 1));
  });

  test('raw_input_contents in, raw_output_contents out', async () => {
    const { response, error } = await client.call('ModelInfer', {
      model_name: 'add_sub',
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [2, 16] },
        { name: 'INPUT1', datatype: 'INT32', shape: [2, 16] },
      ],
      raw_input_contents: [int32Raw(range(32, (i) => i * 3)), int32Raw(range(32, (i) => i))],
    });
    assert.equal(error, undefined);
    const outputs = response!['outputs'] as Message[];
    assert.equal(outputs.every((o) => o['contents'] === null || o['contents'] === undefined), true);
    const raw = response!['raw_output_contents'] as Uint8Array[];
    assert.equal(raw.length, 2);
    assert.deepEqual(ints(raw[0]!), range(32, (i) => i * 4));
    assert.deepEqual(ints(raw[1]!), range(32, (i) => i * 2));
  });

  test('only the requested outputs come back', async () => {
    const { response } = await client.call('ModelInfer', addSubRequest({ outputs: [{ name: 'OUTPUT1' }] }));
    assert.deepEqual((response!['outputs'] as Message[]).map((o) => o['name']), ['OUTPUT1']);
  });

  test('every datatype round-trips raw through the identity model', async () => {
    const inputs = ORT_DATA_TYPES.map((t) => ({ name: `IN_${t}`, datatype: t, shape: [1, 3] }));
    const raw = ORT_DATA_TYPES.map((t) => {
      if (t === 'BYTES') {
        return Buffer.concat(['a', 'héllo', ''].flatMap((s) => {
          const bytes = Buffer.from(s, 'utf8');
          const length = Buffer.alloc(4);
          length.writeUInt32LE(bytes.byteLength);
          return [length, bytes];
        }));
      }
      const size = { BOOL: 1, UINT8: 1, INT8: 1, UINT16: 2, INT16: 2, FP16: 2, BF16: 2, UINT32: 4, INT32: 4, FP32: 4, UINT64: 8, INT64: 8, FP64: 8 }[t];
      return Buffer.from(range(3 * size, (i) => (t === 'BOOL' ? i % 2 : (i * 37 + 11) % 256)));
    });
    const { response, error } = await client.call('ModelInfer', { model_name: 'identity', inputs, raw_input_contents: raw });
    assert.equal(error, undefined, error?.details);
    const outputs = response!['outputs'] as Message[];
    const rawOut = response!['raw_output_contents'] as Uint8Array[];
    for (const [i, t] of ORT_DATA_TYPES.entries()) {
      const index = outputs.findIndex((o) => o['name'] === `OUT_${t}`);
      assert.equal(outputs[index]!['datatype'], t);
      assert.deepEqual(Buffer.from(rawOut[index]!), raw[i], `OUT_${t}`);
    }
  });

  test('typed contents keep 64-bit integers exact and decode every typed field', async () => {
    const big = ['9007199254740993', '-9223372036854775808', '42'];
    const request = {
      model_name: 'typed',
      inputs: [
        { name: 'IN_INT64', datatype: 'INT64', shape: [1, 3], contents: { int64_contents: big } },
        { name: 'IN_UINT64', datatype: 'UINT64', shape: [1, 2], contents: { uint64_contents: ['18446744073709551615', '1'] } },
        { name: 'IN_BOOL', datatype: 'BOOL', shape: [1, 2], contents: { bool_contents: [true, false] } },
        { name: 'IN_INT8', datatype: 'INT8', shape: [1, 2], contents: { int_contents: [-128, 127] } },
        { name: 'IN_UINT16', datatype: 'UINT16', shape: [1, 1], contents: { uint_contents: [65535] } },
        { name: 'IN_FP32', datatype: 'FP32', shape: [1, 2], contents: { fp32_contents: [1.5, -2.25] } },
        { name: 'IN_FP64', datatype: 'FP64', shape: [1, 1], contents: { fp64_contents: [Math.PI] } },
        { name: 'IN_BYTES', datatype: 'BYTES', shape: [1, 2], contents: { bytes_contents: [Buffer.from('ab'), Buffer.from('')] } },
      ],
    };
    const { response, error } = await client.call('ModelInfer', request);
    assert.equal(error, undefined, error?.details);
    const names = (response!['outputs'] as Message[]).map((o) => o['name'] as string);
    const raw = response!['raw_output_contents'] as Uint8Array[];
    const out = (name: string): ArrayBuffer => Uint8Array.from(raw[names.indexOf(name)]!).buffer;
    assert.deepEqual([...new BigInt64Array(out('OUT_INT64'))].map(String), big);
    assert.deepEqual([...new BigUint64Array(out('OUT_UINT64'))].map(String), ['18446744073709551615', '1']);
    assert.deepEqual([...new Uint8Array(out('OUT_BOOL'))], [1, 0]);
    assert.deepEqual([...new Int8Array(out('OUT_INT8'))], [-128, 127]);
    assert.deepEqual([...new Uint16Array(out('OUT_UINT16'))], [65535]);
    assert.deepEqual([...new Float32Array(out('OUT_FP32'))], [1.5, -2.25]);
    assert.deepEqual([...new Float64Array(out('OUT_FP64'))], [Math.PI]);
    assert.deepEqual(Buffer.from(out('OUT_BYTES')), Buffer.from([2, 0, 0, 0, 0x61, 0x62, 0, 0, 0, 0]));
  });

  test('a zero-size FP16 input needs no data; outputs cover every tensor in order', async () => {
    const { response, error } = await client.call('ModelInfer', {
      model_name: 'half',
      inputs: [
        { name: 'IN_INT32', datatype: 'INT32', shape: [1, 2], contents: { int_contents: [5, -6] } },
        { name: 'IN_FP16', datatype: 'FP16', shape: [1, 0] },
      ],
    });
    assert.equal(error, undefined, error?.details);
    const raw = response!['raw_output_contents'] as Uint8Array[];
    assert.equal(raw.length, 2);
    const names = (response!['outputs'] as Message[]).map((o) => o['name']);
    assert.deepEqual(ints(raw[names.indexOf('OUT_INT32')]!), [5, -6]);
  });

  test('engine errors keep Triton\'s wording and map to gRPC codes', async () => {
    const unknown = await client.call('ModelInfer', addSubRequest({ model_name: 'nope' }));
    assert.equal(unknown.error?.code, 5);
    assert.equal(unknown.error?.details, "Request for unknown model: 'nope' is not found");
    const badInput = await client.call('ModelInfer', {
      model_name: 'add_sub',
      inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 16], contents: { fp32_contents: range(16, () => 0) } }],
    });
    assert.equal(badInput.error?.code, 3);
    assert.match(badInput.error!.details, /INPUT0/);
  });

  test('a deadline that passes while the request waits in the queue reaches the engine as an abort', async () => {
    const signals: AbortSignal[] = [];
    const engine = fixture.engine;
    const original = engine.infer.bind(engine);
    engine.infer = (request) => {
      if (request.signal) signals.push(request.signal);
      return original(request);
    };
    try {
      const slowRequest = (batch: number): Message => ({
        model_name: 'slow',
        inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [batch, SLOW_SIZES[0]] }],
        raw_input_contents: [Buffer.alloc(batch * SLOW_SIZES[0]! * 4)],
      });
      // Sixteen full batches, run one at a time, keep the only instance busy until the gate opens.
      const busy = Promise.all(Array.from({ length: 16 }, () => client.call('ModelInfer', slowRequest(256))));
      await pollFor('the 16 busy requests to reach the engine', 20_000, () => signals.length >= 16, () => `${signals.length} arrived`, 1);
      await slowBackend.untilWaiting(1);
      const late = await client.call('ModelInfer', slowRequest(1), { deadline: Date.now() + 20 });
      // The gate stays shut until the engine has seen the deadline: the late request is still queued then.
      await pollFor('the engine to see the late request\'s deadline', 5000, () => signals[16]?.aborted === true,
        () => `${signals.length} requests arrived, the 17th aborted: ${signals[16]?.aborted}`, 1);
      slowBackend.open();
      assert.equal(late.error?.code, 4, 'DEADLINE_EXCEEDED');
      assert.deepEqual((await busy).map((outcome) => outcome.error), Array(16).fill(undefined));
      assert.equal(signals.length, 17);
      assert.equal(signals[16]!.aborted, true, 'the engine saw the deadline as an abort');
      assert.equal(signals[0]!.aborted, false);
    } finally {
      delete (engine as { infer?: unknown }).infer;
    }
    const again = await client.call('ModelInfer', addSubRequest());
    assert.equal(again.error, undefined);
  });
});

describe('gRPC ModelStreamInfer', () => {
  test('answers every request on one stream, reports a failed one inside the stream and stays open', async () => {
    const received = await streamAll([
      addSubRequest({ id: 'a' }),
      addSubRequest({ id: 'bad', model_name: 'missing' }),
      { ...addSubRequest({ id: 'c' }), inputs: [] },
      addSubRequest({ id: 'd' }),
    ]);
    assert.equal(received.length, 4);
    // Responses come back in request order, each failure with its request's id.
    assert.deepEqual(received.map((m) => m['infer_response']?.['id']), ['a', 'bad', 'c', 'd']);
    assert.equal(received[0]!['error_message'], '');
    assert.deepEqual(ints(received[0]!['infer_response']['raw_output_contents'][0]), range(16, (i) => i + 1));
    assert.equal(received[1]!['error_message'], "Request for unknown model: 'missing' is not found");
    assert.match(received[2]!['error_message'], /expected 2 inputs but got 0/);
    assert.equal(received[3]!['error_message'], '');
  });

  test('a quick request behind a slow one still comes back second', async () => {
    slowBackend.close();
    const quickDone = (): number => fixture.engine.modelStatistics('add_sub').model_stats[0]!.inference_stats.success.count;
    const quickBefore = quickDone();
    const receiving = streamAll([
      {
        model_name: 'slow', id: 'slow',
        inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [256, SLOW_SIZES[0]] }],
        raw_input_contents: [Buffer.alloc(256 * SLOW_SIZES[0]! * 4)],
      },
      addSubRequest({ id: 'quick' }),
    ]);
    await slowBackend.untilWaiting(1);
    await pollFor('the quick request to finish while the slow one waits', 5000, () => quickDone() > quickBefore, () => `add_sub successes: ${quickDone()}`);
    slowBackend.open();
    const received = await receiving;
    assert.deepEqual(received.map((m) => [m['infer_response']?.['id'], m['error_message']]), [['slow', ''], ['quick', '']]);
  });

  test('a malformed message on the stream is reported and the stream goes on', async () => {
    const received = await streamAll([
      Buffer.from([0x0a, 0xff, 0xff, 0xff]),
      addSubRequest({ id: 'after' }),
    ]);
    assert.equal(received.length, 2);
    assert.match(received[0]!['error_message'], /malformed ModelInferRequest/);
    assert.equal(received[1]!['infer_response']?.['id'], 'after');
    assert.equal(received[1]!['error_message'], '');
  });
});
