/**
 * The classification extension over HTTP and gRPC on real ONNX models:
 * labels from an output's label_filename (read once at load, confined to
 * the model folder), a model that batches ([batch, N]) and one that does
 * not ([N]), bad counts refused naming the field, and the server serving on.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { addSubModel } from '../../generator/models.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../helpers/fixture-repository.ts';
import { RawGrpcClient, strings, type Message } from '../helpers/grpc-raw-client.ts';

const io = (dims: string, labels = ''): string =>
  `input [ { name: "INPUT0" data_type: TYPE_FP32 dims: ${dims} }, { name: "INPUT1" data_type: TYPE_FP32 dims: ${dims} } ]\n`
  + `output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: ${dims}${labels} }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: ${dims} } ]\n`;
const LABELLED = `name: "labelled"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 4\n${io('[ 16 ]', ' label_filename: "labels.txt"')}`;
const FLAT = `name: "flat"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 0\n${io('[ 1, 16 ]')}`;
const MISSING = `name: "missing"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 4\n${io('[ 16 ]', ' label_filename: "nowhere.txt"')}`;

/** Ten labels for sixteen classes, the fourth one empty: classes 3 and 10..15 go back without a label. */
const LABELS = 'zero\none\ntwo\n\nfour\nfive\nsix\nseven\neight\nnine\n';

/** INPUT0 + INPUT1 = scores; row r's class i scores i * (r + 1), so class 15 ranks first in each row. */
const scores = (rows: number): number[] => Array.from({ length: rows * 16 }, (_, k) => (k % 16) * (Math.floor(k / 16) + 1));

let root: string;
let fixture: DualFixture;
let client: RawGrpcClient;

before(async () => {
  root = await makeRepository({
    labelled: { config: LABELLED, versions: { 1: addSubModel('FP32') } },
    flat: { config: FLAT, versions: { 1: addSubModel('FP32') } },
    missing: { config: MISSING, versions: { 1: addSubModel('FP32') } },
  });
  await writeFile(join(root, 'labelled', 'labels.txt'), LABELS);
  fixture = await startBoth(root);
  client = new RawGrpcClient(fixture.grpcAddress);
});

after(async () => {
  client?.close();
  await fixture?.close();
  if (root) await removeRepository(root);
});

interface Answer { readonly status: number; readonly shape?: number[]; readonly values?: string[]; readonly message?: string }

