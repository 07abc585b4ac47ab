/**
 * The gRPC request the SDK builds: raw_input_contents by default, typed
 * `contents` when asked, and raw after all when an input has no typed field.
 * A typed round trip through the real server is in grpc-client.test.ts;
 * this pins which form goes on the wire.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tensor } from '../../client/index.ts';
import { modelInferRequest } from '../../client/src/grpc/infer-message.ts';

const inputs = [
  tensor('I', 'INT32', [1, 2], [7, -8]),
  tensor('B', 'BOOL', [2], [true, false]),
  tensor('L', 'INT64', [1], [-(2n ** 63n)]),
  tensor('S', 'BYTES', [1], ['hé']),
];

test('raw: one little-endian entry per input, no contents', () => {
  const request = modelInferRequest('m', inputs, { id: 'x', outputs: ['O'] }, true);
  assert.deepEqual((request['inputs'] as { contents?: unknown }[]).map((i) => i.contents), [undefined, undefined, undefined, undefined]);
  const raw = (request['raw_input_contents'] as Uint8Array[]).map((r) => [...r]);
  assert.deepEqual(raw, [[7, 0, 0, 0, 0xf8, 0xff, 0xff, 0xff], [1, 0], [0, 0, 0, 0, 0, 0, 0, 0x80], [3, 0, 0, 0, 0x68, 0xc3, 0xa9]]);
  assert.deepEqual([request['model_name'], request['id'], request['outputs']], ['m', 'x', [{ name: 'O' }]]);
});

test('typed: each input in its contents field, 64-bit values as low/high words', () => {
  const request = modelInferRequest('m', inputs, {}, false);
  assert.equal(request['raw_input_contents'], undefined);
  const contents = (request['inputs'] as { contents: Record<string, unknown> }[]).map((i) => i.contents);
  assert.deepEqual([...(contents[0]!['int_contents'] as Int32Array)], [7, -8]);
  assert.deepEqual(contents[1], { bool_contents: [true, false] });
  assert.deepEqual(contents[2], { int64_contents: [{ low: 0, high: -0x80000000 }] });
  assert.deepEqual((contents[3]!['bytes_contents'] as Uint8Array[]).map((b) => [...b]), [[0x68, 0xc3, 0xa9]]);
});

test('typed falls back to raw for the whole request when an input is FP16 or BF16', () => {
  const request = modelInferRequest('m', [...inputs, tensor('H', 'FP16', [1], [1])], {}, false);
  assert.equal((request['raw_input_contents'] as unknown[]).length, 5);
  assert.ok((request['inputs'] as { contents?: unknown }[]).every((i) => i.contents === undefined));
});

test('parameters: integers as int64, fractions as double, bigints past int64 as uint64', () => {
  const request = modelInferRequest('m', [], { parameters: { a: true, b: 3, c: 0.5, d: 's', e: 2n ** 64n - 1n } }, true);
  assert.deepEqual(request['parameters'], {
    a: { bool_param: true }, b: { int64_param: 3 }, c: { double_param: 0.5 }, d: { string_param: 's' },
    e: { uint64_param: { low: -1, high: -1 } },
  });
});
