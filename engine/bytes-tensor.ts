/**
 * BYTES tensors in compact form: the elements as they travel on the wire
 * (each a 4-byte little-endian length, then its bytes) in one buffer, plus
 * an index of where each element starts. An element costs its bytes plus 8
 * (4 of prefix, 4 of index) whatever its size, so a request of millions of
 * empty strings costs megabytes, not the gigabytes one object per element
 * did. Nothing here builds per-element objects except bytesStrings, which
 * the script and ONNX boundaries need and which is bounded by the element
 * limit the frontends apply (DEFAULT_MAX_BYTES_ELEMENTS).
 */
import { serverError } from './errors.ts';
import type { BytesTensor } from './tensor.ts';

/**
 * Elements one BYTES tensor of a request may hold (--max-bytes-elements).
 * Turning this many into strings for a model takes tens of milliseconds.
 */
export const DEFAULT_MAX_BYTES_ELEMENTS = 1_048_576;

/** Largest wire form an index of 32-bit offsets can address. */
const MAX_WIRE_BYTES = 0xffff_ffff;

/** Why a wire form could not be indexed; the message says where. */
export class BytesDataError extends Error {
  constructor(message: string, readonly overLimit = false) {
    super(message);
  }
}

/**
 * Indexes length-prefixed data: one entry per element (where its prefix
 * starts) and a last one, raw.byteLength. Stops with an error as soon as
 * the count passes `maxElements`, so the work is bounded by the limit, not
 * by what a client sent.
 */
export function indexBytes(raw: Uint8Array, maxElements = Number.MAX_SAFE_INTEGER): Uint32Array {
  if (raw.byteLength > MAX_WIRE_BYTES) throw new BytesDataError(`${raw.byteLength} bytes of BYTES data is more than one tensor can address (${MAX_WIRE_BYTES})`);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const end = raw.byteLength;
  // One pass to check and count, so that the index is allocated once at its exact size.
  let count = 0;
  let at = 0;
  while (at < end) {
    if (count === maxElements) throw new BytesDataError(`more than ${maxElements} elements`, true);
    if (at + 4 > end) throw new BytesDataError('element byte size indicator exceeds the end of the buffer');
    const length = view.getUint32(at, true);
    if (length > end - at - 4) throw new BytesDataError(`element ${count} claims ${length} bytes but only ${end - at - 4} remain`);
    at += 4 + length;
    count++;
  }
  const offsets = new Uint32Array(count + 1);
  at = 0;
  for (let i = 0; i < count; i++) {
    offsets[i] = at;
    at += 4 + view.getUint32(at, true);
  }
  offsets[count] = end;
  return offsets;
}

/** A BYTES tensor over length-prefixed data (a view, not a copy). Throws BytesDataError. */
export function bytesTensorFromWire(name: string, shape: readonly number[], raw: Uint8Array, maxElements?: number): BytesTensor {
  return { name, datatype: 'BYTES', shape, raw, offsets: indexBytes(raw, maxElements) };
}

/** Refuses a BYTES input of more elements than `limit`, before any of its data is looked at. */
export function checkBytesElementLimit(name: string, count: number, limit: number): void {
  if (count > limit) throw serverError('BYTES_ELEMENTS_LIMIT', { tensor: name, limit, got: count });
}

/**
 * A request's BYTES input from its length-prefixed data, as a catalogue
 * error naming the input when the data is malformed or holds more than
 * `limit` elements (found without reading past the limit).
 */
export function decodeBytesInput(name: string, shape: readonly number[], raw: Uint8Array, limit: number): BytesTensor {
  try {
    return bytesTensorFromWire(name, shape, raw, limit);
  } catch (err) {
    if (!(err instanceof BytesDataError)) throw err;
    if (err.overLimit) throw serverError('BYTES_ELEMENTS_LIMIT', { tensor: name, limit });
    throw serverError('BAD_REQUEST', { detail: `input '${name}': ${err.message}` });
  }
}

const utf8 = (text: string): number => Buffer.byteLength(text, 'utf8');

