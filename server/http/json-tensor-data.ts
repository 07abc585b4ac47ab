/**
 * Tensor data in the JSON form of the v2 protocol: flat or nested arrays of
 * numbers, booleans or strings. Decoding checks every element's type and
 * range and names the input when one is wrong; encoding writes numbers
 * exactly (64-bit integers included) by building the JSON text directly.
 */
import { bytesStrings, bytesTensor } from '../../engine/bytes-tensor.ts';
import { quoted, serverError } from '../../engine/errors.ts';
import { quotedJson } from './exact-json.ts';
import {
  allocateTyped, bytesOf, fromBfloat16Bits, fromHalfBits, toBfloat16Bits, toHalfBits, typedView,
  type FixedDataType, type Tensor,
} from '../../engine/tensor.ts';


const INTEGER_RANGES: Readonly<Partial<Record<FixedDataType, readonly [number, number]>>> = {
  UINT8: [0, 0xff], UINT16: [0, 0xffff], UINT32: [0, 0xffffffff],
  INT8: [-0x80, 0x7f], INT16: [-0x8000, 0x7fff], INT32: [-0x80000000, 0x7fffffff],
};

const BIG_RANGES = {
  INT64: [-(2n ** 63n), 2n ** 63n - 1n], UINT64: [0n, 2n ** 64n - 1n],
} as const;

/**
 * How deeply JSON may nest, as in Triton (HTTP_MAX_JSON_NESTING_DEPTH): for
 * tensor `data`, the outer array and 99 levels inside it; for a control
 * body, the object and 99 levels inside it.
 */
export const MAX_JSON_NESTING = 100;

/** Flattens nested arrays in row-major order; deeper than MAX_JSON_NESTING is refused in Triton's words. */
export function flattenData(data: unknown): unknown[] {
  if (!Array.isArray(data)) return [data];
  if (!data.some(Array.isArray)) return data;
  const out: unknown[] = [];
  const stack: Array<{ items: unknown[]; index: number }> = [{ items: data, index: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.index >= top.items.length) { stack.pop(); continue; }
    const item = top.items[top.index++];
    if (Array.isArray(item)) {
      if (stack.length >= MAX_JSON_NESTING) throw new Error(`JSON nesting depth exceeds maximum allowed limit (${MAX_JSON_NESTING})`);
      stack.push({ items: item, index: 0 });
    } else {
      out.push(item);
    }
  }
  return out;
}

const bad = (input: string, index: number, value: unknown, want: string): Error =>
  serverError('UNPARSABLE_FIELD', {
    field: 'data',
    detail: `element ${index} of input '${quoted(input)}' is ${quotedJson(value)}, expected ${want}`,
  });

/** Builds a tensor from already flattened JSON values, whose count the caller has checked. */
export function tensorFromJson(name: string, datatype: Tensor['datatype'], shape: readonly number[], values: readonly unknown[]): Tensor {
  if (datatype === 'BYTES') {
    values.forEach((v, i) => {
      if (typeof v !== 'string') throw bad(name, i, v, 'a string');
    });
    return bytesTensor(name, shape, values as readonly string[]);
  }
  const typed = allocateTyped(datatype, values.length);
  if (datatype === 'BOOL') {
    values.forEach((v, i) => {
      if (typeof v !== 'boolean') throw bad(name, i, v, 'true or false');
      typed[i] = v ? 1 : 0;
    });
  } else if (datatype === 'FP32' || datatype === 'FP64') {
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== 'number' && typeof v !== 'bigint') throw bad(name, i, v, 'a number');
      typed[i] = Number(v);
    }
  } else if (datatype === 'FP16' || datatype === 'BF16') {
    const toBits = datatype === 'FP16' ? toHalfBits : toBfloat16Bits;
    values.forEach((v, i) => {
      if (typeof v !== 'number' && typeof v !== 'bigint') throw bad(name, i, v, 'a number');
      typed[i] = toBits(Number(v));
    });
  } else if (datatype === 'INT64' || datatype === 'UINT64') {
    // Integers past 2^53 arrive as bigints (parseJsonExact), so the whole 64-bit range is exact.
    const [min, max] = BIG_RANGES[datatype];
    values.forEach((v, i) => {
      const big = typeof v === 'bigint' ? v : typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : undefined;
      if (big === undefined || big < min || big > max) throw bad(name, i, v, `an integer in ${datatype} range [${min}, ${max}]`);
      typed[i] = big;
    });
  } else {
    const [min, max] = INTEGER_RANGES[datatype]!;
    values.forEach((v, i) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
        throw bad(name, i, v, `an integer in ${datatype} range [${min}, ${max}]`);
      }
      typed[i] = v;
    });
  }
  return { name, datatype, shape, raw: bytesOf(typed) };
}

/** The JSON text of a tensor's data as a flat array. */
export function tensorDataJson(tensor: Tensor): string {
  if (tensor.datatype === 'BYTES') {
    return `[${bytesStrings(tensor).map((e) => JSON.stringify(e)).join(',')}]`;
  }
  const view = typedView(tensor.datatype, tensor.raw);
  switch (tensor.datatype) {
    case 'BOOL':
      return `[${Array.from(view as Uint8Array, (v) => (v ? 'true' : 'false')).join(',')}]`;
    case 'FP16':
    case 'BF16': {
      const fromBits = tensor.datatype === 'FP16' ? fromHalfBits : fromBfloat16Bits;
      return `[${Array.from(view as Uint16Array, (v) => finite(fromBits(v))).join(',')}]`;
    }
    case 'FP32':
    case 'FP64': {
      const floats = view as Float32Array | Float64Array;
      // A typed array's join writes each number as String() does; only NaN and the infinities need the slow path.
      for (let i = 0; i < floats.length; i++) if (!Number.isFinite(floats[i])) return `[${Array.from(floats, finite).join(',')}]`;
      return `[${floats.join(',')}]`;
    }
    default:
      return `[${view.join(',')}]`;
  }
}

/** JSON has no NaN or Infinity; they are written as null. */
function finite(v: number): string {
  return Number.isFinite(v) ? String(v) : 'null';
}
