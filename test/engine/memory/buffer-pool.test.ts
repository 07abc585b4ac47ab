import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferPool, sizeClass } from '../../../engine/memory/buffer-pool.ts';

test('size classes are powers of two from 4 KiB', () => {
  assert.deepEqual([0, 1, 4096, 4097, 8192, 100_000].map(sizeClass), [4096, 4096, 4096, 8192, 8192, 131_072]);
});

test('released buffers are handed out again for the same class', () => {
  const pool = new BufferPool();
  const a = pool.acquire(5000);
  assert.equal(a.byteLength, 8192);
  pool.release(a);
  assert.equal(pool.acquire(6000), a);
  assert.notEqual(pool.acquire(6000), a);
  assert.deepEqual(pool.stats(), { allocated: 2, reused: 1 });
});

test('a detached buffer (lost with a dead worker) and foreign sizes are dropped; each class keeps a bounded number', () => {
  const pool = new BufferPool();
  const moved = pool.acquire(100);
  structuredClone(moved, { transfer: [moved] });
  assert.equal(moved.byteLength, 0);
  pool.release(moved);
  pool.release(new ArrayBuffer(5000));
  const many = Array.from({ length: 20 }, () => pool.acquire(100));
  for (const b of many) pool.release(b);
  const again = Array.from({ length: 20 }, () => pool.acquire(100));
  assert.equal(again.filter((b) => many.includes(b)).length, 8);
});
