/**
 * Running light models inline on the event loop (execution_thread): the
 * inline path answers exactly as the worker path, keeps the pool balanced,
 * fails only the failing run, refuses bad parameter values at load, and auto
 * mode moves between the threads by measured run time, never taking a heavy model inline.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { INLINE_MAX_INPUT_BYTES, type OnnxInstance } from '../../backends/onnxruntime/onnx-instance.ts';
import { ExecutionThreadPolicy, INLINE_SAMPLE_RUNS, MAX_LONG_RUNS, readExecutionThread } from '../../backends/onnxruntime/execution-thread.ts';
import type { BackendModel, ExecuteRequest, ExecuteResult } from '../../engine/backend.ts';
import type { InstanceGroupSpec } from '../../engine/config/compiled-model-config.ts';
import { BufferPool } from '../../engine/memory/buffer-pool.ts';
import type { Tensor } from '../../engine/tensor.ts';
import { addSubModel, identityModel, lookupModel, mlpModel } from '../../generator/models.ts';
import { makeRepository, removeRepository } from '../helpers/fixture-repository.ts';
import { openOnnxInstance } from '../helpers/onnx-fixtures.ts';
import { bytesTensorFromWire } from '../../engine/bytes-tensor.ts';

const param = (key: string, value: string): string => `parameters { key: "${key}" value: { string_value: "${value}" } }\n`;

const open = openOnnxInstance;

const int32 = (name: string, rows: number, fill: (i: number) => number): Tensor => {
  const data = new Int32Array(rows * 16).map((_, i) => fill(i));
  return { name, datatype: 'INT32', shape: [rows, 16], raw: new Uint8Array(data.buffer) };
};
const addSubRequest = (rows: number, seed: number, outputs = ['OUTPUT0', 'OUTPUT1']): ExecuteRequest => ({
  inputs: [int32('INPUT0', rows, (i) => i * seed), int32('INPUT1', rows, (i) => seed - i)], outputs, batchSize: rows,
});
const lookup = (indices: readonly number[]): ExecuteRequest => ({
  inputs: [{ name: 'INDEX', datatype: 'INT64', shape: [indices.length, 1], raw: new Uint8Array(new BigInt64Array(indices.map(BigInt)).buffer) }],
  outputs: ['VALUE'],
  batchSize: indices.length,
});
const bytesTensor = (name: string, strings: readonly string[]): Tensor => {
  const parts = strings.flatMap((s) => {
    const body = Buffer.from(s, 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32LE(body.length);
    return [length, body];
  });
  return bytesTensorFromWire(name, [1, strings.length], new Uint8Array(Buffer.concat(parts)));
};
const fp32 = (name: string, values: readonly number[]): Tensor =>
  ({ name, datatype: 'FP32', shape: [1, values.length], raw: new Uint8Array(Float32Array.from(values).buffer) });

/** What an answer says, as plain data: each result's outputs (name, datatype, shape, bytes) or its error. */
const answerOf = (results: readonly ExecuteResult[]): unknown => results.map((r) => (r.ok
  ? r.outputs.map((o) => [o.name, o.datatype, o.shape, [...o.raw]])
  : [r.error.code, r.error.message]));

