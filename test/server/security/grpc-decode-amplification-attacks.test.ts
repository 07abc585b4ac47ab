/**
 * Issue 15, class 1 follow-up: gRPC request decoding must not amplify
 * memory. protobufjs turned each packed element of a typed contents field
 * into a JS number (a Long object for int64), each empty `inputs`,
 * `outputs` or `raw_input_contents` entry into an object, and each shape
 * dimension into a Long: a 64 MiB message of packed int64 zeros took 4.4 GB
 * and stalled the process for 42 s; 32 MiB of empty `inputs` entries took
 * 2.6 GB and 21 s. Now typed contents are read off the wire into the
 * tensor's bytes, after their count is checked against the shape, in
 * event-loop slices; and every request message is counted against
 * --grpc-max-request-fields (65,536 values) before protobufjs decodes it.
 *
 * The server runs as a child process (the real CLI, default flags) so that
 * its RSS is its own. Each attack shows: INVALID_ARGUMENT naming the field
 * and the limit; /v2/health/live answering within HEALTH_BOUND_MS while the
 * attack is served; the server's peak RSS under RSS_BOUND_MIB above its
 * baseline; and an ordinary request answering correctly afterwards.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { identityModel } from '../../../generator/models.ts';
import { ServerProcess } from '../../../bench/soak/server-process.ts';
import { DEFAULT_GRPC_MAX_REQUEST_FIELDS } from '../../../server/grpc/message-field-budget.ts';
import { makeRepository, removeRepository } from '../../helpers/fixture-repository.ts';
import { protoField, protoVarint, RawGrpcClient, type CallOutcome } from '../../helpers/grpc-raw-client.ts';
import { whileWatchingHealth } from '../../helpers/health-watch.ts';

/** /v2/health/live must answer within this while an attack is being served (decoding yields every 20 ms of work). */
const HEALTH_BOUND_MS = 1000;
/**
 * The server's peak RSS may pass its baseline by at most this much: grpc-js
 * holds a message's received frames and their concatenation (2 x 128 MiB
 * for the largest attack); the decoders add nothing per element.
 */
const RSS_BOUND_MIB = 512;
const MiB = 1024 * 1024;

const CONFIG = `name: "ident"
platform: "onnxruntime_onnx"
max_batch_size: 4
input [ { name: "IN_INT32" data_type: TYPE_INT32 dims: [ -1 ] }, { name: "IN_INT64" data_type: TYPE_INT64 dims: [ -1 ] } ]
output [ { name: "OUT_INT32" data_type: TYPE_INT32 dims: [ -1 ] }, { name: "OUT_INT64" data_type: TYPE_INT64 dims: [ -1 ] } ]
`;

let root: string;
let server: ServerProcess;
let grpc: RawGrpcClient;
let httpUrl: string;
let baselineKiB: number;

function peakRssKiB(): number {
  return Number(/^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))![1]);
}

before(async () => {
  root = await makeRepository({ ident: { config: CONFIG, versions: { 1: identityModel(['INT32', 'INT64']) } } });
  server = await ServerProcess.start([root], 60_000);
  httpUrl = `http://127.0.0.1:${server.httpPort}`;
  grpc = new RawGrpcClient(`127.0.0.1:${server.grpcPort}`, { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 });
  await ordinaryRequestAnswers();
  baselineKiB = Math.max(server.rssKiB()!, peakRssKiB());
});

after(async () => {
  grpc?.close();
  await server?.stop(10_000);
  await removeRepository(root);
});

const tag = (number: number, wireType: number): Buffer => protoVarint(number * 8 + wireType);

/** An input written by hand: name, datatype, shape, then `rest` (contents, parameters...). */
function input(name: string, datatype: string, shape: readonly number[], ...rest: Buffer[]): Buffer {
  return protoField(5, Buffer.concat([
    protoField(1, Buffer.from(name)), protoField(2, Buffer.from(datatype)), ...shape.flatMap((d) => [tag(3, 0), protoVarint(d)]), ...rest,
  ]));
}

