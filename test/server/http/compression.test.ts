/**
 * HTTP compression on infer, as Triton does it: gzip and deflate request
 * bodies (JSON and binary tensor data) are inflated before decoding, and
 * Accept-Encoding picks the response's coding by q-value.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { deflateSync, gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import { addSubModel } from '../../../generator/models.ts';
import { responseCompression, SYNC_COMPRESSION_MAX_BYTES } from '../../../server/http/response-compression.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';
import { EchoBackend, withTestBackends } from '../../helpers/test-backends.ts';
import { rawHttp } from '../../helpers/raw-http.ts';

const range = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));
const A = range(16, (i) => i);
const B = range(16, (i) => 3 * i);
const SUM = range(16, (i) => 4 * i);
const DIFF = range(16, (i) => (i === 0 ? 0 : -2 * i));

const JSON_REQUEST = JSON.stringify({
  inputs: [
    { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: A },
    { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: B },
  ],
});

/** A binary-extension body: the JSON header, then INPUT0's bytes. */
function binaryRequest(): { body: Buffer; headerLength: number } {
  const header = Buffer.from(JSON.stringify({
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], parameters: { binary_data_size: 64 } },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: B },
    ],
  }));
  return { body: Buffer.concat([header, Buffer.from(new Int32Array(A).buffer)]), headerLength: header.byteLength };
}

describe('HTTP compression', () => {
  let root: string;
  let http: HttpFixture;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
      identity: {
        config: 'name: "identity"\nbackend: "test_echo"\nmax_batch_size: 1\n'
          + 'input [ { name: "IN_FP32" data_type: TYPE_FP32 dims: [ -1 ] } ]\noutput [ { name: "OUT_FP32" data_type: TYPE_FP32 dims: [ -1 ] } ]\n',
        versions: { 1: null },
      },
    });
    http = await startHttp(root, { backends: withTestBackends(new EchoBackend()) });
  });

  after(async () => {
    await http.close();
    await removeRepository(root);
  });

  const post = (body: Buffer | string, headers: Record<string, string>) =>
    fetch(`${http.url}/v2/models/add_sub/infer`, { method: 'POST', headers, body: typeof body === 'string' ? body : new Uint8Array(body) });

  async function assertSums(res: Response): Promise<void> {
    const text = await res.text();
    assert.equal(res.status, 200, text);
    const json = JSON.parse(text) as { outputs: { name: string; data: number[] }[] };
    assert.deepEqual(json.outputs.map((o) => o.data), [SUM, DIFF]);
  }

  for (const [coding, compress] of [['gzip', gzipSync], ['deflate', deflateSync]] as const) {
    test(`a ${coding} JSON body is inflated and served`, async () => {
      await assertSums(await post(compress(JSON_REQUEST), { 'content-encoding': coding }));
    });

    test(`a ${coding} binary-extension body: Inference-Header-Content-Length counts the inflated header`, async () => {
      const { body, headerLength } = binaryRequest();
      await assertSums(await post(compress(body), {
        'content-encoding': coding, 'inference-header-content-length': String(headerLength),
      }));
    });
  }

  test('either Content-Encoding takes either format, as zlib does for Triton', async () => {
    await assertSums(await post(gzipSync(JSON_REQUEST), { 'content-encoding': 'deflate' }));
  });

  test('identity is no encoding', async () => {
    await assertSums(await post(JSON_REQUEST, { 'content-encoding': 'identity' }));
  });

  for (const [accept, coding, inflate] of [['gzip', 'gzip', gunzipSync], ['deflate', 'deflate', inflateSync]] as const) {
    test(`Accept-Encoding: ${accept} compresses the response to the same JSON`, async () => {
      const res = await rawHttp(http.url, '/v2/models/add_sub/infer', {
        method: 'POST', headers: { 'accept-encoding': accept }, body: JSON_REQUEST,
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-encoding'], coding);
      const plain = await post(JSON_REQUEST, {});
      assert.deepEqual(JSON.parse(inflate(res.raw).toString('utf8')), JSON.parse(await plain.text()));
    });
  }

  test('a compressed binary response keeps Inference-Header-Content-Length of the inflated JSON', async () => {
    const res = await rawHttp(http.url, '/v2/models/add_sub/infer', {
      method: 'POST', headers: { 'accept-encoding': 'gzip' },
      body: JSON.stringify({ ...JSON.parse(JSON_REQUEST), parameters: { binary_data_output: true } }),
    });
    assert.equal(res.headers['content-encoding'], 'gzip');
    const body = gunzipSync(res.raw);
    const length = Number(res.headers['inference-header-content-length']);
    const json = JSON.parse(body.toString('utf8', 0, length)) as { outputs: { parameters: { binary_data_size: number } }[] };
    assert.deepEqual(json.outputs.map((o) => o.parameters.binary_data_size), [64, 64]);
    assert.deepEqual(Array.from(new Int32Array(body.buffer.slice(body.byteOffset + length, body.byteOffset + length + 64))), SUM);
  });

  test('a response larger than SYNC_COMPRESSION_MAX_BYTES is compressed on the thread pool to the same JSON', async () => {
    const data = range(20_000, (i) => i + 0.5);
    const body = JSON.stringify({ inputs: [{ name: 'IN_FP32', datatype: 'FP32', shape: [1, data.length], data }] });
    const res = await rawHttp(http.url, '/v2/models/identity/infer', { method: 'POST', headers: { 'accept-encoding': 'gzip' }, body });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-encoding'], 'gzip');
    const inflated = gunzipSync(res.raw);
    assert.ok(inflated.byteLength > SYNC_COMPRESSION_MAX_BYTES, `${inflated.byteLength} bytes`);
    assert.deepEqual((JSON.parse(inflated.toString('utf8')) as { outputs: { data: number[] }[] }).outputs[0]!.data, data);
  });

  test('no Accept-Encoding, or one naming only unknown codings, sends the response as it is', async () => {
    for (const headers of [{}, { 'accept-encoding': 'br, zstd' }] as Record<string, string>[]) {
      const res = await rawHttp(http.url, '/v2/models/add_sub/infer', { method: 'POST', headers, body: JSON_REQUEST });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-encoding'], undefined);
      assert.equal(JSON.parse(res.body).model_name, 'add_sub');
    }
  });

  test("Accept-Encoding picks as Triton does: highest q wins, ties keep the first, q=0 never wins", () => {
    assert.equal(responseCompression(undefined), 'identity');
    assert.equal(responseCompression('gzip, deflate'), 'gzip');
    assert.equal(responseCompression('deflate, gzip'), 'deflate');
    assert.equal(responseCompression('gzip;q=0.5, deflate;q=0.8'), 'deflate');
    assert.equal(responseCompression('gzip;q=0'), 'identity');
    assert.equal(responseCompression('identity;q=0.9, gzip;q=0.2'), 'identity');
    assert.equal(responseCompression('*, br'), 'identity');
    assert.equal(responseCompression('gzip;q=abc, deflate'), 'deflate');
  });
});
