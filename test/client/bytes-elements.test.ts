/** The length-prefixed BYTES wire form the SDK writes and reads, with bytes no model would keep (NUL, invalid UTF-8). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeBytesElements, encodeBytesElements } from '../../client/src/bytes-elements.ts';

test('elements of any bytes round-trip through the wire form', () => {
  const elements = [new Uint8Array([0, 255, 254, 1]), new Uint8Array(0), new Uint8Array([0xc3, 0x28]), new Uint8Array(300).fill(7)];
  const wire = encodeBytesElements(elements);
  assert.equal(wire.byteLength, 4 * 4 + 4 + 0 + 2 + 300);
  assert.deepEqual([...wire.subarray(0, 8)], [4, 0, 0, 0, 0, 255, 254, 1]);
  assert.deepEqual(decodeBytesElements(wire).map((e) => [...e]), elements.map((e) => [...e]));
});

test('a truncated wire form is refused with where it broke', () => {
  assert.throws(() => decodeBytesElements(new Uint8Array([5, 0, 0, 0, 1, 2])), { name: 'RangeError', message: 'BYTES element 0 claims 5 bytes but only 2 remain' });
  assert.throws(() => decodeBytesElements(new Uint8Array([0, 0, 0, 0, 1])), { name: 'RangeError', message: 'BYTES data ends inside the length of element 1' });
});
