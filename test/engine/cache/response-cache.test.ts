/**
 * The response cache on its own: what goes into a key (and what does not),
 * least-recently-used eviction by bytes, answers larger than the cache,
 * copies in and out, eviction by model, and the totals the metrics read.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResponseCache } from '../../../engine/cache/response-cache.ts';
import type { InferenceRequest } from '../../../engine/inference-request.ts';
import type { Tensor } from '../../../engine/tensor.ts';
import { bytesTensor, fixedTensor, int32x16, stringsOf, valuesOf } from '../../helpers/script-fixtures.ts';

const request = (inputs: Tensor[], extra: Partial<InferenceRequest> = {}): InferenceRequest => ({ modelName: 'm', inputs, ...extra });
const keyOf = (cache: ResponseCache, r: InferenceRequest, outputs: readonly string[] = ['Y']): string => cache.keyOf('m', 1, 1, r, outputs);

/** An INT32 [1, n] output named Y holding `fill`: n * 4 data bytes, plus Y (1), INT32 (5) and two dims (16). */
const output = (n: number, fill = 7): Tensor => fixedTensor('Y', 'INT32', [1, n], new Int32Array(n).fill(fill));
const entryBytes = (key: string, n: number): number => Buffer.byteLength(key) + 1 + 5 + 16 + 4 * n;

test('the key covers every input byte, datatype, shape and name, the outputs asked for and answer-changing parameters', () => {
  const cache = new ResponseCache({ sizeBytes: 1 << 20 });
  const base = keyOf(cache, request([int32x16('X'), int32x16('Z', 100)]));
  assert.equal(keyOf(cache, request([int32x16('Z', 100), int32x16('X')])), base, 'the order of inputs does not matter');
  const differing: Array<[string, string]> = [
    ['one byte of data', keyOf(cache, request([int32x16('X', 1), int32x16('Z', 100)]))],
    ['the datatype', keyOf(cache, request([{ ...int32x16('X'), datatype: 'FP32' } as Tensor, int32x16('Z', 100)]))],
    ['the shape', keyOf(cache, request([{ ...int32x16('X'), shape: [2, 8] }, int32x16('Z', 100)]))],
    ['an input name', keyOf(cache, request([int32x16('W'), int32x16('Z', 100)]))],
    ['the outputs asked for', keyOf(cache, request([int32x16('X'), int32x16('Z', 100)]), ['Y', 'Y2'])],
    ['a parameter', keyOf(cache, request([int32x16('X'), int32x16('Z', 100)], { parameters: { temperature: 1 } }))],
    ['the model', cache.keyOf('other', 1, 1, request([int32x16('X'), int32x16('Z', 100)]), ['Y'])],
    ['the version', cache.keyOf('m', 2, 1, request([int32x16('X'), int32x16('Z', 100)]), ['Y'])],
    ['the load of the version', cache.keyOf('m', 1, 2, request([int32x16('X'), int32x16('Z', 100)]), ['Y'])],
  ];
  for (const [what, key] of differing) assert.notEqual(key, base, what);
  assert.equal(keyOf(cache, request([int32x16('X'), int32x16('Z', 100)], { parameters: { priority: 2, timeout: 500 } })), base,
    'scheduling parameters do not change the answer');
  assert.notEqual(keyOf(cache, request([int32x16('X')], { parameters: { p: 1 } })), keyOf(cache, request([int32x16('X')], { parameters: { p: '1' } })),
    'a parameter\'s type counts');

  const strings = (...s: string[]): string => keyOf(cache, request([bytesTensor('T', [1, s.length], s)]));
  assert.equal(strings('ab', 'c'), strings('ab', 'c'));
  assert.notEqual(strings('ab', 'c'), strings('a', 'bc'), 'BYTES element boundaries count');
  assert.notEqual(strings('ab', 'c'), strings('ab', 'd'));
});

