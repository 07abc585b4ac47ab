/**
 * Pure concatenation and splitting of tensors along the batch dimension.
 * Concatenation always writes into memory the caller owns (fresh, or taken
 * from the caller's pool through `allocate`) and may transfer to a worker;
 * splitting returns views, not copies.
 */
import type { BatchInputKind } from '../config/compiled-model-config.ts';
import { concatBytesTensors, sliceBytesTensor } from '../bytes-tensor.ts';
import { checkedProduct, elementByteSize, type BytesTensor, type FixedTensor, type Tensor } from '../tensor.ts';

export interface ConcatOptions {
  /**
   * Gives the memory a fixed-size batch is written into: an ArrayBuffer of at
   * least the byte length asked for (a pooled one may be larger; the result's
   * `raw` covers only the bytes written). Default: a fresh ArrayBuffer of exactly that size.
   */
  readonly allocate?: (byteLength: number) => ArrayBuffer;
  /**
   * Joins every element of every part into one 1-D tensor instead, as Triton
   * hands a ragged input (allow_ragged_batch) to the model.
   */
  readonly flatten?: boolean;
}

/** Joins same-named tensors of several requests along dim 0 (shapes past dim 0 must already agree), or flattens them. */
export function concatBatch(parts: readonly Tensor[], options: ConcatOptions = {}): Tensor {
  const first = parts[0];
  if (!first) throw new Error('concatBatch needs at least one tensor');
  const shape = options.flatten
    ? [parts.reduce((sum, t) => sum + checkedProduct(t.shape), 0)]
    : [parts.reduce((sum, t) => sum + (t.shape[0] ?? 1), 0), ...first.shape.slice(1)];
  if (first.datatype === 'BYTES') return concatBytesTensors(first.name, shape, parts as readonly BytesTensor[]);
  const total = parts.reduce((sum, t) => sum + (t as FixedTensor).raw.byteLength, 0);
  const buffer = options.allocate ? options.allocate(total) : new ArrayBuffer(total);
  const raw = new Uint8Array(buffer, 0, total);
  let offset = 0;
  for (const part of parts) {
    raw.set((part as FixedTensor).raw, offset);
    offset += (part as FixedTensor).raw.byteLength;
  }
  return { name: first.name, datatype: first.datatype, shape, raw };
}

/** Cuts a batched tensor back into per-request pieces with the given batch sizes. */
export function splitBatch(tensor: Tensor, batchSizes: readonly number[]): Tensor[] {
  if (batchSizes.length === 1) return [tensor];
  const rowShape = tensor.shape.slice(1);
  const rowElements = checkedProduct(rowShape);
  const pieces: Tensor[] = [];
  let row = 0;
  for (const size of batchSizes) {
    const shape = [size, ...rowShape];
    if (tensor.datatype === 'BYTES') {
      pieces.push(sliceBytesTensor(tensor, row * rowElements, (row + size) * rowElements, shape));
    } else {
      const rowBytes = rowElements * elementByteSize(tensor.datatype)!;
      const raw = tensor.raw.subarray(row * rowBytes, (row + size) * rowBytes);
      pieces.push({ name: tensor.name, datatype: tensor.datatype, shape, raw });
    }
    row += size;
  }
  return pieces;
}

/**
 * The tensor Triton's backends feed a batch_input target, from the element
 * count of the source input in each request of the batch, in order:
 * - BATCH_ELEMENT_COUNT: [requests], each request's count;
 * - BATCH_ACCUMULATED_ELEMENT_COUNT: [requests], running totals (where each request ends);
 * - BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO: [requests + 1], the same after a leading 0;
 * - BATCH_MAX_ELEMENT_COUNT_AS_SHAPE: [largest count], only its shape matters (zeros).
 */
export function batchInputTensor(
  name: string, kind: BatchInputKind, datatype: 'INT32' | 'FP32', counts: readonly number[], options: Pick<ConcatOptions, 'allocate'> = {},
): Tensor {
  let values: number[];
  switch (kind) {
    case 'BATCH_ELEMENT_COUNT': values = [...counts]; break;
    case 'BATCH_ACCUMULATED_ELEMENT_COUNT': values = running(counts); break;
    case 'BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO': values = [0, ...running(counts)]; break;
    case 'BATCH_MAX_ELEMENT_COUNT_AS_SHAPE': values = new Array<number>(Math.max(0, ...counts)).fill(0); break;
  }
  const byteLength = values.length * 4;
  const buffer = options.allocate ? options.allocate(byteLength) : new ArrayBuffer(byteLength);
  const view = datatype === 'INT32' ? new Int32Array(buffer, 0, values.length) : new Float32Array(buffer, 0, values.length);
  view.set(values);
  return { name, datatype, shape: [values.length], raw: new Uint8Array(buffer, 0, byteLength) };
}

function running(counts: readonly number[]): number[] {
  let total = 0;
  return counts.map((c) => (total += c));
}
