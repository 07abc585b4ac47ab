import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferPool, keepCount, sizeClass } from '../../../engine/memory/buffer-pool.ts';

test('size classes are powers of two from 4 KiB', () => {
  assert.deepEqual([0, 1, 4096, 4097, 8192, 100_000].map(sizeClass), [4096, 4096, 4096, 8192, 8192, 131_072]);
});

test('released buffers are handed out again for the same class', () => {
  const pool = new BufferPool();
  assert.equal(pool.enabled, true);
  const a = pool.acquire(5000);
  assert.equal(a.byteLength, 8192);
  pool.release(a);
  assert.equal(pool.acquire(6000), a);
  assert.notEqual(pool.acquire(6000), a);
  assert.deepEqual(pool.stats(), { allocated: 2, allocatedBytes: 16_384, reused: 1, reusedBytes: 8192, foreignBytes: 0, copiedBytes: 0, outstanding: 2, disowned: 0 });
});

test('a detached buffer (lost with a dead worker) and foreign sizes are dropped; each class keeps a bounded number', () => {
  const pool = new BufferPool();
  const moved = pool.acquire(100);
  structuredClone(moved, { transfer: [moved] });
  assert.equal(moved.byteLength, 0);
  pool.release(moved);
  pool.release(new ArrayBuffer(5000));
  const keep = keepCount(4096);
  const many = Array.from({ length: keep + 12 }, () => pool.acquire(100));
  for (const b of many) pool.release(b);
  const again = Array.from({ length: keep + 12 }, () => pool.acquire(100));
  assert.equal(again.filter((b) => many.includes(b)).length, keep);
  assert.equal(pool.stats().outstanding, keep + 12);
});

test('a small class keeps enough buffers for dozens of requests in flight; bigger ones keep fewer, a huge one two', () => {
  assert.equal(keepCount(4096), 256);
  assert.equal(keepCount(65_536), 16);
  assert.equal(keepCount(1024 * 1024), 8);
  assert.equal(keepCount(16 * 1024 * 1024), 4);
  assert.equal(keepCount(128 * 1024 * 1024), 2);
});

test('a buffer released twice is kept once', () => {
  const pool = new BufferPool();
  const a = pool.acquire(10);
  pool.release(a);
  pool.release(a);
  assert.equal(pool.acquire(10), a);
  assert.notEqual(pool.acquire(10), a);
});

test('a disabled pool allocates exactly what is asked, every time, and keeps nothing', () => {
  const pool = new BufferPool({ enabled: false });
  assert.equal(pool.enabled, false);
  const a = pool.acquire(100);
  assert.equal(a.byteLength, 100);
  pool.release(a);
  const b = pool.acquire(100);
  assert.notEqual(b, a);
  assert.deepEqual(pool.stats(), { allocated: 2, allocatedBytes: 200, reused: 0, reusedBytes: 0, foreignBytes: 0, copiedBytes: 0, outstanding: 1, disowned: 0 });
});

test('foreign and copied bytes are counted as reported', () => {
  const pool = new BufferPool();
  pool.noteForeign(64);
  pool.noteForeign(36);
  pool.noteCopy(128);
  const { foreignBytes, copiedBytes } = pool.stats();
  assert.deepEqual({ foreignBytes, copiedBytes }, { foreignBytes: 100, copiedBytes: 128 });
});

test('outstanding counts buffers lent and not yet given back; foreign and repeated releases do not count', () => {
  const pool = new BufferPool();
  const a = pool.acquire(10);
  const b = pool.acquire(10);
  const c = pool.acquire(10);
  assert.equal(pool.stats().outstanding, 3);
  pool.release(a);
  pool.release(a);
  pool.release(new ArrayBuffer(5000));
  assert.equal(pool.stats().outstanding, 2);
  structuredClone(b, { transfer: [b] });
  pool.release(b);
  pool.disown(c);
  assert.deepEqual([pool.stats().outstanding, pool.stats().disowned], [0, 1]);
});
