/**
 * The SDK's tensor builder and FP16/BF16 conversions, on their own: what
 * `tensor()` accepts, converts and refuses, and that every half-precision
 * bit pattern survives a decode and re-encode.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DATA_TYPES, fromBfloat16Bits, fromFloat16Bits, tensor, toBfloat16Bits, toFloat16Bits,
} from '../../client/index.ts';

describe('tensor()', () => {
  test('keeps typed arrays of the right class as they are', () => {
    const data = new Int32Array([1, 2, 3, 4]);
    const t = tensor('X', 'INT32', [2, 2], data);
    assert.equal(t.data, data);
    assert.deepEqual(t.shape, [2, 2]);
  });

  test('converts plain arrays into the datatype\'s typed array', () => {
    assert.deepEqual(tensor('a', 'UINT8', [3], [0, 7, 255]).data, new Uint8Array([0, 7, 255]));
    assert.deepEqual(tensor('b', 'INT16', [2], [-32768, 32767]).data, new Int16Array([-32768, 32767]));
    assert.deepEqual(tensor('c', 'FP64', [2], [0.1, -1e300]).data, new Float64Array([0.1, -1e300]));
    assert.deepEqual(tensor('d', 'INT64', [3], [1n, -(2n ** 63n), 2n ** 63n - 1n]).data, new BigInt64Array([1n, -(2n ** 63n), 2n ** 63n - 1n]));
    assert.deepEqual(tensor('e', 'UINT64', [1], [2n ** 64n - 1n]).data, new BigUint64Array([2n ** 64n - 1n]));
    assert.deepEqual(tensor('d2', 'INT64', [2], [-3, 2 ** 40]).data, new BigInt64Array([-3n, 2n ** 40n]));
    assert.deepEqual(tensor('f', 'INT32', [2], [5n, -5n]).data, new Int32Array([5, -5]));
    assert.deepEqual(tensor('g', 'BOOL', [3], [1, 0, 1]).data, new Uint8Array([1, 0, 1]));
  });

  test('FP16 and BF16 numbers are values, rounded to bit patterns; a Uint16Array is taken as bits', () => {
    assert.deepEqual(tensor('h', 'FP16', [3], [1.5, -2, 0.25]).data, new Uint16Array([0x3e00, 0xc000, 0x3400]));
    assert.deepEqual(tensor('b', 'BF16', [2], [1, -0.5]).data, new Uint16Array([0x3f80, 0xbf00]));
    const bits = new Uint16Array([0x7c00, 0x0001]);
    assert.equal(tensor('raw', 'FP16', [2], bits).data, bits);
  });

  test('BOOL takes booleans and BYTES takes strings and byte arrays', () => {
    assert.deepEqual(tensor('b', 'BOOL', [2], [true, false]).data, [true, false]);
    const bytes = ['text', new Uint8Array([0, 255])];
    assert.deepEqual(tensor('s', 'BYTES', [2], bytes).data, bytes);
  });

  test('an element count that does not match the shape is refused, naming the tensor', () => {
    assert.throws(() => tensor('X', 'INT32', [2, 3], [1, 2, 3]), {
      name: 'TypeError', message: "tensor 'X': shape [2,3] holds 6 elements but the data has 3",
    });
  });

  test('bad dimensions, datatypes, values and array classes are refused', () => {
    assert.throws(() => tensor('X', 'INT32', [-1], []), { name: 'TypeError', message: /shape\[0\] is -1/ });
    assert.throws(() => tensor('X', 'INT32', [1.5], []), { name: 'TypeError', message: /shape\[0\] is 1\.5/ });
    assert.throws(() => tensor('X', 'INT33' as never, [1], [1]), { name: 'TypeError', message: /"INT33" is not a KServe v2 datatype/ });
    assert.throws(() => tensor('X', 'UINT8', [1], [256]), { name: 'TypeError', message: /element 0 is 256, expected an integer in UINT8 range \[0, 255\]/ });
    assert.throws(() => tensor('X', 'INT32', [1], [0.5]), { name: 'TypeError', message: /element 0 is 0\.5/ });
    assert.throws(() => tensor('X', 'INT64', [1], [2n ** 63n]), { name: 'TypeError', message: /element 0 is 9223372036854775808n, expected an integer in INT64 range/ });
    assert.throws(() => tensor('X', 'FP32', [2], new Float64Array(2)), { name: 'TypeError', message: /FP32 data must be a Float32Array or a plain array, got a Float64Array/ });
    assert.throws(() => tensor('X', 'BYTES', [1], [3] as never), { name: 'TypeError', message: /BYTES element 0 is 3/ });
    assert.throws(() => tensor('', 'INT32', [0], []), { name: 'TypeError', message: /non-empty string/ });
  });

  test('every datatype is accepted with an empty tensor', () => {
    for (const datatype of DATA_TYPES) assert.deepEqual(tensor('E', datatype, [0, 4], []).shape, [0, 4]);
  });
});

describe('FP16 and BF16', () => {
  const isNaNBits16 = (bits: number): boolean => (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;
  const isNaNBitsBf16 = (bits: number): boolean => (bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0;

  test('every FP16 pattern decodes to a number that encodes back to the same pattern', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = fromFloat16Bits(bits);
      if (isNaNBits16(bits)) assert.ok(Number.isNaN(value) && isNaNBits16(toFloat16Bits(value)), `0x${bits.toString(16)}`);
      else assert.equal(toFloat16Bits(value), bits, `0x${bits.toString(16)} = ${value}`);
    }
  });

  test('every BF16 pattern decodes to a number that encodes back to the same pattern', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = fromBfloat16Bits(bits);
      if (isNaNBitsBf16(bits)) assert.ok(Number.isNaN(value) && isNaNBitsBf16(toBfloat16Bits(value)), `0x${bits.toString(16)}`);
      else assert.equal(toBfloat16Bits(value), bits, `0x${bits.toString(16)} = ${value}`);
    }
  });

  test('FP16 known values, rounding to nearest even, overflow and subnormals', () => {
    assert.equal(fromFloat16Bits(0x3c00), 1);
    assert.equal(fromFloat16Bits(0x7bff), 65504);
    assert.equal(fromFloat16Bits(0x0001), 2 ** -24);
    assert.equal(toFloat16Bits(65504), 0x7bff);
    assert.equal(toFloat16Bits(65520), 0x7c00, 'halfway past the largest finite rounds to Infinity');
    assert.equal(toFloat16Bits(1 + 2 ** -11), 0x3c00, 'a tie rounds to the even pattern below');
    assert.equal(toFloat16Bits(1 + 3 * 2 ** -11), 0x3c02, 'a tie rounds to the even pattern above');
    assert.equal(toFloat16Bits(2 ** -25), 0x0000, 'half the smallest subnormal ties to zero');
    assert.equal(toFloat16Bits(3 * 2 ** -26), 0x0001);
    assert.equal(toFloat16Bits(-0), 0x8000);
    assert.equal(toFloat16Bits(-Infinity), 0xfc00);
  });

  test('BF16 known values and rounding', () => {
    assert.equal(fromBfloat16Bits(0x3f80), 1);
    assert.equal(fromBfloat16Bits(0xc040), -3);
    assert.equal(toBfloat16Bits(1 + 2 ** -8), 0x3f80, 'a tie rounds to even');
    assert.equal(toBfloat16Bits(1 + 3 * 2 ** -8), 0x3f82);
    assert.equal(toBfloat16Bits(Infinity), 0x7f80);
  });
});
