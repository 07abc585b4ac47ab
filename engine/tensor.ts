/**
 * Tensors as the engine sees them: a KServe v2 datatype, a shape, and the
 * data. Fixed-size types carry their elements as little-endian bytes; BYTES
 * carries its elements length-prefixed in one buffer, with an index.
 * Everything that counts elements or bytes goes through the overflow-checked
 * helpers here.
 */
import { ownedCopy } from './memory/owned-buffer.ts';

export const DATA_TYPES = [
  'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64',
  'FP16', 'BF16', 'FP32', 'FP64', 'BYTES',
] as const;

export type DataType = (typeof DATA_TYPES)[number];
export type FixedDataType = Exclude<DataType, 'BYTES'>;

const ELEMENT_BYTES: Readonly<Record<FixedDataType, number>> = {
  BOOL: 1, UINT8: 1, INT8: 1,
  UINT16: 2, INT16: 2, FP16: 2, BF16: 2,
  UINT32: 4, INT32: 4, FP32: 4,
  UINT64: 8, INT64: 8, FP64: 8,
};

export interface FixedTensor {
  readonly name: string;
  readonly datatype: FixedDataType;
  readonly shape: readonly number[];
  /** Little-endian element bytes, exactly elementCount * elementByteSize long. */
  readonly raw: Uint8Array;
  /**
   * Set when `raw` is the only view on its buffer and the buffer came from
   * the server's BufferPool: a hand-off inside the engine. A backend marks
   * the outputs it wrote into pool buffers; an ensemble (or the script
   * bridge) marks a step input whose buffer it took from a response's lease.
   * Whoever receives such a tensor in a request owns the buffer: it may move
   * it to a worker instead of copying, and releases it to the pool when
   * done. InferenceEngine.infer() turns the marks of its answer into the
   * response's lease (engine/memory/buffer-lease.ts) and returns unmarked
   * tensors; tensors from clients never carry it.
   */
  readonly pooled?: boolean;
}

/** BYTES in compact form; engine/bytes-tensor.ts builds and reads it. */
export interface BytesTensor {
  readonly name: string;
  readonly datatype: 'BYTES';
  readonly shape: readonly number[];
  /** The elements in row-major order, in the wire form: each a 4-byte little-endian length, then its bytes. */
  readonly raw: Uint8Array;
  /** Where each element's length prefix starts in `raw`, then raw.byteLength: one entry more than there are elements. */
  readonly offsets: Uint32Array;
}

export type Tensor = FixedTensor | BytesTensor;

export function isDataType(value: unknown): value is DataType {
  return typeof value === 'string' && (DATA_TYPES as readonly string[]).includes(value);
}

/** Bytes per element, or undefined for BYTES whose elements vary in size. */
export function elementByteSize(datatype: DataType): number | undefined {
  return datatype === 'BYTES' ? undefined : ELEMENT_BYTES[datatype];
}

/** Thrown by the checked arithmetic below; callers turn it into a catalogue error naming the tensor. */
export class TensorSizeError extends Error {}

/** Multiplies non-negative integers, refusing results past Number.MAX_SAFE_INTEGER. */
export function checkedProduct(factors: readonly number[]): number {
  let product = 1;
  for (const factor of factors) {
    if (!Number.isSafeInteger(factor) || factor < 0) {
      throw new TensorSizeError(`dimension ${String(factor)} is not a non-negative integer`);
    }
    product *= factor;
    if (!Number.isSafeInteger(product)) {
      throw new TensorSizeError(`shape [${factors.join(',')}] has more elements than can be addressed`);
    }
  }
  return product;
}

export function elementCount(shape: readonly number[]): number {
  return checkedProduct(shape);
}

/** Byte size of a fixed-size tensor with this shape, overflow-checked. */
export function fixedByteSize(datatype: FixedDataType, shape: readonly number[]): number {
  return checkedProduct([...shape, ELEMENT_BYTES[datatype]]);
}

export type NumericArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array
  | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

const TYPED_ARRAYS = {
  BOOL: Uint8Array, UINT8: Uint8Array, INT8: Int8Array,
  UINT16: Uint16Array, INT16: Int16Array, FP16: Uint16Array, BF16: Uint16Array,
  UINT32: Uint32Array, INT32: Int32Array, FP32: Float32Array,
  UINT64: BigUint64Array, INT64: BigInt64Array, FP64: Float64Array,
} as const;

/**
 * A typed-array view of a fixed tensor's bytes. FP16 and BF16 come back as
 * their raw 16-bit patterns. Copies only when the bytes are not aligned for
 * the element type (slices of an HTTP body often are not).
 */
export function typedView(datatype: FixedDataType, raw: Uint8Array): NumericArray {
  const Ctor = TYPED_ARRAYS[datatype];
  const size = ELEMENT_BYTES[datatype];
  const aligned = raw.byteOffset % size === 0 ? raw : ownedCopy(raw);
  return new Ctor(aligned.buffer as ArrayBuffer, aligned.byteOffset, aligned.byteLength / size);
}

/** The bytes behind a typed array, without copying. */
export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

export function allocateTyped(datatype: FixedDataType, count: number): NumericArray {
  return new TYPED_ARRAYS[datatype](count);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 binary16 bits for a number, rounding to nearest even. */
export function toHalfBits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1))) half += 1;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1))) half += 1;
  return sign | half;
}

export function fromHalfBits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** bfloat16 bits for a number: the top half of the float32, rounded to nearest even. */
export function toBfloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function fromBfloat16Bits(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

/** Triton's config spelling (TYPE_FP32, TYPE_STRING) for a v2 datatype, and back. */
export function toConfigDataType(datatype: DataType): string {
  return datatype === 'BYTES' ? 'TYPE_STRING' : `TYPE_${datatype}`;
}

export function fromConfigDataType(configType: string): DataType | undefined {
  if (configType === 'TYPE_STRING') return 'BYTES';
  const bare = configType.startsWith('TYPE_') ? configType.slice(5) : undefined;
  return bare !== undefined && bare !== 'BYTES' && isDataType(bare) ? bare : undefined;
}

/** Shape as Triton prints it in error messages: [1,16]. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}
