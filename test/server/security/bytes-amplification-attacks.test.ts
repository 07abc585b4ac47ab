/**
 * Class 1 of the hardening issue: BYTES element amplification. Millions of
 * empty BYTES elements cost 4 bytes each on the HTTP wire and 2 in gRPC
 * bytes_contents; held one object per element they cost hundreds of bytes
 * each, and a 64 MiB body killed the process. Now a BYTES tensor is one
 * buffer plus a 4-byte index entry per element, and --max-bytes-elements
 * (default 1,048,576) refuses larger tensors before their data is read.
 *
 * The server runs as a child process (the real CLI, default flags) so that
 * its RSS is its own. Each attack shows: a 400 / INVALID_ARGUMENT naming the
 * limit; /v2/health/live answering within HEALTH_BOUND_MS while the attack
 * is served; RSS growth under RSS_BOUND_MIB; and ordinary BYTES requests
 * answering correctly afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { identityModel } from '../../../generator/models.ts';
import { DEFAULT_MAX_BYTES_ELEMENTS } from '../../../engine/bytes-tensor.ts';
import { ServerProcess } from '../../../bench/soak/server-process.ts';
import { makeRepository, removeRepository } from '../../helpers/fixture-repository.ts';
import { RawGrpcClient, strings } from '../../helpers/grpc-raw-client.ts';
import { whileWatchingHealth as watchHealth } from '../../helpers/health-watch.ts';
import { rawHttp, type RawResponse } from '../../helpers/raw-http.ts';

/** /v2/health/live must answer within this while an attack is being served. */
const HEALTH_BOUND_MS = 1000;
/** The server's RSS may grow by at most this much over the whole run: 64 MiB bodies and their concatenation, freed but not yet returned by V8. */
const RSS_BOUND_MIB = 512;
/** The default HTTP body limit (--http-max-input-size). */
const BODY_LIMIT = 64 * 1024 * 1024;

const ECHO_CONFIG = `name: "text_echo"
platform: "onnxruntime_onnx"
max_batch_size: 4
input [ { name: "IN_BYTES" data_type: TYPE_STRING dims: [ -1 ] } ]
output [ { name: "OUT_BYTES" data_type: TYPE_STRING dims: [ -1 ] } ]
`;

let root: string;
let server: ServerProcess;
let grpc: RawGrpcClient;
let baselineRssKiB: number;
let httpUrl: string;

before(async () => {
  root = await makeRepository({ text_echo: { config: ECHO_CONFIG, versions: { 1: identityModel(['BYTES']) } } });
  server = await ServerProcess.start([root], 60_000);
  httpUrl = `http://127.0.0.1:${server.httpPort}`;
  grpc = new RawGrpcClient(`127.0.0.1:${server.grpcPort}`, { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 });
  await ordinaryRequestsAnswer();
  baselineRssKiB = server.rssKiB()!;
});

after(async () => {
  grpc?.close();
  await server?.stop(10_000);
  await removeRepository(root);
});

/** Length-prefixed elements. */
function wire(elements: readonly string[]): Buffer {
  return Buffer.concat(elements.flatMap((e) => {
    const bytes = Buffer.from(e);
    const length = Buffer.alloc(4);
    length.writeUInt32LE(bytes.byteLength);
    return [length, bytes];
  }));
}

/** A binary-extension request of `count` elements whose data is `data`. */
function binaryRequest(count: number, data: Buffer): Promise<RawResponse> {
  const header = Buffer.from(JSON.stringify({
    inputs: [{ name: 'IN_BYTES', datatype: 'BYTES', shape: [1, count], parameters: { binary_data_size: data.byteLength } }],
    outputs: [{ name: 'OUT_BYTES', parameters: { binary_data: true } }],
  }));
  return rawHttp(httpUrl, '/v2/models/text_echo/infer', {
    method: 'POST', body: Buffer.concat([header, data]),
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.byteLength) },
  });
}

/** `count` empty elements as a binary request body that fits the body limit when count allows. */
const emptyElements = (count: number): Buffer => Buffer.alloc(count * 4);

/** The largest count of empty elements whose binary request fits the default body limit. */
function countFillingBody(): number {
  const header = JSON.stringify({
    inputs: [{ name: 'IN_BYTES', datatype: 'BYTES', shape: [1, 99999999], parameters: { binary_data_size: 999999999 } }],
    outputs: [{ name: 'OUT_BYTES', parameters: { binary_data: true } }],
  });
  return Math.floor((BODY_LIMIT - header.length) / 4);
}

