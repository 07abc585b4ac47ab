/**
 * The dynamic batcher in a running engine, on the in-memory slow backend
 * (test/helpers/test-backends.ts): an execution holds its instance until the
 * test releases it, so requests are known to wait while it runs.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { InferenceRequest } from '../../../engine/inference-request.ts';
import { PIPELINE_DEPTH } from '../../../engine/scheduling/dynamic-batcher.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import type { Tensor } from '../../../engine/tensor.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { SlowBackend, testModelConfig, withTestBackends } from '../../helpers/test-backends.ts';
import { pollFor } from '../../helpers/wait.ts';

const WIDTH = 16;
const IO = `input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ ${WIDTH} ] } ]
output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ ${WIDTH} ] } ]`;
const WAIT_MS = 5000;

function request(model: string, rows: number, signal?: AbortSignal): InferenceRequest {
  const input: Tensor = { name: 'INPUT', datatype: 'FP32', shape: [rows, WIDTH], raw: new Uint8Array(new Float32Array(rows * WIDTH).fill(0.1).buffer) };
  return { modelName: model, inputs: [input], ...(signal ? { signal } : {}) };
}

const bufferOf = (t: Tensor | undefined): ArrayBufferLike | undefined => (t && t.datatype !== 'BYTES' ? t.raw.buffer : undefined);

/** Resolves once the model holds `count` requests (queued or with an instance). */
const untilPending = (engine: InferenceEngine, model: string, count: number): Promise<true> =>
  pollFor(`${count} requests pending in '${model}'`, WAIT_MS, () => engine.pendingRequestCount(model) === count || undefined,
    () => `pending: ${engine.pendingRequestCount(model)}`);

describe('scheduler', () => {
  const slow = new SlowBackend();
  let root: string;
  let engine: InferenceEngine;

  before(async () => {
    root = await makeRepository({
      plain: { config: testModelConfig('plain', 'test_slow', 64, IO), versions: { 1: null } },
      batched: { config: testModelConfig('batched', 'test_slow', 64, IO, 'dynamic_batching { }'), versions: { 1: null } },
    });
    engine = await startEngine(root, { backends: withTestBackends(slow) });
  });

  beforeEach(() => slow.close());

  after(async () => {
    slow.open();
    await engine?.close();
    if (root) await removeRepository(root);
  });

  test('waiting requests with compatible shapes run as one batch when dynamic_batching is on', async () => {
    const busy = engine.infer(request('batched', 64));
    await slow.untilWaiting(1);
    const pending = Promise.all([1, 2, 3].map((rows) => engine.infer(request('batched', rows))));
    await untilPending(engine, 'batched', 4);
    slow.open();
    const waiting = await pending;
    await busy;
    assert.deepEqual(waiting.map((r) => r.outputs[0]!.shape), [[1, 16], [2, 16], [3, 16]]);
    const buffers = new Set(waiting.map((r) => bufferOf(r.outputs[0])));
    assert.equal(buffers.size, 1, 'the three waiting requests shared one execution');
    assert.deepEqual(slow.executions.filter((e) => e.model === 'batched').map((e) => e.batchSizes), [[64], [1, 2, 3]]);
  });

  test('without dynamic_batching each request runs alone', async () => {
    const busy = engine.infer(request('plain', 64));
    await slow.untilWaiting(1);
    const pending = Promise.all([1, 2].map((rows) => engine.infer(request('plain', rows))));
    await untilPending(engine, 'plain', 3);
    slow.open();
    const waiting = await pending;
    await busy;
    assert.notEqual(bufferOf(waiting[0]!.outputs[0]), bufferOf(waiting[1]!.outputs[0]));
    assert.deepEqual(slow.executions.filter((e) => e.model === 'plain').map((e) => e.batchSizes), [[64], [1], [2]]);
  });

  test('a cancelled request is answered at once, whether queued or already with an instance', async () => {
    const busy = engine.infer(request('plain', 64));
    await slow.untilWaiting(1);
    const controller = new AbortController();
    const queued = engine.infer(request('plain', 1, controller.signal));
    controller.abort(new Error('client went away'));
    await assert.rejects(queued, (err: Error & { code?: string }) => {
      assert.equal(err.code, 'CANCELLED');
      assert.match(err.message, /inference request for model 'plain' was cancelled: client went away/);
      return true;
    });
    assert.equal(slow.waiting, 1, 'answered while the execution before it still held the instance');
    slow.open();
    await busy;
    const aborted = new AbortController();
    aborted.abort();
    await assert.rejects(engine.infer(request('plain', 1, aborted.signal)), { code: 'CANCELLED' });
  });
});

test('closing the server finishes running work and refuses queued work', async () => {
  const slow = new SlowBackend();
  const root = await makeRepository({ plain: { config: testModelConfig('plain', 'test_slow', 64, IO), versions: { 1: null } } });
  const engine = await startEngine(root, { backends: withTestBackends(slow) });
  try {
    // A slow model's instance holds PIPELINE_DEPTH.slow requests; the one after them waits in the queue.
    const running = Array.from({ length: PIPELINE_DEPTH.slow }, () => engine.infer(request('plain', 64)));
    await slow.until(() => slow.inFlight === PIPELINE_DEPTH.slow && slow.waiting === 1, `${PIPELINE_DEPTH.slow} executions with the instance`);
    const queued = assert.rejects(engine.infer(request('plain', 1)), { code: 'SERVER_STOPPING' });
    await untilPending(engine, 'plain', PIPELINE_DEPTH.slow + 1);
    const closing = engine.close();
    await queued;
    slow.open();
    await closing;
    for (const response of await Promise.all(running)) assert.deepEqual(response.outputs[0]!.shape, [64, 16]);
    await assert.rejects(engine.infer(request('plain', 1)), { code: 'SERVER_EXITING', message: 'Server exiting' });
  } finally {
    slow.open();
    await engine.close();
    await removeRepository(root);
  }
});
