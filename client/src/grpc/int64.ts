/**
 * 64-bit integers in protobufjs messages. Decoding gives Long objects (or
 * numbers); encoding takes any object with 32-bit `low` and `high` words.
 * These keep every value exact through bigint.
 */

/** A 64-bit integer as protobufjs reads or writes it. */
export type Int64 = { readonly low: number; readonly high: number; readonly unsigned?: boolean } | number;

/** The exact value of a decoded 64-bit integer. */
export function int64ToBigInt(value: Int64, unsigned: boolean): bigint {
  if (typeof value === 'number') return BigInt(value);
  const bits = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
  return unsigned ? bits : BigInt.asIntN(64, bits);
}

/** A decoded 64-bit integer as a number (exact up to 2^53). */
export function int64ToNumber(value: Int64, unsigned = false): number {
  return typeof value === 'number' ? value : Number(int64ToBigInt(value, unsigned));
}

/** A bigint as the low/high words protobufjs writes. */
export function bigIntToInt64(value: bigint): Int64 {
  const bits = BigInt.asUintN(64, value);
  return { low: Number(bits & 0xffffffffn) | 0, high: Number(bits >> 32n) | 0 };
}
