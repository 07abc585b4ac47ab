/**
 * ModelInferResponse and ModelStreamInferResponse written straight to wire
 * bytes from an engine response, in one buffer of the exact size. It is the
 * hot path of every inference reply, and protobufjs would first need the
 * response as a plain object tree (encodeModelInferResponse), then grow its
 * writer op by op. The bytes are the ones protobufjs writes for that object,
 * field for field (test/server/grpc/infer-response-wire.test.ts compares
 * them): fields in number order, proto3 defaults (empty strings) left out
 * except in a oneof or a map key, strings in its UTF-8 (its own encoder for
 * strings under 40 characters, Buffer's otherwise), 64-bit integers as its
 * LongBits makes them, packed shapes.
 */
import protobuf from 'protobufjs';
import type { InferenceResponse } from '../../engine/inference-response.ts';
import type { ParameterValue } from '../../engine/inference-request.ts';
import { FINAL_RESPONSE_PARAMETER, parameterMessage, type ParameterMessage } from './infer-codec.ts';

const utf8 = protobuf.util.utf8;

/** Field tags (field number << 3 | wire type) of the messages written here; all fit one byte. */
const TAG_MODEL_NAME = 10;
const TAG_MODEL_VERSION = 18;
const TAG_ID = 26;
const TAG_PARAMETERS = 34;
const TAG_OUTPUTS = 42;
const TAG_RAW_OUTPUT = 50;
const TAG_MAP_KEY = 10;
const TAG_MAP_VALUE = 18;
const TAG_OUTPUT_NAME = 10;
const TAG_OUTPUT_DATATYPE = 18;
const TAG_OUTPUT_SHAPE = 26;
const TAG_STREAM_INFER_RESPONSE = 18;
const TAG_BOOL_PARAM = 8;
const TAG_INT64_PARAM = 16;
const TAG_STRING_PARAM = 26;
const TAG_DOUBLE_PARAM = 33;
const TAG_UINT64_PARAM = 40;

const NO_NAMES: ReadonlySet<string> = new Set();
const EMPTY = new Uint8Array(0);

function varint32Size(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : value < 0x10000000 ? 4 : 5;
}

/** The low and high words protobufjs's LongBits.from gives a number or a {low, high} pair. */
let longLow = 0;
let longHigh = 0;
function longBits(value: number | { readonly low: number; readonly high: number }): void {
  if (typeof value !== 'number') {
    longLow = value.low >>> 0;
    longHigh = value.high >>> 0;
    return;
  }
  if (value === 0) {
    longLow = 0;
    longHigh = 0;
    return;
  }
  const negative = value < 0;
  const magnitude = negative ? -value : value;
  let lo = magnitude >>> 0;
  let hi = (magnitude - lo) / 4294967296 >>> 0;
  if (negative) {
    hi = ~hi >>> 0;
    lo = ~lo >>> 0;
    if (++lo > 4294967295) {
      lo = 0;
      if (++hi > 4294967295) hi = 0;
    }
  }
  longLow = lo;
  longHigh = hi;
}

function varint64Size(lo: number, hi: number): number {
  if (hi === 0) return varint32Size(lo);
  // Bits above the low 28 go in groups of seven: the high word plus the low word's top four bits.
  const rest = (hi * 16 + (lo >>> 28));
  return rest < 0x80 ? 5 : rest < 0x4000 ? 6 : rest < 0x200000 ? 7 : rest < 0x10000000 ? 8 : rest < 0x800000000 ? 9 : 10;
}

function stringField(length: number): number {
  return 1 + varint32Size(length) + length;
}

/** A singular proto3 string field: nothing at all when empty. */
function optionalStringField(length: number): number {
  return length === 0 ? 0 : stringField(length);
}

class WireWriter {
  at = 0;

  constructor(readonly buf: Buffer) {}

  byte(value: number): void {
    this.buf[this.at++] = value;
  }

  varint32(value: number): void {
    while (value > 127) {
      this.buf[this.at++] = (value & 127) | 128;
      value >>>= 7;
    }
    this.buf[this.at++] = value;
  }

  varint64(lo: number, hi: number): void {
    const buf = this.buf;
    while (hi) {
      buf[this.at++] = (lo & 127) | 128;
      lo = (lo >>> 7 | hi << 25) >>> 0;
      hi >>>= 7;
    }
    while (lo > 127) {
      buf[this.at++] = (lo & 127) | 128;
      lo >>>= 7;
    }
    buf[this.at++] = lo;
  }

