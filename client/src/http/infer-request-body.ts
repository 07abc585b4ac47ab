/**
 * Encodes an inference request for the v2 HTTP protocol: a JSON header,
 * and in binary mode the tensor bytes after it (Triton's binary tensor data
 * extension). The JSON text is built by hand so 64-bit integers are written
 * exactly.
 */
import type { InferOptions } from '../client-options.ts';
import { fromBfloat16Bits, fromFloat16Bits } from '../float16.ts';
import type { ParameterValue } from '../infer-result.ts';
import { fixedTensorBytes, tensor, tensorWireBytes, type Tensor } from '../tensor.ts';
import { typedArrayFromBytes } from '../data-type.ts';

/** The request body in pieces, and the JSON header's length when binary data follows it. */
export interface EncodedInferRequest {
  readonly chunks: readonly Uint8Array[];
  /** Set when the body has a binary section: the value for Inference-Header-Content-Length. */
  readonly headerLength?: number;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** JSON text of one parameter value; bigints are written as exact digits. */
function parameterJson(name: string, value: ParameterValue): string {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError(`parameter '${name}' is ${value}, which JSON cannot carry`);
  if (typeof value !== 'number' && typeof value !== 'string' && typeof value !== 'boolean') {
    throw new TypeError(`parameter '${name}' must be a boolean, number, bigint or string`);
  }
  return JSON.stringify(value);
}

function parametersJson(parameters: Readonly<Record<string, ParameterValue>>): string {
  return `{${Object.entries(parameters).map(([k, v]) => `${JSON.stringify(k)}:${parameterJson(k, v)}`).join(',')}}`;
}

/** JSON has no NaN or Infinity; the server reads null in their place as an error naming the element. */
const finiteText = (v: number): string => (Number.isFinite(v) ? String(v) : 'null');

/** The JSON `data` array of a tensor. */
function dataJson(t: Tensor): string {
  if (t.datatype === 'BYTES') {
    return `[${(t.data as readonly (string | Uint8Array)[]).map((v, i) => {
      if (typeof v === 'string') return JSON.stringify(v);
      try {
        return JSON.stringify(strictUtf8.decode(v));
      } catch {
        throw new TypeError(`tensor '${t.name}': BYTES element ${i} is not valid UTF-8, which JSON cannot carry; use binary mode`);
      }
    }).join(',')}]`;
  }
  const typed = typedArrayFromBytes(t.datatype, fixedTensorBytes(t));
  switch (t.datatype) {
    case 'BOOL': return `[${Array.from(typed as Uint8Array, (v) => (v ? 'true' : 'false')).join(',')}]`;
    case 'FP16': return `[${Array.from(typed as Uint16Array, (v) => finiteText(fromFloat16Bits(v))).join(',')}]`;
    case 'BF16': return `[${Array.from(typed as Uint16Array, (v) => finiteText(fromBfloat16Bits(v))).join(',')}]`;
    case 'FP32':
    case 'FP64': return `[${Array.from(typed as Float64Array, finiteText).join(',')}]`;
    default: return `[${typed.join(',')}]`;
  }
}

/** Encodes inputs and options as a v2 infer request body, binary or pure JSON. */
export function encodeInferRequest(inputs: readonly Tensor[], options: InferOptions, binary: boolean): EncodedInferRequest {
  const chunks: Uint8Array[] = [];
  const inputsJson = inputs.map(({ name, datatype, shape, data }) => {
    const t = tensor(name, datatype, shape, data);
    const head = `{"name":${JSON.stringify(t.name)},"datatype":${JSON.stringify(t.datatype)},"shape":[${t.shape.join(',')}]`;
    if (!binary) return `${head},"data":${dataJson(t)}}`;
    const bytes = tensorWireBytes(t);
    chunks.push(bytes);
    return `${head},"parameters":{"binary_data_size":${bytes.byteLength}}}`;
  });
  const parameters = { ...options.parameters, ...(binary ? { binary_data_output: true } : {}) };
  const outputs = options.outputs?.map((name) =>
    `{"name":${JSON.stringify(name)}${binary ? ',"parameters":{"binary_data":true}' : ''}}`);
  const fields = [
    ...(options.id !== undefined ? [`"id":${JSON.stringify(options.id)}`] : []),
    ...(Object.keys(parameters).length > 0 ? [`"parameters":${parametersJson(parameters)}`] : []),
    `"inputs":[${inputsJson.join(',')}]`,
    ...(outputs ? [`"outputs":[${outputs.join(',')}]`] : []),
  ];
  const header = Buffer.from(`{${fields.join(',')}}`, 'utf8');
  if (!binary || chunks.length === 0) return { chunks: [header] };
  return { chunks: [header, ...chunks.filter((c) => c.byteLength > 0)], headerLength: header.byteLength };
}