async function httpInfer(model: string, shape: number[], classification: unknown, output = 'OUTPUT0'): Promise<Answer> {
  const data = scores(shape.reduce((a, d) => a * d, 1) / 16);
  const res = await fetch(`${fixture.httpUrl}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      inputs: [
        { name: 'INPUT0', datatype: 'FP32', shape, data },
        { name: 'INPUT1', datatype: 'FP32', shape, data: data.map(() => 0) },
      ],
      outputs: [{ name: output, parameters: { classification } }],
    }),
  });
  const body = await res.json() as { error?: string; outputs?: { datatype: string; shape: number[]; data: string[] }[] };
  if (!res.ok) return { status: res.status, message: body.error! };
  assert.equal(body.outputs![0]!.datatype, 'BYTES');
  return { status: res.status, shape: body.outputs![0]!.shape, values: body.outputs![0]!.data };
}

async function grpcInfer(model: string, shape: number[], classification: Message, output = 'OUTPUT0'): Promise<Answer> {
  const data = scores(shape.reduce((a, d) => a * d, 1) / 16);
  const { response, error } = await client.call('ModelInfer', {
    model_name: model,
    inputs: [
      { name: 'INPUT0', datatype: 'FP32', shape, contents: { fp32_contents: data } },
      { name: 'INPUT1', datatype: 'FP32', shape, contents: { fp32_contents: data.map(() => 0) } },
    ],
    outputs: [{ name: output, parameters: { classification } }],
  });
  if (error) return { status: error.code, message: error.details };
  assert.equal(response!['outputs'][0].datatype, 'BYTES');
  return { status: 0, shape: response!['outputs'][0].shape.map(Number), values: strings(response!['raw_output_contents'][0]) };
}

describe('classification with labels, a batching model', () => {
  test('HTTP: top 3 per row as score:index:label, [batch, 3]; classes past the labels or with an empty one have none', async () => {
    const answer = await httpInfer('labelled', [2, 16], 3);
    assert.deepEqual(answer.shape, [2, 3]);
    assert.deepEqual(answer.values, [
      '15.000000:15', '14.000000:14', '13.000000:13',
      '30.000000:15', '28.000000:14', '26.000000:13',
    ]);
  });

  test('gRPC: the same top classes, and labels where the file has them', async () => {
    const top = await grpcInfer('labelled', [1, 16], { int64_param: 16 });
    assert.deepEqual(top.shape, [1, 16]);
    assert.deepEqual(top.values!.slice(5), [
      '10.000000:10', '9.000000:9:nine', '8.000000:8:eight', '7.000000:7:seven', '6.000000:6:six', '5.000000:5:five',
      '4.000000:4:four', '3.000000:3', '2.000000:2:two', '1.000000:1:one', '0.000000:0:zero',
    ]);
  });

  test('HTTP and gRPC agree on the labelled answer', async () => {
    const viaHttp = await httpInfer('labelled', [3, 16], 12);
    const viaGrpc = await grpcInfer('labelled', [3, 16], { uint64_param: 12 });
    assert.deepEqual(viaGrpc.shape, viaHttp.shape);
    assert.deepEqual(viaGrpc.values, viaHttp.values);
    assert.ok(viaHttp.values!.includes('18.000000:9:nine'));
  });
});

describe('classification on a model that does not batch', () => {
  test('HTTP: the whole output is one row, shape [N]', async () => {
    const answer = await httpInfer('flat', [1, 16], 2);
    assert.deepEqual(answer.shape, [2]);
    assert.deepEqual(answer.values, ['15.000000:15', '14.000000:14']);
  });

  test('gRPC: the same, shape [N]', async () => {
    const answer = await grpcInfer('flat', [1, 16], { int64_param: 2 });
    assert.deepEqual(answer.shape, [2]);
    assert.deepEqual(answer.values, ['15.000000:15', '14.000000:14']);
  });
});

describe('bad classification requests', () => {
  const FIELD = 'outputs[0].parameters.classification: classification count must be a positive integer';

  test('HTTP: 0, a negative, a fraction, a string and a bool are 400 naming the field', async () => {
    for (const [bad, shown] of [[0, '0'], [-1, '-1'], [1.5, '1.5'], ['3', '"3"'], [true, 'true']] as const) {
      const answer = await httpInfer('labelled', [1, 16], bad);
      assert.equal(answer.status, 400);
      assert.equal(answer.message, `${FIELD}, got ${shown}`);
    }
  });

  test('gRPC: 0, a negative, a double and a string are INVALID_ARGUMENT naming the field', async () => {
    for (const bad of [{ int64_param: 0 }, { int64_param: -4 }, { double_param: 2.5 }, { string_param: 'x' }]) {
      const answer = await grpcInfer('labelled', [1, 16], bad);
      assert.equal(answer.status, 3);
      assert.match(answer.message!, new RegExp(`^${FIELD.replace(/[[\].]/g, '\\$&')}, got `));
    }
  });

  test('a huge count is cut to the row size, not allocated', async () => {
    const answer = await httpInfer('labelled', [1, 16], Number.MAX_SAFE_INTEGER);
    assert.deepEqual(answer.shape, [1, 16]);
    const viaGrpc = await grpcInfer('labelled', [1, 16], { uint64_param: '18446744073709551615' });
    assert.equal(viaGrpc.status, 3);
    assert.match(viaGrpc.message!, /got 18446744073709551615$/);
  });

  test('a label file that does not exist fails that model\'s load naming label_filename, and the others serve', async () => {
    const entry = fixture.engine.repositoryIndex().find((e) => e.name === 'missing')!;
    assert.equal(entry.state, 'UNAVAILABLE');
    assert.match(entry.reason, /output\[0\]\.label_filename: nowhere\.txt does not exist/);
    const answer = await httpInfer('labelled', [1, 16], 1);
    assert.deepEqual(answer.values, ['15.000000:15']);
  });
});
