import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Worker } from 'node:worker_threads';
import type { BackendModel, ExecuteRequest } from '../../engine/backend.ts';
import type { OnnxInstance } from '../../backends/onnxruntime/onnx-instance.ts';
import type { CompiledModelConfig } from '../../engine/config/compiled-model-config.ts';
import { BufferPool, sizeClass } from '../../engine/memory/buffer-pool.ts';
import type { FixedTensor, Tensor } from '../../engine/tensor.ts';
import { addSubModel, identityModel, mlpModel } from '../../generator/models.ts';
import { makeRepository, removeRepository } from '../helpers/fixture-repository.ts';
import { openOnnxInstance } from '../helpers/onnx-fixtures.ts';
import { bytesElementAt, bytesTensor } from '../../engine/bytes-tensor.ts';

/** The backends `switchyard` serves with, which configs are read against. */
interface Opened {
  readonly model: BackendModel;
  readonly config: CompiledModelConfig;
  readonly instance: OnnxInstance;
}

const ROW = 16;

/** INT32 [rows, 16] in a buffer of its own, as a client's tensor arrives. */
const clientInt32 = (name: string, rows: number, fill: (i: number) => number): FixedTensor =>
  ({ name, datatype: 'INT32', shape: [rows, ROW], raw: new Uint8Array(new Int32Array(rows * ROW).map((_, i) => fill(i)).buffer) });

/** INT32 [rows, 16] in a pool buffer, marked as handed over, as an ensemble step's output arrives at the next step. */
function pooledInt32(pool: BufferPool, name: string, rows: number, fill: (i: number) => number): FixedTensor {
  const byteLength = rows * ROW * 4;
  const buffer = pool.acquire(byteLength);
  new Int32Array(buffer, 0, rows * ROW).set(Array.from({ length: rows * ROW }, (_, i) => fill(i)));
  return { name, datatype: 'INT32', shape: [rows, ROW], raw: new Uint8Array(buffer, 0, byteLength), pooled: true };
}

const ints = (t: Tensor): number[] => (t.datatype === 'INT32' ? [...new Int32Array(t.raw.slice().buffer)] : []);
const floats = (t: Tensor): number[] => (t.datatype === 'FP32' ? [...new Float32Array(t.raw.slice().buffer)] : []);

function outputsOf(outcome: Awaited<ReturnType<OnnxInstance['execute']>>, index = 0): Map<string, FixedTensor> {
  const result = outcome.results[index]!;
  assert.ok(result.ok, result.ok ? '' : result.error.message);
  return new Map(result.outputs.map((o) => {
    assert.notEqual(o.datatype, 'BYTES');
    return [o.name, o as FixedTensor];
  }));
}

