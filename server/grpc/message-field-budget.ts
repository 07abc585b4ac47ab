/**
 * The number of values a gRPC request message may make protobufjs build.
 * Each field occurrence costs as little as two bytes on the wire (a tag and
 * an empty length), and protobufjs builds an object, a map entry, a Long or
 * an array slot for it, or at least spends time on it: a message of a
 * million empty `inputs` or `parameters` entries would take hundreds of
 * megabytes and seconds of the event loop before any of our code saw it.
 * This walk counts them first, guided by the same reflected type that
 * decodes the message, and stops one past the limit, so its own work is
 * bounded by the limit, not by the message.
 */
import protobuf from 'protobufjs';
import { serverError } from '../../engine/errors.ts';
import { malformed, WIRE_LEN, WireReader } from './wire-reader.ts';

/** --grpc-max-request-fields: values one request message may hold (fields, repeated elements, map entries, at any depth). */
export const DEFAULT_GRPC_MAX_REQUEST_FIELDS = 65_536;

/** Deeper nesting than any request type has; a guard for recursive types. */
const MAX_DEPTH = 32;

/** Bytes per element of the packed fixed-width scalar types; others are varints. */
const FIXED_WIDTH: Readonly<Record<string, number>> = { double: 8, fixed64: 8, sfixed64: 8, float: 4, fixed32: 4, sfixed32: 4 };

class Budget {
  private used = 0;

  constructor(private readonly limit: number, private readonly message: string) {}

  spend(n: number, path: readonly string[]): void {
    this.used += n;
    if (this.used > this.limit) throw serverError('MESSAGE_FIELDS_LIMIT', { message: this.message, field: path.join('.'), limit: this.limit });
  }

  /** Counts the varints in bytes [start, end) by their last bytes, spending as it goes. */
  spendVarints(bytes: Uint8Array, start: number, end: number, path: readonly string[]): void {
    let n = 0;
    for (let i = start; i < end; i++) {
      if (bytes[i]! < 0x80 && ++n > this.limit - this.used) this.spend(n, path);
    }
    this.spend(n, path);
  }
}

function walkMessage(type: protobuf.Type, reader: WireReader, budget: Budget, path: string[]): void {
  if (path.length > MAX_DEPTH) throw malformed(reader.message, `messages nest more than ${MAX_DEPTH} deep at '${path.join('.')}'`);
  while (!reader.done) {
    const tag = reader.varint();
    const number = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (number === 0) throw malformed(reader.message, 'a field has number 0');
    const field = type.fieldsById[number];
    path.push(field?.name ?? `field ${number}`);
    budget.spend(1, path);
    const span = reader.skip(wireType);
    if (field && span && wireType === WIRE_LEN) {
      const inner = new WireReader(reader.bytes, span.start, span.end, reader.message);
      if (field instanceof protobuf.MapField) {
        walkMapEntry(field, inner, budget, path);
      } else if (field.resolvedType instanceof protobuf.Type) {
        walkMessage(field.resolvedType, inner, budget, path);
      } else if (field.repeated && !(field.type === 'string' || field.type === 'bytes')) {
        const width = FIXED_WIDTH[field.type];
        if (width) budget.spend(Math.floor((span.end - span.start) / width), path);
        else budget.spendVarints(reader.bytes, span.start, span.end, path);
      }
    }
    path.pop();
  }
}

/** A map entry: its key (1) and value (2), the value walked when it is a message. */
function walkMapEntry(field: protobuf.MapField, reader: WireReader, budget: Budget, path: string[]): void {
  while (!reader.done) {
    const tag = reader.varint();
    budget.spend(1, path);
    const span = reader.skip(tag % 8);
    if (Math.floor(tag / 8) === 2 && span && field.resolvedType instanceof protobuf.Type) {
      walkMessage(field.resolvedType, new WireReader(reader.bytes, span.start, span.end, reader.message), budget, path);
    }
  }
}

/**
 * Refuses a request message that holds more than `limit` values, counting
 * every field occurrence, every element of a packed repeated field and
 * every map entry's key and value, at every depth. Fields the type leaves
 * out (InferTensorContents, read by the server itself) count once each.
 */
export function checkFieldBudget(type: protobuf.Type, bytes: Uint8Array, limit: number): void {
  walkMessage(type, new WireReader(bytes, 0, bytes.byteLength, type.name), new Budget(limit, type.name), []);
}