/** A ModelInferRequest, written by hand, whose one input holds `count` empty bytes_contents entries. */
function bytesContentsMessage(count: number): Buffer {
  const field = (number: number, body: Buffer): Buffer => Buffer.concat([varint(number * 8 + 2), varint(body.byteLength), body]);
  const contents = Buffer.alloc(count * 2);
  for (let i = 0; i < count; i++) contents[i * 2] = (8 << 3) | 2;
  const shape = Buffer.concat([varint((3 << 3) | 0), varint(1), varint((3 << 3) | 0), varint(count)]);
  const input = Buffer.concat([field(1, Buffer.from('IN_BYTES')), field(2, Buffer.from('BYTES')), shape, field(5, contents)]);
  return Buffer.concat([field(1, Buffer.from('text_echo')), field(5, input)]);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  while (value >= 0x80) {
    bytes.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  bytes.push(value);
  return Buffer.from(bytes);
}

/** Runs `attack` while asking /v2/health/live again and again; resolves with its result and the slowest health answer. */
const whileWatchingHealth = <T>(attack: Promise<T>) => watchHealth(httpUrl, attack);

async function ordinaryRequestsAnswer(): Promise<void> {
  const elements = ['a', 'bc', '', 'déjà vu'];
  const http = await binaryRequest(elements.length, wire(elements));
  assert.equal(http.status, 200, http.body.slice(0, 300));
  const outcome = await grpc.call('ModelInfer', {
    model_name: 'text_echo', inputs: [{ name: 'IN_BYTES', datatype: 'BYTES', shape: [1, elements.length], contents: { bytes_contents: elements.map((e) => Buffer.from(e)) } }],
  });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  assert.deepEqual(strings(outcome.response!['raw_output_contents'][0]), elements);
}

function assertRssBounded(when: string): void {
  const grownMiB = (server.rssKiB()! - baselineRssKiB) / 1024;
  assert.ok(grownMiB < RSS_BOUND_MIB, `${when}: RSS grew by ${grownMiB.toFixed(0)} MiB (bound ${RSS_BOUND_MIB} MiB)`);
}

describe('BYTES element amplification', () => {
  test('HTTP: a 64 MiB body of ~16M empty elements is refused with 400 naming the limit; health answers meanwhile', async () => {
    const count = countFillingBody();
    const { result, slowestMs } = await whileWatchingHealth(binaryRequest(count, emptyElements(count)));
    assert.equal(result.status, 400, result.body.slice(0, 300));
    assert.match(JSON.parse(result.body).error, new RegExp(`input 'IN_BYTES' has ${count} BYTES elements; the limit is ${DEFAULT_MAX_BYTES_ELEMENTS} per tensor \\(--max-bytes-elements\\)`));
    assert.ok(slowestMs < HEALTH_BOUND_MS, `health took ${slowestMs.toFixed(0)} ms during the attack`);
    assert.ok(server.running);
    assertRssBounded('after the HTTP attack');
    await ordinaryRequestsAnswer();
  });

  test('HTTP: a shape within the limit whose data holds more elements stops counting at the limit', async () => {
    const { result, slowestMs } = await whileWatchingHealth(binaryRequest(4, emptyElements(countFillingBody())));
    assert.equal(result.status, 400);
    assert.match(JSON.parse(result.body).error, /input 'IN_BYTES' has more than 1048576 BYTES elements; the limit is 1048576 per tensor/);
    assert.ok(slowestMs < HEALTH_BOUND_MS, `health took ${slowestMs.toFixed(0)} ms during the attack`);
    assertRssBounded('after the miscounted attack');
    await ordinaryRequestsAnswer();
  });

  test('HTTP: exactly the limit of elements answers; one more is refused', async () => {
    const limit = DEFAULT_MAX_BYTES_ELEMENTS;
    const { result: atLimit, slowestMs } = await whileWatchingHealth(binaryRequest(limit, emptyElements(limit)));
    assert.equal(atLimit.status, 200, atLimit.body.slice(0, 300));
    assert.ok(slowestMs < HEALTH_BOUND_MS, `health took ${slowestMs.toFixed(0)} ms while ${limit} elements were served`);
    const over = await binaryRequest(limit + 1, emptyElements(limit + 1));
    assert.equal(over.status, 400);
    assert.match(JSON.parse(over.body).error, new RegExp(`has ${limit + 1} BYTES elements; the limit is ${limit} per tensor`));
    assertRssBounded('after the requests at the limit');
    await ordinaryRequestsAnswer();
  });

  test('gRPC: 32M empty bytes_contents entries (64 MiB) are refused with INVALID_ARGUMENT before protobufjs decodes them', async () => {
    const count = 32 * 1024 * 1024;
    const message = bytesContentsMessage(count);
    const { result, slowestMs } = await whileWatchingHealth(grpc.call('ModelInfer', message));
    assert.equal(result.error?.code, 3, result.error?.message);
    assert.match(result.error!.details, /input 'IN_BYTES' has more than 1048576 BYTES elements; the limit is 1048576 per tensor \(--max-bytes-elements\)/);
    assert.ok(slowestMs < HEALTH_BOUND_MS, `health took ${slowestMs.toFixed(0)} ms during the attack`);
    assertRssBounded('after the gRPC attack');
    await ordinaryRequestsAnswer();
  });

  test('gRPC: bytes_contents at the limit answers; one more entry is refused', async () => {
    const limit = DEFAULT_MAX_BYTES_ELEMENTS;
    const { result: atLimit, slowestMs } = await whileWatchingHealth(grpc.call('ModelInfer', bytesContentsMessage(limit)));
    assert.equal(atLimit.error, undefined, atLimit.error?.message);
    assert.equal((atLimit.response!['raw_output_contents'][0] as Uint8Array).byteLength, limit * 4);
    assert.ok(slowestMs < HEALTH_BOUND_MS, `health took ${slowestMs.toFixed(0)} ms while ${limit} entries were served`);
    const over = await grpc.call('ModelInfer', bytesContentsMessage(limit + 1));
    assert.equal(over.error?.code, 3);
    assert.match(over.error!.details, /has more than 1048576 BYTES elements/);
    assertRssBounded('after the gRPC requests at the limit');
    await ordinaryRequestsAnswer();
  });
});
