/**
 * Triton's checks on a request's shape before any memory is sized from it:
 * an element count past INT64_MAX, then a byte size past INT64_MAX, each in
 * Triton's words (its tests match on them). Dims arrive as bigints so that
 * values past 2^53 are judged exactly; smaller limits (what a Number can
 * address, the body size) are checked after this, by the callers.
 */
import { serverError } from './errors.ts';
import { elementByteSize, type DataType } from './tensor.ts';

const INT64_MAX = (1n << 63n) - 1n;

/** Throws SHAPE_OVERFLOW or BYTE_SIZE_OVERFLOW; dims are non-negative. */
export function checkShapeOverflow(input: string, datatype: DataType, dims: readonly bigint[]): void {
  let count = 1n;
  for (const dim of dims) {
    count *= dim;
    if (count > INT64_MAX) {
      throw serverError('SHAPE_OVERFLOW', { input, shape: `[${dims.join(',')}]`, max: String(INT64_MAX) });
    }
  }
  const size = elementByteSize(datatype);
  if (size !== undefined && size > 1 && count * BigInt(size) > INT64_MAX) {
    throw serverError('BYTE_SIZE_OVERFLOW', { input, count: String(count), size, max: String(INT64_MAX) });
  }
}

/** Triton's HTTP words for a negative or non-integer dimension, with ours after them. */
export function negativeDimDetail(input: string, index: number, shown: string): string {
  return `attempt to access JSON non-unsigned-integer as unsigned-integer: input '${input}' dimension ${index} is ${shown}; each dimension must be a non-negative integer`;
}
