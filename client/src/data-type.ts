/**
 * The KServe v2 datatypes and what the SDK needs to know about each: its
 * element size on the wire and the typed array that holds it.
 */

/** Every datatype of the KServe v2 protocol, in the protocol's order. */
export const DATA_TYPES = [
  'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64',
  'FP16', 'BF16', 'FP32', 'FP64', 'BYTES',
] as const;

/** A KServe v2 tensor datatype. */
export type DataType = (typeof DATA_TYPES)[number];

/** Datatypes whose elements all have the same byte size. */
export type FixedDataType = Exclude<DataType, 'BYTES'>;

/** Typed arrays the SDK stores fixed-size elements in. */
export type TypedTensorArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array
  | BigUint64Array | BigInt64Array | Float32Array | Float64Array;

interface TypedArrayClass {
  readonly BYTES_PER_ELEMENT: number;
  readonly name: string;
  new (length: number): TypedTensorArray;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedTensorArray;
}

/** The typed array class that holds each fixed-size datatype (BOOL as 0/1 bytes, FP16/BF16 as raw bits). */
export const TYPED_ARRAY_OF: Readonly<Record<FixedDataType, TypedArrayClass>> = {
  BOOL: Uint8Array, UINT8: Uint8Array, INT8: Int8Array,
  UINT16: Uint16Array, INT16: Int16Array, FP16: Uint16Array, BF16: Uint16Array,
  UINT32: Uint32Array, INT32: Int32Array, FP32: Float32Array,
  UINT64: BigUint64Array, INT64: BigInt64Array, FP64: Float64Array,
};

/** Whether a value names a KServe v2 datatype. */
export function isDataType(value: unknown): value is DataType {
  return typeof value === 'string' && (DATA_TYPES as readonly string[]).includes(value);
}

/** Whether the datatype holds integers (BOOL excluded). */
export function isIntegerType(datatype: DataType): boolean {
  return datatype.startsWith('INT') || datatype.startsWith('UINT');
}

/** Whether the datatype is a 64-bit integer, held as bigint. */
export function isBigIntType(datatype: DataType): datatype is 'INT64' | 'UINT64' {
  return datatype === 'INT64' || datatype === 'UINT64';
}

/**
 * A typed array over little-endian element bytes. It is a view when the bytes
 * are aligned for the element size, and a copy when they are not (typed
 * arrays need aligned offsets). Assumes a little-endian host, as every
 * platform Node runs on is.
 */
export function typedArrayFromBytes(datatype: FixedDataType, bytes: Uint8Array): TypedTensorArray {
  const Typed = TYPED_ARRAY_OF[datatype];
  const size = Typed.BYTES_PER_ELEMENT;
  if (bytes.byteLength % size !== 0) {
    throw new RangeError(`${datatype} data of ${bytes.byteLength} bytes is not a whole number of ${size}-byte elements`);
  }
  const aligned = bytes.byteOffset % size === 0 ? bytes : new Uint8Array(bytes);
  return new Typed(aligned.buffer, aligned.byteOffset, aligned.byteLength / size);
}

/** The element bytes of a typed array, as a view (no copy). */
export function bytesOfTypedArray(array: TypedTensorArray): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}
