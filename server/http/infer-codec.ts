/**
 * Decodes a v2 infer request body (JSON, optionally followed by binary
 * tensor data) into an engine InferenceRequest, and encodes the engine's
 * response back. Pure functions: no fastify, no I/O.
 */
import { checkBytesElementLimit, decodeBytesInput, DEFAULT_MAX_BYTES_ELEMENTS } from '../../engine/bytes-tensor.ts';
import { quoted, serverError } from '../../engine/errors.ts';
import { classCount } from '../../engine/output-classification.ts';
import type { InferenceRequest, ParameterValue } from '../../engine/inference-request.ts';
import type { InferenceResponse } from '../../engine/inference-response.ts';
import type { SharedMemoryInput, SharedMemoryPlan, SharedMemoryRef } from '../../engine/memory/shared-memory-lease.ts';
import {
  DATA_TYPES, elementCount, isDataType, TensorSizeError, formatShape, type DataType, type Tensor,
} from '../../engine/tensor.ts';
import { parseJsonExact, quotedJson, showJson } from './exact-json.ts';
import { checkShapeOverflow, negativeDimDetail } from '../../engine/shape-overflow.ts';
import { flattenData, tensorDataJson, tensorFromJson } from './json-tensor-data.ts';

export const HEADER_LENGTH_HEADER = 'inference-header-content-length';

export interface EncodedInfer {
  readonly body: string | Buffer;
  readonly headers: Readonly<Record<string, string>>;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function unparsable(field: string, detail: string): Error {
  return serverError('UNPARSABLE_FIELD', { field, detail });
}

/**
 * The JSON header length from Inference-Header-Content-Length, checked
 * against the body. 0 asks for a raw binary request (raw-binary-request.ts).
 */
export function headerLength(value: string | string[] | undefined, bodyLength: number): number {
  if (value === undefined) return bodyLength;
  const text = Array.isArray(value) ? value[0] ?? '' : value;
  const length = /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(length) || length > bodyLength) {
    throw serverError('BAD_REQUEST', {
      detail: `inference header size should be in range (0, ${bodyLength}), got: ${quoted(text)} (header Inference-Header-Content-Length)`,
    });
  }
  return length;
}

function parseJsonHeader(text: string): Json {
  let parsed: unknown;
  try {
    parsed = parseJsonExact(text);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const position = /position (\d+)/.exec(message);
    throw serverError('MALFORMED_JSON', {
      detail: message.replace(/ in JSON at position \d+.*$/, '').replace(/^JSON\.parse: /, ''),
      offset: position ? Number(position[1]) : undefined,
    });
  }
  if (!isObject(parsed)) throw serverError('MALFORMED_JSON', { detail: 'the request must be a JSON object' });
  return parsed;
}

function parseParameters(value: unknown, field: string): Record<string, ParameterValue> {
  if (value === undefined) return {};
  if (!isObject(value)) throw unparsable(field, 'expected an object of name: value pairs');
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean' && typeof v !== 'bigint') {
      throw serverError('BAD_REQUEST', {
        detail: `parameter '${quoted(key)}' in '${field}' has invalid type. It should be either 'int', 'bool', or 'string'.`,
      });
    }
  }
  return value as Record<string, ParameterValue>;
}

/**
 * The dims when each is a safe non-negative integer and their product, times
 * the largest element size, is still a safe integer: then no overflow check
 * can fail, and the exact (bigint) path below is skipped. `+ 0` turns a -0
 * into 0, as that path does.
 */
function smallShape(value: readonly unknown[]): number[] | undefined {
  const dims: number[] = [];
  let bytes = 16;
  for (const d of value) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) return undefined;
    bytes *= d;
    if (bytes > Number.MAX_SAFE_INTEGER) return undefined;
    dims.push(d + 0);
  }
  return dims;
}

