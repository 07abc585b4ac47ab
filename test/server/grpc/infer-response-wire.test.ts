/**
 * The hand-written ModelInferResponse and ModelStreamInferResponse bytes
 * against protobufjs's encoding of the codec's objects: byte for byte, over
 * every parameter type, 64-bit edge values, strings long and short and
 * outside ASCII (lone surrogates included), empty and shared-memory outputs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bytesTensorFromWire } from '../../../engine/bytes-tensor.ts';
import type { InferenceResponse } from '../../../engine/inference-response.ts';
import { encodeModelInferResponse, encodeStreamResponse } from '../../../server/grpc/infer-codec.ts';
import { modelInferResponseBytes, streamInferResponseBytes } from '../../../server/grpc/infer-response-wire.ts';
import { grpcType } from '../../../server/grpc/grpc-schema.ts';

const inferType = grpcType('inference.ModelInferResponse');
const streamType = grpcType('inference.ModelStreamInferResponse');
const bytesOf = (type: typeof inferType, message: Record<string, unknown>): Buffer => Buffer.from(type.encode(message).finish());

const int32 = (values: number[]): Uint8Array => new Uint8Array(Int32Array.from(values).buffer);
const long = 'x'.repeat(45);
const longer = 'é'.repeat(200);

const responses: Record<string, InferenceResponse> = {
  plain: {
    modelName: 'add_sub', modelVersion: '1', id: 'r-1',
    outputs: [
      { name: 'OUTPUT0', datatype: 'INT32', shape: [1, 16], raw: int32(Array.from({ length: 16 }, (_, i) => i)) },
      { name: 'OUTPUT1', datatype: 'INT32', shape: [1, 16], raw: int32(Array.from({ length: 16 }, (_, i) => -i)) },
    ],
  },
  'no id, no outputs': { modelName: 'm', modelVersion: '3', outputs: [] },
  'scalar and empty tensors': {
    modelName: 'm', modelVersion: '1', id: '',
    outputs: [
      { name: 'S', datatype: 'FP32', shape: [], raw: new Uint8Array(4) },
      { name: 'E', datatype: 'INT64', shape: [0, 3], raw: new Uint8Array(0) },
      bytesTensorFromWire('B', [2], new Uint8Array([1, 0, 0, 0, 97, 0, 0, 0, 0])),
    ],
  },
  'big dims and long strings': {
    modelName: long, modelVersion: longer, id: `${long}\u{1F600}`,
    outputs: [{ name: longer, datatype: 'UINT8', shape: [2 ** 31, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER, 127, 128, 16383, 16384], raw: new Uint8Array(300).fill(7) }],
  },
  'lone surrogates': {
    modelName: 'm\uD800', modelVersion: '1', id: 'x\uDC00y',
    outputs: [{ name: `o\uD83D${'z'.repeat(50)}\uDE00`, datatype: 'BOOL', shape: [1], raw: new Uint8Array([1]) }],
    parameters: { 'k\uD800': 's\uDFFF' },
  },
  parameters: {
    modelName: 'm', modelVersion: '1', id: 'p',
    outputs: [{ name: 'O', datatype: 'INT32', shape: [1], raw: int32([5]) }],
    parameters: {
      yes: true, no: false, text: 'hello', empty: '', zero: 0, one: 1, minus: -1, big: 2 ** 40, negBig: -(2 ** 45) - 7,
      max: Number.MAX_SAFE_INTEGER, min: Number.MIN_SAFE_INTEGER, half: 0.5, nan: Number.NaN, inf: Number.NEGATIVE_INFINITY, tiny: 5e-324,
      huge: 1e300, beyond: 2n ** 63n + 5n, u64max: 2n ** 64n - 1n, i64min: -(2n ** 63n), i64: -(2n ** 62n), 12: 'numeric key', 3: 'first',
      [long]: long,
    },
  },
  'its own final parameter': {
    modelName: 'm', modelVersion: '1', outputs: [],
    parameters: { a: 1, triton_final_response: 'model said so', b: 'x' },
  },
};

for (const [name, response] of Object.entries(responses)) {
  test(`ModelInferResponse bytes match protobufjs: ${name}`, () => {
    assert.deepEqual(modelInferResponseBytes(response), bytesOf(inferType, encodeModelInferResponse(response)));
    const shared = new Set(response.outputs.slice(0, 1).map((t) => t.name));
    assert.deepEqual(modelInferResponseBytes(response, shared), bytesOf(inferType, encodeModelInferResponse(response, shared)));
  });

  test(`ModelStreamInferResponse bytes match protobufjs: ${name}`, () => {
    for (const final of [true, false]) {
      const message = encodeStreamResponse({ response, final }, {}, false)!;
      assert.deepEqual(streamInferResponseBytes(response, final), bytesOf(streamType, message));
      const shared = new Set(response.outputs.slice(-1).map((t) => t.name));
      assert.deepEqual(streamInferResponseBytes(response, final, shared), bytesOf(streamType, encodeStreamResponse({ response, final }, {}, false, shared)!));
    }
  });
}

test('the bytes decode to the response', () => {
  const decoded = inferType.toObject(inferType.decode(modelInferResponseBytes(responses['parameters']!)), { longs: String }) as Record<string, unknown>;
  assert.equal(decoded['model_name'], 'm');
  assert.deepEqual((decoded['parameters'] as Record<string, unknown>)['u64max'], { uint64_param: '18446744073709551615' });
  assert.deepEqual((decoded['parameters'] as Record<string, unknown>)['negBig'], { int64_param: String(-(2 ** 45) - 7) });
});
