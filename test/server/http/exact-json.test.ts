import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseJsonExact, showJson } from '../../../server/http/exact-json.ts';

test('integers a double cannot hold come back as bigints; everything else as JSON.parse gives it', () => {
  const parsed = parseJsonExact('{"data":[9007199254740993,-9223372036854775808,18446744073709551615,1234567890123456,1.2345678901234567,12345678901234567e2,3]}');
  assert.deepEqual(parsed, {
    data: [9007199254740993n, -9223372036854775808n, 18446744073709551615n, 1234567890123456, 1.2345678901234567, 12345678901234567e2, 3],
  });
});

test('digits inside strings, escaped quotes included, are left alone', () => {
  const text = '{"id":"12345678901234567890","s":"a \\"9007199254740993\\" b","n":[9007199254740993]}';
  assert.deepEqual(parseJsonExact(text), { id: '12345678901234567890', s: 'a "9007199254740993" b', n: [9007199254740993n] });
});

test('malformed JSON throws JSON.parse\'s own error for the text sent', () => {
  const text = '{"data":[9007199254740993,]}';
  let expected = '';
  try {
    JSON.parse(text);
  } catch (err) {
    expected = (err as Error).message;
  }
  assert.throws(() => parseJsonExact(text), (err: Error) => err.message === expected);
});

test('showJson prints bigints and values JSON.stringify cannot', () => {
  assert.equal(showJson(9223372036854775808n), '9223372036854775808');
  assert.equal(showJson([1n, 'a']), '["1","a"]');
  assert.equal(showJson(undefined), 'undefined');
});

test('INT64 and UINT64 JSON data take the whole 64-bit range exactly and refuse one past it, naming the input', async () => {
  const { tensorFromJson } = await import('../../../server/http/json-tensor-data.ts');
  const ok = tensorFromJson('X', 'INT64', [2], [-(2n ** 63n), 2n ** 63n - 1n]);
  assert.deepEqual([...new BigInt64Array((ok as { raw: Uint8Array }).raw.slice().buffer)], [-(2n ** 63n), 2n ** 63n - 1n]);
  assert.throws(() => tensorFromJson('X', 'INT64', [1], [2n ** 63n]),
    /element 0 of input 'X' is 9223372036854775808, expected an integer in INT64 range \[-9223372036854775808, 9223372036854775807\]/);
  assert.throws(() => tensorFromJson('U', 'UINT64', [1], [-1]), /element 0 of input 'U' is -1/);
  assert.throws(() => tensorFromJson('X', 'INT64', [1], [1.5]), /element 0 of input 'X' is 1.5/);
});