test('lookups hand out copies; the cache keeps its own copy of what it was given', () => {
  const cache = new ResponseCache({ sizeBytes: 4096 });
  const key = keyOf(cache, request([int32x16('X')]));
  assert.equal(cache.lookup(key), undefined);
  const given = [output(4, 5), bytesTensor('S', [1, 2], ['x', 'yz'])];
  assert.equal(cache.insert(key, 'm', given), true);
  (given[0] as { raw: Uint8Array }).raw.fill(0xff);
  const first = cache.lookup(key)!;
  assert.deepEqual(valuesOf(first[0]), [5, 5, 5, 5]);
  assert.deepEqual(stringsOf(first[1]), ['x', 'yz']);
  (first[0] as { raw: Uint8Array }).raw.fill(0);
  assert.deepEqual(valuesOf(cache.lookup(key)![0]), [5, 5, 5, 5], 'changing a handed-out tensor leaves the entry alone');
  const again = cache.lookup(key)![0] as { raw: Uint8Array };
  assert.notEqual(again.raw.buffer, (first[0] as { raw: Uint8Array }).raw.buffer, 'each lookup gets memory of its own');
});

test('the least recently used entry goes first when the bytes run out; a hit keeps an entry', () => {
  const probe = new ResponseCache({ sizeBytes: 1 });
  const keys = ['A', 'B', 'C', 'D'].map((_, i) => keyOf(probe, request([int32x16('X', i)])));
  const size = entryBytes(keys[0]!, 8);
  assert.ok(keys.every((k) => entryBytes(k, 8) === size));
  const cache = new ResponseCache({ sizeBytes: 3 * size });
  const [a, b, c, d] = keys as [string, string, string, string];
  for (const key of [a, b, c]) assert.equal(cache.insert(key, 'm', [output(8)]), true);
  assert.equal(cache.stats().bytes, 3 * size);
  assert.ok(cache.lookup(a), 'A is used again, so B is now the oldest');
  cache.insert(d, 'm', [output(8)]);
  assert.equal(cache.lookup(b), undefined, 'B went');
  assert.ok(cache.lookup(a));
  assert.ok(cache.lookup(c));
  assert.ok(cache.lookup(d));
  const stats = cache.stats();
  assert.deepEqual({ entries: stats.entries, bytes: stats.bytes, evictions: stats.evictions, inserts: stats.inserts }, {
    entries: 3, bytes: 3 * size, evictions: 1, inserts: 4,
  });
  assert.deepEqual({ lookups: stats.lookups, hits: stats.hits, misses: stats.misses }, { lookups: 5, hits: 4, misses: 1 });
  assert.equal(stats.utilization, 1);

  // A bigger answer pushes out as many old entries as it needs, oldest first.
  const big = keyOf(cache, request([int32x16('X', 99)]));
  assert.equal(cache.insert(big, 'm', [output(8 + Math.floor(size / 4))]), true);
  assert.equal(cache.lookup(a), undefined);
  assert.equal(cache.lookup(c), undefined);
  assert.ok(cache.lookup(d));
  assert.equal(cache.stats().evictions, 3);
});

test('an answer larger than the whole cache is not kept and evicts nothing', () => {
  const cache = new ResponseCache({ sizeBytes: 400 });
  const small = keyOf(cache, request([int32x16('X', 1)]));
  cache.insert(small, 'm', [output(4)]);
  const large = keyOf(cache, request([int32x16('X', 2)]));
  assert.equal(cache.insert(large, 'm', [output(100)]), false);
  assert.equal(cache.lookup(large), undefined);
  assert.ok(cache.lookup(small));
  assert.equal(cache.stats().entries, 1);
  assert.equal(cache.stats().evictions, 0);
});

test('evictModel drops every entry of one model and nothing else', () => {
  const cache = new ResponseCache({ sizeBytes: 1 << 16 });
  const r = request([int32x16('X')]);
  const keys = [cache.keyOf('m', 1, 1, r, ['Y']), cache.keyOf('m', 2, 2, r, ['Y']), cache.keyOf('n', 1, 3, r, ['Y'])];
  keys.forEach((key, i) => cache.insert(key, i < 2 ? 'm' : 'n', [output(4)]));
  assert.equal(cache.evictModel('m'), 2);
  assert.equal(cache.lookup(keys[0]!), undefined);
  assert.equal(cache.lookup(keys[1]!), undefined);
  assert.ok(cache.lookup(keys[2]!));
  const stats = cache.stats();
  assert.equal(stats.entries, 1);
  assert.equal(stats.invalidations, 2);
  assert.equal(stats.evictions, 0);
  assert.equal(stats.bytes, entryBytes(keys[2]!, 4));
});

test('a size that is not a positive number of bytes is refused', () => {
  assert.throws(() => new ResponseCache({ sizeBytes: 0 }), /positive number of bytes/);
  assert.throws(() => new ResponseCache({ sizeBytes: 1.5 }), /positive number of bytes/);
});
