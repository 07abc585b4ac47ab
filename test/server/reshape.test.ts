/**
 * `reshape` in input and output config, applied at inference on a real
 * ONNX model that takes [batch, 4, 4] (a transpose): the client sends and
 * gets flat rows of 16 (the config's dims), the model sees 4x4 matrices.
 * Over HTTP and gRPC, batched and not, through warmup, and the load-time
 * checks that dims and reshape agree.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { transposeModel } from '../../generator/models.ts';
import { reshapeDims } from '../../engine/tensor-reshape.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../helpers/fixture-repository.ts';
import { RawGrpcClient } from '../helpers/grpc-raw-client.ts';

const config = (name: string, maxBatch: number, dims: string, reshape: string, extra = ''): string =>
  `name: "${name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: ${maxBatch}\n`
  + `input [ { name: "INPUT" data_type: TYPE_FP32 dims: ${dims} reshape: { shape: ${reshape} } } ]\n`
  + `output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: ${dims} reshape: { shape: ${reshape} } } ]\n${extra}`;

const WARMUP = 'model_warmup [ { name: "zeros" batch_size: 1 inputs { key: "INPUT" value: { data_type: TYPE_FP32 dims: [ 16 ] zero_data: true } } } ]\n';

/** Row r of a batch holds r * 100 + 0..15; transposed as a 4x4 matrix, element i of the answer is the input's (i % 4) * 4 + floor(i / 4). */
const rows = (count: number): number[] => Array.from({ length: count * 16 }, (_, k) => Math.floor(k / 16) * 100 + (k % 16));
const transposed = (count: number): number[] => Array.from({ length: count * 16 }, (_, k) => {
  const i = k % 16;
  return Math.floor(k / 16) * 100 + (i % 4) * 4 + Math.floor(i / 4);
});

let root: string;
let fixture: DualFixture;
let client: RawGrpcClient;

before(async () => {
  root = await makeRepository({
    transpose: { config: config('transpose', 4, '[ 16 ]', '[ 4, 4 ]'), versions: { 1: transposeModel() } },
    transpose_flat: { config: config('transpose_flat', 0, '[ 1, 16 ]', '[ 1, 4, 4 ]'), versions: { 1: transposeModel() } },
    transpose_warm: { config: config('transpose_warm', 4, '[ 16 ]', '[ 4, 4 ]', WARMUP), versions: { 1: transposeModel() } },
    bad_size: { config: config('bad_size', 4, '[ 15 ]', '[ 4, 4 ]'), versions: { 1: transposeModel() } },
    bad_variable: { config: config('bad_variable', 4, '[ -1 ]', '[ 4, 4 ]'), versions: { 1: transposeModel() } },
    bad_dim: { config: config('bad_dim', 4, '[ 16 ]', '[ 4, 0 ]'), versions: { 1: transposeModel() } },
  });
  fixture = await startBoth(root);
  client = new RawGrpcClient(fixture.grpcAddress);
});

after(async () => {
  client?.close();
  await fixture?.close();
  if (root) await removeRepository(root);
});

async function httpInfer(model: string, shape: number[], data: number[]): Promise<{ status: number; body: Record<string, any> }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(`${fixture.httpUrl}/v2/models/${model}/infer`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'INPUT', datatype: 'FP32', shape, data }] }),
  });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
}

describe('reshape at inference', () => {
  test('HTTP: a batch of flat rows reaches the model as 4x4 matrices and comes back flat', async () => {
    const { status, body } = await httpInfer('transpose', [3, 16], rows(3));
    assert.equal(status, 200);
    assert.deepEqual(body['outputs'][0].shape, [3, 16]);
    assert.deepEqual(body['outputs'][0].data, transposed(3));
  });

  test('gRPC: the same answer in the config shape', async () => {
    const { response, error } = await client.call('ModelInfer', {
      model_name: 'transpose', inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [2, 16], contents: { fp32_contents: rows(2) } }],
    });
    assert.equal(error, undefined);
    assert.deepEqual(response!['outputs'][0].shape.map(Number), [2, 16]);
    const raw = Buffer.from(response!['raw_output_contents'][0] as Uint8Array);
    assert.deepEqual([...new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength))], transposed(2));
  });

  test('a model that does not batch: [1, 16] in and out, [1, 4, 4] in the model', async () => {
    const { status, body } = await httpInfer('transpose_flat', [1, 16], rows(1));
    assert.equal(status, 200);
    assert.deepEqual(body['outputs'][0].shape, [1, 16]);
    assert.deepEqual(body['outputs'][0].data, transposed(1));
  });

  test('metadata and config show the client shape, the config keeps reshape', async () => {
    const meta = await (await fetch(`${fixture.httpUrl}/v2/models/transpose`)).json() as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.deepEqual(meta['inputs'][0].shape, [-1, 16]);
    assert.deepEqual(meta['outputs'][0].shape, [-1, 16]);
    const cfg = await (await fetch(`${fixture.httpUrl}/v2/models/transpose/config`)).json() as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.deepEqual(cfg['input'][0].reshape.shape.map(Number), [4, 4]);
  });

  test('a request sent in the reshape shape is refused with the config shape, and the server serves on', async () => {
    const { status, body } = await httpInfer('transpose', [1, 4, 4], rows(1));
    assert.equal(status, 400);
    assert.equal(body['error'], "unexpected shape for input 'INPUT' for model 'transpose'. Expected [-1,16], got [1,4,4]. "
      + 'NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to each input shape. '
      + 'If you want to specify the full shape including the batch dim in your input dims config, try setting max_batch_size to zero.');
    assert.equal((await httpInfer('transpose', [1, 16], rows(1))).status, 200);
  });

  test('warmup samples in the config dims are reshaped too: the model loads and serves', async () => {
    const { status, body } = await httpInfer('transpose_warm', [1, 16], rows(1));
    assert.equal(status, 200);
    assert.deepEqual(body['outputs'][0].data, transposed(1));
  });
});

describe('reshape checked at load', () => {
  const reason = (name: string): string => fixture.engine.repositoryIndex().find((e) => e.name === name)!.reason;

  test('a different element count fails with Triton\'s words', () => {
    assert.match(reason('bad_size'), /input\[0\]\.reshape\.shape: model input 'INPUT' has different size for dims and reshape: dims \[15\], reshape \[4,4\]/);
  });

  test('a different number of variable dims fails with Triton\'s words', () => {
    assert.match(reason('bad_variable'), /input\[0\]\.reshape\.shape: model input 'INPUT' has different number of variable-size dimensions for dims and reshape/);
  });

  test('a zero dim in reshape fails naming the field', () => {
    assert.match(reason('bad_dim'), /input\[0\]\.reshape\.shape: contains 0/);
  });
});

describe('reshapeDims', () => {
  test('fixed shapes map to the target pattern', () => {
    assert.deepEqual(reshapeDims([16], [4, 4], [16]), [4, 4]);
    assert.deepEqual(reshapeDims([4, 4], [16], [4, 4]), [16]);
  });

  test('variable dims carry their sizes across in order', () => {
    assert.deepEqual(reshapeDims([-1, 6], [-1, 2, 3], [5, 6]), [5, 2, 3]);
    assert.deepEqual(reshapeDims([-1, 4, -1], [-1, 2, 2, -1], [7, 4, 9]), [7, 2, 2, 9]);
  });

  test('a shape of another rank is left as it is', () => {
    assert.deepEqual(reshapeDims([16], [4, 4], [4, 4]), [4, 4]);
  });
});