describe('ONNX Runtime instance, inline on the event loop', () => {
  let root: string;
  const opened: BackendModel[] = [];
  const pool = new BufferPool();
  const models = {
    add_sub: { versions: { 1: addSubModel('INT32', 16) } },
    identity: { versions: { 1: identityModel(['FP32', 'BYTES', 'INT64']) } },
    lookup: { versions: { 1: lookupModel(4) } },
    heavy: { versions: { 1: mlpModel({ sizes: [512, 2048, 2048, 16], seed: 3 }) } },
  };
  const openTracked = async (model: keyof typeof models, config: string, bufferPool?: BufferPool): Promise<OnnxInstance> => {
    const { model: m, instance } = await open(root, model, config, bufferPool);
    opened.push(m);
    return instance;
  };

  before(async () => {
    root = await makeRepository(models);
  });
  after(async () => {
    for (const m of opened) await m.finalize();
    await removeRepository(root);
  });

  test('inline and worker instances give identical answers, timings and pool balance for the generated models', async () => {
    const cases: Array<[keyof typeof models, string, () => ExecuteRequest[][]]> = [
      ['add_sub', 'max_batch_size: 8\n', () => [[addSubRequest(1, 3)], [addSubRequest(2, 5), addSubRequest(1, 7, ['OUTPUT1'])], [addSubRequest(3, 11)]]],
      ['identity', 'max_batch_size: 4\n', () => [
        [{ inputs: [fp32('IN_FP32', [1.5, -2]), bytesTensor('IN_BYTES', ['a', '', 'ünï']), { ...int32('IN_INT64', 1, () => 0), datatype: 'INT64', shape: [1, 8] }], outputs: ['OUT_FP32', 'OUT_BYTES', 'OUT_INT64'], batchSize: 1 }],
      ]],
      ['lookup', 'max_batch_size: 8\n', () => [[lookup([0, 3])], [lookup([1]), lookup([2, 2])], [lookup([9])]]],
    ];
    for (const [model, config, requests] of cases) {
      const workerPool = new BufferPool();
      const inlinePool = new BufferPool();
      const onWorker = await openTracked(model, config + param('execution_thread', 'worker'), workerPool);
      const inline = await openTracked(model, config + param('execution_thread', 'inline'), inlinePool);
      assert.equal(inline.executionThread, 'inline');
      for (const batch of requests()) {
        const a = await onWorker.execute(batch);
        const b = await inline.execute(requests()[requests().findIndex((r) => r.length === batch.length && r[0]!.batchSize === batch[0]!.batchSize)]!);
        assert.deepEqual(answerOf(b.results), answerOf(a.results), `${model}: same answer inline`);
        for (const timing of [a.timing, b.timing]) assert.ok(timing.inputNs > 0 && timing.inferNs > 0 && timing.outputNs >= 0, `${model}: timing filled`);
      }
      assert.deepEqual(inline.runCounts, { inline: requests().length, worker: 0 });
      assert.deepEqual(onWorker.runCounts, { inline: 0, worker: requests().length });
      const [w, i] = [workerPool.stats(), inlinePool.stats()];
      assert.deepEqual([i.allocated, i.outstanding], [w.allocated, w.outstanding], `${model}: the pool lends and gets back the same on both paths`);
    }
  });

  test('a failing inline run fails only its own requests; runs beside it are answered; the pool balances as on the worker', async () => {
    const scenario = async (instance: OnnxInstance) => {
      await instance.execute([lookup([1])]);
      return Promise.all([instance.execute([lookup([9]), lookup([1])]), instance.execute([lookup([3])]), instance.execute([lookup([0, 2])])]);
    };
    const workerPool = new BufferPool();
    const onWorker = await scenario(await openTracked('lookup', 'max_batch_size: 8\n' + param('execution_thread', 'worker'), workerPool));
    const [bad, good, next] = await scenario(await openTracked('lookup', 'max_batch_size: 8\n' + param('execution_thread', 'inline'), pool));
    for (const r of bad.results) {
      assert.ok(!r.ok);
      assert.equal(r.error.code, 'INFERENCE_FAILED');
      assert.match(r.error.message, /inference failed in model 'lookup': .*indices element out of data bounds, idx=9/);
    }
    assert.ok(bad.timing.inferNs > 0, 'the failed run still reports its time');
    assert.deepEqual(answerOf(good.results), [[['VALUE', 'FP32', [1, 1], [...new Uint8Array(Float32Array.of(30).buffer)]]]]);
    assert.deepEqual(answerOf(next.results), answerOf(onWorker[2].results));
    assert.deepEqual(answerOf(bad.results), answerOf(onWorker[0].results), 'the same error as on the worker');
    // The worker holds the three runs' buffers at once, inline runs one after another: only what is still lent must agree.
    assert.equal(pool.stats().outstanding, workerPool.stats().outstanding, 'the answers hold as many pool buffers on both paths');
  });

  test('a run carrying more than INLINE_MAX_INPUT_BYTES goes to the worker, and the runs queued behind it follow it there', async () => {
    const instance = await openTracked('identity', 'max_batch_size: 4\n' + param('execution_thread', 'inline'));
    const request = (n: number): ExecuteRequest => ({
      inputs: [fp32('IN_FP32', Array.from({ length: n }, (_, i) => i / 4)), bytesTensor('IN_BYTES', ['a']), { ...int32('IN_INT64', 1, () => 0), datatype: 'INT64', shape: [1, 8] }],
      outputs: ['OUT_FP32'],
      batchSize: 1,
    });
    const small = 16;
    const large = INLINE_MAX_INPUT_BYTES / 4 + 1;
    const echoed = (n: number): unknown => [[['OUT_FP32', 'FP32', [1, n], [...new Uint8Array(Float32Array.from({ length: n }, (_, i) => i / 4).buffer)]]]];
    assert.deepEqual(answerOf((await instance.execute([request(small)])).results), echoed(small));
    assert.deepEqual(instance.runCounts, { inline: 1, worker: 0 });
    // Asked in one tick: the large run is on the worker when the small one is asked, so the small one waits behind it.
    const [big, after] = await Promise.all([instance.execute([request(large)]), instance.execute([request(small)])]);
    assert.deepEqual(answerOf(big.results), echoed(large));
    assert.deepEqual(answerOf(after.results), echoed(small));
    assert.deepEqual(instance.runCounts, { inline: 1, worker: 2 });
    assert.equal(instance.executionThread, 'inline', 'the model itself stays inline');
    assert.deepEqual(answerOf((await instance.execute([request(small)])).results), echoed(small));
    assert.deepEqual(instance.runCounts, { inline: 2, worker: 2 });
    // At the bound, inline: the FP32 input fills what the BYTES (4 + 1) and INT64 (64) inputs leave of it.
    const atBound = Math.floor((INLINE_MAX_INPUT_BYTES - 5 - 64) / 4);
    assert.deepEqual(answerOf((await instance.execute([request(atBound)])).results), echoed(atBound));
    assert.deepEqual(instance.runCounts, { inline: 3, worker: 2 });
  });

  test('auto mode goes inline once measured runs are light, and a heavy model never runs inline', async () => {
    const light = await openTracked('add_sub', 'max_batch_size: 8\n' + param('inline_max_run_us', '10000'));
    const heavy = await openTracked('heavy', 'max_batch_size: 8\n');
    const rows = (count: number): ExecuteRequest => ({
      inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [count, 512], raw: new Uint8Array(new Float32Array(count * 512).fill(0.5).buffer) }],
      outputs: ['OUTPUT'],
      batchSize: count,
    });
    assert.equal(light.executionThread, 'worker', 'auto starts on the worker');
    // Measured on the worker first; the inline session then opens in the background; bounded, no timing assumed.
    for (let i = 0; i < 2000 && light.runCounts.inline === 0; i++) {
      const { results } = await light.execute([addSubRequest(1, i)]);
      assert.ok(results[0]!.ok);
      await heavy.execute([rows(1)]);
    }
    assert.ok(light.runCounts.worker >= INLINE_SAMPLE_RUNS, 'measured on the worker first');
    assert.ok(light.runCounts.inline > 0, 'then ran inline');
    assert.equal(light.executionThread, 'inline');
    assert.deepEqual(heavy.runCounts.inline, 0, 'the heavy model never ran inline');
    assert.equal(heavy.executionThread, 'worker');
  });

  test('bad execution_thread and inline_max_run_us values fail the load naming the parameter', async () => {
    const refused: Array<[string, RegExp]> = [
      [param('execution_thread', 'fast'), /parameters 'execution_thread' is 'fast': use one of auto, inline, worker/],
      [param('execution_thread', 'Inline'), /parameters 'execution_thread' is 'Inline'/],
      [param('inline_max_run_us', '0'), /parameters 'inline_max_run_us' is '0': use a whole number of microseconds from 1 to 10000/],
      [param('inline_max_run_us', '10001'), /parameters 'inline_max_run_us' is '10001'/],
      [param('inline_max_run_us', '1.5'), /parameters 'inline_max_run_us' is '1.5'/],
      [param('inline_max_run_us', 'abc'), /parameters 'inline_max_run_us' is 'abc'/],
    ];
    for (const [extra, message] of refused) {
      await assert.rejects(open(root, 'add_sub', 'max_batch_size: 8\n' + extra), message);
    }
    const gpu: InstanceGroupSpec = { name: 'g', kind: 'GPU', count: 1, gpus: [0] } as unknown as InstanceGroupSpec;
    assert.throws(() => readExecutionThread(new Map([['execution_thread', 'inline']]), gpu),
      /parameters 'execution_thread' is 'inline' but instance_group 'g' has kind KIND_GPU/);
    assert.equal(readExecutionThread(new Map(), gpu).mode, 'worker', 'GPU instances stay on the worker in auto mode');
  });
});

