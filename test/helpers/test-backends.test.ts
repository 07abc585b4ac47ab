/**
 * The in-memory test backends do what the tests that run on them rely on:
 * echo (renamed, batched into one buffer), the slow backend's gate and
 * counts, the failing modes, the counting records, and a load error for a
 * config that cannot stand for a signature.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InferenceRequest } from '../../engine/inference-request.ts';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import { bytesOf, type Tensor } from '../../engine/tensor.ts';
import { makeRepository, removeRepository, startEngine } from './fixture-repository.ts';
import { CountingBackend, EchoBackend, FailingBackend, SlowBackend, testModelConfig, withTestBackends } from './test-backends.ts';

const IO = `input [ { name: "X" data_type: TYPE_FP32 dims: [ 2 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 2 ] } ]`;

const request = (model: string, value: number, rows = 1, parameters?: InferenceRequest['parameters']): InferenceRequest => ({
  modelName: model,
  inputs: [{ name: 'X', datatype: 'FP32', shape: [rows, 2], raw: bytesOf(new Float32Array(rows * 2).fill(value)) }],
  ...(parameters ? { parameters } : {}),
});

const values = (t: Tensor | undefined): number[] => (t && t.datatype !== 'BYTES' ? [...new Float32Array(t.raw.slice().buffer)] : []);

describe('test backends', () => {
  const echo = new EchoBackend();
  const slow = new SlowBackend();
  const failing = new FailingBackend();
  const counting = new CountingBackend();
  let root: string;
  let engine: InferenceEngine;

  before(async () => {
    root = await makeRepository({
      echo: { config: testModelConfig('echo', 'test_echo', 4, IO), versions: { 1: null } },
      renamed: {
        config: testModelConfig('renamed', 'test_echo', 0, `input [ { name: "A" data_type: TYPE_INT32 dims: [ 1 ] }, { name: "B" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "FROM_B" data_type: TYPE_INT32 dims: [ 1 ] } ]`, 'parameters { key: "echo_FROM_B" value: { string_value: "B" } }'),
        versions: { 1: null },
      },
      slow: { config: testModelConfig('slow', 'test_slow', 4, IO, 'dynamic_batching { }'), versions: { 1: null } },
      failing: { config: testModelConfig('failing', 'test_failing', 4, IO), versions: { 1: null } },
      throwing: { config: testModelConfig('throwing', 'test_failing', 4, IO, 'parameters { key: "fail_mode" value: { string_value: "throw" } }'), versions: { 1: null } },
      counting: { config: testModelConfig('counting', 'test_counting', 4, IO, 'instance_group [ { count: 2 kind: KIND_CPU } ]'), versions: { 1: null } },
      no_dims: { config: testModelConfig('no_dims', 'test_echo', 0, 'output [ { name: "Y" data_type: TYPE_FP32 } ]'), versions: { 1: null } },
    });
    engine = await startEngine(root, { backends: withTestBackends(echo, slow, failing, counting), strictReadiness: false });
  });

  after(async () => {
    slow.open();
    await engine?.close();
    if (root) await removeRepository(root);
  });

  test('echo: outputs are inputs renamed, by position or as the config names them; the signature is the config', async () => {
    assert.deepEqual(values((await engine.infer(request('echo', 3, 2))).outputs[0]), [3, 3, 3, 3]);
    const renamed = await engine.infer({
      modelName: 'renamed',
      inputs: [{ name: 'A', datatype: 'INT32', shape: [1], raw: bytesOf(Int32Array.of(1)) }, { name: 'B', datatype: 'INT32', shape: [1], raw: bytesOf(Int32Array.of(7)) }],
    });
    assert.equal(renamed.outputs[0]!.name, 'FROM_B');
    assert.deepEqual([...new Int32Array(renamed.outputs[0]!.raw.slice().buffer)], [7]);
    await assert.rejects(engine.infer({ ...request('echo', 1), inputs: [{ name: 'X', datatype: 'INT32', shape: [1, 2], raw: bytesOf(Int32Array.of(1, 2)) }] }), /X/);
  });

  test('a config without dims cannot stand for a signature: the load fails saying so', () => {
    const failure = engine.loadFailures().find((f) => f.name === 'no_dims');
    assert.match(failure?.reason ?? '', /output\[0\] \('Y'\) needs data_type and dims: a test_echo model has no model file/);
  });

  test('slow: executions wait at the gate until released; requests that queued meanwhile run as one batch, in one buffer', async () => {
    const first = engine.infer(request('slow', 1));
    await slow.untilWaiting(1);
    assert.equal(slow.waiting, 1);
    const rest = [2, 3, 4].map((v) => engine.infer(request('slow', v)));
    slow.release(2);
    const answers = await Promise.all([first, ...rest]);
    assert.deepEqual(answers.map((a) => values(a.outputs[0])[0]), [1, 2, 3, 4]);
    assert.deepEqual(slow.executions.map((e) => e.batchSizes), [[1], [1, 1, 1]]);
    assert.deepEqual(slow.executions[1]!.tags, [2, 3, 4]);
    assert.equal(new Set(answers.slice(1).map((a) => a.outputs[0]!.raw.buffer)).size, 1, 'one batch, one buffer');
    assert.equal(slow.waiting, 0);
    assert.equal(slow.inFlight, 0);
  });

  test('failing: flagged requests get the error, the others their echo; throw mode rejects execute and the engine answers', async () => {
    const good = await engine.infer(request('failing', 5));
    assert.deepEqual(values(good.outputs[0]), [5, 5]);
    await assert.rejects(engine.infer(request('failing', 5, 1, { fail: true })), { code: 'INFERENCE_FAILED', message: "inference failed in model 'failing': test failure" });
    await assert.rejects(engine.infer(request('throwing', 5)), /test failure/);
    assert.deepEqual(values((await engine.infer(request('failing', 6))).outputs[0]), [6, 6], 'the model keeps serving');
  });

  test('counting: records every execution, its instance and concurrency', async () => {
    await Promise.all([1, 2].map((v) => engine.infer(request('counting', v, v))));
    assert.equal(counting.executions.length >= 1, true);
    assert.deepEqual(counting.batchSizes.flat().sort(), [1, 2]);
    assert.deepEqual(counting.executions.flatMap((e) => e.tags).sort(), [1, 2]);
    assert.ok(counting.peakConcurrency >= 1 && counting.peakConcurrency <= 2);
    assert.equal(counting.running, 0);
  });
});
