/**
 * The classification extension's pure part: top-N selection (the heap for a
 * few of many, the sort for many) against a plain reference, Triton's score
 * text, label files, and the counts and types it refuses.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bytesStrings } from '../../engine/bytes-tensor.ts';
import { SwitchyardError } from '../../engine/errors.ts';
import { classCount, classifyOutput, MAX_CLASSIFICATION_RESULTS, parseLabels } from '../../engine/output-classification.ts';
import type { Tensor } from '../../engine/tensor.ts';

const tensorOf = (datatype: 'INT32' | 'FP32' | 'FP64' | 'INT64' | 'UINT8' | 'FP16', shape: number[], view: ArrayBufferView): Tensor =>
  ({ name: 'OUT', datatype, shape, raw: new Uint8Array(view.buffer, view.byteOffset, view.byteLength) });

describe('classifyOutput', () => {
  test('every count over random rows with ties matches a plain sort (highest first, lower index on ties)', () => {
    let seed = 7;
    const random = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + Math.floor(random() * 300);
      const values = new Int32Array(n).map(() => Math.floor(random() * 20) - 10);
      const count = 1 + Math.floor(random() * n);
      const got = bytesStrings(classifyOutput(tensorOf('INT32', [n], values), { model: 'm', count, batched: false }));
      const want = [...values].map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, count).map(([v, i]) => `${v}:${i}`);
      assert.deepEqual(got, want, `n ${n}, count ${count}`);
    }
  });

  test('floats are written with six decimals, as std::to_string does', () => {
    const values = new Float64Array([0.1234567, -2, 1e22, Number.POSITIVE_INFINITY, Number.NaN]);
    const out = bytesStrings(classifyOutput(tensorOf('FP64', [5], values), { model: 'm', count: 5, batched: false }));
    assert.deepEqual(out.slice(0, 4), ['inf:3', '10000000000000000000000.000000:2', '0.123457:0', '-2.000000:1']);
    assert.equal(out[4], 'nan:4');
  });

  test('INT64 scores stay exact', () => {
    const values = new BigInt64Array([9007199254740993n, -1n]);
    assert.deepEqual(bytesStrings(classifyOutput(tensorOf('INT64', [2], values), { model: 'm', count: 2, batched: false })),
      ['9007199254740993:0', '-1:1']);
  });

  test('rows of a batch are classified each on its own, labels by index', () => {
    const values = new Uint8Array([1, 9, 5, 7, 3, 2]);
    const out = classifyOutput(tensorOf('UINT8', [2, 3], values), { model: 'm', count: 2, batched: true, labels: ['a', '', 'c'] });
    assert.deepEqual(out.shape, [2, 2]);
    assert.deepEqual(bytesStrings(out), ['9:1', '5:2:c', '7:0:a', '3:1']);
  });

  test('an FP16 output is refused with Triton\'s words', () => {
    assert.throws(() => classifyOutput(tensorOf('FP16', [1], new Uint16Array([0])), { model: 'm', count: 1, batched: false }),
      (err: unknown) => err instanceof SwitchyardError && /^class result not available for output due to unsupported type 'FP16'/.test(err.message));
  });

  test('a few of a million: the heap answers in well under a second', () => {
    const values = new Float32Array(1 << 20).map((_, i) => Math.sin(i) * 1000);
    const start = performance.now();
    const out = classifyOutput(tensorOf('FP32', [1, values.length], values), { model: 'm', count: 5, batched: true });
    assert.ok(performance.now() - start < 1000);
    assert.deepEqual(out.shape, [1, 5]);
  });
});

describe('parseLabels and classCount', () => {
  test(`at most ${MAX_CLASSIFICATION_RESULTS} classes per output: the bound answers, one more is refused naming the limit`, () => {
    const values = Float32Array.from({ length: 10_000 }, (_, i) => (i * 7919) % 10_007);
    const atBound = classifyOutput(tensorOf('FP32', [2, 5000], values), { model: 'm', count: MAX_CLASSIFICATION_RESULTS / 2, batched: true });
    assert.deepEqual(atBound.shape, [2, MAX_CLASSIFICATION_RESULTS / 2]);
    assert.throws(() => classifyOutput(tensorOf('FP32', [2, 5000], values), { model: 'm', count: MAX_CLASSIFICATION_RESULTS / 2 + 1, batched: true }),
      (err: unknown) => err instanceof SwitchyardError && err.code === 'CLASSIFICATION_RESULTS'
        && err.message === `classification of output 'OUT' of model 'm' would return ${MAX_CLASSIFICATION_RESULTS + 2} classes; `
          + `the limit is ${MAX_CLASSIFICATION_RESULTS} per output (rows x classes per row): ask for fewer classes`);
    // All classes of a large row is the costly ask (a full sort): refused before any work.
    assert.throws(() => classifyOutput(tensorOf('FP32', [10_000], values), { model: 'm', count: Number.MAX_SAFE_INTEGER, batched: false }),
      /would return 10000 classes/);
  });

  test('one label per line; a final newline adds none; an empty line is an empty label', () => {
    assert.deepEqual(parseLabels(new TextEncoder().encode('cat\n\ndog\n')), ['cat', '', 'dog']);
    assert.deepEqual(parseLabels(new TextEncoder().encode('cat')), ['cat']);
  });

  test('positive integers pass; anything else is refused naming the field', () => {
    assert.equal(classCount(3, 'f'), 3);
    assert.equal(classCount(4n, 'f'), 4);
    for (const bad of [0, -1, 1.5, '2', true, 2n ** 64n]) {
      assert.throws(() => classCount(bad, 'outputs[0].parameters.classification'),
        /^SwitchyardError: outputs\[0\]\.parameters\.classification: classification count must be a positive integer/);
    }
  });
});
