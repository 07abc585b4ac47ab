/**
 * Looks at a ModelInferRequest's wire bytes without protobufjs decoding it.
 * protobufjs decodes the request with a schema that leaves each input's
 * `contents` out (grpcRequestType) and skips it whole; the server reads
 * those contents itself (tensor-contents-wire.ts), so that millions of
 * elements never become millions of JS values. The walks here visit only
 * the request's and its inputs' fields, whose number checkFieldBudget has
 * already bounded.
 */
import type { ModelInferRequestMessage } from './infer-codec.ts';
import type { ContentsWire } from './tensor-contents-wire.ts';
import { WireReader, type Span } from './wire-reader.ts';

/** Field numbers from proto/grpc_service.proto. */
const REQUEST_ID = 3;
const REQUEST_INPUTS = 5;
const INPUT_CONTENTS = 5;

/** The spans of the length-delimited fields numbered `number` in message bytes [start, end), in order. */
function spansOf(message: Uint8Array, start: number, end: number, number: number): Span[] {
  const spans: Span[] = [];
  const reader = new WireReader(message, start, end);
  while (!reader.done) {
    const tag = reader.varint();
    const span = reader.skip(tag % 8);
    if (span && Math.floor(tag / 8) === number) spans.push(span);
  }
  return spans;
}

/** Each input's `contents` occurrences (protobuf merges repeated ones), by input index; inputs without any are left out. */
export function inputContents(message: Uint8Array): Map<number, ContentsWire> {
  const found = new Map<number, ContentsWire>();
  spansOf(message, 0, message.byteLength, REQUEST_INPUTS).forEach((input, index) => {
    const spans = spansOf(message, input.start, input.end, INPUT_CONTENTS);
    if (spans.length > 0) found.set(index, { message, spans });
  });
  return found;
}

/** Top-level fields peekRequestId looks through: a refused message may hold millions. */
const PEEK_FIELDS = 1024;

/**
 * The request's id, read without decoding the rest ('' when unreadable or
 * not among the first PEEK_FIELDS fields): for a stream error about a
 * message refused unread.
 */
export function peekRequestId(message: Uint8Array): string {
  try {
    const reader = new WireReader(message, 0, message.byteLength);
    for (let i = 0; i < PEEK_FIELDS && !reader.done; i++) {
      const tag = reader.varint();
      const span = reader.skip(tag % 8);
      if (span && Math.floor(tag / 8) === REQUEST_ID) {
        return Buffer.from(message.buffer, message.byteOffset + span.start, span.end - span.start).toString('utf8');
      }
    }
  } catch {
    // A malformed message has no id to give.
  }
  return '';
}

/** Thrown inside plainInferRequest where the message needs the full decode; never leaves it. */
const NOT_PLAIN = Symbol('not a plain ModelInferRequest');

/** A string field whose bytes are all ASCII (any other needs protobufjs's UTF-8 check), as text. */
function asciiField(reader: WireReader, bytes: Buffer): string {
  const { start, end } = reader.span();
  for (let i = start; i < end; i++) if (bytes[i]! >= 0x80) throw NOT_PLAIN;
  return bytes.toString('latin1', start, end);
}

/** A shape dim of at most five varint bytes below 2^32, as protobufjs's int64 would give it (a number, or low and high words). */
function shapeDim(reader: WireReader): number | { low: number; high: number } {
  const start = reader.at;
  const low = reader.varint64();
  if (reader.high !== 0 || reader.at - start > 5) throw NOT_PLAIN;
  return low <= 0x7fffffff ? low : { low: low | 0, high: 0 };
}

function plainInput(bytes: Buffer, start: number, end: number): { name?: string; datatype?: string; shape: (number | { low: number; high: number })[]; contents?: ContentsWire } {
  const input: { name?: string; datatype?: string; shape: (number | { low: number; high: number })[]; contents?: ContentsWire } = { shape: [] };
  let contents: Span[] | undefined;
  const reader = new WireReader(bytes, start, end);
  while (!reader.done) {
    switch (reader.varint()) {
      case 10: input.name = asciiField(reader, bytes); break;
      case 18: input.datatype = asciiField(reader, bytes); break;
      case 24: input.shape.push(shapeDim(reader)); break;
      case 26: {
        const span = reader.span();
        const packed = new WireReader(bytes, span.start, span.end);
        while (!packed.done) input.shape.push(shapeDim(packed));
        break;
      }
      case 42: (contents ??= []).push(reader.span()); break;
      default: throw NOT_PLAIN;
    }
  }
  if (contents) input.contents = { message: bytes, spans: contents };
  return input;
}

function plainOutput(bytes: Buffer, start: number, end: number): { name?: string } {
  const output: { name?: string } = {};
  const reader = new WireReader(bytes, start, end);
  while (!reader.done) {
    if (reader.varint() !== 10) throw NOT_PLAIN;
    output.name = asciiField(reader, bytes);
  }
  return output;
}

/**
 * The common ModelInferRequest read in one pass, as protobufjs and
 * inputContents together would read it: ASCII names, shapes below 2^32,
 * raw_input_contents as views of the message, inputs' contents as spans,
 * and no parameters anywhere. Undefined for any other message (parameters,
 * unknown fields, a malformed field, a message longer than `maxFields`
 * bytes), which then takes the full path with its field budget and its
 * error texts. A message no longer than `maxFields` bytes holds at most
 * that many values, so the budget has nothing to refuse here.
 */
export function plainInferRequest(bytes: Buffer, maxFields: number): ModelInferRequestMessage | undefined {
  if (bytes.byteLength > maxFields) return undefined;
  const inputs: ReturnType<typeof plainInput>[] = [];
  const outputs: { name?: string }[] = [];
  const raw: Buffer[] = [];
  const message: { model_name?: string; model_version?: string; id?: string; inputs: typeof inputs; outputs: typeof outputs; raw_input_contents: Buffer[] } = {
    inputs, outputs, raw_input_contents: raw,
  };
  try {
    const reader = new WireReader(bytes, 0, bytes.byteLength);
    while (!reader.done) {
      switch (reader.varint()) {
        case 10: message.model_name = asciiField(reader, bytes); break;
        case 18: message.model_version = asciiField(reader, bytes); break;
        case 26: message.id = asciiField(reader, bytes); break;
        case 42: {
          const { start, end } = reader.span();
          inputs.push(plainInput(bytes, start, end));
          break;
        }
        case 50: {
          const { start, end } = reader.span();
          outputs.push(plainOutput(bytes, start, end));
          break;
        }
        case 58: {
          const { start, end } = reader.span();
          raw.push(bytes.subarray(start, end));
          break;
        }
        default: return undefined;
      }
    }
  } catch {
    return undefined;
  }
  return message;
}
