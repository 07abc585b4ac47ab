/**
 * Input shapes as the gRPC codec reads them: small ones without bigints,
 * any other through the exact checks (negative dims, INT64_MAX counts and
 * byte sizes, dims past 2^53), whether protobufjs gave numbers or Longs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeModelInferRequest } from '../../../server/grpc/infer-codec.ts';

const long = (value: bigint): { low: number; high: number } => {
  const bits = BigInt.asUintN(64, value);
  return { low: Number(bits & 0xffffffffn) | 0, high: Number(bits >> 32n) | 0 };
};

async function shapeOf(shape: readonly (number | { low: number; high: number })[], datatype = 'INT32'): Promise<readonly number[]> {
  const decoded = await decodeModelInferRequest({ model_name: 'm', inputs: [{ name: 'X', datatype, shape }], raw_input_contents: [new Uint8Array(0)] });
  return decoded.request.inputs[0]!.shape;
}

async function refusal(shape: readonly (number | { low: number; high: number })[], datatype = 'INT32'): Promise<string> {
  try {
    await shapeOf(shape, datatype);
  } catch (err) {
    return (err as { code: string }).code;
  }
  throw new Error(`shape ${JSON.stringify(shape)} was taken`);
}

test('small shapes, as numbers or Longs, read as they are', async () => {
  assert.deepEqual(await shapeOf([1, 16]), [1, 16]);
  assert.deepEqual(await shapeOf([long(3n), long(0n), long(2n ** 31n - 1n)]), [3, 0, 2 ** 31 - 1]);
  assert.deepEqual(await shapeOf([]), []);
});

test('dims past the small range keep their exact values', async () => {
  assert.deepEqual(await shapeOf([long(2n ** 31n)], 'UINT8'), [2 ** 31]);
  assert.deepEqual(await shapeOf([long(2n ** 40n), 0]), [2 ** 40, 0]);
  assert.deepEqual(await shapeOf([2 ** 25, 2 ** 25], 'UINT8'), [2 ** 25, 2 ** 25]);
});

test('shapes that cannot be taken are refused with the same errors as before', async () => {
  assert.equal(await refusal([long(-1n)]), 'UNPARSABLE_FIELD');
  assert.equal(await refusal([1, -3]), 'UNPARSABLE_FIELD');
  assert.equal(await refusal([long(2n ** 62n), long(4n)]), 'SHAPE_OVERFLOW');
  assert.equal(await refusal([long(2n ** 61n)], 'INT64'), 'BYTE_SIZE_OVERFLOW');
  assert.equal(await refusal([long(2n ** 60n)], 'UINT8'), 'UNPARSABLE_FIELD');
});
