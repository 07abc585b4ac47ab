import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferPool } from '../../../engine/memory/buffer-pool.ts';
import { BufferLease, markedIfOwned, unmarked } from '../../../engine/memory/buffer-lease.ts';
import type { Tensor } from '../../../engine/tensor.ts';

const pooledTensor = (pool: BufferPool, name: string): Tensor =>
  ({ name, datatype: 'FP32', shape: [2], raw: new Uint8Array(pool.acquire(8), 0, 8), pooled: true });

test('a lease gives its buffers back exactly once, however often it is released', () => {
  const pool = new BufferPool();
  const tensors = [pooledTensor(pool, 'A'), pooledTensor(pool, 'B'), { name: 'C', datatype: 'FP32', shape: [1], raw: new Uint8Array(4) } as Tensor];
  const lease = BufferLease.ofTensors(pool, tensors);
  assert.equal(lease.size, 2);
  assert.equal(pool.stats().outstanding, 2);
  lease.release();
  assert.equal(pool.stats().outstanding, 0);
  assert.equal(lease.ended, true);
  lease.release();
  lease.keep();
  assert.deepEqual(lease.take(), []);
  assert.equal(pool.stats().outstanding, 0);
  const reused = pool.acquire(8);
  assert.ok(reused === tensors[0]!.raw.buffer || reused === tensors[1]!.raw.buffer, 'a released buffer is handed out again');
});

test('take hands ownership on; keep leaves the memory with its holder and the pool forgets it', () => {
  const pool = new BufferPool();
  const a = pooledTensor(pool, 'A');
  const taken = BufferLease.ofTensors(pool, [a]).take();
  assert.deepEqual(taken, [a.raw.buffer]);
  assert.equal(pool.stats().outstanding, 1, 'the taker holds it now');
  const marked = markedIfOwned(unmarked(a), new Set(taken));
  assert.equal(marked.datatype !== 'BYTES' && marked.pooled, true);
  pool.release(taken[0]!);
  const b = pooledTensor(pool, 'B');
  const lease = BufferLease.ofTensors(pool, [b]);
  lease.keep();
  lease.release();
  assert.deepEqual([pool.stats().outstanding, pool.stats().disowned], [0, 1]);
  assert.notEqual(pool.acquire(8), b.raw.buffer, 'a kept buffer never comes back');
});

test('a lease without a pool, or on no pooled tensor, holds nothing', () => {
  assert.equal(BufferLease.ofTensors(undefined, []).ended, true);
  assert.equal(new BufferLease(new BufferPool(), []).size, 0);
});
