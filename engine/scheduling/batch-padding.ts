/**
 * Padded batching (parameters padded_batching*; docs/batching.md), as pure
 * functions the dynamic batcher calls: the bucket part of a request's shape
 * key, and the padding of a formed batch's inputs to its widest member.
 */
import type { PaddedBatchingSpec, PaddedInputSpec } from '../config/compiled-model-config.ts';
import { checkedProduct, type FixedTensor, type Tensor } from '../tensor.ts';
import { padTensor } from './batch-tensors.ts';

/** How one padded input of a batch was padded, for the batch's log line and statistics. */
export interface PaddedInputSummary {
  readonly name: string;
  /** The shape of the whole batch as the model sees it: all rows, each padded. */
  readonly shape: readonly number[];
  readonly elements: number;
  /** How many of `elements` are the pad value. */
  readonly paddingElements: number;
}

export interface PaddedBatch {
  /** Each request's inputs, in the batch's order, padded where needed. */
  readonly inputs: ReadonlyArray<readonly Tensor[]>;
  /** Only the inputs that were padded; empty when every request already had the widest shape. */
  readonly padded: readonly PaddedInputSummary[];
}

/** The shape part of a batching key for a padded input: fixed dims as they are, padded dims as their bucket. */
export function bucketedShape(spec: PaddedInputSpec, shape: readonly number[], bucketWidth: number): string {
  const parts: string[] = [];
  for (let axis = 1; axis < shape.length; axis++) {
    const dim = shape[axis]!;
    parts.push(spec.axes.includes(axis) ? `b${Math.ceil(dim / bucketWidth)}` : String(dim));
  }
  return parts.join('x');
}

/**
 * Pads each request's listed inputs to the widest size of each padded dim in
 * the batch. Requests that share a batch have equal shape keys, so they agree
 * on every other dim.
 */
export function padBatch(spec: PaddedBatchingSpec, requests: ReadonlyArray<readonly Tensor[]>): PaddedBatch {
  const widest = new Map<string, number[]>();
  for (const inputs of requests) {
    for (const tensor of inputs) {
      if (!spec.inputs.has(tensor.name)) continue;
      const current = widest.get(tensor.name);
      if (!current) widest.set(tensor.name, [...tensor.shape]);
      else for (let d = 1; d < current.length; d++) current[d] = Math.max(current[d]!, tensor.shape[d]!);
    }
  }
  const padded = new Map<string, { rows: number; real: number; rowElements: number }>();
  const out = requests.map((inputs) => inputs.map((tensor) => {
    const target = widest.get(tensor.name);
    if (!target || tensor.datatype === 'BYTES') return tensor;
    const shape = [tensor.shape[0]!, ...target.slice(1)];
    const entry = padded.get(tensor.name) ?? { rows: 0, real: 0, rowElements: checkedProduct(target.slice(1)) };
    entry.rows += tensor.shape[0]!;
    entry.real += checkedProduct(tensor.shape);
    padded.set(tensor.name, entry);
    return padTensor(tensor as FixedTensor, shape, spec.inputs.get(tensor.name)!.padElement);
  }));
  const summaries: PaddedInputSummary[] = [];
  for (const [name, entry] of padded) {
    const elements = entry.rows * entry.rowElements;
    if (elements === entry.real) continue;
    summaries.push({ name, shape: [entry.rows, ...widest.get(name)!.slice(1)], elements, paddingElements: elements - entry.real });
  }
  return { inputs: out, padded: summaries };
}
