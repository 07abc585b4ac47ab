/**
 * Looks at a ModelInferRequest's wire bytes without protobufjs decoding it.
 * protobufjs decodes the request with a schema that leaves each input's
 * `contents` out (grpcRequestType) and skips it whole; the server reads
 * those contents itself (tensor-contents-wire.ts), so that millions of
 * elements never become millions of JS values. The walks here visit only
 * the request's and its inputs' fields, whose number checkFieldBudget has
 * already bounded.
 */
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
