/**
 * gRPC message compression. Requests compressed by a grpc-js client
 * (grpc.default_compression_algorithm, gzip or deflate) are inflated by
 * grpc-js before the handler decodes them, so --grpc-max-message-size
 * bounds the inflated size (at the exact limit served, one byte over
 * RESOURCE_EXHAUSTED) and --grpc-max-request-fields counts the inflated
 * message. A bomb (32 MiB of zeros in 32 KiB) stops inflating at the limit.
 * Responses go back uncompressed (grpc-encoding identity), which every
 * client accepts: grpc-js's server cannot compress.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { addSubModel } from '../../../generator/models.ts';
import { grpcType } from '../../../server/grpc/grpc-schema.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startGrpc, type GrpcFixture } from '../../helpers/fixture-repository.ts';
import { RawGrpcClient, type Message } from '../../helpers/grpc-raw-client.ts';
import { within } from '../../helpers/script-fixtures.ts';

const GZIP = 2;
const DEFLATE = 1;
const requestType = grpcType('inference.ModelInferRequest');
const range = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));
const ints = (raw: Uint8Array): number[] => [...new Int32Array(Uint8Array.from(raw).buffer)];

function addSub(id: string): Message {
  return {
    model_name: 'add_sub', id,
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { int_contents: range(16, (i) => i) } },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { int_contents: range(16, () => 1) } },
    ],
  };
}
const size = (m: Message): number => requestType.encode(requestType.fromObject(m)).finish().length;

/** The largest request: add_sub with a 60,000-character id, which compresses to a few hundred bytes. */
const LONG_ID = 'a'.repeat(60_000);
const LIMIT = size(addSub(LONG_ID));
const MAX_FIELDS = 200;

let root: string;
let fixture: GrpcFixture;

before(async () => {
  assert.equal(size(addSub(`${LONG_ID}a`)), LIMIT + 1);
  root = await makeRepository({ add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel('INT32', 16) } } });
  fixture = await startGrpc(root, { maxMessageSize: LIMIT, maxRequestFields: MAX_FIELDS });
});
after(async () => {
  await fixture.close();
  await removeRepository(root);
});

/** A client whose every message is compressed with `algorithm`. */
function compressingClient(algorithm: number): RawGrpcClient {
  return new RawGrpcClient(fixture.address, { 'grpc.default_compression_algorithm': algorithm });
}

/**
 * One ModelInfer on a bare HTTP/2 stream, its message `body` framed with
 * the compressed flag and `grpc-encoding: encoding`; resolves with the
 * response headers, the data received and the trailers.
 */
function rawCall(encoding: string, framed: Buffer): Promise<{ headers: Record<string, unknown>; data: Buffer; trailers: Record<string, unknown> }> {
  return within(10_000, `a ModelInfer with grpc-encoding ${encoding}`, new Promise((resolve, reject) => {
    const session = connect(`http://${fixture.address}`);
    session.on('error', reject);
    const stream = session.request({
      ':method': 'POST', ':path': '/inference.GRPCInferenceService/ModelInfer', 'content-type': 'application/grpc', te: 'trailers',
      'grpc-encoding': encoding, 'grpc-accept-encoding': 'identity,deflate,gzip',
    });
    let headers: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => { headers = h; });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    let trailers: Record<string, unknown> | undefined;
    stream.on('trailers', (t) => { trailers = t; });
    // A call refused before any message ends with its status in the headers alone (trailers-only).
    stream.on('close', () => {
      resolve({ headers, data: Buffer.concat(chunks), trailers: trailers ?? headers });
      session.close();
    });
    stream.on('error', reject);
    stream.end(framed);
  }));
}

function frame(compressed: boolean, message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(compressed ? 1 : 0, 0);
  head.writeUInt32BE(message.byteLength, 1);
  return Buffer.concat([head, message]);
}

