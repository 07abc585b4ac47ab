/**
 * A tensor as the trace file shows it at the TENSORS level, in Triton's
 * fields: `name`, `data` (the elements, comma-joined), `shape` (the dims,
 * comma-joined) and `dtype`. Unlike Triton's, the data is a bounded preview:
 * the first TRACE_PREVIEW_ELEMENTS elements, each BYTES element cut to
 * TRACE_PREVIEW_CHARS characters, then `...` when there is more, so a large
 * tensor costs the trace a few hundred bytes.
 */
import { bytesElementAt, bytesElementCount } from '../../bytes-tensor.ts';

const UTF8 = new TextDecoder();
import { elementByteSize, typedView, type Tensor } from '../../tensor.ts';

export const TRACE_PREVIEW_ELEMENTS = 32;
export const TRACE_PREVIEW_CHARS = 64;

export interface TensorSummary {
  readonly name: string;
  readonly data: string;
  readonly shape: string;
  readonly dtype: string;
}

export function tensorSummary(tensor: Tensor): TensorSummary {
  const shape = tensor.shape.join(',');
  let elements: string[];
  let total: number;
  if (tensor.datatype === 'BYTES') {
    // Only the preview's elements are decoded, each from at most a few bytes more than the characters kept.
    total = bytesElementCount(tensor);
    elements = [];
    for (let i = 0; i < Math.min(total, TRACE_PREVIEW_ELEMENTS); i++) {
      const bytes = bytesElementAt(tensor, i);
      const text = UTF8.decode(bytes.subarray(0, TRACE_PREVIEW_CHARS * 4));
      elements.push(JSON.stringify(text.length > TRACE_PREVIEW_CHARS || bytes.byteLength > TRACE_PREVIEW_CHARS * 4 ? `${text.slice(0, TRACE_PREVIEW_CHARS)}...` : text));
    }
  } else if (tensor.datatype === 'FP16' || tensor.datatype === 'BF16') {
    // Raw 16-bit patterns say nothing readable; Triton leaves them out too.
    total = 0;
    elements = [];
  } else {
    const size = elementByteSize(tensor.datatype)!;
    total = tensor.raw.byteLength / size;
    // Only the preview's bytes are viewed (and copied, when unaligned).
    const view = typedView(tensor.datatype, tensor.raw.subarray(0, Math.min(total, TRACE_PREVIEW_ELEMENTS) * size)) as ArrayLike<number | bigint>;
    elements = [];
    for (let i = 0; i < view.length; i++) elements.push(String(view[i]));
  }
  const data = elements.join(',') + (total > elements.length && elements.length > 0 ? ',...' : '');
  return { name: tensor.name, data, shape, dtype: tensor.datatype };
}
