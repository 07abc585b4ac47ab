/**
 * An input's InferTensorContents, read off the wire by the server itself.
 * protobufjs would turn each element of a repeated field into a JS number
 * (8+ bytes of heap, plus array growth), a Long object (int64, uint64) or a
 * Buffer (bytes): tens of bytes of heap for an element that costs one or
 * two on the wire, so a 64 MiB message of packed int64 zeros took 4.4 GB
 * and stalled the process for 42 s. Here the elements are counted first,
 * without allocating, so that a count that disagrees with the shape is
 * refused before any memory is taken; then they are read once into the
 * tensor's little-endian bytes at the datatype's width. Both passes work
 * in chunks that give the event loop back (LoopSlice).
 *
 * Proto3 parsers must take repeated scalars packed or unpacked, and a
 * message field given more than once merges (its repeated fields
 * concatenate), so an input's contents are the list of every `contents`
 * occurrence, read in order, each holding packed and unpacked runs.
 */
import { serverError, quoted } from '../../engine/errors.ts';
import { elementByteSize, type DataType, type FixedDataType } from '../../engine/tensor.ts';
import { CHUNK_BYTES, type LoopSlice } from './loop-slice.ts';
import { malformed, WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, WireReader, type Span } from './wire-reader.ts';

/** One input's contents as they lie in the message: every occurrence of its `contents` field, in order. */
export interface ContentsWire {
  readonly message: Uint8Array;
  readonly spans: readonly Span[];
}

/** InferTensorContents' fields; field number = index + 1 (proto/grpc_service.proto). */
export const CONTENTS_FIELDS = [
  'bool_contents', 'int_contents', 'int64_contents', 'uint_contents', 'uint64_contents', 'fp32_contents', 'fp64_contents', 'bytes_contents',
] as const;
export type ContentsField = (typeof CONTENTS_FIELDS)[number];

const BYTES_FIELD = 8;
/** The wire type of one unpacked element, by field number. */
const ELEMENT_WIRE_TYPE = [-1, WIRE_VARINT, WIRE_VARINT, WIRE_VARINT, WIRE_VARINT, WIRE_VARINT, WIRE_I32, WIRE_I64, WIRE_LEN];
/** Bytes per element of the fixed-width fields (fp32, fp64), by field number; 0 for varints. */
const FIXED_WIDTH = [0, 0, 0, 0, 0, 0, 4, 8, 0];

const MESSAGE = 'InferTensorContents';

/** Elements per contents field (only those with any), and the data bytes of bytes_contents. */
export interface ContentsCount {
  readonly elements: ReadonlyMap<ContentsField, number>;
  readonly bytesContentsBytes: number;
}

interface Visitor {
  /** One element of field `number` written on its own (unpacked), at reader.at; reads past it. */
  one(number: number, reader: WireReader): void;
  /** Elements of packed field `number` from reader.at, until reader.at reaches `stop` (or reader.end). */
  packed(number: number, reader: WireReader, stop: number): void;
}

/** Visits every element of the known fields in order, giving the event loop back between chunks. */
async function walk(contents: ContentsWire, visitor: Visitor, slice: LoopSlice): Promise<void> {
  for (const span of contents.spans) {
    const reader = new WireReader(contents.message, span.start, span.end, MESSAGE);
    let looked = reader.at;
    while (!reader.done) {
      const tag = reader.varint();
      const number = Math.floor(tag / 8);
      const wireType = tag % 8;
      if (number < 1 || number > BYTES_FIELD) {
        reader.skip(wireType);
      } else if (wireType === WIRE_LEN && number !== BYTES_FIELD) {
        const { start, end } = reader.span();
        const packed = new WireReader(contents.message, start, end, MESSAGE);
        while (!packed.done) {
          visitor.packed(number, packed, Math.min(end, packed.at + CHUNK_BYTES));
          await slice.pauseIfDue();
        }
      } else if (wireType === ELEMENT_WIRE_TYPE[number]) {
        visitor.one(number, reader);
      } else {
        throw malformed(MESSAGE, `${CONTENTS_FIELDS[number - 1]} has wire type ${wireType}, which that field never uses`);
      }
      if (reader.at - looked >= CHUNK_BYTES) {
        looked = reader.at;
        await slice.pauseIfDue();
      }
    }
  }
}

/**
 * Counts each field's elements without allocating anything per element.
 * bytes_contents is counted only up to `maxBytesElements`: one more entry
 * refuses the input (BYTES_ELEMENTS_LIMIT), however many the message holds.
 */
export async function countContents(contents: ContentsWire, name: string, maxBytesElements: number, slice: LoopSlice): Promise<ContentsCount> {
  const counts = new Array<number>(BYTES_FIELD + 1).fill(0);
  let bytesContentsBytes = 0;
  await walk(contents, {
    one(number, reader) {
      if (number === BYTES_FIELD) {
        if (counts[number]! >= maxBytesElements) throw serverError('BYTES_ELEMENTS_LIMIT', { tensor: name, limit: maxBytesElements });
        const { start, end } = reader.span();
        bytesContentsBytes += end - start;
      } else {
        reader.skip(ELEMENT_WIRE_TYPE[number]!);
      }
      counts[number]!++;
    },
    packed(number, reader, stop) {
      const width = FIXED_WIDTH[number]!;
      if (width > 0) {
        const length = reader.end - reader.at;
        if (length % width !== 0) throw malformed(MESSAGE, `packed ${CONTENTS_FIELDS[number - 1]} holds ${length} bytes, not a whole number of ${width}-byte values`);
        counts[number]! += length / width;
        reader.at = reader.end;
        return;
      }
      let n = 0;
      while (reader.at < stop) {
        reader.skipVarint();
        n++;
      }
      counts[number]! += n;
    },
  }, slice);
  const elements = new Map<ContentsField, number>();
  CONTENTS_FIELDS.forEach((field, i) => {
    if (counts[i + 1]! > 0) elements.set(field, counts[i + 1]!);
  });
  return { elements, bytesContentsBytes };
}

