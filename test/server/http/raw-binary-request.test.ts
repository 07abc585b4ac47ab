/**
 * Raw binary requests (Inference-Header-Content-Length: 0) over real HTTP:
 * the body is the one input's data, its shape deduced from the config as
 * Triton deduces it, every output back as binary; and each of Triton's
 * refusals, with the server serving afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';
import { EchoBackend, withTestBackends } from '../../helpers/test-backends.ts';

/** An identity over the in-memory echo backend: what the codec sends is what comes back. */
const identityConfig = (name: string, type: string, batch: number, dims: string, t = type === 'BYTES' ? 'STRING' : type): string => `
name: "${name}"
backend: "test_echo"
max_batch_size: ${batch}
input [ { name: "IN_${type}" data_type: TYPE_${t} dims: ${dims} } ]
output [ { name: "OUT_${type}" data_type: TYPE_${t} dims: ${dims} } ]
`;

const MAX_INPUT_SIZE = 4096;
const RAW = { 'inference-header-content-length': '0', 'content-type': 'application/octet-stream' };

interface RawReply {
  status: number;
  json: { model_name?: string; outputs?: { name: string; datatype: string; shape: number[]; parameters?: { binary_data_size?: number } }[]; error?: string };
  binary: Buffer;
}

const fp32 = (values: readonly number[]): Buffer => Buffer.from(new Float32Array(values).buffer);

describe('raw binary requests', () => {
  let root: string;
  let http: HttpFixture;

  before(async () => {
    root = await makeRepository({
      fixed: { config: identityConfig('fixed', 'FP32', 4, '[ 4 ]'), versions: { 1: null } },
      variable: { config: identityConfig('variable', 'FP32', 4, '[ -1 ]'), versions: { 1: null } },
      unbatched: { config: identityConfig('unbatched', 'FP32', 0, '[ 2, -1 ]'), versions: { 1: null } },
      two_variable: { config: identityConfig('two_variable', 'FP32', 0, '[ -1, -1 ]'), versions: { 1: null } },
      text: { config: identityConfig('text', 'BYTES', 4, '[ 1 ]'), versions: { 1: null } },
      texts: { config: identityConfig('texts', 'BYTES', 4, '[ -1 ]'), versions: { 1: null } },
      add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
    });
    http = await startHttp(root, { maxInputSize: MAX_INPUT_SIZE, maxBytesElements: 8, backends: withTestBackends(new EchoBackend()) });
  });

  after(async () => {
    await http.close();
    await removeRepository(root);
  });

  async function raw(model: string, body: Buffer, headers: Record<string, string> = RAW): Promise<RawReply> {
    const res = await fetch(`${http.url}/v2/models/${model}/infer`, { method: 'POST', headers, body: new Uint8Array(body) });
    const bytes = Buffer.from(await res.arrayBuffer());
    const length = Number(res.headers.get('inference-header-content-length') ?? bytes.byteLength);
    return { status: res.status, json: JSON.parse(bytes.toString('utf8', 0, length)), binary: bytes.subarray(length) };
  }

  test('a fixed shape: [1, 4] from the config, the output back as binary', async () => {
    const reply = await raw('fixed', fp32([1.5, -2, 3, 4]));
    assert.equal(reply.status, 200, reply.json.error);
    assert.deepEqual(reply.json.outputs, [{ name: 'OUT_FP32', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } }]);
    assert.deepEqual(reply.binary, fp32([1.5, -2, 3, 4]));
  });

  test('one variable dim is deduced from the byte size', async () => {
    const reply = await raw('variable', fp32([1, 2, 3, 4, 5, 6]));
    assert.equal(reply.status, 200, reply.json.error);
    assert.deepEqual(reply.json.outputs?.[0]?.shape, [1, 6]);
    assert.deepEqual(reply.binary, fp32([1, 2, 3, 4, 5, 6]));
  });

  test('without batching the config dims are the whole shape, the variable one deduced', async () => {
    const reply = await raw('unbatched', fp32([1, 2, 3, 4, 5, 6]));
    assert.equal(reply.status, 200, reply.json.error);
    assert.deepEqual(reply.json.outputs?.[0]?.shape, [2, 3]);
  });

  test('BYTES: the whole body is the one element of shape [1, 1]', async () => {
    const reply = await raw('text', Buffer.from('héllo raw', 'utf8'));
    assert.equal(reply.status, 200, reply.json.error);
    assert.deepEqual(reply.json.outputs?.[0]?.shape, [1, 1]);
    const element = Buffer.from('héllo raw', 'utf8');
    assert.equal(reply.binary.readUInt32LE(0), element.byteLength);
    assert.deepEqual(reply.binary.subarray(4), element);
  });

  test('a body that does not fill the fixed shape is refused with 400', async () => {
    const reply = await raw('fixed', fp32([1, 2, 3]));
    assert.equal(reply.status, 400);
    assert.match(reply.json.error ?? '', /IN_FP32/);
  });

  test("more than one model input: Triton's error", async () => {
    const reply = await raw('add_sub', Buffer.alloc(64));
    assert.equal(reply.status, 400);
    assert.equal(reply.json.error, "Raw request must only have 1 input (found 1) to be deduced but got 2 inputs in 'add_sub' model configuration");
  });

  test("more than one variable dim: Triton's error", async () => {
    const reply = await raw('two_variable', fp32([1, 2]));
    assert.equal(reply.status, 400);
    assert.equal(reply.json.error, "The shape of the raw input 'IN_FP32' can not be deduced because there are more than one variable-sized dimension");
  });

  test("a BYTES input whose shape is not [1]: Triton's error", async () => {
    const reply = await raw('texts', Buffer.from('abc'));
    assert.equal(reply.status, 400);
    assert.equal(reply.json.error, "For BYTE datatype raw input 'IN_BYTES', the model must have input shape [1]");
  });

  test('the body limit applies to a raw body', async () => {
    const reply = await raw('variable', Buffer.alloc(MAX_INPUT_SIZE + 4));
    assert.equal(reply.status, 413);
    assert.match(reply.json.error ?? '', /exceeds the maximum allowed input size of 4096 bytes\. Use --http-max-input-size to increase the limit\./);
  });

  test('--max-bytes-elements still applies: a limit of 0 refuses the one element', async () => {
    const strict = await startHttp(root, { maxBytesElements: 0, backends: withTestBackends(new EchoBackend()) });
    try {
      const res = await fetch(`${strict.url}/v2/models/text/infer`, { method: 'POST', headers: RAW, body: 'abc' });
      assert.equal(res.status, 400);
      assert.match(await res.text(), /--max-bytes-elements/);
    } finally {
      await strict.close();
    }
  });

  test('the server still serves after every refusal', async () => {
    const reply = await raw('fixed', fp32([4, 3, 2, 1]));
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.binary, fp32([4, 3, 2, 1]));
  });
});
