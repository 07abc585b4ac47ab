/**
 * Pure concatenation and splitting of tensors along the batch dimension.
 * Concatenation always writes into fresh memory the caller owns (and may
 * transfer to a worker); splitting returns views, not copies.
 */
import { checkedProduct, elementByteSize, type FixedTensor, type Tensor } from '../tensor.ts';

/** Joins same-named tensors of several requests along dim 0. Shapes past dim 0 must already agree. */
export function concatBatch(parts: readonly Tensor[]): Tensor {
  const first = parts[0];
  if (!first) throw new Error('concatBatch needs at least one tensor');
  const rows = parts.reduce((sum, t) => sum + (t.shape[0] ?? 1), 0);
  const shape = [rows, ...first.shape.slice(1)];
  if (first.datatype === 'BYTES') {
    const elements = parts.flatMap((t) => (t.datatype === 'BYTES' ? t.elements : []));
    return { name: first.name, datatype: 'BYTES', shape, elements };
  }
  const total = parts.reduce((sum, t) => sum + (t as FixedTensor).raw.byteLength, 0);
  const raw = new Uint8Array(new ArrayBuffer(total));
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
      const elements = tensor.elements.slice(row * rowElements, (row + size) * rowElements);
      pieces.push({ name: tensor.name, datatype: 'BYTES', shape, elements });
    } else {
      const rowBytes = rowElements * elementByteSize(tensor.datatype)!;
      const raw = tensor.raw.subarray(row * rowBytes, (row + size) * rowBytes);
      pieces.push({ name: tensor.name, datatype: tensor.datatype, shape, raw });
    }
    row += size;
  }
  return pieces;
}