function parseShape(value: unknown, field: string, input: string, datatype: DataType): number[] {
  if (!Array.isArray(value)) throw unparsable(field, `input '${quoted(input)}': expected an array of dimension sizes`);
  const small = smallShape(value);
  if (small) return small;
  // Integers past 2^53 arrive as bigints (parseJsonExact), so an overflowing product is judged exactly, as Triton judges it.
  const dims = value.map((d, i) => {
    const integer = typeof d === 'bigint' || (typeof d === 'number' && Number.isInteger(d));
    if (!integer || d < 0) throw unparsable('shape', negativeDimDetail(quoted(input), i, quotedJson(d)));
    return BigInt(d as number | bigint);
  });
  checkShapeOverflow(input, datatype, dims);
  return dims.map((d, i) => {
    if (d > BigInt(Number.MAX_SAFE_INTEGER)) throw unparsable(field, `input '${quoted(input)}' dimension ${i} is ${d}, which is too large`);
    return Number(d);
  });
}

/**
 * A decoded infer body as plain data, without the client's signal: what a
 * JSON codec process (json-codec-pool.ts) sends back, and what the
 * in-thread path builds the same way.
 */
export interface InferBody {
  readonly request: InferenceRequest;
  readonly binaryDefault: boolean;
  readonly binaryByOutput: ReadonlyMap<string, boolean>;
  readonly sharedMemory?: SharedMemoryPlan;
}

/** A non-negative whole number of bytes, as Triton's JSON parameters take offsets and sizes. */
function byteCount(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw unparsable(field, 'expected a non-negative integer');
  return value;
}

/**
 * The place in shared memory a tensor's parameters name, or undefined when
 * they name none. shared_memory_offset defaults to 0 and
 * shared_memory_byte_size to 0, as in Triton's HTTP frontend; either one
 * without shared_memory_region is refused.
 */
function sharedMemoryRef(parameters: Record<string, ParameterValue>, field: string, tensor: string): SharedMemoryRef | undefined {
  const region = parameters['shared_memory_region'];
  if (region === undefined) {
    for (const name of ['shared_memory_offset', 'shared_memory_byte_size']) {
      if (parameters[name] !== undefined) {
        throw serverError('BAD_REQUEST', { detail: `'${name}' can not be specified without 'shared_memory_region' parameter for tensor '${quoted(tensor)}'` });
      }
    }
    return undefined;
  }
  if (typeof region !== 'string') throw unparsable('shared_memory_region', `expected a string (${field}.shared_memory_region)`);
  const offset = parameters['shared_memory_offset'];
  const byteSize = parameters['shared_memory_byte_size'];
  return {
    region,
    offset: offset === undefined ? 0 : byteCount(offset, 'shared_memory_offset'),
    byteSize: byteSize === undefined ? 0 : byteCount(byteSize, 'shared_memory_byte_size'),
  };
}

/** Triton's refusal of an input whose data is set in none, or more than one, of the three ways. */
function contentChoiceError(name: string, set: readonly string[]): Error {
  return serverError('BAD_REQUEST', {
    detail: "Input must set only one of the following fields: 'data', 'binary_data_size' in 'parameters', 'shared_memory_region' in 'parameters'. " +
      `But ${set.length === 0 ? 'no field is set' : `set ${set.map((f) => `'${f}'`).join(' ')}`} for input '${quoted(name)}'`,
  });
}