/** A ModelInferRequest for the identity model: its inputs, then `rest`. */
const request = (...parts: Buffer[]): Buffer => Buffer.concat([protoField(1, Buffer.from('ident')), ...parts]);

/** The INT64 input every request needs, one element. */
const int64Input = input('IN_INT64', 'INT64', [1, 1], protoField(5, protoField(3, protoVarint(7))));

/** `count` repetitions of a 2-byte entry. */
function repeated(entry: readonly [number, number], count: number): Buffer {
  const out = Buffer.alloc(count * 2);
  for (let i = 0; i < count; i++) out.set(entry, i * 2);
  return out;
}

async function ordinaryRequestAnswers(): Promise<void> {
  const values = [-2147483648, -1, 0, 1, 2147483647];
  const outcome = await grpc.call('ModelInfer', {
    model_name: 'ident',
    inputs: [
      { name: 'IN_INT32', datatype: 'INT32', shape: [1, values.length], contents: { int_contents: values } },
      { name: 'IN_INT64', datatype: 'INT64', shape: [1, 1], contents: { int64_contents: ['-9223372036854775808'] } },
    ],
  });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  const [int32, int64] = outcome.response!['raw_output_contents'] as Uint8Array[];
  assert.deepEqual([...new Int32Array(new Uint8Array(int32!).buffer)], values);
  assert.deepEqual([...new BigInt64Array(new Uint8Array(int64!).buffer)], [-(2n ** 63n)]);
}

/** Sends the attack while health is watched; checks the refusal, the health bound, the RSS bound and the next request. */
async function assertRefused(message: Buffer, details: RegExp, call: (m: Buffer) => Promise<CallOutcome> = (m) => grpc.call('ModelInfer', m)): Promise<void> {
  const { result, slowestMs } = await whileWatchingHealth(httpUrl, call(message));
  assert.equal(result.error?.code, 3, result.error?.message ?? 'the attack was answered');
  assert.match(result.error!.details, details);
  assert.ok(result.error!.details.length < 1024, `details of ${result.error!.details.length} characters`);
  assert.ok(slowestMs < HEALTH_BOUND_MS, `health took ${slowestMs.toFixed(0)} ms during the attack`);
  assert.ok(server.running, 'the server is alive');
  const grownMiB = (peakRssKiB() - baselineKiB) / 1024;
  assert.ok(grownMiB < RSS_BOUND_MIB, `peak RSS grew by ${grownMiB.toFixed(0)} MiB (bound ${RSS_BOUND_MIB} MiB)`);
  await ordinaryRequestAnswers();
}

