/**
 * Reading a ModelInferRequest's wire bytes without protobufjs: each
 * input's contents occurrences, the decoding schema that skips them, and
 * the request id read without decoding the rest.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grpcRequestType, grpcType } from '../../../server/grpc/grpc-schema.ts';
import { inputContents, peekRequestId } from '../../../server/grpc/infer-request-wire.ts';

const requestType = grpcType('inference.ModelInferRequest');
const encode = (message: Record<string, unknown>): Buffer => Buffer.from(requestType.encode(requestType.fromObject(message)).finish());

const message = encode({
  model_name: 'm', id: 'request-7',
  inputs: [
    { name: 'NUMS', datatype: 'INT32', shape: [2], contents: { int_contents: [1, 2] } },
    { name: 'NONE', datatype: 'INT32', shape: [0] },
    { name: 'TEXT', datatype: 'BYTES', shape: [3], contents: { bytes_contents: [Buffer.from('ab'), Buffer.alloc(0), Buffer.from('c')] } },
  ],
});

test('each input\'s contents are found by input index, as spans of the message', () => {
  const found = inputContents(message);
  assert.deepEqual([...found.keys()], [0, 2]);
  const nums = found.get(0)!;
  assert.equal(nums.message, message);
  assert.equal(nums.spans.length, 1);
  const contentsType = grpcType('inference.InferTensorContents');
  const span = nums.spans[0]!;
  assert.deepEqual(contentsType.toObject(contentsType.decode(message.subarray(span.start, span.end))), { int_contents: [1, 2] });
});

test('a contents field given twice yields both occurrences, in order', () => {
  const contentsField = (values: number[]): Buffer => {
    const body = grpcType('inference.InferTensorContents').encode({ int_contents: values }).finish();
    return Buffer.concat([Buffer.from([(5 << 3) | 2, body.byteLength]), body]);
  };
  const input = Buffer.concat([Buffer.from([(1 << 3) | 2, 1]), Buffer.from('X'), contentsField([1]), contentsField([2, 3])]);
  const twice = Buffer.concat([Buffer.from([(5 << 3) | 2, input.byteLength]), input]);
  assert.equal(inputContents(twice).get(0)!.spans.length, 2);
});

test('the decoding schema skips contents and keeps everything else', () => {
  const decoded = grpcRequestType().decode(message) as unknown as { inputs: { name: string; contents?: unknown }[] };
  assert.deepEqual(decoded.inputs.map((i) => i.name), ['NUMS', 'NONE', 'TEXT']);
  assert.ok(decoded.inputs.every((i) => i.contents === undefined));
});

test('the id is read without decoding; a truncated message has none', () => {
  assert.equal(peekRequestId(message), 'request-7');
  assert.equal(peekRequestId(message.subarray(0, 5)), '');
  assert.throws(() => inputContents(message.subarray(0, message.byteLength - 1)), /malformed ModelInferRequest message/);
});

test('the id is looked for among the first 1024 fields only', () => {
  const late = Buffer.concat([Buffer.alloc(2048 * 2, 0), encode({ id: 'late' })]);
  for (let i = 0; i < 2048; i++) late[i * 2] = (9 << 3) | 0;
  assert.equal(peekRequestId(late), '');
  assert.equal(peekRequestId(late.subarray(2 * 2000)), 'late');
});
