/**
 * The TENSORS-level tensor summary: Triton's fields, and its preview bound
 * at and one past TRACE_PREVIEW_ELEMENTS elements and TRACE_PREVIEW_CHARS
 * characters of a BYTES element.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bytesTensor } from '../../../engine/bytes-tensor.ts';
import { TRACE_PREVIEW_CHARS, TRACE_PREVIEW_ELEMENTS, tensorSummary } from '../../../engine/observability/trace/tensor-summary.ts';
import type { Tensor } from '../../../engine/tensor.ts';

const int32 = (count: number): Tensor => {
  const data = Int32Array.from({ length: count }, (_, i) => i);
  return { name: 'X', datatype: 'INT32', shape: [1, count], raw: new Uint8Array(data.buffer) };
};
const range = (n: number): string => Array.from({ length: n }, (_, i) => i).join(',');

test(`at most ${TRACE_PREVIEW_ELEMENTS} elements: all of them at the bound, then '...' one past it`, () => {
  assert.deepEqual(tensorSummary(int32(TRACE_PREVIEW_ELEMENTS)), { name: 'X', data: range(TRACE_PREVIEW_ELEMENTS), shape: `1,${TRACE_PREVIEW_ELEMENTS}`, dtype: 'INT32' });
  assert.equal(tensorSummary(int32(TRACE_PREVIEW_ELEMENTS + 1)).data, `${range(TRACE_PREVIEW_ELEMENTS)},...`);
  assert.equal(tensorSummary(int32(0)).data, '');
});

test(`a BYTES element keeps ${TRACE_PREVIEW_CHARS} characters, then '...'; multi-byte text is cut on characters`, () => {
  const at = 'a'.repeat(TRACE_PREVIEW_CHARS);
  const past = 'b'.repeat(TRACE_PREVIEW_CHARS + 1);
  const wide = 'é'.repeat(TRACE_PREVIEW_CHARS + 5);
  const summary = tensorSummary(bytesTensor('T', [3], [at, past, wide]));
  assert.equal(summary.data, [at, `${'b'.repeat(TRACE_PREVIEW_CHARS)}...`, `${'é'.repeat(TRACE_PREVIEW_CHARS)}...`].map((s) => JSON.stringify(s)).join(','));
  assert.equal(summary.dtype, 'BYTES');
});