describe('gRPC decoding does not amplify memory', () => {
  test('128 MiB of packed int_contents (134M one-byte values) for a shape of 4 is refused after counting, allocating nothing', async () => {
    const contents = protoField(5, protoField(2, Buffer.alloc(128 * MiB, 1)));
    await assertRefused(request(input('IN_INT32', 'INT32', [1, 4], contents), int64Input),
      /^input byte size mismatch for input 'IN_INT32' for model '[^']+'\. Expected 16, got 536870912$/);
  });

  test('64 MiB of unpacked int_contents (32M tagged values) is refused the same way', async () => {
    const contents = protoField(5, repeated([2 << 3, 1], 32 * MiB));
    await assertRefused(request(input('IN_INT32', 'INT32', [1, 4], contents), int64Input),
      /^input byte size mismatch for input 'IN_INT32' for model '[^']+'\. Expected 16, got 134217728$/);
  });

  test('2M packed int_contents (negatives as ten-byte varints) matching the shape answer, every value exact', async () => {
    const count = 2 * MiB;
    const values = Int32Array.from({ length: count }, (_, i) => (i % 7 === 0 ? -i : i));
    const message = {
      model_name: 'ident',
      inputs: [
        { name: 'IN_INT32', datatype: 'INT32', shape: [1, count], contents: { int_contents: Array.from(values) } },
        { name: 'IN_INT64', datatype: 'INT64', shape: [1, 1], contents: { int64_contents: [7] } },
      ],
    };
    const { result, slowestMs } = await whileWatchingHealth(httpUrl, grpc.call('ModelInfer', message));
    assert.equal(result.error, undefined, result.error?.message);
    const out = new Uint8Array(result.response!['raw_output_contents'][0] as Uint8Array);
    assert.ok(Buffer.from(out).equals(Buffer.from(values.buffer)), 'the output is the input, bit for bit');
    assert.ok(slowestMs < HEALTH_BOUND_MS, `health took ${slowestMs.toFixed(0)} ms`);
    await ordinaryRequestAnswers();
  });

  const floods: readonly { field: string; message: () => Buffer }[] = [
    { field: 'inputs', message: () => request(repeated([(5 << 3) | 2, 0], 16 * MiB)) },
    { field: 'outputs', message: () => request(int64Input, repeated([(6 << 3) | 2, 0], 16 * MiB)) },
    { field: 'parameters', message: () => request(int64Input, repeated([(4 << 3) | 2, 0], 16 * MiB)) },
    { field: 'raw_input_contents', message: () => request(int64Input, repeated([(7 << 3) | 2, 0], 16 * MiB)) },
    { field: 'inputs.shape', message: () => request(protoField(5, protoField(3, Buffer.alloc(32 * MiB, 1)))) },
    { field: 'inputs.parameters', message: () => request(protoField(5, repeated([(4 << 3) | 2, 0], 16 * MiB))) },
    { field: 'field 15', message: () => request(int64Input, repeated([15 << 3, 0], 16 * MiB)) },
  ];
  for (const { field, message } of floods) {
    test(`32 MiB of empty '${field}' entries is refused at the field budget`, async () => {
      const escaped = field.replace(/\./g, '\\.');
      await assertRefused(message(), new RegExp(`^ModelInferRequest holds more than ${DEFAULT_GRPC_MAX_REQUEST_FIELDS} values .* passing the limit at '${escaped}'; the limit is ${DEFAULT_GRPC_MAX_REQUEST_FIELDS} per message \\(--grpc-max-request-fields\\)$`));
    });
  }

  test('ModelStreamInfer: a flood message gets an error on the stream, and the stream answers the next request', async () => {
    const stream = grpc.stream();
    const responses: Record<string, any>[] = []; // eslint-disable-line @typescript-eslint/no-explicit-any
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('data', (m: Record<string, unknown>) => responses.push(m));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    const { slowestMs } = await whileWatchingHealth(httpUrl, (async () => {
      stream.write(Buffer.concat([protoField(3, Buffer.from('flood')), request(repeated([(5 << 3) | 2, 0], 16 * MiB))]));
      stream.write({ model_name: 'ident', id: 'after', inputs: [
        { name: 'IN_INT32', datatype: 'INT32', shape: [1, 2], contents: { int_contents: [-5, 5] } },
        { name: 'IN_INT64', datatype: 'INT64', shape: [1, 1], contents: { int64_contents: [1] } },
      ] });
      stream.end();
      await ended;
    })());
    assert.equal(responses.length, 2);
    assert.match(responses[0]!['error_message'], /ModelInferRequest holds more than 65536 values .* passing the limit at 'inputs'/);
    assert.equal(responses[0]!['infer_response']['id'], 'flood');
    assert.equal(responses[1]!['error_message'], '');
    assert.deepEqual([...new Int32Array(new Uint8Array(responses[1]!['infer_response']['raw_output_contents'][0]).buffer)], [-5, 5]);
    assert.ok(slowestMs < HEALTH_BOUND_MS, `health took ${slowestMs.toFixed(0)} ms`);
    await ordinaryRequestAnswers();
  });

  test('RepositoryModelLoad: a flood of parameters entries is refused before it is decoded', async () => {
    const message = Buffer.concat([protoField(2, Buffer.from('ident')), repeated([(3 << 3) | 2, 0], 16 * MiB)]);
    await assertRefused(message, /^RepositoryModelLoadRequest holds more than 65536 values .* passing the limit at 'parameters'/,
      (m) => grpc.call('RepositoryModelLoad', m));
  });
});
