/**
 * IEEE half precision (FP16) and bfloat16 (BF16) conversions. Both travel as
 * 16-bit patterns; these turn the patterns into numbers and back, rounding
 * to nearest with ties to even as the hardware does.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The number an FP16 bit pattern stands for. */
export function fromFloat16Bits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : Number.NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** The FP16 bit pattern nearest to a number (overflow gives ±Infinity, NaN a quiet NaN). */
export function toFloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  // Rebias from FP32 (127) to FP16 (15).
  const e = exponent - 112;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal in FP16, or too small: shift the mantissa (with its implicit 1) into place and round.
    if (e < -10) return sign;
    const full = mantissa | 0x800000;
    const shift = 14 - e;
    const half = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    const roundUp = rest > midpoint || (rest === midpoint && (half & 1) === 1);
    return sign | (half + (roundUp ? 1 : 0));
  }
  const half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  const roundUp = rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1);
  // A carry out of the mantissa correctly bumps the exponent, up to Infinity.
  return sign | (half + (roundUp ? 1 : 0));
}

/** The number a BF16 bit pattern stands for (the top half of an FP32). */
export function fromBfloat16Bits(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

/** The BF16 bit pattern nearest to a number. */
export function toBfloat16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) & 0x8000) | 0x7fc0;
  const roundingBias = 0x7fff + ((x >>> 16) & 1);
  return ((x + roundingBias) >>> 16) & 0xffff;
}
