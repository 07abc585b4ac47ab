/**
 * The classification extension: an output requested with a class count N
 * goes back as a BYTES tensor of its N highest entries per batch row,
 * highest first, each "score:index" or "score:index:label" (Triton's
 * TopkClassifications). Scores are written as C++'s std::to_string writes
 * them: integers plain, floats with six decimals.
 */
import { bytesTensor } from './bytes-tensor.ts';
import { serverError } from './errors.ts';
import { typedView, type BytesTensor, type DataType, type FixedDataType, type Tensor } from './tensor.ts';

const CLASSIFIABLE: ReadonlySet<DataType> = new Set<DataType>([
  'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP32', 'FP64',
]);

/** Throws Triton's error when an output of this datatype cannot be classified. */
export function assertClassifiable(model: string, output: string, datatype: DataType): void {
  if (!CLASSIFIABLE.has(datatype)) throw serverError('CLASSIFICATION_TYPE', { model, output, datatype });
}

/** One label per line of a label file, as Triton reads them; a final newline adds no empty label. */
export function parseLabels(bytes: Uint8Array): string[] {
  const lines = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

/** %f: six decimals, never exponent notation. */
function fixedSix(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (!Number.isFinite(value)) return value > 0 ? 'inf' : '-inf';
  if (Math.abs(value) < 1e21) return value.toFixed(6);
  return `${BigInt(value).toString()}.000000`;
}

export interface ClassifyOptions {
  readonly model: string;
  readonly count: number;
  /** Whether the model batches: the first dim is then the batch, classified row by row. */
  readonly batched: boolean;
  readonly labels?: readonly string[];
}

/**
 * The most classes one output may return (rows x classes per row). Picking
 * and formatting them runs on the event loop: 4096 of a 1M-element row take
 * about 150 ms, and all of them 2.3 s, so larger asks are refused.
 */
export const MAX_CLASSIFICATION_RESULTS = 4096;

export function classifyOutput(tensor: Tensor, options: ClassifyOptions): BytesTensor {
  assertClassifiable(options.model, tensor.name, tensor.datatype);
  const values = typedView(tensor.datatype as FixedDataType, tensor.raw);
  const isFloat = tensor.datatype === 'FP32' || tensor.datatype === 'FP64';
  const rows = options.batched && tensor.shape.length > 0 ? tensor.shape[0]! : 0;
  const perRow = rows === 0 ? values.length : tensor.shape.slice(1).reduce((a, d) => a * d, 1);
  const kept = Math.min(options.count, perRow);
  if (Math.max(1, rows) * kept > MAX_CLASSIFICATION_RESULTS) {
    throw serverError('CLASSIFICATION_RESULTS', {
      model: options.model, output: tensor.name, results: Math.max(1, rows) * kept, limit: MAX_CLASSIFICATION_RESULTS,
    });
  }
  const elements: string[] = [];
  for (let row = 0; row < Math.max(1, rows); row++) {
    const base = row * perRow;
    const at = (i: number): number | bigint => values[base + i]!;
    for (const index of topIndices(at, perRow, kept)) {
      const value = at(index);
      const score = isFloat ? fixedSix(value as number) : String(value);
      const label = options.labels?.[index];
      elements.push(label ? `${score}:${index}:${label}` : `${score}:${index}`);
    }
  }
  return bytesTensor(tensor.name, rows > 0 ? [rows, kept] : [kept], elements);
}

/**
 * The indices of the `kept` highest of `length` values, highest first (ties:
 * lower index first). A few out of many go through a min-heap of `kept`
 * entries (one comparison for most values); many go through a full sort.
 */
function topIndices(at: (i: number) => number | bigint, length: number, kept: number): number[] {
  const better = (a: number, b: number): boolean => {
    const va = at(a);
    const vb = at(b);
    return va > vb || (va === vb && a < b);
  };
  const byRank = (a: number, b: number): number => (better(a, b) ? -1 : better(b, a) ? 1 : 0);
  if (kept * 4 >= length) return Array.from({ length }, (_, i) => i).sort(byRank).slice(0, kept);
  // heap[0] is the worst of the best `kept` so far.
  const heap: number[] = [];
  const siftDown = (from: number): void => {
    for (let i = from; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let worst = i;
      if (l < heap.length && better(heap[worst]!, heap[l]!)) worst = l;
      if (r < heap.length && better(heap[worst]!, heap[r]!)) worst = r;
      if (worst === i) return;
      [heap[i], heap[worst]] = [heap[worst]!, heap[i]!];
      i = worst;
    }
  };
  for (let i = 0; i < length; i++) {
    if (heap.length < kept) {
      heap.push(i);
      for (let c = heap.length - 1; c > 0;) {
        const parent = (c - 1) >> 1;
        if (!better(heap[parent]!, heap[c]!)) break;
        [heap[parent], heap[c]] = [heap[c]!, heap[parent]!];
        c = parent;
      }
    } else if (better(i, heap[0]!)) {
      heap[0] = i;
      siftDown(0);
    }
  }
  return heap.sort(byRank);
}

/** A requested output's `classification` parameter as a class count: a positive integer, or Triton's refusal naming the field. */
export function classCount(value: unknown, field: string): number {
  const count = typeof value === 'bigint' && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 1) {
    throw serverError('CLASSIFICATION_COUNT', { field, got: typeof value === 'string' ? JSON.stringify(value) : String(value) });
  }
  return count;
}