  /** A string of `length` UTF-8 bytes (as measured by utf8.length), written as protobufjs writes it. */
  string(tag: number, value: string, length: number): void {
    this.buf[this.at++] = tag;
    this.varint32(length);
    if (value.length < 40) utf8.write(value, this.buf, this.at);
    else this.buf.write(value, this.at, length, 'utf8');
    this.at += length;
  }

  /** A singular proto3 string field, left out when empty. */
  optionalString(tag: number, value: string, length: number): void {
    if (length > 0) this.string(tag, value, length);
  }

  bytes(tag: number, value: Uint8Array): void {
    this.buf[this.at++] = tag;
    this.varint32(value.byteLength);
    this.buf.set(value, this.at);
    this.at += value.byteLength;
  }
}

/** One InferParameter message: its size, then its bytes. */
function parameterSize(message: ParameterMessage): number {
  if (message.bool_param !== undefined) return 2;
  if (message.string_param !== undefined) return stringField(utf8.length(message.string_param));
  if (message.double_param !== undefined) return 9;
  longBits((message.int64_param ?? message.uint64_param)!);
  return 1 + varint64Size(longLow, longHigh);
}

function writeParameter(writer: WireWriter, message: ParameterMessage): void {
  if (message.bool_param !== undefined) {
    writer.byte(TAG_BOOL_PARAM);
    writer.byte(message.bool_param ? 1 : 0);
  } else if (message.string_param !== undefined) {
    writer.string(TAG_STRING_PARAM, message.string_param, utf8.length(message.string_param));
  } else if (message.double_param !== undefined) {
    writer.byte(TAG_DOUBLE_PARAM);
    writer.buf.writeDoubleLE(message.double_param, writer.at);
    writer.at += 8;
  } else {
    const int64 = message.int64_param !== undefined;
    longBits((int64 ? message.int64_param : message.uint64_param)!);
    writer.byte(int64 ? TAG_INT64_PARAM : TAG_UINT64_PARAM);
    writer.varint64(longLow, longHigh);
  }
}

/** A parameters map entry: key and InferParameter, as protobufjs lays out a map<string, message> entry. */
interface ParameterEntry {
  readonly key: string;
  readonly keyLength: number;
  readonly value: ParameterMessage;
  readonly valueLength: number;
  readonly entryLength: number;
}

function parameterEntry(key: string, value: ParameterMessage): ParameterEntry {
  const keyLength = utf8.length(key);
  const valueLength = parameterSize(value);
  return { key, keyLength, value, valueLength, entryLength: stringField(keyLength) + 1 + varint32Size(valueLength) + valueLength };
}

/**
 * The response's parameters as map entries, in the order the object
 * protobufjs would get lists them; `final` (a stream response's
 * triton_final_response) takes the place of a parameter of that name, or
 * comes last, as an object spread puts it.
 */
/** triton_final_response's entries, the same for every stream response. */
const FINAL_ENTRIES = [parameterEntry(FINAL_RESPONSE_PARAMETER, { bool_param: false }), parameterEntry(FINAL_RESPONSE_PARAMETER, { bool_param: true })] as const;
const FINAL_ONLY = [[FINAL_ENTRIES[0]], [FINAL_ENTRIES[1]]] as const;

function parameterEntries(parameters: Readonly<Record<string, ParameterValue>> | undefined, final: boolean | undefined): readonly ParameterEntry[] {
  if (parameters === undefined) return final === undefined ? [] : FINAL_ONLY[final ? 1 : 0];
  const entries: ParameterEntry[] = [];
  let finalWritten = false;
  for (const key of Object.keys(parameters)) {
    if (final !== undefined && key === FINAL_RESPONSE_PARAMETER) {
      entries.push(FINAL_ENTRIES[final ? 1 : 0]);
      finalWritten = true;
    } else entries.push(parameterEntry(key, parameterMessage(parameters[key]!)));
  }
  if (final !== undefined && !finalWritten) entries.push(FINAL_ENTRIES[final ? 1 : 0]);
  return entries;
}

/** The byte lengths one response needs, measured once and used by the write. */
interface Measured {
  readonly nameLength: number;
  readonly versionLength: number;
  readonly id: string;
  readonly idLength: number;
  readonly parameters: readonly ParameterEntry[];
  /** Per output: name length, datatype length, packed shape length, message length. */
  readonly outputLengths: readonly number[];
  readonly raw: readonly Uint8Array[];
  readonly size: number;
}

