/**
 * The field budget: every value protobufjs would build from a request
 * message counts (fields, packed elements, map entries, at any depth),
 * one past the limit is refused naming the message, the field and the
 * flag, and tensor contents left out of the schema count once each.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grpcRequestType, grpcType } from '../../../server/grpc/grpc-schema.ts';
import { checkFieldBudget, DEFAULT_GRPC_MAX_REQUEST_FIELDS } from '../../../server/grpc/message-field-budget.ts';

const requestType = grpcType('inference.ModelInferRequest');
const encode = (message: Record<string, unknown>): Buffer => Buffer.from(requestType.encode(requestType.fromObject(message)).finish());

/** The smallest limit a message passes: found by trying, so that the count is checked exactly. */
function valuesIn(bytes: Buffer, type = grpcRequestType()): number {
  for (let limit = 0; ; limit++) {
    try {
      checkFieldBudget(type, bytes, limit);
      return limit;
    } catch (err) {
      if ((err as { code?: string }).code !== 'MESSAGE_FIELDS_LIMIT') throw err;
    }
  }
}

test('every field occurrence, packed element and map entry part counts', () => {
  // model_name, inputs, name, datatype, shape (packed: 1 field + 3 elements), contents (1, not walked)
  assert.equal(valuesIn(encode({ model_name: 'm', inputs: [{ name: 'X', datatype: 'INT32', shape: [1, 2, 3], contents: { int_contents: [1, 2, 3, 4, 5, 6] } }] })), 9);
  // parameters: the entry, its key and value, the value's one field
  assert.equal(valuesIn(encode({ parameters: { k: { int64_param: 5 } } })), 4);
  // outputs and their parameters
  assert.equal(valuesIn(encode({ outputs: [{ name: 'A' }, { name: 'B', parameters: { x: { bool_param: true } } }] })), 8);
});

test('one past the limit is refused, naming the message, the field and the flag', () => {
  const inputs = Buffer.alloc(2 * 100);
  for (let i = 0; i < 100; i++) inputs[i * 2] = (5 << 3) | 2;
  assert.doesNotThrow(() => checkFieldBudget(grpcRequestType(), inputs, 100));
  assert.throws(() => checkFieldBudget(grpcRequestType(), inputs, 99), {
    code: 'MESSAGE_FIELDS_LIMIT',
    message: "ModelInferRequest holds more than 99 values (fields, repeated elements and map entries, at any depth), passing the limit at 'inputs'; the limit is 99 per message (--grpc-max-request-fields)",
  });
  const shape = encode({ inputs: [{ name: 'X', shape: new Array(200).fill(1) }] });
  assert.throws(() => checkFieldBudget(grpcRequestType(), shape, 100), /passing the limit at 'inputs\.shape'/);
  const params = encode({ inputs: [{ parameters: Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`p${i}`, { string_param: '' }])) }] });
  assert.throws(() => checkFieldBudget(grpcRequestType(), params, 100), /passing the limit at 'inputs\.parameters\.string_param'/);
  const unknown = Buffer.alloc(2 * 101);
  for (let i = 0; i < 101; i++) unknown[i * 2] = (15 << 3) | 0;
  assert.throws(() => checkFieldBudget(grpcRequestType(), unknown, 100), /passing the limit at 'field 15'/);
});

test('other request types are walked by their own schema', () => {
  const loadType = grpcType('inference.RepositoryModelLoadRequest');
  const load = Buffer.from(loadType.encode(loadType.fromObject({
    model_name: 'm', parameters: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`file:${i}`, { bytes_param: Buffer.alloc(10) }])),
  })).finish());
  assert.equal(valuesIn(load, loadType), 1 + 40 * 4);
  assert.throws(() => checkFieldBudget(loadType, load, 100), /RepositoryModelLoadRequest holds more than 100 values.*'parameters\.bytes_param'/);
});

test('malformed messages are refused, and groups are not proto3', () => {
  assert.throws(() => checkFieldBudget(grpcRequestType(), Buffer.from([(1 << 3) | 2, 5, 0x61]), DEFAULT_GRPC_MAX_REQUEST_FIELDS), /malformed ModelInferRequest message: a field runs past the end/);
  assert.throws(() => checkFieldBudget(grpcRequestType(), Buffer.from([(1 << 3) | 3]), DEFAULT_GRPC_MAX_REQUEST_FIELDS), /wire type 3 is not used by proto3 messages/);
  assert.throws(() => checkFieldBudget(grpcRequestType(), Buffer.from([0, 0]), DEFAULT_GRPC_MAX_REQUEST_FIELDS), /a field has number 0/);
});
