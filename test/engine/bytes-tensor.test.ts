/**
 * The compact BYTES form: one length-prefixed buffer and a Uint32 index.
 * Building, reading, batching (concat and slice), malformed data, the
 * element limit, and the memory per element.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  BytesDataError, bytesElementAt, bytesElementCount, bytesStrings, bytesTensor, bytesTensorFromWire, concatBytesTensors,
  decodeBytesInput, emptyBytesTensor, forEachBytesElement, indexBytes, sliceBytesTensor,
} from '../../engine/bytes-tensor.ts';

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');

test('strings and byte arrays go in; the same elements come out, in the wire form', () => {
  const t = bytesTensor('T', [1, 4], ['a', '', 'déjà', new Uint8Array([0, 255])]);
  assert.equal(bytesElementCount(t), 4);
  assert.deepEqual(bytesStrings(t).slice(0, 3), ['a', '', 'déjà']);
  assert.deepEqual([...bytesElementAt(t, 3)], [0, 255]);
  assert.deepEqual([...t.offsets], [0, 5, 9, 19, 25]);
  assert.deepEqual([...t.raw.subarray(0, 5)], [1, 0, 0, 0, 97]);
  const seen: string[] = [];
  forEachBytesElement(t, (e, i) => seen.push(`${i}:${e.byteLength}`));
  assert.deepEqual(seen, ['0:1', '1:0', '2:6', '3:2']);
});

test('wire data is indexed in place, a view and not a copy', () => {
  const wire = bytesTensor('W', [2], ['xy', 'z']).raw;
  const t = bytesTensorFromWire('W', [2], wire);
  assert.equal(t.raw, wire);
  assert.deepEqual(bytesStrings(t), ['xy', 'z']);
  assert.equal(bytesElementCount(bytesTensorFromWire('E', [0], new Uint8Array(0))), 0);
});

test('malformed wire data is refused with where it breaks', () => {
  assert.throws(() => indexBytes(new Uint8Array([1, 0])), /element byte size indicator exceeds the end of the buffer/);
  assert.throws(() => indexBytes(new Uint8Array([9, 0, 0, 0, 1])), /element 0 claims 9 bytes but only 1 remain/);
  assert.throws(() => indexBytes(new Uint8Array([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])), /element 1 claims 4294967295 bytes but only 0 remain/);
});

test('the element limit stops the count at the limit: exactly the limit passes, one more is refused', () => {
  assert.equal(indexBytes(new Uint8Array(4 * 8), 8).length, 9);
  assert.throws(() => indexBytes(new Uint8Array(4 * 9), 8), (err: unknown) => err instanceof BytesDataError && err.overLimit);
  assert.throws(() => decodeBytesInput('IN', [1, 9], new Uint8Array(4 * 9), 8),
    { code: 'BYTES_ELEMENTS_LIMIT', message: "input 'IN' has more than 8 BYTES elements; the limit is 8 per tensor (--max-bytes-elements)" });
  assert.throws(() => decodeBytesInput('IN', [1], new Uint8Array([5, 0, 0, 0]), 8), { message: "input 'IN': element 0 claims 5 bytes but only 0 remain" });
});

test('batching: concatenation joins the elements, slicing cuts them back', () => {
  const a = bytesTensor('A', [1, 2], ['a', 'bb']);
  const b = bytesTensor('B', [2, 2], ['', 'c', 'dd', 'eee']);
  const joined = concatBytesTensors('X', [3, 2], [a, b]);
  assert.deepEqual(bytesStrings(joined), ['a', 'bb', '', 'c', 'dd', 'eee']);
  assert.equal(joined.name, 'X');
  const rows = [sliceBytesTensor(joined, 0, 2, [1, 2]), sliceBytesTensor(joined, 2, 6, [2, 2])];
  assert.deepEqual(rows.map(bytesStrings), [['a', 'bb'], ['', 'c', 'dd', 'eee']]);
  assert.deepEqual([...rows[1]!.offsets], [0, 4, 9, 15, 22]);
  assert.equal(text(bytesElementAt(rows[1]!, 3)), 'eee');
  assert.equal(concatBytesTensors('Y', [1, 2], [a]).raw, a.raw, 'one part is not copied');
});

test('empty elements: a tensor of them, and the memory per element is the 4-byte prefix plus the 4-byte index entry', () => {
  const empty = emptyBytesTensor('Z', [3], 3);
  assert.deepEqual(bytesStrings(empty), ['', '', '']);
  const n = 1 << 20;
  const t = bytesTensorFromWire('N', [n], new Uint8Array(n * 4));
  assert.equal(bytesElementCount(t), n);
  assert.equal((t.raw.byteLength + t.offsets.byteLength) / n, 8 + 4 / n);
});