function measure(response: InferenceResponse, inSharedMemory: ReadonlySet<string>, final: boolean | undefined): Measured {
  const nameLength = utf8.length(response.modelName);
  const versionLength = utf8.length(response.modelVersion);
  const id = response.id ?? '';
  const idLength = utf8.length(id);
  let size = optionalStringField(nameLength) + optionalStringField(versionLength) + optionalStringField(idLength);
  const parameters = parameterEntries(response.parameters, final);
  for (const entry of parameters) size += 1 + varint32Size(entry.entryLength) + entry.entryLength;
  const outputs = response.outputs;
  const outputLengths: number[] = [];
  const raw: Uint8Array[] = [];
  for (let i = 0; i < outputs.length; i++) {
    const tensor = outputs[i]!;
    const outputNameLength = utf8.length(tensor.name);
    const datatypeLength = tensor.datatype.length;
    let shapeLength = 0;
    for (const dim of tensor.shape) {
      longBits(dim);
      shapeLength += varint64Size(longLow, longHigh);
    }
    const messageLength = optionalStringField(outputNameLength) + optionalStringField(datatypeLength)
      + (tensor.shape.length > 0 ? 1 + varint32Size(shapeLength) + shapeLength : 0);
    outputLengths.push(outputNameLength, datatypeLength, shapeLength, messageLength);
    size += 1 + varint32Size(messageLength) + messageLength;
    // An output in shared memory keeps its (empty) entry, so entries still line up with outputs, as in Triton.
    const data = inSharedMemory.has(tensor.name) ? EMPTY : tensor.raw;
    raw.push(data);
    size += 1 + varint32Size(data.byteLength) + data.byteLength;
  }
  return { nameLength, versionLength, id, idLength, parameters, outputLengths, raw, size };
}

function writeInferResponse(writer: WireWriter, response: InferenceResponse, measured: Measured): void {
  writer.optionalString(TAG_MODEL_NAME, response.modelName, measured.nameLength);
  writer.optionalString(TAG_MODEL_VERSION, response.modelVersion, measured.versionLength);
  writer.optionalString(TAG_ID, measured.id, measured.idLength);
  for (const entry of measured.parameters) {
    writer.byte(TAG_PARAMETERS);
    writer.varint32(entry.entryLength);
    writer.string(TAG_MAP_KEY, entry.key, entry.keyLength);
    writer.byte(TAG_MAP_VALUE);
    writer.varint32(entry.valueLength);
    writeParameter(writer, entry.value);
  }
  const lengths = measured.outputLengths;
  response.outputs.forEach((tensor, i) => {
    writer.byte(TAG_OUTPUTS);
    writer.varint32(lengths[i * 4 + 3]!);
    writer.optionalString(TAG_OUTPUT_NAME, tensor.name, lengths[i * 4]!);
    writer.optionalString(TAG_OUTPUT_DATATYPE, tensor.datatype, lengths[i * 4 + 1]!);
    if (tensor.shape.length > 0) {
      writer.byte(TAG_OUTPUT_SHAPE);
      writer.varint32(lengths[i * 4 + 2]!);
      for (const dim of tensor.shape) {
        longBits(dim);
        writer.varint64(longLow, longHigh);
      }
    }
  });
  for (const data of measured.raw) writer.bytes(TAG_RAW_OUTPUT, data);
}

/**
 * The ModelInferResponse protobufjs writes for encodeModelInferResponse's
 * object: output data in raw_output_contents, one entry per output (empty
 * for those in `inSharedMemory`).
 */
export function modelInferResponseBytes(response: InferenceResponse, inSharedMemory: ReadonlySet<string> = NO_NAMES): Buffer {
  const measured = measure(response, inSharedMemory, undefined);
  const writer = new WireWriter(Buffer.allocUnsafe(measured.size));
  writeInferResponse(writer, response, measured);
  return writer.buf;
}

/**
 * The ModelStreamInferResponse protobufjs writes for encodeStreamResponse's
 * object of a response: the ModelInferResponse in infer_response, its
 * parameters with triton_final_response set to `final`.
 */
export function streamInferResponseBytes(response: InferenceResponse, final: boolean, inSharedMemory: ReadonlySet<string> = NO_NAMES): Buffer {
  const measured = measure(response, inSharedMemory, final);
  const writer = new WireWriter(Buffer.allocUnsafe(1 + varint32Size(measured.size) + measured.size));
  writer.byte(TAG_STREAM_INFER_RESPONSE);
  writer.varint32(measured.size);
  writeInferResponse(writer, response, measured);
  return writer.buf;
}