/** Which field carries each datatype's elements; FP16 and BF16 have none. */
export const CONTENTS_FIELD_OF: Readonly<Record<DataType, ContentsField | undefined>> = {
  BOOL: 'bool_contents',
  INT8: 'int_contents', INT16: 'int_contents', INT32: 'int_contents',
  INT64: 'int64_contents',
  UINT8: 'uint_contents', UINT16: 'uint_contents', UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  FP32: 'fp32_contents', FP64: 'fp64_contents',
  FP16: undefined, BF16: undefined,
  BYTES: 'bytes_contents',
};

/** Integer ranges checked for the narrow types, so an out-of-range value is refused, not wrapped. */
const INT_RANGE: Partial<Record<DataType, readonly [number, number]>> = {
  INT8: [-128, 127], INT16: [-32768, 32767],
  UINT8: [0, 255], UINT16: [0, 65535],
};

/** Stores element i from a varint's low 32 bits (unsigned) and high 32 bits. */
type Store = (i: number, low: number, high: number) => void;

/** How each varint datatype lands in the tensor's bytes. */
function varintStore(name: string, datatype: FixedDataType, raw: Uint8Array): Store {
  const range = INT_RANGE[datatype];
  const checked = (write: (i: number, value: number) => void, signed: boolean): Store => (i, low) => {
    const value = signed ? low | 0 : low;
    if (range && (value < range[0] || value > range[1])) {
      throw serverError('BAD_REQUEST', { detail: `input '${quoted(name)}': element ${i} is ${value}, outside the ${datatype} range ${range[0]}..${range[1]}` });
    }
    write(i, value);
  };
  switch (datatype) {
    case 'BOOL': return (i, low, high) => { raw[i] = (low | high) === 0 ? 0 : 1; };
    case 'INT8': return checked((i, v) => { raw[i] = v & 0xff; }, true);
    case 'UINT8': return checked((i, v) => { raw[i] = v; }, false);
    case 'INT16':
    case 'UINT16': {
      const view = new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2);
      return checked((i, v) => { view[i] = v & 0xffff; }, datatype === 'INT16');
    }
    case 'INT32':
    case 'UINT32': {
      const view = new Uint32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
      return (i, low) => { view[i] = low; };
    }
    default: {
      const view = new Uint32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
      return (i, low, high) => {
        view[2 * i] = low;
        view[2 * i + 1] = high;
      };
    }
  }
}

/**
 * The elements of `datatype`'s field as the tensor's little-endian bytes
 * (`count` of them, as countContents found). int32 and int64 are plain
 * varints (negative values are ten bytes, sign-extended), bool is any
 * varint (non-zero is true), fp32 and fp64 are copied bit for bit (NaN
 * payloads included).
 */
export async function readFixedContents(contents: ContentsWire, name: string, datatype: FixedDataType, count: number, slice: LoopSlice): Promise<Uint8Array> {
  const field = CONTENTS_FIELDS.indexOf(CONTENTS_FIELD_OF[datatype]!) + 1;
  const width = elementByteSize(datatype)!;
  const raw = new Uint8Array(count * width);
  const message = contents.message;
  let index = 0;
  if (FIXED_WIDTH[field]! > 0) {
    const copy = (from: number, to: number): void => {
      raw.set(message.subarray(from, to), index * width);
      index += (to - from) / width;
    };
    await walk(contents, {
      one(number, reader) {
        const start = reader.at;
        reader.skip(ELEMENT_WIRE_TYPE[number]!);
        if (number === field) copy(start, reader.at);
      },
      packed(number, reader, stop) {
        const start = reader.at;
        // Chunks are a multiple of 8 bytes and countContents checked the length, so `stop` falls between elements.
        reader.at = number === field ? stop : reader.end;
        if (number === field) copy(start, reader.at);
      },
    }, slice);
    return raw;
  }
  const store = varintStore(name, datatype, raw);
  await walk(contents, {
    one(number, reader) {
      if (number !== field) {
        reader.skip(ELEMENT_WIRE_TYPE[number]!);
        return;
      }
      const low = reader.varint64();
      store(index++, low, reader.high);
    },
    packed(number, reader, stop) {
      if (number !== field) {
        reader.at = reader.end;
        return;
      }
      while (reader.at < stop) {
        const low = reader.varint64();
        store(index++, low, reader.high);
      }
    },
  }, slice);
  return raw;
}

/** The bytes_contents entries in the length-prefixed wire form (`count` of them, `bytes` of data, as countContents found). */
export async function readBytesContents(contents: ContentsWire, count: number, bytes: number, slice: LoopSlice): Promise<Uint8Array> {
  const wire = Buffer.alloc(count * 4 + bytes);
  const message = contents.message;
  let at = 0;
  await walk(contents, {
    one(number, reader) {
      if (number !== BYTES_FIELD) {
        reader.skip(ELEMENT_WIRE_TYPE[number]!);
        return;
      }
      const { start, end } = reader.span();
      wire.writeUInt32LE(end - start, at);
      wire.set(message.subarray(start, end), at + 4);
      at += 4 + end - start;
    },
    packed(_number, reader) {
      reader.at = reader.end;
    },
  }, slice);
  return new Uint8Array(wire.buffer, wire.byteOffset, wire.byteLength);
}
