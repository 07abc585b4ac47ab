/**
 * Reading a ModelInferRequest's bytes_contents off the wire: the entries of
 * each input in the compact form, a refusal naming the limit one entry past
 * it, and the request id read without decoding the rest.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grpcRequestType, grpcType } from '../../../server/grpc/grpc-schema.ts';
import { extractBytesContents, peekRequestId } from '../../../server/grpc/infer-request-wire.ts';

const requestType = grpcType('inference.ModelInferRequest');
const encode = (message: Record<string, unknown>): Uint8Array => requestType.encode(requestType.fromObject(message)).finish();

const message = encode({
  model_name: 'm', id: 'request-7',
  inputs: [
    { name: 'NUMS', datatype: 'INT32', shape: [2], contents: { int_contents: [1, 2] } },
    { name: 'TEXT', datatype: 'BYTES', shape: [3], contents: { bytes_contents: [Buffer.from('ab'), Buffer.alloc(0), Buffer.from('c')] } },
  ],
});

test('each input\'s bytes_contents come out length-prefixed, by input index', () => {
  const found = extractBytesContents(message, 3);
  assert.deepEqual([...found.keys()], [1]);
  const text = found.get(1)!;
  assert.equal(text.length, 3);
  assert.deepEqual([...text.wire], [2, 0, 0, 0, 97, 98, 0, 0, 0, 0, 1, 0, 0, 0, 99]);
});

test('one entry past the limit is refused, naming the input and the limit', () => {
  assert.throws(() => extractBytesContents(message, 2), {
    code: 'BYTES_ELEMENTS_LIMIT', message: "input 'TEXT' has more than 2 BYTES elements; the limit is 2 per tensor (--max-bytes-elements)",
  });
});

test('the decoding schema skips bytes_contents and keeps everything else', () => {
  const decoded = grpcRequestType().decode(message) as unknown as { inputs: { contents: Record<string, unknown> }[] };
  assert.deepEqual(decoded.inputs[0]!.contents['int_contents'], [1, 2]);
  assert.equal(decoded.inputs[1]!.contents['bytes_contents'], undefined);
});

test('the id is read without decoding; a truncated message has none', () => {
  assert.equal(peekRequestId(message), 'request-7');
  assert.equal(peekRequestId(message.subarray(0, 5)), '');
  assert.throws(() => extractBytesContents(message.subarray(0, message.byteLength - 1), 10), /malformed ModelInferRequest message/);
});
