/**
 * A cursor over protobuf wire bytes, for the parts of a request the server
 * reads itself instead of letting protobufjs build an object per element
 * (tensor contents, the field budget, the request id). Every read checks
 * the end it was given, so a field that runs past its message, or a varint
 * longer than ten bytes, is refused as malformed rather than read past.
 */
import { serverError, type SwitchyardError } from '../../engine/errors.ts';

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** Where a length-delimited field's bytes start and end. */
export interface Span {
  readonly start: number;
  readonly end: number;
}

/** A message that cannot be read, in the words protobufjs failures are reported in. */
export function malformed(message: string, detail: string): SwitchyardError {
  return serverError('BAD_REQUEST', { detail: `malformed ${message} message: ${detail}` });
}

export class WireReader {
  /** The high 32 bits of the last varint64(); its low 32 bits are what it returned. */
  high = 0;

  constructor(readonly bytes: Uint8Array, public at: number, readonly end: number, readonly message = 'ModelInferRequest') {}

  get done(): boolean {
    return this.at >= this.end;
  }

  /** A varint as a number: exact for tags and lengths (up to 2^53). */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.end) throw this.truncated();
      const byte = this.bytes[this.at++]!;
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return value;
      scale *= 128;
    }
    throw this.overlong();
  }

  /** A varint's low 32 bits (unsigned), as protobuf reads int32, uint32 and bool; `high` gets the rest. */
  varint64(): number {
    const bytes = this.bytes;
    let low = 0;
    let high = 0;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.end) throw this.truncated();
      const byte = bytes[this.at++]!;
      if (i < 4) low |= (byte & 0x7f) << (7 * i);
      else if (i === 4) {
        low |= (byte & 0x0f) << 28;
        high = (byte & 0x7f) >>> 4;
      } else high |= (byte & 0x7f) << (7 * i - 32);
      if ((byte & 0x80) === 0) {
        this.high = high >>> 0;
        return low >>> 0;
      }
    }
    throw this.overlong();
  }

  /** Moves past one varint without reading its value. */
  skipVarint(): void {
    const stop = Math.min(this.end, this.at + 10);
    while (this.at < stop) {
      if ((this.bytes[this.at++]! & 0x80) === 0) return;
    }
    throw this.at === this.end ? this.truncated() : this.overlong();
  }

  /** Skips a field's value; for a length-delimited one, returns where its bytes start and end. */
  skip(wireType: number): Span | undefined {
    switch (wireType) {
      case WIRE_VARINT: this.skipVarint(); return undefined;
      case WIRE_I64: this.advance(8); return undefined;
      case WIRE_I32: this.advance(4); return undefined;
      case WIRE_LEN: return this.span();
      default: throw malformed(this.message, `wire type ${wireType} is not used by proto3 messages`);
    }
  }

  /** A length-delimited value: its length, then that many bytes. */
  span(): Span {
    const length = this.varint();
    const start = this.at;
    this.advance(length);
    return { start, end: this.at };
  }

  advance(n: number): void {
    if (n > this.end - this.at) throw this.truncated();
    this.at += n;
  }

  private truncated(): SwitchyardError {
    return malformed(this.message, 'a field runs past the end of the message');
  }

  private overlong(): SwitchyardError {
    return malformed(this.message, 'a varint is longer than 10 bytes');
  }
}
