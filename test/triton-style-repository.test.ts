/**
 * A Triton user's repository works without edits: configs written as Triton's
 * docs write them, models in numbered folders, requests as Triton's clients
 * send them (binary tensors included).
 */
import assert from 'node:assert/strict';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { addSubModel, featureClassifierModel } from '../generator/models.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from './helpers/fixture-repository.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/triton-style', import.meta.url));
let root: string;
let http: HttpFixture;

before(async () => {
  root = await makeRepository({});
  await cp(FIXTURE, root, { recursive: true });
  for (const [model, bytes] of [['simple', addSubModel('INT32', 16)], ['densenet_like', featureClassifierModel()]] as const) {
    await mkdir(join(root, model, '1'), { recursive: true });
    await writeFile(join(root, model, '1', 'model.onnx'), bytes);
  }
  http = await startHttp(root);
});

after(async () => {
  await http.close();
  await removeRepository(root);
});

test('every model of the Triton-style repository is ready', async () => {
  const ready = await fetch(`${http.url}/v2/health/ready`);
  assert.equal(ready.status, 200);
  const metadata = await (await fetch(`${http.url}/v2/models/densenet_like`)).json() as Record<string, unknown>;
  assert.deepEqual(metadata['inputs'], [{ name: 'FEATURES', datatype: 'FP32', shape: [1, 32] }]);
  const config = await (await fetch(`${http.url}/v2/models/simple/config`)).json() as Record<string, unknown>;
  assert.deepEqual((config['instance_group'] as Array<Record<string, unknown>>)[0]!['count'], 2);
  assert.deepEqual((config['dynamic_batching'] as Record<string, unknown>)['preferred_batch_size'], [8]);
});

test('a binary request as tritonclient.http sends it gets a binary answer', async () => {
  const input0 = new Int32Array(16).map((_, i) => i);
  const input1 = new Int32Array(16).fill(1);
  const header = JSON.stringify({
    inputs: [
      { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', parameters: { binary_data_size: 64 } },
      { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', parameters: { binary_data_size: 64 } },
    ],
    outputs: [{ name: 'OUTPUT0', parameters: { binary_data: true } }, { name: 'OUTPUT1', parameters: { binary_data: true } }],
  });
  const body = Buffer.concat([Buffer.from(header), Buffer.from(input0.buffer), Buffer.from(input1.buffer)]);
  const response = await fetch(`${http.url}/v2/models/simple/infer`, {
    method: 'POST', body, headers: { 'Inference-Header-Content-Length': String(Buffer.byteLength(header)), 'Content-Type': 'application/octet-stream' },
  });
  assert.equal(response.status, 200);
  const length = Number(response.headers.get('inference-header-content-length'));
  const bytes = Buffer.from(await response.arrayBuffer());
  const json = JSON.parse(bytes.subarray(0, length).toString()) as { outputs: Array<{ name: string; parameters: { binary_data_size: number } }> };
  assert.deepEqual(json.outputs.map((o) => [o.name, o.parameters.binary_data_size]), [['OUTPUT0', 64], ['OUTPUT1', 64]]);
  const sums = new Int32Array(bytes.buffer.slice(bytes.byteOffset + length, bytes.byteOffset + length + 64));
  const diffs = new Int32Array(bytes.buffer.slice(bytes.byteOffset + length + 64, bytes.byteOffset + length + 128));
  assert.deepEqual([...sums], [...input0].map((v) => v + 1));
  assert.deepEqual([...diffs], [...input0].map((v) => v - 1));
});

test('a non-batching model takes the full shape', async () => {
  const response = await fetch(`${http.url}/v2/models/densenet_like/infer`, {
    method: 'POST',
    body: JSON.stringify({ inputs: [{ name: 'FEATURES', shape: [1, 32], datatype: 'FP32', data: new Array(32).fill(0.25) }] }),
  });
  assert.equal(response.status, 200);
  const json = await response.json() as { outputs: Array<{ name: string; shape: number[]; data: number[] }> };
  const probabilities = json.outputs.find((o) => o.name === 'PROBABILITIES')!;
  assert.deepEqual(probabilities.shape, [1, 4]);
  assert.ok(Math.abs(probabilities.data.reduce((a, b) => a + b, 0) - 1) < 1e-5);
  const cls = json.outputs.find((o) => o.name === 'CLASS')!;
  assert.equal(cls.data[0], probabilities.data.indexOf(Math.max(...probabilities.data)));
});
