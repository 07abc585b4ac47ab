import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InferenceRequest } from '../../../engine/inference-request.ts';
import { PIPELINE_DEPTH } from '../../../engine/scheduling/dynamic-batcher.ts';
import type { InferenceServer } from '../../../engine/server.ts';
import type { Tensor } from '../../../engine/tensor.ts';
import { mlpModel } from '../../../generator/models.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';

const heavy = mlpModel({ sizes: [512, 2048, 2048, 16], seed: 5 });

function request(model: string, rows: number, signal?: AbortSignal): InferenceRequest {
  const input: Tensor = { name: 'INPUT', datatype: 'FP32', shape: [rows, 512], raw: new Uint8Array(new Float32Array(rows * 512).fill(0.1).buffer) };
  return { modelName: model, inputs: [input], ...(signal ? { signal } : {}) };
}

const bufferOf = (t: Tensor | undefined): ArrayBufferLike | undefined => (t && t.datatype !== 'BYTES' ? t.raw.buffer : undefined);

describe('scheduler', () => {
  let root: string;
  let server: InferenceServer;

  before(async () => {
    root = await makeRepository({
      plain: { config: 'max_batch_size: 64\n', versions: { 1: heavy } },
      batched: { config: 'max_batch_size: 64\ndynamic_batching { }\n', versions: { 1: heavy } },
    });
    server = await startEngine(root);
  });

  after(async () => {
    await server.close();
    await removeRepository(root);
  });

  test('waiting requests with compatible shapes run as one batch when dynamic_batching is on', async () => {
    const busy = server.infer(request('batched', 64));
    const waiting = await Promise.all([1, 2, 3].map((rows) => server.infer(request('batched', rows))));
    await busy;
    assert.deepEqual(waiting.map((r) => r.outputs[0]!.shape), [[1, 16], [2, 16], [3, 16]]);
    const buffers = new Set(waiting.map((r) => bufferOf(r.outputs[0])));
    assert.equal(buffers.size, 1, 'the three waiting requests shared one session.run');
  });

  test('without dynamic_batching each request runs alone', async () => {
    const busy = server.infer(request('plain', 64));
    const waiting = await Promise.all([1, 2].map((rows) => server.infer(request('plain', rows))));
    await busy;
    assert.notEqual(bufferOf(waiting[0]!.outputs[0]), bufferOf(waiting[1]!.outputs[0]));
  });

  test('a cancelled request is answered at once, whether queued or already with an instance', async () => {
    const busy = server.infer(request('plain', 64));
    const controller = new AbortController();
    const queued = server.infer(request('plain', 1, controller.signal));
    controller.abort(new Error('client went away'));
    await assert.rejects(queued, (err: Error & { code?: string }) => {
      assert.equal(err.code, 'CANCELLED');
      assert.match(err.message, /inference request for model 'plain' was cancelled: client went away/);
      return true;
    });
    await busy;
    const aborted = new AbortController();
    aborted.abort();
    await assert.rejects(server.infer(request('plain', 1, aborted.signal)), { code: 'CANCELLED' });
  });
});

test('closing the server finishes running work and refuses queued work', async () => {
  const root = await makeRepository({ plain: { config: 'max_batch_size: 64\n', versions: { 1: heavy } } });
  const server = await startEngine(root);
  // A slow model's instance holds PIPELINE_DEPTH.slow requests; the one after them waits in the queue.
  const running = Array.from({ length: PIPELINE_DEPTH.slow }, () => server.infer(request('plain', 64)));
  const queued = assert.rejects(server.infer(request('plain', 1)), { code: 'SERVER_STOPPING' });
  await server.close();
  for (const response of await Promise.all(running)) assert.deepEqual(response.outputs[0]!.shape, [64, 16]);
  await queued;
  await assert.rejects(server.infer(request('plain', 1)), { code: 'SERVER_EXITING', message: 'Server exiting' });
  await removeRepository(root);
});
