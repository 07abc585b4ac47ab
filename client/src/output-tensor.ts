/**
 * A tensor from an inference response, with accessors that turn its data
 * into the JavaScript form the caller wants.
 */
import { isBigIntType, isIntegerType, type DataType, type TypedTensorArray } from './data-type.ts';
import { fromBfloat16Bits, fromFloat16Bits } from './float16.ts';
import type { Tensor, TensorData } from './tensor.ts';

const decoder = new TextDecoder();

/** A response tensor. Fixed-size data is a typed array (BOOL as 0/1 bytes); BYTES data is `Uint8Array[]`. */
export interface OutputTensor extends Tensor {
  /** The typed array (BOOL as `Uint8Array`). Throws a TypeError for BYTES. */
  typed(): Exclude<TensorData, readonly unknown[]>;
  /** Elements as numbers: FP16/BF16 decoded, INT64/UINT64 through `Number()` (may round), BOOL as 0/1. */
  numbers(): number[];
  /** Elements as bigints; integer datatypes only. */
  bigints(): bigint[];
  /** Elements UTF-8 decoded; BYTES only. */
  strings(): string[];
  /** Elements as byte strings; BYTES only. */
  bytes(): Uint8Array[];
  /** Elements as booleans; BOOL only. */
  booleans(): boolean[];
}

/** Builds response tensors from decoded data. */
export class ResponseTensor implements OutputTensor {
  readonly name: string;
  readonly datatype: DataType;
  readonly shape: readonly number[];
  readonly data: TypedTensorArray | readonly Uint8Array[];

  constructor(name: string, datatype: DataType, shape: readonly number[], data: TypedTensorArray | readonly Uint8Array[]) {
    this.name = name;
    this.datatype = datatype;
    this.shape = shape;
    this.data = data;
  }

  private only(what: string, allowed: (datatype: DataType) => boolean): void {
    if (!allowed(this.datatype)) throw new TypeError(`output '${this.name}' is ${this.datatype}; ${what}`);
  }

  private fixed(): TypedTensorArray {
    this.only('typed() is for fixed-size datatypes, use strings() or bytes() for BYTES', (t) => t !== 'BYTES');
    return this.data as TypedTensorArray;
  }

  typed(): TypedTensorArray {
    return this.fixed();
  }

  numbers(): number[] {
    const data = this.fixed();
    if (this.datatype === 'FP16') return Array.from(data as Uint16Array, fromFloat16Bits);
    if (this.datatype === 'BF16') return Array.from(data as Uint16Array, fromBfloat16Bits);
    if (isBigIntType(this.datatype)) return Array.from(data as BigInt64Array, Number);
    return Array.from(data as Float64Array);
  }

  bigints(): bigint[] {
    this.only('bigints() is for integer datatypes', isIntegerType);
    if (isBigIntType(this.datatype)) return Array.from(this.data as BigInt64Array);
    return Array.from(this.data as Int32Array, BigInt);
  }

  strings(): string[] {
    this.only('strings() is for BYTES', (t) => t === 'BYTES');
    return (this.data as readonly Uint8Array[]).map((e) => decoder.decode(e));
  }

  bytes(): Uint8Array[] {
    this.only('bytes() is for BYTES', (t) => t === 'BYTES');
    return [...(this.data as readonly Uint8Array[])];
  }

  booleans(): boolean[] {
    this.only('booleans() is for BOOL', (t) => t === 'BOOL');
    return Array.from(this.data as Uint8Array, (v) => v !== 0);
  }
}
