/**
 * Reading a ModelInferRequest's wire bytes without protobufjs: each
 * input's contents occurrences, the decoding schema that skips them, and
 * the request id read without decoding the rest.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { grpcRequestType, grpcType } from '../../../server/grpc/grpc-schema.ts';
import { inputContents, peekRequestId, plainInferRequest } from '../../../server/grpc/infer-request-wire.ts';

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

describe('plainInferRequest: the one-pass read of a plain request', () => {
  const compact = grpcRequestType();
  /** What the full path reads: protobufjs without contents, then each input's contents spans. */
  const fullRead = (bytes: Buffer): Record<string, unknown> => {
    const decoded = compact.decode(bytes) as unknown as { inputs?: Array<Record<string, unknown>> } & Record<string, unknown>;
    for (const [index, contents] of inputContents(bytes)) decoded.inputs![index]!['contents'] = contents;
    return normalized(decoded);
  };
  const dim = (value: unknown): bigint => (typeof value === 'number' ? BigInt(value)
    : (BigInt((value as { high: number }).high >>> 0) << 32n) | BigInt((value as { low: number }).low >>> 0));
  const normalized = (m: Record<string, unknown>): Record<string, unknown> => ({
    model_name: m['model_name'] || '', model_version: m['model_version'] || '', id: m['id'] || '',
    inputs: ((m['inputs'] ?? []) as Array<Record<string, unknown>>).map((input) => ({
      name: input['name'] || '', datatype: input['datatype'] || '',
      shape: ((input['shape'] ?? []) as unknown[]).map(dim),
      contents: input['contents'] === undefined ? undefined : (input['contents'] as { spans: unknown }).spans,
    })),
    outputs: ((m['outputs'] ?? []) as Array<Record<string, unknown>>).map((output) => ({ name: output['name'] || '' })),
    raw: ((m['raw_input_contents'] ?? []) as Buffer[]).map((b) => [b.byteOffset, b.byteLength, Buffer.isBuffer(b)]),
  });

  const plain = [
    { model_name: 'add_sub', inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16] }, { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] }],
      outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT1' }], raw_input_contents: [Buffer.alloc(64, 1), Buffer.alloc(64, 2)] },
    { model_name: 'm', model_version: '3', id: 'req-1', inputs: [{ name: 'X', datatype: 'FP32', shape: [2 ** 31 + 5, 0, 2 ** 32 - 1] }], raw_input_contents: [Buffer.alloc(0)] },
    { model_name: 'm', inputs: [{ name: 'N', datatype: 'INT64', shape: [3], contents: { int64_contents: [1, -2, 3] } }, { name: 'E', datatype: 'BYTES', shape: [] }] },
    {},
  ];
  for (const [i, object] of plain.entries()) {
    test(`plain request ${i} reads as protobufjs and inputContents read it`, () => {
      const bytes = encode(object);
      const read = plainInferRequest(bytes, 65_536);
      assert.ok(read, 'read in one pass');
      assert.deepEqual(normalized(read as unknown as Record<string, unknown>), fullRead(bytes));
      for (const entry of read.raw_input_contents ?? []) assert.equal(entry.buffer, bytes.buffer, 'raw entries are views of the message');
    });
  }

  test('a shape given unpacked, fields given twice, contents given twice, read as protobufjs reads them', () => {
    const input = Buffer.concat([
      Buffer.from([(1 << 3) | 2, 1]), Buffer.from('A'), Buffer.from([(1 << 3) | 2, 1]), Buffer.from('B'),
      Buffer.from([(3 << 3) | 0, 7, (3 << 3) | 0, 9]), Buffer.from([(5 << 3) | 2, 2, 0x10, 0x01]), Buffer.from([(5 << 3) | 2, 0]),
    ]);
    const bytes = Buffer.concat([encode({ model_name: 'x', id: 'one' }), Buffer.from([(5 << 3) | 2, input.byteLength]), input, encode({ id: 'two' })]);
    const read = plainInferRequest(bytes, 65_536);
    assert.ok(read);
    assert.deepEqual(normalized(read as unknown as Record<string, unknown>), fullRead(bytes));
    assert.equal(read.id, 'two');
  });

  const notPlain: Record<string, Buffer> = {
    'request parameters': encode({ model_name: 'm', parameters: { sequence_id: { int64_param: 3 } } }),
    'input parameters': encode({ model_name: 'm', inputs: [{ name: 'X', datatype: 'INT32', shape: [1], parameters: { a: { bool_param: true } } }] }),
    'output parameters': encode({ model_name: 'm', outputs: [{ name: 'Y', parameters: { classification: { int64_param: 2 } } }] }),
    'a non-ASCII name': encode({ model_name: 'modèle' }),
    'a negative dim': encode({ model_name: 'm', inputs: [{ name: 'X', datatype: 'INT32', shape: [-1] }] }),
    'a dim of 2^32': encode({ model_name: 'm', inputs: [{ name: 'X', datatype: 'INT32', shape: [2 ** 32] }] }),
    'an unknown field': Buffer.concat([encode({ model_name: 'm' }), Buffer.from([(15 << 3) | 0, 1])]),
    'field number 0': Buffer.concat([encode({ model_name: 'm' }), Buffer.from([0, 1])]),
    'a truncated field': encode({ model_name: 'model' }).subarray(0, 4),
    'a name with the wrong wire type': Buffer.from([(1 << 3) | 0, 1]),
  };
  for (const [name, bytes] of Object.entries(notPlain)) {
    test(`${name} takes the full path`, () => assert.equal(plainInferRequest(bytes, 65_536), undefined));
  }

  test('a message longer than the field budget takes the full path, which counts its fields', () => {
    const bytes = encode(plain[0]!);
    assert.ok(plainInferRequest(bytes, bytes.byteLength));
    assert.equal(plainInferRequest(bytes, bytes.byteLength - 1), undefined);
  });
});