export function decodeInferBody(
  body: Buffer,
  headerLengthValue: string | string[] | undefined,
  target: { readonly model: string; readonly version?: string },
  maxBytesElements = DEFAULT_MAX_BYTES_ELEMENTS,
): InferBody {
  const jsonLength = headerLength(headerLengthValue, body.byteLength);
  const json = parseJsonHeader(body.toString('utf8', 0, jsonLength));
  let binaryOffset = jsonLength;

  if (json['id'] !== undefined && typeof json['id'] !== 'string') throw unparsable('id', 'expected a string');
  const parameters = parseParameters(json['parameters'], 'parameters');
  const rawInputs = json['inputs'];
  if (!Array.isArray(rawInputs)) throw unparsable('inputs', 'expected an array of input tensors');

  const sharedMemoryInputs: SharedMemoryInput[] = [];
  const inputs: Tensor[] = rawInputs.map((raw, index): Tensor | undefined => {
    const field = `inputs[${index}]`;
    if (!isObject(raw)) throw unparsable(field, 'expected an object with name, shape, datatype and data');
    const name = raw['name'];
    if (typeof name !== 'string' || name === '') throw unparsable(`${field}.name`, 'expected a non-empty string');
    const datatype = raw['datatype'];
    if (!isDataType(datatype)) {
      throw serverError('BAD_REQUEST', {
        detail: `invalid datatype for input ${quoted(name)}: ${quotedJson(datatype)} is not one of ${DATA_TYPES.join(', ')}`,
      });
    }
    const shape = parseShape(raw['shape'], `${field}.shape`, name, datatype);
    let count: number;
    try {
      count = elementCount(shape);
    } catch (err) {
      throw serverError('TENSOR_SIZE', { tensor: name, detail: (err as TensorSizeError).message });
    }
    if (datatype === 'BYTES') checkBytesElementLimit(name, count, maxBytesElements);
    const inputParameters = parseParameters(raw['parameters'], `${field}.parameters`);
    const binarySize = inputParameters['binary_data_size'];
    const hasData = raw['data'] !== undefined;
    const shmRef = sharedMemoryRef(inputParameters, `${field}.parameters`, name);
    if (Number(hasData) + Number(binarySize !== undefined) + Number(shmRef !== undefined) !== 1) {
      throw contentChoiceError(name, [...(hasData ? ['data'] : []), ...(binarySize !== undefined ? ['binary_data_size'] : []), ...(shmRef ? ['shared_memory_region'] : [])]);
    }
    if (shmRef) {
      sharedMemoryInputs.push({ index, name, datatype, shape, ref: shmRef });
      return undefined;
    }
    if (binarySize !== undefined) {
      if (typeof binarySize !== 'number' || !Number.isSafeInteger(binarySize) || binarySize < 0) {
        throw unparsable(`${field}.parameters.binary_data_size`, 'expected a non-negative integer');
      }
      if (jsonLength === body.byteLength && binarySize > 0) {
        throw serverError('BAD_REQUEST', {
          detail: `input '${quoted(name)}' has binary_data_size ${binarySize} but the request has no binary section: set the Inference-Header-Content-Length header to the byte length of the JSON part`,
        });
      }
      const remaining = body.byteLength - binaryOffset;
      if (binarySize > remaining) {
        throw serverError('BAD_REQUEST', {
          detail: `unexpected size for input '${quoted(name)}', expecting ${binarySize - remaining} additional bytes for model '${target.model}'`,
        });
      }
      const data = body.subarray(binaryOffset, binaryOffset + binarySize);
      binaryOffset += binarySize;
      if (datatype === 'BYTES') return decodeBytesInput(name, shape, data, maxBytesElements);
      return { name, datatype, shape, raw: data };
    }
    let values: unknown[];
    try {
      values = flattenData(raw['data']);
    } catch (err) {
      throw unparsable('data', `input '${quoted(name)}': ${(err as Error).message}`);
    }
    if (values.length > count) {
      throw unparsable('data', `Shape does not match true shape of 'data' field: input '${quoted(name)}' has shape ${formatShape(shape)} (${count} elements) but data holds ${values.length}`);
    }
    if (values.length < count) {
      // Triton words the short case apart from the long one.
      throw serverError('BAD_REQUEST', {
        detail: `Failed to parse 'data' field: shape does not match true shape: input '${quoted(name)}' has shape ${formatShape(shape)} (${count} elements) but data holds ${values.length}`,
      });
    }
    return tensorFromJson(name, datatype, shape, values);
  }).filter((tensor): tensor is Tensor => tensor !== undefined);
  if (binaryOffset !== body.byteLength) {
    throw serverError('BAD_REQUEST', {
      detail: `unexpected additional input data for model '${target.model}': ${body.byteLength - binaryOffset} bytes after the last binary input`,
    });
  }

  const binaryDefault = parameters['binary_data_output'] ?? false;
  if (typeof binaryDefault !== 'boolean') throw unparsable('parameters.binary_data_output', 'expected true or false');
  const requested = new Set<string>();
  const binaryByOutput = new Map<string, boolean>();
  const classification = new Map<string, number>();
  const sharedMemoryOutputs = new Map<string, SharedMemoryRef>();
  let outputs: string[] | undefined;
  if (json['outputs'] !== undefined) {
    if (!Array.isArray(json['outputs'])) throw unparsable('outputs', 'expected an array of requested outputs');
    outputs = json['outputs'].map((raw, index) => {
      const field = `outputs[${index}]`;
      if (!isObject(raw) || typeof raw['name'] !== 'string') throw unparsable(`${field}.name`, 'expected an object with a string name');
      const outputParameters = parseParameters(raw['parameters'], `${field}.parameters`);
      const shmRef = sharedMemoryRef(outputParameters, `${field}.parameters`, raw['name']);
      if (shmRef) {
        if (outputParameters['classification'] !== undefined) {
          throw serverError('BAD_REQUEST', { detail: "Output can't set both 'shared_memory_region' and 'classification'" });
        }
        if (outputParameters['binary_data'] === true) {
          throw serverError('BAD_REQUEST', { detail: "Output can't set both 'shared_memory_region' and 'binary_data'" });
        }
        sharedMemoryOutputs.set(raw['name'], shmRef);
      }
      if (outputParameters['classification'] !== undefined) {
        classification.set(raw['name'], classCount(outputParameters['classification'], `${field}.parameters.classification`));
      }
      const binary = outputParameters['binary_data'];
      if (binary !== undefined && typeof binary !== 'boolean') {
        throw unparsable(`${field}.parameters.binary_data`, 'expected true or false');
      }
      // Triton's precedence: an output listed here is binary only when its own binary_data says so;
      // the request's binary_data_output covers the outputs a request does not list.
      binaryByOutput.set(raw['name'], binary ?? false);
      if (requested.has(raw['name'])) {
        throw serverError('DUPLICATE_OUTPUT', { output: raw['name'], field });
      }
      requested.add(raw['name']);
      return raw['name'];
    });
  }
  const { binary_data_output: _binaryDataOutput, ...engineParameters } = parameters;
  const request: InferenceRequest = {
    modelName: target.model,
    ...(target.version ? { modelVersion: target.version } : {}),
    ...(typeof json['id'] === 'string' && json['id'] !== '' ? { id: json['id'] } : {}),
    inputs,
    ...(outputs ? { outputs } : {}),
    ...(classification.size > 0 ? { classification } : {}),
    parameters: engineParameters,
  };
  const sharedMemory = sharedMemoryInputs.length > 0 || sharedMemoryOutputs.size > 0
    ? { sharedMemory: { inputs: sharedMemoryInputs, outputs: sharedMemoryOutputs } } : {};
  return { request, binaryDefault, binaryByOutput, ...sharedMemory };
}

