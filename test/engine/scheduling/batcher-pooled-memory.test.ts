/**
 * Pooled memory at the dynamic batcher's edges. A request may arrive with
 * pooled inputs it owns (an ensemble hands its intermediates over), and an
 * instance answers with pooled outputs the requester owns. When the
 * request ends before either reaches its owner (refused, cancelled while
 * queued, cancelled while its batch ran), the batcher gives the buffers
 * back to the pool; inputs a batch took to an instance are the instance's.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BackendInstance, ExecuteOutcome, ExecuteRequest } from '../../../engine/backend.ts';
import type { InferenceRequest } from '../../../engine/inference-request.ts';
import { silentLogger } from '../../../engine/logger.ts';
import { BufferPool } from '../../../engine/memory/buffer-pool.ts';
import { ModelStats } from '../../../engine/observability/model-stats.ts';
import { normalizeRequest } from '../../../engine/request-normalizer.ts';
import { ManualClock } from '../../../engine/scheduling/clock.ts';
import { DynamicBatcher } from '../../../engine/scheduling/dynamic-batcher.ts';
import type { Tensor } from '../../../engine/tensor.ts';
import { compileTestConfig, TIMING } from './scripted-instance.ts';

/** An instance that answers each request, when the test says, with an OUTPUT in a pool buffer of its own, marked pooled. */
class PoolingInstance implements BackendInstance {
  readonly waiting: Array<{ requests: readonly ExecuteRequest[]; finish: () => void }> = [];

  constructor(readonly name: string, private readonly pool: BufferPool) {}

  execute(requests: readonly ExecuteRequest[]): Promise<ExecuteOutcome> {
    return new Promise((resolve) => {
      this.waiting.push({
        requests,
        finish: () => resolve({
          results: requests.map((r) => {
            const bytes = r.inputs[0]!.raw.byteLength;
            const raw = new Uint8Array(this.pool.acquire(bytes), 0, bytes);
            raw.set(r.inputs[0]!.raw);
            return { ok: true, outputs: [{ name: 'OUTPUT', datatype: 'FP32', shape: [...r.inputs[0]!.shape], raw, pooled: true } as Tensor] };
          }),
          timing: TIMING,
        }),
      });
    });
  }

  async finalize(): Promise<void> {}
}

function setup(configText: string, instanceCount = 1) {
  const pool = new BufferPool();
  const config = compileTestConfig(configText);
  const instances = Array.from({ length: instanceCount }, (_, i) => new PoolingInstance(`i${i}`, pool));
  const batching = config.scheduling.kind === 'dynamic' ? config.scheduling.batching : undefined;
  const scheduler = new DynamicBatcher({ config, instances, logger: silentLogger, stats: new ModelStats(), clock: new ManualClock(), bufferPool: pool }, batching);
  /** A request whose INPUT lies in a pool buffer it owns (marked pooled), as an ensemble hands one over. */
  const handedOver = (signal?: AbortSignal): InferenceRequest => {
    const raw = new Uint8Array(pool.acquire(16), 0, 16);
    raw.set(new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer));
    return { modelName: 'm', inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, 4], raw, pooled: true }], ...(signal ? { signal } : {}) };
  };
  const send = (request: InferenceRequest): Promise<readonly Tensor[] | Error> =>
    scheduler.enqueue(request, normalizeRequest(config, request)).catch((err: Error) => err);
  const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  return { pool, instance: instances[0]!, instances, send, handedOver, settle };
}

describe('the dynamic batcher gives back pooled memory nobody will own', () => {
  test('a request cancelled while queued gives back the pooled input it was handed', async () => {
    // The queue delay never passes on the manual clock: requests wait for a batch of 8.
    const { pool, instance, send, handedOver, settle } = setup(
      'max_batch_size: 8\ndynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 5000000 }');
    const client = new AbortController();
    const staying = send(handedOver());
    const leaving = send(handedOver(client.signal));
    await settle();
    assert.equal(instance.waiting.length, 0, 'both wait in the queue');
    assert.equal(pool.stats().outstanding, 2);
    client.abort(new Error('client left'));
    assert.match(String(await leaving), /cancel/i);
    assert.equal(pool.stats().outstanding, 1, 'the cancelled request gave its input back; the other still holds its own');
    void staying;
  });

  test('a request refused with QUEUE_FULL gives back the pooled input it was handed', async () => {
    const { pool, instance, send, handedOver, settle } = setup(
      'max_batch_size: 8\ninstance_group [ { count: 1 } ]\ndynamic_batching { default_queue_policy { max_queue_size: 1 } }');
    void send(handedOver());
    await settle();
    assert.equal(instance.waiting.length, 1);
    void send(handedOver());
    const refused = await send(handedOver());
    assert.match(String(refused), /queue/i);
    assert.equal(pool.stats().outstanding, 2, 'the refused request gave its input back at once');
  });

  test('a request cancelled while its batch runs gives back the pooled output answered for it', async () => {
    const { pool, instance, send, handedOver, settle } = setup('max_batch_size: 8\ninstance_group [ { count: 1 } ]');
    const client = new AbortController();
    const request = handedOver(client.signal);
    const answer = send(request);
    await settle();
    assert.equal(instance.waiting.length, 1, 'the batch runs');
    client.abort(new Error('client left'));
    assert.match(String(await answer), /cancel/i);
    const lent = pool.stats().outstanding;
    instance.waiting[0]!.finish();
    await settle();
    assert.equal(pool.stats().outstanding, lent, 'the output made for nobody went straight back');
    assert.equal(pool.stats().outstanding, 1, 'what stays lent is the input, which the instance took with the batch');
  });

  test('with preserve_ordering, a held result whose request was cancelled gives its pooled output back', async () => {
    const { pool, instances, send, handedOver, settle } = setup('max_batch_size: 1\ndynamic_batching { preserve_ordering: true }', 2);
    // Two instances, one request per batch: the second request's batch finishes first and its result is held for order.
    const client = new AbortController();
    const first = send(handedOver());
    const second = send(handedOver(client.signal));
    await settle();
    assert.deepEqual(instances.map((i) => i.waiting.length), [1, 1], 'both batches run');
    instances[1]!.waiting[0]!.finish();
    await settle();
    client.abort(new Error('client left'));
    assert.match(String(await second), /cancel/i);
    instances[0]!.waiting[0]!.finish();
    assert.ok(!(await first instanceof Error));
    await settle();
    assert.equal(pool.stats().outstanding, 3, 'both inputs (with the instance) and the first answer; the cancelled answer went back');
  });
});
