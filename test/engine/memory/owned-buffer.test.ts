/**
 * The one rule for moving memory: only buffers the server allocated, and
 * only a holder's sole view, go in a transfer list; a Buffer from Node's
 * shared pool never does, and ownedCopy copies where Buffer#slice would not.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BufferPool } from '../../../engine/memory/buffer-pool.ts';
import { adoptOwned, allocateOwned, isMovable, ownedCopy, transferList } from '../../../engine/memory/owned-buffer.ts';

test('a small Buffer (a slice of the shared pool slab) is never transferable', () => {
  const small = Buffer.from([1, 2, 3, 4]);
  assert.ok(small.buffer.byteLength > small.byteLength, 'a small Buffer shares the pool slab');
  assert.equal(isMovable(small), false);
  assert.equal(isMovable(small, true), false);
  assert.deepEqual(transferList([small.buffer]), []);
  const whole = new Uint8Array(16);
  assert.equal(isMovable(whole), false, 'a buffer the server did not allocate is not ours, even whole');
});

test('ownedCopy copies a Buffer view into a buffer of its own, which may move', () => {
  const body = Buffer.from('header-and-then-the-tensor');
  const view = body.subarray(7, 11);
  const copy = ownedCopy(view);
  assert.deepEqual([...copy], [...view]);
  assert.notEqual(copy.buffer, body.buffer);
  assert.equal(copy.byteOffset, 0);
  assert.equal(copy.buffer.byteLength, view.byteLength);
  assert.equal(isMovable(copy), true);
  copy[0] = 0;
  assert.equal(body[7], view[0], 'the copy shares nothing with the body');
  assert.equal(body.subarray(7, 8)[0], 'a'.charCodeAt(0));
});

test('a part of a buffer of ours moves only when its holder owns the whole (a pooled tensor)', () => {
  const buffer = allocateOwned(64);
  assert.equal(isMovable(new Uint8Array(buffer, 0, 16)), false);
  assert.equal(isMovable(new Uint8Array(buffer, 0, 16), true), true);
  assert.equal(isMovable(new Uint8Array(buffer, 16, 16), true), false, 'a view past the start is a batch slice');
});

test('transferList keeps our buffers once each and drops detached ones', () => {
  const a = allocateOwned(8);
  const b = allocateOwned(8);
  assert.deepEqual(transferList([a, b, a]), [a, b]);
  structuredClone(a, { transfer: [a] });
  assert.deepEqual(transferList([a, b]), [b]);
});

test('pool buffers are ours, and so is a buffer released into the pool', () => {
  const pool = new BufferPool();
  const acquired = pool.acquire(100);
  assert.deepEqual(transferList([acquired]), [acquired]);
  const returned = new ArrayBuffer(4096);
  assert.deepEqual(transferList([returned]), []);
  pool.release(returned);
  assert.deepEqual(transferList([returned]), [returned]);
  const adopted = new ArrayBuffer(8);
  adoptOwned(adopted);
  assert.equal(isMovable(new Uint8Array(adopted)), true);
});
