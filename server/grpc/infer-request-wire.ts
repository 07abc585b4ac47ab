/**
 * Looks at a ModelInferRequest's wire bytes without protobufjs decoding it.
 * protobufjs turns every `bytes_contents` entry into a Buffer object of its
 * own, about a hundred bytes of heap for an entry that costs two on the
 * wire, so a message of millions of empty entries would take gigabytes
 * before any of our code saw it. This scan counts each input's entries
 * without decoding them and stops at the limit, so its work is bounded by
 * the limit, not by the message.
 */
import { serverError } from '../../engine/errors.ts';
import type { PackedBytesContents } from './infer-codec.ts';

/** Field numbers from proto/grpc_service.proto. */
const REQUEST_ID = 3;
const REQUEST_INPUTS = 5;
const INPUT_NAME = 1;
const INPUT_CONTENTS = 5;
const CONTENTS_BYTES = 8;

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

class Reader {
  constructor(private readonly bytes: Uint8Array, public at: number, readonly end: number) {}

  get done(): boolean {
    return this.at >= this.end;
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.end) throw malformed();
      const byte = this.bytes[this.at++]!;
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return value;
      scale *= 128;
    }
    throw malformed();
  }

  /** Skips a field's value; for a length-delimited one, returns where its bytes start and end. */
  skip(wireType: number): { start: number; end: number } | undefined {
    switch (wireType) {
      case WIRE_VARINT: this.varint(); return undefined;
      case WIRE_I64: this.advance(8); return undefined;
      case WIRE_I32: this.advance(4); return undefined;
      case WIRE_LEN: {
        const length = this.varint();
        const start = this.at;
        this.advance(length);
        return { start, end: this.at };
      }
      default: throw malformed();
    }
  }

  private advance(n: number): void {
    if (this.at + n > this.end) throw malformed();
    this.at += n;
  }
}

const malformed = (): Error => serverError('BAD_REQUEST', { detail: 'malformed ModelInferRequest message: a field runs past the end of the message' });

/**
 * Each input's contents.bytes_contents, read off the wire into the compact
 * length-prefixed form, by input index; refuses the message when one input
 * holds more than `limit` entries. The request is then decoded with a schema
 * that leaves bytes_contents out (grpcRequestType), so protobufjs skips
 * those entries instead of building an object for each.
 */
export function extractBytesContents(message: Uint8Array, limit: number): Map<number, PackedBytesContents> {
  const found = new Map<number, PackedBytesContents>();
  const request = new Reader(message, 0, message.byteLength);
  let index = -1;
  while (!request.done) {
    const tag = request.varint();
    const span = request.skip(tag % 8);
    if (Math.floor(tag / 8) !== REQUEST_INPUTS || !span) continue;
    index++;
    let name = '';
    const input = new Reader(message, span.start, span.end);
    while (!input.done) {
      const inputTag = input.varint();
      const field = input.skip(inputTag % 8);
      if (!field) continue;
      const number = Math.floor(inputTag / 8);
      if (number === INPUT_NAME) name = Buffer.from(message.buffer, message.byteOffset + field.start, Math.min(field.end - field.start, 200)).toString('utf8');
      if (number === INPUT_CONTENTS) {
        const packed = packBytesContents(message, field.start, field.end, name, limit);
        if (packed) found.set(index, packed);
      }
    }
  }
  return found;
}

/** The bytes_contents entries of one InferTensorContents: counted first (up to the limit), then copied once. */
function packBytesContents(message: Uint8Array, start: number, end: number, name: string, limit: number): PackedBytesContents | undefined {
  let count = 0;
  let bytes = 0;
  const contents = new Reader(message, start, end);
  while (!contents.done) {
    const tag = contents.varint();
    const span = contents.skip(tag % 8);
    if (Math.floor(tag / 8) !== CONTENTS_BYTES || !span) continue;
    if (++count > limit) throw serverError('BYTES_ELEMENTS_LIMIT', { tensor: name, limit });
    bytes += span.end - span.start;
  }
  if (count === 0) return undefined;
  const wire = Buffer.alloc(count * 4 + bytes);
  let at = 0;
  contents.at = start;
  while (!contents.done) {
    const tag = contents.varint();
    const span = contents.skip(tag % 8);
    if (Math.floor(tag / 8) !== CONTENTS_BYTES || !span) continue;
    wire.writeUInt32LE(span.end - span.start, at);
    wire.set(message.subarray(span.start, span.end), at + 4);
    at += 4 + span.end - span.start;
  }
  return { length: count, wire };
}

/** The request's id, read without decoding the rest ('' when unreadable): for a stream error about a message refused unread. */
export function peekRequestId(message: Uint8Array): string {
  try {
    const request = new Reader(message, 0, message.byteLength);
    while (!request.done) {
      const tag = request.varint();
      const span = request.skip(tag % 8);
      if (Math.floor(tag / 8) === REQUEST_ID && span) {
        return Buffer.from(message.buffer, message.byteOffset + span.start, span.end - span.start).toString('utf8');
      }
    }
  } catch {
    // A malformed message has no id to give.
  }
  return '';
}