describe('ONNX Runtime instance tensor memory', () => {
  let root: string;
  const opened: Opened[] = [];

  async function open(model: string, configText: string, bufferPool?: BufferPool): Promise<Opened> {
    const result = await openOnnxInstance(root, model, configText, bufferPool);
    opened.push(result);
    return result;
  }

  before(async () => {
    root = await makeRepository({
      add_sub: { versions: { 1: addSubModel('INT32', ROW) } },
      identity: { versions: { 1: identityModel(['FP32', 'BYTES']) } },
      heavy: { versions: { 1: mlpModel({ sizes: [256, 64, 8], seed: 11 }) } },
    });
  });

  after(async () => {
    await Promise.all(opened.map((o) => o.model.finalize()));
    await removeRepository(root);
  });

  test('a lone request\'s pooled input is moved to the worker, not copied, and its memory comes back to the pool', async () => {
    const pool = new BufferPool();
    const { instance } = await open('add_sub', 'max_batch_size: 8\n', pool);
    const input0 = pooledInt32(pool, 'INPUT0', 2, (i) => i);
    const input1 = pooledInt32(pool, 'INPUT1', 2, () => 10);
    const before = pool.stats();
    const outcome = await instance.execute([{ inputs: [input0, input1], outputs: ['OUTPUT1'], batchSize: 2 }]);
    assert.deepEqual(ints(outputsOf(outcome).get('OUTPUT1')!), Array.from({ length: 2 * ROW }, (_, i) => i - 10));
    assert.equal(input0.raw.buffer.byteLength, 0, 'the buffer itself went to the worker');
    assert.equal(input1.raw.buffer.byteLength, 0);
    const afterRun = pool.stats();
    assert.equal(afterRun.copiedBytes, before.copiedBytes, 'nothing was copied');
    // Both input buffers came back: the next two acquires of their class reuse them.
    const again = [pool.acquire(input0.raw.byteLength), pool.acquire(input1.raw.byteLength)];
    assert.ok(again.every((b) => b.byteLength === sizeClass(2 * ROW * 4)));
    assert.equal(pool.stats().allocated, afterRun.allocated);
    assert.equal(pool.stats().reused, afterRun.reused + 2);
  });

  test('a client\'s input is copied into pool memory and left as it was', async () => {
    const pool = new BufferPool();
    const { instance } = await open('add_sub', 'max_batch_size: 8\n', pool);
    const input0 = clientInt32('INPUT0', 1, (i) => i);
    const input1 = clientInt32('INPUT1', 1, () => 3);
    const outcome = await instance.execute([{ inputs: [input0, input1], outputs: ['OUTPUT0'], batchSize: 1 }]);
    assert.deepEqual(ints(outputsOf(outcome).get('OUTPUT0')!), Array.from({ length: ROW }, (_, i) => i + 3));
    assert.equal(pool.stats().copiedBytes, 2 * ROW * 4);
    assert.equal(input0.raw.buffer.byteLength, ROW * 4, 'the caller\'s buffer stayed here');
    assert.deepEqual(ints(input0), Array.from({ length: ROW }, (_, i) => i));
  });

  test('pooled inputs of a batch of two are copied, and all their buffers go back to the pool', async () => {
    const pool = new BufferPool();
    const { instance } = await open('add_sub', 'max_batch_size: 8\n', pool);
    const requests: ExecuteRequest[] = [0, 1].map((r) => ({
      inputs: [pooledInt32(pool, 'INPUT0', 1, (i) => i + 100 * r), pooledInt32(pool, 'INPUT1', 1, () => r)],
      outputs: ['OUTPUT0'],
      batchSize: 1,
    }));
    const handedOver = requests.flatMap((r) => r.inputs.map((t) => (t as FixedTensor).raw.buffer));
    const outcome = await instance.execute(requests);
    for (const r of [0, 1]) {
      const output = outputsOf(outcome, r).get('OUTPUT0')!;
      assert.deepEqual(ints(output), Array.from({ length: ROW }, (_, i) => i + 100 * r + r));
      assert.equal(output.pooled, undefined, 'a view into the batch\'s output is nobody\'s to release');
    }
    assert.equal(pool.stats().copiedBytes, 2 * 2 * ROW * 4);
    assert.ok(handedOver.every((b) => b.byteLength === 4096), 'copied, not moved');
    const free = Array.from({ length: 8 }, () => pool.acquire(4096));
    assert.ok(handedOver.every((b) => free.includes(b as ArrayBuffer)), 'each handed-over buffer is in the pool again');
  });

  test('a lone request\'s fixed-shape outputs are written into pool buffers the caller owns and can release', async () => {
    const pool = new BufferPool();
    const { instance } = await open('add_sub', 'max_batch_size: 8\n', pool);
    const outcome = await instance.execute([{
      inputs: [clientInt32('INPUT0', 3, (i) => 2 * i), clientInt32('INPUT1', 3, (i) => i)], outputs: ['OUTPUT0', 'OUTPUT1'], batchSize: 3,
    }]);
    const outputs = outputsOf(outcome);
    for (const [name, sign] of [['OUTPUT0', 1], ['OUTPUT1', -1]] as const) {
      const output = outputs.get(name)!;
      assert.equal(output.pooled, true);
      assert.deepEqual(output.shape, [3, ROW]);
      assert.equal(output.raw.byteOffset, 0);
      assert.equal(output.raw.byteLength, 3 * ROW * 4);
      assert.equal(output.raw.buffer.byteLength, sizeClass(3 * ROW * 4));
      assert.deepEqual(ints(output), Array.from({ length: 3 * ROW }, (_, i) => 2 * i + sign * i));
    }
    assert.equal(pool.stats().foreignBytes, 0);
    for (const output of outputs.values()) pool.release(output.raw.buffer as ArrayBuffer);
    const allocated = pool.stats().allocated;
    const next = await instance.execute([{
      inputs: [clientInt32('INPUT0', 3, () => 1), clientInt32('INPUT1', 3, () => 1)], outputs: ['OUTPUT0', 'OUTPUT1'], batchSize: 3,
    }]);
    assert.deepEqual(ints(outputsOf(next).get('OUTPUT0')!), new Array(3 * ROW).fill(2));
    assert.equal(pool.stats().allocated, allocated, 'the released outputs served the next run');
  });

  test('feeding each output back in as the next input allocates nothing once warm', async () => {
    const pool = new BufferPool();
    const { instance } = await open('add_sub', 'max_batch_size: 8\n', pool);
    let carried = pooledInt32(pool, 'INPUT0', 2, (i) => i);
    const allocatedAfter: number[] = [];
    for (let step = 0; step < 20; step++) {
      const outputs = outputsOf(await instance.execute([{
        inputs: [carried, pooledInt32(pool, 'INPUT1', 2, () => 1)], outputs: ['OUTPUT0', 'OUTPUT1'], batchSize: 2,
      }]));
      const sum = outputs.get('OUTPUT0')!;
      const difference = outputs.get('OUTPUT1')!;
      assert.ok(sum.pooled && difference.pooled);
      pool.release(difference.raw.buffer as ArrayBuffer);
      carried = { ...sum, name: 'INPUT0' };
      allocatedAfter.push(pool.stats().allocated);
    }
    assert.deepEqual(ints(carried), Array.from({ length: 2 * ROW }, (_, i) => i + 20));
    assert.deepEqual(allocatedAfter.slice(2), new Array(18).fill(allocatedAfter[1]), `allocated after each run: ${allocatedAfter.join(',')}`);
    assert.equal(pool.stats().copiedBytes, 0);
    assert.equal(pool.stats().foreignBytes, 0);
  });

  test('outputs whose shape is not known before the run are left to ONNX Runtime and counted as foreign', async () => {
    const pool = new BufferPool();
    const { config, instance } = await open('identity', 'max_batch_size: 4\n', pool);
    assert.deepEqual(config.outputByName.get('OUT_FP32')!.dims, [-1]);
    const input: FixedTensor = { name: 'IN_FP32', datatype: 'FP32', shape: [1, 10], raw: new Uint8Array(new Float32Array(10).fill(1.5).buffer) };
    const text: Tensor = bytesTensor('IN_BYTES', [1, 2], [new Uint8Array([104, 105]), new Uint8Array([33])]);
    const { results } = await instance.execute([{ inputs: [input, text], outputs: ['OUT_FP32', 'OUT_BYTES'], batchSize: 1 }]);
    assert.ok(results[0]!.ok);
    const [out, bytes] = results[0]!.outputs;
    assert.ok(out && out.datatype === 'FP32' && bytes && bytes.datatype === 'BYTES');
    assert.deepEqual(floats(out), new Array(10).fill(1.5));
    assert.equal(out.pooled, undefined);
    assert.equal(out.raw.buffer.byteLength, 40, 'the buffer ONNX Runtime filled, moved back as it was');
    assert.deepEqual([0, 1].map((i) => [...bytesElementAt(bytes, i)]), [[104, 105], [33]]);
    assert.equal(pool.stats().foreignBytes, 40);
  });

  test('with the pool disabled every run allocates, nothing is moved, and no output is pooled', async () => {
    const pool = new BufferPool({ enabled: false });
    const { instance } = await open('add_sub', 'max_batch_size: 8\n', pool);
    const allocated: number[] = [];
    for (let run = 0; run < 3; run++) {
      const input0 = pooledInt32(pool, 'INPUT0', 1, (i) => i);
      const outputs = outputsOf(await instance.execute([{ inputs: [input0, clientInt32('INPUT1', 1, () => run)], outputs: ['OUTPUT0'], batchSize: 1 }]));
      assert.equal(input0.raw.buffer.byteLength, ROW * 4, 'copied, not moved');
      assert.equal(outputs.get('OUTPUT0')!.pooled, undefined);
      assert.deepEqual(ints(outputs.get('OUTPUT0')!), Array.from({ length: ROW }, (_, i) => i + run));
      allocated.push(pool.stats().allocated);
    }
    // Per run: the test's input, then two staging copies.
    assert.deepEqual(allocated, [3, 6, 9]);
    assert.deepEqual(pool.stats(), {
      allocated: 9, allocatedBytes: 9 * ROW * 4, reused: 0, reusedBytes: 0, foreignBytes: 3 * ROW * 4, copiedBytes: 3 * 2 * ROW * 4, outstanding: 0, disowned: 0,
    });
  });

  test('instances of one model share one pool: the one given, else one of the model\'s own', async () => {
    const group = 'max_batch_size: 8\ninstance_group [{ count: 2, kind: KIND_CPU }]\n';
    const given = new BufferPool();
    for (const pool of [given, undefined]) {
      const { model, config, instance } = await open('add_sub', group, pool);
      const second = await model.createInstance(config, config.instanceGroups[0]!, 1) as OnnxInstance;
      outputsOf(await second.execute([{ inputs: [clientInt32('INPUT0', 1, () => 1), clientInt32('INPUT1', 1, () => 1)], outputs: ['OUTPUT0'], batchSize: 1 }]));
      assert.ok(instance.poolStats().copiedBytes > 0, 'the first instance sees the second one\'s copies');
      assert.deepEqual(instance.poolStats(), second.poolStats());
      if (pool) assert.deepEqual(pool.stats(), instance.poolStats());
    }
  });

  test('a worker that dies holding a moved buffer fails the run, the lost buffer is dropped, and the next run works', async () => {
    const pool = new BufferPool();
    const { instance } = await open('heavy', 'max_batch_size: 64\n', pool);
    const rows = 64;
    const byteLength = rows * 256 * 4;
    const pooledRows = (): FixedTensor => {
      const buffer = pool.acquire(byteLength);
      new Float32Array(buffer, 0, rows * 256).fill(0.25);
      return { name: 'INPUT', datatype: 'FP32', shape: [rows, 256], raw: new Uint8Array(buffer, 0, byteLength), pooled: true };
    };
    // The worker is stopped while idle (killing it inside session.run takes the process down with onnxruntime-node),
    // and the run is posted to it before its exit is noticed: the buffers go with the message and are lost.
    const worker = (instance as unknown as { worker: Worker }).worker;
    const stopped = worker.terminate();
    const moved = pooledRows();
    const [failed] = (await instance.execute([{ inputs: [moved], outputs: ['OUTPUT'], batchSize: rows }])).results;
    await stopped;
    assert.ok(failed && !failed.ok);
    assert.match(failed.error.message, /stopped unexpectedly \(worker exited with code 1\)/);
    assert.equal(moved.raw.buffer.byteLength, 0, 'the input went with the message');
    // Whatever the pool hands out now is usable memory, never a buffer lost with the worker.
    const free = Array.from({ length: 4 }, () => pool.acquire(byteLength));
    assert.ok(free.every((b) => b.byteLength === sizeClass(byteLength)));
    for (const b of free) pool.release(b);

    const expected = floats(outputsOf(await instance.execute([{
      inputs: [{ ...pooledRows(), pooled: undefined }], outputs: ['OUTPUT'], batchSize: rows,
    }])).get('OUTPUT')!);
    const outputs = outputsOf(await instance.execute([{ inputs: [pooledRows()], outputs: ['OUTPUT'], batchSize: rows }]));
    assert.equal(outputs.get('OUTPUT')!.pooled, true);
    assert.deepEqual(floats(outputs.get('OUTPUT')!), expected);
  });
});