/**
 * The response body. An output in shared memory (`inSharedMemory`) goes
 * back as Triton sends it: name, datatype and shape, with no data.
 */
export function encodeInferResponse(
  response: InferenceResponse, binaryOutput: (name: string) => boolean, inSharedMemory: (name: string) => boolean = () => false,
): EncodedInfer {
  const chunks: Uint8Array[] = [];
  const outputs = response.outputs.map((tensor) => {
    const head = `{"name":${JSON.stringify(tensor.name)},"datatype":"${tensor.datatype}","shape":[${tensor.shape.join(',')}]`;
    if (inSharedMemory(tensor.name)) return `${head}}`;
    if (binaryOutput(tensor.name)) {
      const bytes = tensor.raw;
      if (bytes.byteLength > 0) chunks.push(bytes);
      return `${head},"parameters":{"binary_data_size":${bytes.byteLength}}}`;
    }
    return `${head},"data":${tensorDataJson(tensor)}}`;
  });
  const id = response.id ? `"id":${JSON.stringify(response.id)},` : '';
  const params = Object.entries(response.parameters ?? {});
  const parameters = params.length === 0 ? '' : `"parameters":{${params.map(([k, v]) => `${JSON.stringify(k)}:${showJson(v)}`).join(',')}},`;
  const json = `{${id}"model_name":${JSON.stringify(response.modelName)},"model_version":"${response.modelVersion}",${parameters}"outputs":[${outputs.join(',')}]}`;
  if (chunks.length === 0) return { body: json, headers: JSON_HEADERS };
  // The JSON and the tensors written once into one buffer, not encoded apart and then concatenated.
  const headerBytes = Buffer.byteLength(json);
  let total = headerBytes;
  for (const chunk of chunks) total += chunk.byteLength;
  const body = Buffer.allocUnsafe(total);
  body.write(json, 0, 'utf8');
  let at = headerBytes;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.byteLength;
  }
  return { body, headers: { 'content-type': 'application/octet-stream', [HEADER_LENGTH_HEADER]: String(headerBytes) } };
}

const JSON_HEADERS: Readonly<Record<string, string>> = Object.freeze({ 'content-type': 'application/json' });