describe('auto mode policy, driven by recorded run times', () => {
  const settings = { mode: 'auto', inlineMaxRunNs: 150_000 } as const;

  test('moves inline after enough light runs, back after a few long runs or a slow median, and waits longer each time', () => {
    const policy = new ExecutionThreadPolicy(settings);
    for (let i = 1; i < INLINE_SAMPLE_RUNS; i++) policy.record('worker', 10_000);
    assert.equal(policy.thread, 'worker');
    policy.record('worker', 10_000);
    assert.equal(policy.thread, 'inline');
    for (let i = 0; i < MAX_LONG_RUNS - 1; i++) policy.record('inline', 5_000_000);
    assert.equal(policy.thread, 'inline', 'a run the OS preempted now and then does not move it');
    policy.record('inline', 5_000_000);
    assert.equal(policy.thread, 'worker', `${MAX_LONG_RUNS} runs over the hard limit go back`);
    for (let i = 0; i < INLINE_SAMPLE_RUNS; i++) policy.record('worker', 10_000);
    assert.equal(policy.thread, 'worker', 'the second time it measures twice as many runs');
    for (let i = 0; i < INLINE_SAMPLE_RUNS; i++) policy.record('worker', 10_000);
    assert.equal(policy.thread, 'inline');
    for (let i = 0; i < 16 && policy.thread === 'inline'; i++) policy.record('inline', 400_000);
    assert.equal(policy.thread, 'worker', 'a median over the threshold goes back');
    assert.equal(policy.switchCount, 4);
  });

  test('the running counts choose as a sorted window would, run for run, over long random sequences', () => {
    // The policy as first written: the last 16 run times since a switch, sorted for the median on every run.
    const reference = (limitNs: number) => {
      let inline = false; let recent: number[] = []; let samples = 0; let required = INLINE_SAMPLE_RUNS;
      const hard = Math.max(4 * limitNs, 1_000_000);
      return (where: 'inline' | 'worker', ns: number): 'inline' | 'worker' => {
        if (where === (inline ? 'inline' : 'worker')) {
          samples += 1;
          recent.push(ns);
          if (recent.length > 16) recent.shift();
          const sorted = [...recent].sort((a, b) => a - b);
          const light = sorted[Math.floor(sorted.length / 2)]! <= limitNs;
          const long = recent.filter((v) => v > hard).length;
          const move = (to: boolean): void => { inline = to; samples = 0; recent = []; };
          if (!inline) {
            if (samples >= required && light && long === 0) move(true);
          } else if (long >= MAX_LONG_RUNS || (recent.length >= 8 && !light)) {
            required = Math.min(required * 2, 4096);
            move(false);
          }
        }
        return inline ? 'inline' : 'worker';
      };
    };
    let seed = 12345;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (const limitNs of [150_000, 400_000]) {
      const policy = new ExecutionThreadPolicy({ mode: 'auto', inlineMaxRunNs: limitNs });
      const expected = reference(limitNs);
      for (let i = 0; i < 20_000; i++) {
        // Mostly light runs, some near the threshold, a few far past the hard limit; now and then from the other thread.
        const r = random();
        const ns = r < 0.6 ? 20_000 : r < 0.9 ? limitNs - 50_000 + Math.floor(random() * 100_000) : r < 0.97 ? limitNs * 2 : 3_000_000;
        const where = random() < 0.05 ? (policy.thread === 'inline' ? 'worker' : 'inline') : policy.thread;
        policy.record(where, ns);
        assert.equal(policy.thread, expected(where, ns), `run ${i} (${ns} ns on ${where}, threshold ${limitNs} ns)`);
      }
      assert.ok(policy.switchCount > 10, `the sequence moved the model back and forth (${policy.switchCount} switches)`);
    }
  });

  test('a model whose runs are over the threshold stays on the worker; records from the other thread are ignored', () => {
    const policy = new ExecutionThreadPolicy(settings);
    for (let i = 0; i < 100; i++) policy.record('worker', 200_000);
    for (let i = 0; i < 100; i++) policy.record('inline', 1_000);
    assert.equal(policy.thread, 'worker');
    assert.equal(new ExecutionThreadPolicy({ mode: 'worker', inlineMaxRunNs: 150_000 }).thread, 'worker');
    const forced = new ExecutionThreadPolicy({ mode: 'inline', inlineMaxRunNs: 150_000 });
    forced.record('inline', 50_000_000);
    assert.equal(forced.thread, 'inline', 'inline mode is the operator\'s choice: it stays');
  });
});
