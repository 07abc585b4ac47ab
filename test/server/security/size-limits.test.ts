/**
 * Request size limits at their exact edge: --http-max-input-size (413) on
 * infer, generate and generate_stream, with and without Content-Length, and
 * --grpc-max-message-size (RESOURCE_EXHAUSTED) on ModelInfer and
 * ModelStreamInfer. A request of exactly the limit is served, one byte more
 * is refused, and the server keeps serving afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { addSubModel } from '../../../generator/models.ts';
import { grpcType } from '../../../server/grpc/grpc-schema.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startGrpc, startHttp, type GrpcFixture, type HttpFixture } from '../../helpers/fixture-repository.ts';
import { RawGrpcClient, type Message } from '../../helpers/grpc-raw-client.ts';
import { rawHttp } from '../../helpers/raw-http.ts';

const ONES = Array.from({ length: 16 }, (_, i) => i + 1);
const INFER_JSON = JSON.stringify({
  inputs: [
    { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: ONES },
    { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: ONES },
  ],
});
const GENERATE_JSON = JSON.stringify({ INPUT0: 3, INPUT1: 4 });
/** Both bodies are padded with trailing JSON whitespace to this many bytes, which is the server's limit. */
const LIMIT = Math.max(INFER_JSON.length, GENERATE_JSON.length) + 10;
const pad = (json: string, size: number): string => json.padEnd(size, ' ');

let root: string;

before(async () => {
  root = await makeRepository({
    add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
    add1: { config: 'platform: "onnxruntime_onnx"\nmax_batch_size: 8\n', versions: { 1: addSubModel('INT32', 1) } },
  });
});
after(() => removeRepository(root));

describe('--http-max-input-size', () => {
  let fixture: HttpFixture;

  before(async () => {
    fixture = await startHttp(root, { maxInputSize: LIMIT });
  });
  after(() => fixture.close());

  const ROUTES: ReadonlyArray<readonly [path: string, json: string]> = [
    ['/v2/models/add_sub/infer', INFER_JSON],
    ['/v2/models/add1/generate', GENERATE_JSON],
    ['/v2/models/add1/generate_stream', GENERATE_JSON],
  ];

  test('a body of exactly the limit is served, one byte more is 413 naming both sizes and the flag', async () => {
    for (const [path, json] of ROUTES) {
      const exact = await rawHttp(fixture.url, path, { method: 'POST', body: pad(json, LIMIT) });
      assert.equal(exact.status, 200, `${path} at the limit: ${exact.body}`);
      const over = await rawHttp(fixture.url, path, { method: 'POST', body: pad(json, LIMIT + 1) });
      assert.equal(over.status, 413, path);
      assert.deepEqual(JSON.parse(over.body), {
        error: `request JSON size of ${LIMIT + 1} bytes exceeds the maximum allowed input size of ${LIMIT} bytes. Use --http-max-input-size to increase the limit.`,
      });
    }
  });

  test('a chunked body without Content-Length is measured as it arrives', async () => {
    for (const [path, json] of ROUTES) {
      const chunks = (size: number): Buffer[] => {
        const bytes = Buffer.from(pad(json, size));
        return [bytes.subarray(0, 10), bytes.subarray(10)];
      };
      const exact = await rawHttp(fixture.url, path, { method: 'POST', body: chunks(LIMIT) });
      assert.equal(exact.status, 200, `${path} at the limit, chunked: ${exact.body}`);
      const over = await rawHttp(fixture.url, path, { method: 'POST', body: chunks(LIMIT + 1) });
      assert.equal(over.status, 413, path);
      assert.match(JSON.parse(over.body).error, new RegExp(`exceeds the maximum allowed input size of ${LIMIT} bytes\\. Use --http-max-input-size to increase the limit\\.$`));
    }
  });

  test('after refusals the server keeps serving', async () => {
    for (let i = 0; i < 3; i++) {
      assert.equal((await rawHttp(fixture.url, '/v2/models/add_sub/infer', { method: 'POST', body: pad(INFER_JSON, LIMIT * 4) })).status, 413);
    }
    const res = await rawHttp(fixture.url, '/v2/models/add_sub/infer', { method: 'POST', body: INFER_JSON });
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body).outputs[0].data, ONES.map((n) => n * 2));
    assert.equal((await rawHttp(fixture.url, '/v2/health/ready')).status, 200);
  });
});

describe('--grpc-max-message-size', () => {
  const requestType = grpcType('inference.ModelInferRequest');
  const message = (id: string): Message => ({
    model_name: 'add_sub', id,
    inputs: ['INPUT0', 'INPUT1'].map((name) => ({ name, datatype: 'INT32', shape: [1, 16], contents: { int_contents: ONES } })),
  });
  const size = (m: Message): number => requestType.encode(requestType.fromObject(m)).finish().length;
  // The limit is the size of the request with id 'a'; with id 'ab' it is one byte over.
  const limit = size(message('a'));
  let fixture: GrpcFixture;
  let client: RawGrpcClient;

  before(async () => {
    assert.equal(size(message('ab')), limit + 1);
    fixture = await startGrpc(root, { maxMessageSize: limit });
    client = new RawGrpcClient(fixture.address);
  });
  after(async () => {
    client.close();
    await fixture.close();
  });

  test('ModelInfer: exactly the limit is served, one byte over is RESOURCE_EXHAUSTED, then it serves again', async () => {
    const exact = await client.call('ModelInfer', message('a'));
    assert.equal(exact.error, undefined, exact.error?.details);
    assert.equal(exact.response!['id'], 'a');
    const over = await client.call('ModelInfer', message('ab'));
    assert.equal(over.error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(over.error.details, new RegExp(`${limit + 1}.*${limit}`));
    assert.equal((await client.call('ModelInfer', message('b'))).response!['id'], 'b');
  });

  test('ModelStreamInfer: a message one byte over ends the stream with RESOURCE_EXHAUSTED; a new stream is served', async () => {
    const fine = await client.streamAll([message('a'), message('b')]);
    assert.deepEqual(fine.map((r) => [r['error_message'], r['infer_response']['id']]), [['', 'a'], ['', 'b']]);
    await assert.rejects(client.streamAll([message('ab')]), (err: grpc.ServiceError) => err.code === grpc.status.RESOURCE_EXHAUSTED);
    const again = await client.streamAll([message('c')]);
    assert.equal(again[0]!['infer_response']['id'], 'c');
    assert.equal((await client.call('ServerReady', {})).response!['ready'], true);
  });
});
