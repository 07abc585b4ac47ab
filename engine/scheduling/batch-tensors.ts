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
 * The tensor grown to `shape` (same rank, no dim smaller), its data first
 * along every dim and `padElement` (one element's bytes) after it: right and
 * bottom padding. Returns the tensor itself when it already has that shape.
 */
export function padTensor(tensor: FixedTensor, shape: readonly number[], padElement: Uint8Array): FixedTensor {
  const from = tensor.shape;
  let last = -1;
  for (let i = 0; i < from.length; i++) {
    if (shape[i]! < from[i]!) throw new Error(`padTensor cannot shrink dim ${i} of '${tensor.name}' from ${from[i]} to ${shape[i]}`);
    if (shape[i] !== from[i]) last = i;
  }
  if (last < 0 || from.length !== shape.length) {
    if (from.length !== shape.length) throw new Error(`padTensor cannot change the rank of '${tensor.name}'`);
    return tensor;
  }
  const elementBytes = padElement.byteLength;
  const raw = new Uint8Array(checkedProduct([...shape, elementBytes]));
  fillPattern(raw, padElement);
  // Dims after `last` agree, so each run of the source from dim `last` on is contiguous in both tensors.
  const tail = checkedProduct(from.slice(last + 1)) * elementBytes;
  const runBytes = from[last]! * tail;
  const targetRunBytes = shape[last]! * tail;
  const outer = from.slice(0, last);
  const index = new Array<number>(outer.length).fill(0);
  const runs = checkedProduct(outer);
  for (let run = 0; run < runs; run++) {
    let target = 0;
    for (let d = 0; d < outer.length; d++) target = target * shape[d]! + index[d]!;
    raw.set(tensor.raw.subarray(run * runBytes, (run + 1) * runBytes), target * targetRunBytes);
    for (let d = outer.length - 1; d >= 0; d--) {
      if (++index[d]! < outer[d]!) break;
      index[d] = 0;
    }
  }
  return { name: tensor.name, datatype: tensor.datatype, shape, raw };
}

/** Fills `raw` with copies of `element`; zeros are already there. */
function fillPattern(raw: Uint8Array, element: Uint8Array): void {
  if (element.every((b) => b === 0) || raw.byteLength === 0) return;
  raw.set(element, 0);
  for (let filled = element.byteLength; filled < raw.byteLength; filled *= 2) raw.copyWithin(filled, 0, Math.min(filled, raw.byteLength - filled));
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
