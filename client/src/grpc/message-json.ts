/**
 * Decoded protobuf messages as the plain JSON objects the HTTP transport
 * returns: snake_case keys, enums by name, 64-bit integers as numbers. For
 * ModelConfig this matches `GET /v2/models/<m>/config`: defaults included,
 * unset sub-messages left out, keys in the schema's field-number order.
 */
import protobuf from 'protobufjs';

type Json = Record<string, unknown>;

const TO_OBJECT: protobuf.IConversionOptions = { enums: String, longs: Number, arrays: true, objects: true, oneofs: false, defaults: true };

const isPlainObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);

/** Drops the nulls toObject writes for unset sub-messages. */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (!isPlainObject(value)) return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) if (v !== null && v !== undefined) out[k] = withoutNulls(v);
  return out;
}

/** The same object with keys in field-number order, recursively, as protobuf's JSON printer writes them. */
function inSchemaOrder(type: protobuf.Type, value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => inSchemaOrder(type, v));
  if (!isPlainObject(value)) return value;
  const out: Json = {};
  for (const field of [...type.fieldsArray].sort((a, b) => a.id - b.id)) {
    if (!(field.name in value)) continue;
    const nested = field.resolve().resolvedType;
    const v = value[field.name];
    if (!(nested instanceof protobuf.Type)) {
      out[field.name] = v;
    } else if (field.map && isPlainObject(v)) {
      out[field.name] = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, inSchemaOrder(nested, x)]));
    } else {
      out[field.name] = inSchemaOrder(nested, v);
    }
  }
  return out;
}

/** A decoded message as Triton's JSON form, in schema order. */
export function messageJson(type: protobuf.Type, message: protobuf.Message | object): Json {
  return inSchemaOrder(type, withoutNulls(type.toObject(message as protobuf.Message, TO_OBJECT))) as Json;
}