describe('compressed requests', () => {
  for (const [name, algorithm] of [['gzip', GZIP], ['deflate', DEFLATE]] as const) {
    test(`${name}: ModelInfer and ModelStreamInfer are served; the inflated size is held to --grpc-max-message-size, exactly the limit served`, async () => {
      const client = compressingClient(algorithm);
      try {
        const exact = await client.call('ModelInfer', addSub(LONG_ID));
        assert.equal(exact.error, undefined, exact.error?.details);
        assert.equal(exact.response!['id'], LONG_ID);
        assert.deepEqual(ints(exact.response!['raw_output_contents'][0]), range(16, (i) => i + 1));
        const over = await client.call('ModelInfer', addSub(`${LONG_ID}a`));
        assert.equal(over.error?.code, grpc.status.RESOURCE_EXHAUSTED);
        assert.equal(over.error?.details, `Received message that decompresses to a size larger than ${LIMIT}`);
        const replies = await client.streamAll([addSub('s1'), addSub('s2')]);
        assert.deepEqual(replies.map((r) => [r['error_message'], r['infer_response']['id']]), [['', 's1'], ['', 's2']]);
      } finally {
        client.close();
      }
    });
  }

  test('--grpc-max-request-fields counts the inflated message', async () => {
    const client = compressingClient(GZIP);
    try {
      const many = { ...addSub('many'), parameters: Object.fromEntries(Array.from({ length: MAX_FIELDS }, (_, i) => [`p${i}`, { bool_param: true }])) };
      const { error } = await client.call('ModelInfer', many);
      assert.equal(error?.code, grpc.status.INVALID_ARGUMENT);
      assert.match(error?.details ?? '', new RegExp(`more than ${MAX_FIELDS} values .*--grpc-max-request-fields`));
    } finally {
      client.close();
    }
  });

  test('a decompression bomb (32 MiB of zeros, 32 KiB sent) stops inflating at the limit: RESOURCE_EXHAUSTED, and the server keeps serving', async () => {
    const bomb = gzipSync(Buffer.alloc(32 * 1024 * 1024), { level: 9 });
    assert.ok(bomb.byteLength < LIMIT, 'the compressed message itself is under the limit');
    const before = process.memoryUsage().arrayBuffers;
    const { trailers } = await rawCall('gzip', frame(true, bomb));
    assert.equal(trailers['grpc-status'], String(grpc.status.RESOURCE_EXHAUSTED));
    assert.ok(process.memoryUsage().arrayBuffers - before < 16 * 1024 * 1024, 'nothing near 64 MiB was held');
    const client = new RawGrpcClient(fixture.address);
    try {
      assert.equal((await client.call('ModelInfer', addSub('after'))).response!['id'], 'after');
    } finally {
      client.close();
    }
  });

  test('a compressed message that is not gzip fails the call; an unknown grpc-encoding is UNIMPLEMENTED', async () => {
    const broken = await rawCall('gzip', frame(true, Buffer.from('not gzip at all')));
    assert.equal(broken.trailers['grpc-status'], String(grpc.status.INTERNAL));
    assert.equal(decodeURIComponent(String(broken.trailers['grpc-message'])), 'Failed to decompress message');
    const unknown = await rawCall('br', frame(true, Buffer.from('anything')));
    assert.equal(unknown.trailers['grpc-status'], String(grpc.status.UNIMPLEMENTED));
    assert.equal(decodeURIComponent(String(unknown.trailers['grpc-message'])), 'Received message compressed with unsupported encoding "br"');
  });
});

describe('responses', () => {
  test('go back uncompressed with grpc-encoding identity, even to a client that offers gzip, and decode', async () => {
    const message = Buffer.from(requestType.encode(requestType.fromObject(addSub('plain'))).finish());
    const { headers, data, trailers } = await rawCall('gzip', frame(true, gzipSync(message)));
    assert.equal(trailers['grpc-status'], '0');
    assert.equal(headers['grpc-encoding'], 'identity');
    assert.equal(data.readUInt8(0), 0, 'the compressed flag of the response message is 0');
    const response = grpcType('inference.ModelInferResponse').decode(data.subarray(5, 5 + data.readUInt32BE(1))) as unknown as Message;
    assert.equal(response['id'], 'plain');
  });
});
