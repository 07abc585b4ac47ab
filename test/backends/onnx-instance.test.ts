import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { OnnxInstance } from '../../backends/onnxruntime/onnx-instance.ts';
import type { BackendInstance, BackendModel } from '../../engine/backend.ts';
import { BufferPool } from '../../engine/memory/buffer-pool.ts';
import type { Tensor } from '../../engine/tensor.ts';
import { addSubModel, mlpModel } from '../../generator/models.ts';
import { makeRepository, removeRepository } from '../helpers/fixture-repository.ts';
import { openOnnxInstance } from '../helpers/onnx-fixtures.ts';

/** The backends `switchyard` serves with, which configs are read against. */
const int32 = (name: string, rows: number, fill: (i: number) => number): Tensor => {
  const data = new Int32Array(rows * 16).map((_, i) => fill(i));
  return { name, datatype: 'INT32', shape: [rows, 16], raw: new Uint8Array(data.buffer) };
};
const values = (t: Tensor): number[] => (t.datatype === 'INT32' ? [...new Int32Array(t.raw.slice().buffer)] : []);

const open = openOnnxInstance;

describe('ONNX Runtime instance', () => {
  let root: string;
  let addSub: { model: BackendModel; instance: BackendInstance };
  let heavy: { model: BackendModel; instance: BackendInstance };
  const pool = new BufferPool();

  before(async () => {
    root = await makeRepository({
      add_sub: { versions: { 1: addSubModel('INT32', 16) } },
      heavy: { versions: { 1: mlpModel({ sizes: [512, 2048, 2048, 16], seed: 3 }) } },
    });
    addSub = await open(root, 'add_sub', 'max_batch_size: 8\n', pool);
    heavy = await open(root, 'heavy', 'max_batch_size: 64\n');
  });

  after(async () => {
    await addSub.model.finalize();
    await heavy.model.finalize();
    await removeRepository(root);
  });

  test('reports the model signature read by its session', () => {
    assert.deepEqual(addSub.model.signature.inputs.map((t) => [t.name, t.datatype, t.shape]), [
      ['INPUT0', 'INT32', [-1, 16]], ['INPUT1', 'INT32', [-1, 16]],
    ]);
  });

  test('runs a list of requests as one batch and gives each its own slice', async () => {
    const requests = [1, 2, 1].map((rows, r) => ({
      inputs: [int32('INPUT0', rows, (i) => i + 100 * r), int32('INPUT1', rows, () => r)],
      outputs: r === 1 ? ['OUTPUT1'] : ['OUTPUT0', 'OUTPUT1'],
      batchSize: rows,
    }));
    const { results } = await addSub.instance.execute(requests);
    assert.equal(results.length, 3);
    results.forEach((result, r) => {
      assert.ok(result.ok);
      const rows = requests[r]!.batchSize;
      const byName = new Map(result.outputs.map((o) => [o.name, o]));
      assert.deepEqual([...byName.keys()], requests[r]!.outputs);
      assert.deepEqual(byName.get('OUTPUT1')!.shape, [rows, 16]);
      assert.deepEqual(values(byName.get('OUTPUT1')!), Array.from({ length: rows * 16 }, (_, i) => i + 100 * r - r));
      if (byName.has('OUTPUT0')) assert.deepEqual(values(byName.get('OUTPUT0')!), Array.from({ length: rows * 16 }, (_, i) => i + 100 * r + r));
    });
    // One session.run: the slices are views of one buffer moved back from the worker, holding all 4 rows, owned by no pool.
    const first = results[0]!.ok ? results[0]!.outputs.find((o) => o.name === 'OUTPUT1')! : undefined;
    const last = results[2]!.ok ? results[2]!.outputs.find((o) => o.name === 'OUTPUT1')! : undefined;
    assert.ok(first && first.datatype === 'INT32' && last && last.datatype === 'INT32');
    assert.equal(first.raw.buffer, last.raw.buffer);
    assert.equal(first.raw.buffer.byteLength, 4 * 16 * 4);
    assert.ok(!first.pooled && !last.pooled);
    // The caller's input tensors are untouched: the batch was assembled in memory of its own and transferred.
    assert.deepEqual(values(requests[2]!.inputs[1]!).slice(0, 2), [2, 2]);
  });

  test('reports where the time went: joining inputs, the run, reading outputs', async () => {
    const requests = [1, 3].map((rows) => ({ inputs: [int32('INPUT0', rows, (i) => i), int32('INPUT1', rows, () => 1)], outputs: ['OUTPUT0'], batchSize: rows }));
    const started = process.hrtime.bigint();
    const { results, timing } = await addSub.instance.execute(requests);
    const wallNs = Number(process.hrtime.bigint() - started);
    assert.ok(results.every((r) => r.ok));
    for (const [part, ns] of Object.entries(timing)) {
      assert.ok(Number.isInteger(ns) && ns > 0, `${part} is a positive whole number of nanoseconds, got ${ns}`);
    }
    assert.ok(timing.inputNs + timing.inferNs + timing.outputNs <= wallNs, 'the parts fit inside the call');
  });

  test('input and output memory come from the pool: same-shape runs whose outputs are released reuse it', async () => {
    const instance = addSub.instance as OnnxInstance;
    const before = instance.poolStats();
    for (let i = 0; i < 50; i++) {
      const { results } = await instance.execute([{ inputs: [int32('INPUT0', 2, (j) => j + i), int32('INPUT1', 2, () => i)], outputs: ['OUTPUT0'], batchSize: 2 }]);
      assert.ok(results[0]!.ok);
      const output = results[0]!.outputs[0]!;
      assert.deepEqual(values(output).slice(0, 3), [2 * i, 2 * i + 1, 2 * i + 2]);
      assert.ok(output.datatype === 'INT32' && output.pooled);
      pool.release(output.raw.buffer as ArrayBuffer);
    }
    const after = instance.poolStats();
    assert.deepEqual(after, pool.stats(), 'the instance reports the pool it was given');
    assert.ok(after.allocated - before.allocated <= 6, `allocated ${after.allocated - before.allocated} buffers for 150 tensors`);
    assert.ok(after.reused - before.reused >= 144, `reused ${after.reused - before.reused} buffers for 150 tensors`);
  });

  test('a lone request is copied into pooled memory: its own buffer (a view into a body) is never moved', async () => {
    const body = new ArrayBuffer(1024);
    const data = new Int32Array(body, 128, 16);
    data.set(Array.from({ length: 16 }, (_, i) => i));
    const input0: Tensor = { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], raw: new Uint8Array(body, 128, 64) };
    const { results } = await addSub.instance.execute([{ inputs: [input0, int32('INPUT1', 1, () => 5)], outputs: ['OUTPUT1'], batchSize: 1 }]);
    assert.ok(results[0]!.ok);
    assert.deepEqual(values(results[0]!.outputs[0]!), Array.from({ length: 16 }, (_, i) => i - 5));
    assert.equal(body.byteLength, 1024, 'the body buffer was not transferred');
    assert.deepEqual([...data], Array.from({ length: 16 }, (_, i) => i));
  });

  test('inference runs off the event loop', async () => {
    const rows = 64;
    const input: Tensor = { name: 'INPUT', datatype: 'FP32', shape: [rows, 512], raw: new Uint8Array(new Float32Array(rows * 512).fill(0.5).buffer) };
    let ticks = 0;
    const timer = setInterval(() => { ticks++; }, 1);
    const results = await Promise.all([1, 2, 3].map(() => heavy.instance.execute([{ inputs: [input], outputs: ['OUTPUT'], batchSize: rows }])));
    clearInterval(timer);
    assert.ok(results.every((r) => r.results[0]!.ok));
    assert.ok(ticks > 0, 'timers kept firing while the worker computed');
  });
});

test('bad ONNX Runtime parameters fail the load with the parameter named', async () => {
  const root = await makeRepository({ m: { versions: { 1: addSubModel() } } });
  try {
    await assert.rejects(open(root, 'm', 'parameters { key: "intra_op_thread_count" value: { string_value: "many" } }\n'),
      /parameters 'intra_op_thread_count' is 'many': use a non-negative integer/);
  } finally {
    await removeRepository(root);
  }
});
