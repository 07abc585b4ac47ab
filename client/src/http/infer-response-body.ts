/**
 * Decodes a v2 HTTP inference response: the JSON header, and the binary
 * section after it for outputs sent with binary_data_size.
 */
import { decodeBytesElements } from '../bytes-elements.ts';
import {
  isBigIntType, isDataType, TYPED_ARRAY_OF, typedArrayFromBytes, type FixedDataType, type TypedTensorArray,
} from '../data-type.ts';
import { toBfloat16Bits, toFloat16Bits } from '../float16.ts';
import { inferResult, type InferResult, type ParameterValue } from '../infer-result.ts';
import { InferenceServerError } from '../inference-server-error.ts';
import { ResponseTensor } from '../output-tensor.ts';
import { parseJsonExact } from './exact-json.ts';

type Json = Record<string, unknown>;

const encoder = new TextEncoder();

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A response the SDK cannot make sense of. */
function malformed(detail: string): InferenceServerError {
  return new InferenceServerError(`malformed inference response: ${detail}`, 'INTERNAL');
}

function flatten(data: unknown): unknown[] {
  if (!Array.isArray(data)) return [data];
  return data.some(Array.isArray) ? data.flat(Infinity) : data;
}

/** Whether a plain JSON.parse rounded a 64-bit integer, so the text must be parsed again exactly. */
function lostPrecision(json: Json): boolean {
  const unsafe = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v);
  const outputs = Array.isArray(json['outputs']) ? json['outputs'] : [];
  return outputs.some((o) => isObject(o) && isDataType(o['datatype']) && isBigIntType(o['datatype']) && flatten(o['data']).some(unsafe))
    || (isObject(json['parameters']) && Object.values(json['parameters']).some(unsafe));
}

/** Typed array from JSON element values (numbers, bigints for exact 64-bit integers, booleans, null for non-finite floats). */
function typedFromJson(name: string, datatype: FixedDataType, values: readonly unknown[]): TypedTensorArray {
  const out = new TYPED_ARRAY_OF[datatype](values.length);
  const toNumber = (v: unknown): number => (v === null ? Number.NaN : Number(v));
  values.forEach((v, i) => {
    if (typeof v !== 'number' && typeof v !== 'bigint' && typeof v !== 'boolean' && v !== null) {
      throw malformed(`element ${i} of output '${name}' is ${JSON.stringify(v)}`);
    }
    if (isBigIntType(datatype)) {
      if (typeof v !== 'bigint' && !Number.isInteger(v)) throw malformed(`element ${i} of ${datatype} output '${name}' is ${String(v)}`);
      out[i] = typeof v === 'bigint' ? v : BigInt(v as number);
    } else if (datatype === 'FP16') {
      out[i] = toFloat16Bits(toNumber(v));
    } else if (datatype === 'BF16') {
      out[i] = toBfloat16Bits(toNumber(v));
    } else {
      out[i] = toNumber(v);
    }
  });
  return out;
}

function parseParameters(value: unknown): Record<string, ParameterValue> {
  if (!isObject(value)) return {};
  const out: Record<string, ParameterValue> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'boolean' || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'string') out[k] = v;
  }
  return out;
}

function parseShape(name: string, value: unknown): number[] {
  if (!Array.isArray(value) || !value.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    throw malformed(`output '${name}' has shape ${JSON.stringify(value)}`);
  }
  return value as number[];
}

/** Decodes a response body; `headerLengthValue` is the Inference-Header-Content-Length header, if any. */
export function decodeInferResponse(body: Buffer, headerLengthValue: string | string[] | undefined): InferResult {
  const headerText = Array.isArray(headerLengthValue) ? headerLengthValue[0] : headerLengthValue;
  const jsonLength = headerText === undefined ? body.byteLength : Number(headerText);
  if (!Number.isSafeInteger(jsonLength) || jsonLength < 0 || jsonLength > body.byteLength) {
    throw malformed(`Inference-Header-Content-Length is ${headerText} but the body has ${body.byteLength} bytes`);
  }
  const text = body.toString('utf8', 0, jsonLength);
  let json: unknown;
  try {
    json = JSON.parse(text);
    if (isObject(json) && lostPrecision(json)) json = parseJsonExact(text);
  } catch (err) {
    throw malformed(`the JSON header does not parse (${(err as Error).message})`);
  }
  if (!isObject(json) || !Array.isArray(json['outputs'])) throw malformed('expected a JSON object with an outputs array');

  let offset = jsonLength;
  const outputs = json['outputs'].map((raw, index) => {
    if (!isObject(raw) || typeof raw['name'] !== 'string') throw malformed(`outputs[${index}] has no name`);
    const name = raw['name'];
    const datatype = raw['datatype'];
    if (!isDataType(datatype)) throw malformed(`output '${name}' has datatype ${JSON.stringify(datatype)}`);
    const shape = parseShape(name, raw['shape']);
    const size = isObject(raw['parameters']) ? raw['parameters']['binary_data_size'] : undefined;
    if (size !== undefined) {
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || offset + size > body.byteLength) {
        throw malformed(`output '${name}' has binary_data_size ${JSON.stringify(size)} with ${body.byteLength - offset} bytes left`);
      }
      const bytes = body.subarray(offset, offset + size);
      offset += size;
      try {
        return new ResponseTensor(name, datatype, shape, datatype === 'BYTES' ? decodeBytesElements(bytes) : typedArrayFromBytes(datatype, bytes));
      } catch (err) {
        throw malformed(`output '${name}': ${(err as Error).message}`);
      }
    }
    const values = flatten(raw['data'] ?? []);
    if (datatype === 'BYTES') {
      if (!values.every((v): v is string => typeof v === 'string')) throw malformed(`output '${name}' has BYTES data that is not all strings`);
      return new ResponseTensor(name, datatype, shape, values.map((v) => encoder.encode(v)));
    }
    return new ResponseTensor(name, datatype, shape, typedFromJson(name, datatype, values));
  });
  if (offset !== body.byteLength) throw malformed(`${body.byteLength - offset} bytes follow the last binary output`);
  return inferResult({
    modelName: typeof json['model_name'] === 'string' ? json['model_name'] : '',
    modelVersion: typeof json['model_version'] === 'string' ? json['model_version'] : String(json['model_version'] ?? ''),
    ...(typeof json['id'] === 'string' ? { id: json['id'] } : {}),
    parameters: parseParameters(json['parameters']),
    outputs,
  });
}
