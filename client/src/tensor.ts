/**
 * Input tensors: the element storage per datatype, the `tensor()` builder
 * that checks and converts user data, and the helpers the transports use to
 * read a tensor's elements.
 */
import {
  bytesOfTypedArray, isBigIntType, isDataType, TYPED_ARRAY_OF,
  type DataType, type FixedDataType, type TypedTensorArray,
} from './data-type.ts';
import { encodeBytesElements } from './bytes-elements.ts';
import { toBfloat16Bits, toFloat16Bits } from './float16.ts';

/**
 * Element storage per datatype:
 * BOOL `boolean[]` or `Uint8Array` (0/1); UINT8 `Uint8Array`; UINT16 `Uint16Array`; UINT32 `Uint32Array`;
 * UINT64 `BigUint64Array`; INT8 `Int8Array`; INT16 `Int16Array`; INT32 `Int32Array`; INT64 `BigInt64Array`;
 * FP16/BF16 `Uint16Array` (raw bit patterns); FP32 `Float32Array`; FP64 `Float64Array`;
 * BYTES `(string | Uint8Array)[]` (strings are sent UTF-8 encoded).
 */
export type TensorData = TypedTensorArray | readonly boolean[] | readonly (string | Uint8Array)[];

/** A named tensor: datatype, shape and row-major data. */
export interface Tensor {
  readonly name: string;
  readonly datatype: DataType;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

const INTEGER_RANGES: Readonly<Record<string, readonly [number, number]>> = {
  UINT8: [0, 0xff], UINT16: [0, 0xffff], UINT32: [0, 0xffffffff],
  INT8: [-0x80, 0x7f], INT16: [-0x8000, 0x7fff], INT32: [-0x80000000, 0x7fffffff],
};

const BIGINT_RANGES: Readonly<Record<'INT64' | 'UINT64', readonly [bigint, bigint]>> = {
  INT64: [-(2n ** 63n), 2n ** 63n - 1n],
  UINT64: [0n, 2n ** 64n - 1n],
};

const describe = (value: unknown): string => {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name}`;
  return typeof value === 'bigint' ? `${value}n` : JSON.stringify(value) ?? String(value);
};

/** Number of elements a shape holds; throws TypeError on a bad dimension. */
export function shapeElementCount(name: string, shape: readonly number[]): number {
  if (!Array.isArray(shape)) throw new TypeError(`tensor '${name}': shape must be an array of dimension sizes`);
  let count = 1;
  shape.forEach((dim, i) => {
    if (typeof dim !== 'number' || !Number.isSafeInteger(dim) || dim < 0) {
      throw new TypeError(`tensor '${name}': shape[${i}] is ${describe(dim)}; each dimension must be a non-negative integer`);
    }
    count *= dim;
  });
  if (!Number.isSafeInteger(count)) throw new TypeError(`tensor '${name}': shape [${shape.join(',')}] has too many elements`);
  return count;
}

function elementLength(data: unknown): number | undefined {
  if (Array.isArray(data)) return data.length;
  if (ArrayBuffer.isView(data) && !(data instanceof DataView)) return (data as TypedTensorArray).length;
  return undefined;
}

/** Converts plain numbers or bigints into the datatype's typed array, checking each element. */
function fromPlainArray(name: string, datatype: FixedDataType, values: readonly unknown[]): TypedTensorArray {
  const out = new TYPED_ARRAY_OF[datatype](values.length);
  const bad = (i: number, want: string): TypeError =>
    new TypeError(`tensor '${name}': element ${i} is ${describe(values[i])}, expected ${want}`);
  if (isBigIntType(datatype)) {
    const [min, max] = BIGINT_RANGES[datatype];
    values.forEach((v, i) => {
      const big = typeof v === 'bigint' ? v : typeof v === 'number' && Number.isInteger(v) ? BigInt(v) : undefined;
      if (big === undefined || big < min || big > max) throw bad(i, `an integer in ${datatype} range`);
      out[i] = big;
    });
    return out;
  }
  values.forEach((v, i) => {
    const n = typeof v === 'bigint' ? Number(v) : v;
    if (typeof n !== 'number') throw bad(i, 'a number');
    if (datatype === 'BOOL') {
      if (n !== 0 && n !== 1) throw bad(i, '0 or 1 (or use booleans)');
      out[i] = n;
    } else if (datatype === 'FP16') {
      out[i] = toFloat16Bits(n);
    } else if (datatype === 'BF16') {
      out[i] = toBfloat16Bits(n);
    } else if (datatype === 'FP32' || datatype === 'FP64') {
      out[i] = n;
    } else {
      const [min, max] = INTEGER_RANGES[datatype]!;
      if (!Number.isInteger(n) || n < min || n > max) throw bad(i, `an integer in ${datatype} range [${min}, ${max}]`);
      out[i] = n;
    }
  });
  return out;
}

/** Checks data given for a datatype, converting plain arrays; returns the stored form. */
function checkedData(name: string, datatype: DataType, data: unknown): TensorData {
  if (!isDataType(datatype)) throw new TypeError(`tensor '${name}': ${describe(datatype)} is not a KServe v2 datatype`);
  if (datatype === 'BYTES') {
    if (!Array.isArray(data)) throw new TypeError(`tensor '${name}': BYTES data must be an array of strings or Uint8Arrays, got ${describe(data)}`);
    data.forEach((v, i) => {
      if (typeof v !== 'string' && !(v instanceof Uint8Array)) {
        throw new TypeError(`tensor '${name}': BYTES element ${i} is ${describe(v)}, expected a string or a Uint8Array`);
      }
    });
    return data as readonly (string | Uint8Array)[];
  }
  const Typed = TYPED_ARRAY_OF[datatype];
  if (data instanceof Typed) return data;
  if (Array.isArray(data)) {
    if (datatype === 'BOOL' && data.every((v) => typeof v === 'boolean')) return data as readonly boolean[];
    return fromPlainArray(name, datatype, data);
  }
  const bitsNote = datatype === 'FP16' || datatype === 'BF16' ? ' of raw bit patterns, or an array of numbers' : ' or a plain array';
  throw new TypeError(`tensor '${name}': ${datatype} data must be a ${Typed.name}${bitsNote}, got ${describe(data)}`);
}

/**
 * Builds an input tensor. Checks the shape and that the element count
 * matches it. Plain `number[]` / `bigint[]` data is converted into the
 * datatype's typed array, each element range-checked; for FP16 and BF16 the
 * numbers are values, rounded to the nearest representable pattern (a
 * `Uint16Array` is taken as raw bit patterns). Throws a TypeError naming
 * the tensor when anything does not fit.
 */
export function tensor(
  name: string,
  datatype: DataType,
  shape: readonly number[],
  data: TensorData | readonly number[] | readonly bigint[],
): Tensor {
  if (typeof name !== 'string' || name === '') throw new TypeError('tensor name must be a non-empty string');
  const count = shapeElementCount(name, shape);
  const stored = checkedData(name, datatype, data);
  const length = elementLength(stored);
  if (length !== count) {
    throw new TypeError(`tensor '${name}': shape [${shape.join(',')}] holds ${count} elements but the data has ${length}`);
  }
  return { name, datatype, shape: [...shape], data: stored };
}

/**
 * The little-endian element bytes of a fixed-size tensor (a view when the
 * data is already a typed array). Checks data built without `tensor()`.
 */
export function fixedTensorBytes(t: Tensor): Uint8Array {
  const datatype = t.datatype as FixedDataType;
  const data = checkedData(t.name, datatype, t.data);
  if (Array.isArray(data)) return Uint8Array.from(data as readonly boolean[], (v) => (v ? 1 : 0));
  return bytesOfTypedArray(data as TypedTensorArray);
}

const encoder = new TextEncoder();

/** The elements of a BYTES tensor as byte strings (strings UTF-8 encoded). */
export function bytesTensorElements(t: Tensor): Uint8Array[] {
  const data = checkedData(t.name, 'BYTES', t.data) as readonly (string | Uint8Array)[];
  return data.map((v) => (typeof v === 'string' ? encoder.encode(v) : v));
}

/** A tensor's data as sent raw (HTTP binary section, gRPC raw_input_contents): little-endian elements, or length-prefixed BYTES. */
export function tensorWireBytes(t: Tensor): Uint8Array {
  return t.datatype === 'BYTES' ? encodeBytesElements(bytesTensorElements(t)) : fixedTensorBytes(t);
}