/** A BYTES tensor holding these elements: strings are written as UTF-8. */
export function bytesTensor(name: string, shape: readonly number[], elements: readonly (string | Uint8Array)[]): BytesTensor {
  let total = 0;
  for (const e of elements) total += 4 + (typeof e === 'string' ? utf8(e) : e.byteLength);
  if (total > MAX_WIRE_BYTES) throw new BytesDataError(`${total} bytes of BYTES data is more than one tensor can address (${MAX_WIRE_BYTES})`);
  const raw = Buffer.alloc(total);
  const offsets = new Uint32Array(elements.length + 1);
  let at = 0;
  elements.forEach((e, i) => {
    offsets[i] = at;
    const length = typeof e === 'string' ? raw.write(e, at + 4, 'utf8') : (raw.set(e, at + 4), e.byteLength);
    raw.writeUInt32LE(length, at);
    at += 4 + length;
  });
  offsets[elements.length] = at;
  return { name, datatype: 'BYTES', shape, raw: new Uint8Array(raw.buffer, raw.byteOffset, total), offsets };
}

/** `count` empty elements: zero-length prefixes only. */
export function emptyBytesTensor(name: string, shape: readonly number[], count: number): BytesTensor {
  const offsets = new Uint32Array(count + 1);
  for (let i = 0; i <= count; i++) offsets[i] = i * 4;
  return { name, datatype: 'BYTES', shape, raw: new Uint8Array(count * 4), offsets };
}

export function bytesElementCount(tensor: BytesTensor): number {
  return tensor.offsets.length - 1;
}

/** Element i's bytes, a view into the tensor's data. */
export function bytesElementAt(tensor: BytesTensor, index: number): Uint8Array {
  return tensor.raw.subarray(tensor.offsets[index]! + 4, tensor.offsets[index + 1]!);
}

/** Calls `visit` with each element's bytes (views), in order. */
export function forEachBytesElement(tensor: BytesTensor, visit: (element: Uint8Array, index: number) => void): void {
  const count = bytesElementCount(tensor);
  for (let i = 0; i < count; i++) visit(bytesElementAt(tensor, i), i);
}

/** The elements as UTF-8 strings: for the script and ONNX boundaries, which take string arrays. */
export function bytesStrings(tensor: BytesTensor): string[] {
  const raw = tensor.raw;
  const text = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const count = bytesElementCount(tensor);
  const out = new Array<string>(count);
  for (let i = 0; i < count; i++) {
    const start = tensor.offsets[i]! + 4;
    const end = tensor.offsets[i + 1]!;
    out[i] = start === end ? '' : text.toString('utf8', start, end);
  }
  return out;
}

/** The elements of several tensors, in order, as one tensor named `name` of `shape` (copies the data once). */
export function concatBytesTensors(name: string, shape: readonly number[], parts: readonly BytesTensor[]): BytesTensor {
  if (parts.length === 1) return { ...parts[0]!, name, shape };
  let total = 0;
  let count = 0;
  for (const part of parts) {
    total += part.raw.byteLength;
    count += bytesElementCount(part);
  }
  if (total > MAX_WIRE_BYTES) throw new BytesDataError(`${total} bytes of BYTES data is more than one tensor can address (${MAX_WIRE_BYTES})`);
  const raw = new Uint8Array(total);
  const offsets = new Uint32Array(count + 1);
  let at = 0;
  let element = 0;
  for (const part of parts) {
    raw.set(part.raw, at);
    const n = bytesElementCount(part);
    const base = part.offsets[0]!;
    for (let i = 0; i < n; i++) offsets[element++] = part.offsets[i]! - base + at;
    at += part.raw.byteLength;
  }
  offsets[count] = total;
  return { name, datatype: 'BYTES', shape, raw, offsets };
}

/** Elements [from, to) as a tensor of `shape`: a view of the data, with its own small index. */
export function sliceBytesTensor(tensor: BytesTensor, from: number, to: number, shape: readonly number[]): BytesTensor {
  const start = tensor.offsets[from]!;
  const end = tensor.offsets[to]!;
  const offsets = tensor.offsets.slice(from, to + 1);
  for (let i = 0; i < offsets.length; i++) offsets[i] = offsets[i]! - start;
  return { name: tensor.name, datatype: 'BYTES', shape, raw: tensor.raw.subarray(start, end), offsets };
}
