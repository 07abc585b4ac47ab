import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  checkedProduct, elementByteSize, fixedByteSize, fromBfloat16Bits, fromConfigDataType, fromHalfBits,
  toBfloat16Bits, toConfigDataType, toHalfBits, typedView, DATA_TYPES, TensorSizeError,
} from '../../engine/tensor.ts';

test('every KServe datatype has a byte size (BYTES varies)', () => {
  assert.equal(DATA_TYPES.length, 14);
  const sizes = Object.fromEntries(DATA_TYPES.map((t) => [t, elementByteSize(t)]));
  assert.deepEqual(sizes, {
    BOOL: 1, UINT8: 1, UINT16: 2, UINT32: 4, UINT64: 8, INT8: 1, INT16: 2, INT32: 4, INT64: 8,
    FP16: 2, BF16: 2, FP32: 4, FP64: 8, BYTES: undefined,
  });
});

test('element counts and byte sizes refuse overflow instead of wrapping', () => {
  assert.equal(checkedProduct([2, 3, 4]), 24);
  assert.equal(fixedByteSize('FP64', [1000, 1000]), 8_000_000);
  assert.throws(() => checkedProduct([2 ** 30, 2 ** 30, 2 ** 30]), TensorSizeError);
  assert.throws(() => fixedByteSize('INT64', [2 ** 26, 2 ** 26]), TensorSizeError);
  assert.throws(() => checkedProduct([-1, 4]), TensorSizeError);
  assert.throws(() => checkedProduct([1.5]), TensorSizeError);
  assert.equal(checkedProduct([0, 2 ** 40]), 0);
});

test('FP16 and BF16 conversions round-trip representable values and round to nearest even', () => {
  for (const v of [0, 1, -2.5, 65504, 2 ** -14, 2 ** -24, 1025, 0.5]) assert.equal(fromHalfBits(toHalfBits(v)), v);
  assert.equal(toHalfBits(1), 0x3c00);
  assert.equal(toHalfBits(Number.POSITIVE_INFINITY), 0x7c00);
  assert.ok(Number.isNaN(fromHalfBits(toHalfBits(Number.NaN))));
  assert.equal(fromHalfBits(toHalfBits(70000)), Number.POSITIVE_INFINITY);
  assert.equal(fromHalfBits(toHalfBits(1 + 2 ** -11)), 1);
  assert.equal(fromHalfBits(toHalfBits(1024.5)), 1024);
  for (const v of [0, 1, -3.5, 256, 2 ** 100]) assert.equal(fromBfloat16Bits(toBfloat16Bits(v)), v);
  assert.equal(fromBfloat16Bits(toBfloat16Bits(1 + 2 ** -8)), 1);
  assert.equal(toBfloat16Bits(1), 0x3f80);
});

test('config spellings map to v2 datatypes both ways', () => {
  assert.equal(fromConfigDataType('TYPE_STRING'), 'BYTES');
  assert.equal(fromConfigDataType('TYPE_FP32'), 'FP32');
  assert.equal(fromConfigDataType('TYPE_BYTES'), undefined);
  assert.equal(fromConfigDataType('TYPE_INVALID'), undefined);
  assert.equal(toConfigDataType('BYTES'), 'TYPE_STRING');
  assert.equal(toConfigDataType('BF16'), 'TYPE_BF16');
});

test('typed views copy only unaligned bytes', () => {
  const backing = new Uint8Array(9);
  new DataView(backing.buffer).setFloat32(1, 2.5, true);
  const unaligned = typedView('FP32', backing.subarray(1, 5));
  assert.equal(unaligned[0], 2.5);
  const aligned = new Uint8Array(new Float32Array([7]).buffer);
  assert.equal(typedView('FP32', aligned).buffer, aligned.buffer);
});
