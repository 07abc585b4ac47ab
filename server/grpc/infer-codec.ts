/**
 * Decodes a gRPC ModelInferRequest (as protobufjs decoded it) into an engine
 * InferenceRequest, and encodes the engine's response as a plain
 * ModelInferResponse object for protobufjs to serialise. Pure functions: no
 * grpc-js, no I/O, so every rule here is unit-tested on its own.
 *
 * Tensor data arrives typed, in `contents`, or as little-endian bytes in
 * `raw_input_contents` (one entry per input not in shared memory, in
 * order), or lies in a registered system shared memory region (parameters
 * shared_memory_region, _offset, _byte_size), which the frontend reads
 * after decoding. FP16 and BF16 have no typed field and travel raw only. `contents` is read off the wire, not
 * by protobufjs (tensor-contents-wire.ts); decoding it yields the event
 * loop between chunks, so decoding a request is asynchronous.
 */
import { bytesTensorFromWire, checkBytesElementLimit, decodeBytesInput, DEFAULT_MAX_BYTES_ELEMENTS } from '../../engine/bytes-tensor.ts';
import { boundedMessage, quoted, serverError, type SwitchyardError } from '../../engine/errors.ts';
import type { InferenceRequest, ParameterValue } from '../../engine/inference-request.ts';
import type { InferenceResponse, StreamedResponse } from '../../engine/inference-response.ts';
import type { SharedMemoryInput, SharedMemoryPlan, SharedMemoryRef } from '../../engine/memory/shared-memory-lease.ts';
import { classCount } from '../../engine/output-classification.ts';
import {
  DATA_TYPES, elementByteSize, elementCount, formatShape, isDataType, TensorSizeError, type DataType, type FixedDataType, type Tensor,
} from '../../engine/tensor.ts';
import { checkShapeOverflow, negativeDimDetail } from '../../engine/shape-overflow.ts';
import { LoopSlice } from './loop-slice.ts';
import {
  CONTENTS_FIELD_OF, countContents, readBytesContents, readFixedContents, type ContentsCount, type ContentsWire,
} from './tensor-contents-wire.ts';

/** A 64-bit integer as protobufjs hands it over (a Long) or takes it (any {low, high} pair, or a number). */
interface LongBits {
  readonly low: number;
  readonly high: number;
  readonly unsigned?: boolean;
}
type Int64 = LongBits | number;

/** A 64-bit value as the low and high 32-bit words protobufjs writes. */
function longOf(value: bigint, unsigned: boolean): LongBits {
  const bits = BigInt.asUintN(64, value);
  return { low: Number(bits & 0xffffffffn) | 0, high: Number(bits >> 32n) | 0, unsigned };
}

/** The oneof `InferParameter` / `ModelRepositoryParameter` as decoded. */
export interface ParameterMessage {
  readonly parameter_choice?: string;
  readonly bool_param?: boolean;
  readonly int64_param?: Int64;
  readonly string_param?: string;
  readonly double_param?: number;
  readonly uint64_param?: Int64;
}

interface InputMessage {
  readonly name?: string;
  readonly datatype?: string;
  readonly shape?: readonly Int64[];
  readonly parameters?: Readonly<Record<string, ParameterMessage>>;
  /** Set from the wire (inputContents), not by protobufjs, which skips the field. */
  readonly contents?: ContentsWire;
}

interface OutputMessage {
  readonly name?: string;
  readonly parameters?: Readonly<Record<string, ParameterMessage>>;
}

/** The decoded `inference.ModelInferRequest`. */
export interface ModelInferRequestMessage {
  readonly model_name?: string;
  readonly model_version?: string;
  readonly id?: string;
  readonly parameters?: Readonly<Record<string, ParameterMessage>>;
  readonly inputs?: readonly InputMessage[];
  readonly outputs?: readonly OutputMessage[];
  readonly raw_input_contents?: readonly Uint8Array[];
}

function invalid(detail: string): SwitchyardError {
  return serverError('BAD_REQUEST', { detail });
}

function toBigInt(value: Int64, unsigned: boolean): bigint {
  if (typeof value === 'number') return unsigned ? BigInt.asUintN(64, BigInt(value)) : BigInt(value);
  const bits = (BigInt(value.high >>> 0) << 32n) | BigInt(value.low >>> 0);
  return unsigned ? bits : BigInt.asIntN(64, bits);
}

/** A request or tensor parameter as the engine takes it: 64-bit integers stay numbers while they are exact. */
export function parameterValue(message: ParameterMessage, where: string): ParameterValue {
  switch (message.parameter_choice) {
    case 'bool_param': return message.bool_param ?? false;
    case 'string_param': return message.string_param ?? '';
    case 'double_param': return message.double_param ?? 0;
    case 'int64_param':
    case 'uint64_param': {
      const big = toBigInt(message[message.parameter_choice] ?? 0, message.parameter_choice === 'uint64_param');
      return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
    default:
      throw invalid(`parameter ${where} has no value: set one of bool_param, int64_param, string_param, double_param, uint64_param`);
  }
}

function parameters(map: Readonly<Record<string, ParameterMessage>> | undefined, where: string): Record<string, ParameterValue> {
  const out: Record<string, ParameterValue> = {};
  for (const [key, message] of Object.entries(map ?? {})) out[key] = parameterValue(message, `'${quoted(key)}' in ${where}`);
  return out;
}

/** An int64_param of a shared memory parameter as a number; a value past 2^53 cannot name a place in a file. */
function int64Count(message: ParameterMessage, parameter: string, tensor: string): number {
  if (message.parameter_choice !== 'int64_param') {
    throw invalid(`invalid value type for '${parameter}' parameter for tensor '${quoted(tensor)}', expected int64_param.`);
  }
  const big = toBigInt(message.int64_param ?? 0, false);
  if (big < 0n || big > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw invalid(`invalid value ${big} for '${parameter}' parameter for tensor '${quoted(tensor)}': expected a byte count from 0 to ${Number.MAX_SAFE_INTEGER}`);
  }
  return Number(big);
}

/**
 * The place in shared memory a tensor's parameters name, or undefined when
 * they name none, with the checks and wording of Triton's gRPC frontend:
 * the region is a string_param, offset (default 0) and byte size are
 * int64_param, and the byte size is required.
 */
function sharedMemoryRef(map: Readonly<Record<string, ParameterMessage>> | undefined, tensor: string): SharedMemoryRef | undefined {
  const region = map?.['shared_memory_region'];
  const offset = map?.['shared_memory_offset'];
  const byteSize = map?.['shared_memory_byte_size'];
  if (region === undefined) {
    for (const [name, value] of [['shared_memory_offset', offset], ['shared_memory_byte_size', byteSize]] as const) {
      if (value !== undefined) throw invalid(`'${name}' can not be specified without 'shared_memory_region' parameter for tensor '${quoted(tensor)}'`);
    }
    return undefined;
  }
  if (region.parameter_choice !== 'string_param') {
    throw invalid(`invalid value type for 'shared_memory_region' parameter for tensor '${quoted(tensor)}', expected string_param.`);
  }
  if (byteSize === undefined) {
    throw invalid(`'shared_memory_byte_size' must be specified along with 'shared_memory_region' parameter for tensor '${quoted(tensor)}'`);
  }
  return {
    region: region.string_param ?? '',
    offset: offset === undefined ? 0 : int64Count(offset, 'shared_memory_offset', tensor),
    byteSize: int64Count(byteSize, 'shared_memory_byte_size', tensor),
  };
}

/** The request's parameters as the model sees them: without the ones meant for the frontend. */
function modelParameters(map: Readonly<Record<string, ParameterMessage>> | undefined): Record<string, ParameterValue> {
  const { [EMPTY_FINAL_RESPONSE_PARAMETER]: _emptyFinal, ...rest } = map ?? {};
  return parameters(rest, 'the request parameters');
}

/** Encodes an engine parameter as an InferParameter message object. */
export function parameterMessage(value: ParameterValue): ParameterMessage {
  if (typeof value === 'boolean') return { bool_param: value };
  if (typeof value === 'string') return { string_param: value };
  if (typeof value === 'bigint') {
    return value > 0x7fffffffffffffffn ? { uint64_param: longOf(value, true) } : { int64_param: longOf(value, false) };
  }
  return Number.isInteger(value) ? { int64_param: value } : { double_param: value };
}

/** Below this many elements no datatype's byte size can pass INT64_MAX, nor a count pass what a Number holds exactly. */
const SMALL_COUNT = 2 ** 49;

/**
 * The shape of inputs[index] when every dim is below 2^31 and their count
 * below SMALL_COUNT, read without bigints: such a shape has nothing for
 * shapeOf to refuse. Undefined for any other shape.
 */
function smallShape(dims: readonly Int64[]): number[] | undefined {
  const shape: number[] = [];
  let count = 1;
  for (const dim of dims) {
    const value = typeof dim === 'number' ? dim : dim.high === 0 ? dim.low : -1;
    if (!(Number.isInteger(value) && value >= 0 && value <= 0x7fffffff)) return undefined;
    count *= value;
    if (count >= SMALL_COUNT) return undefined;
    shape.push(value);
  }
  return shape;
}

/** The shape of inputs[index]; a negative dim is refused in the words the HTTP codec uses for the same field. */
function shapeOf(name: string, index: number, datatype: DataType, dims: readonly Int64[]): number[] {
  const small = smallShape(dims);
  if (small) return small;
  const big = dims.map((dim, i) => {
    const value = toBigInt(dim, false);
    if (value < 0n) throw serverError('UNPARSABLE_FIELD', { field: 'shape', detail: negativeDimDetail(quoted(name), i, String(value)) });
    return value;
  });
  checkShapeOverflow(name, datatype, big);
  return big.map((value, i) => {
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw serverError('UNPARSABLE_FIELD', { field: `inputs[${index}].shape`, detail: `input '${quoted(name)}' dimension ${i} is ${value}, which is too large` });
    }
    return Number(value);
  });
}

function countOf(name: string, shape: readonly number[]): number {
  try {
    return elementCount(shape);
  } catch (err) {
    throw serverError('TENSOR_SIZE', { tensor: name, detail: (err as TensorSizeError).message });
  }
}

/**
 * A tensor from its raw_input_contents entry. Its size against the shape is
 * left to the engine, which checks it after datatype and shape and words it
 * as for HTTP binary data (and as Triton does for both).
 */
function fromRaw(name: string, datatype: DataType, shape: number[], data: Uint8Array, maxBytesElements: number): Tensor {
  if (datatype === 'BYTES') return decodeBytesInput(name, shape, data, maxBytesElements);
  return { name, datatype, shape, raw: data };
}

const NO_CONTENTS: ContentsCount = { elements: new Map(), bytesContentsBytes: 0 };
const NO_NAMES: ReadonlySet<string> = new Set();
const EMPTY = new Uint8Array(0);

/** The tensor from its typed contents, once their counts agree with the datatype and shape. */
async function fromContents(
  model: string, name: string, datatype: DataType, shape: number[], count: number, contents: ContentsWire | undefined, counted: ContentsCount, slice: LoopSlice,
): Promise<Tensor> {
  const field = CONTENTS_FIELD_OF[datatype];
  if (field === undefined) {
    if (count === 0) return { name, datatype: datatype as FixedDataType, shape, raw: new Uint8Array(0) };
    throw invalid(`input '${quoted(name)}' is ${datatype}, which has no typed contents field: send it in raw_input_contents`);
  }
  const stray = [...counted.elements.keys()].filter((f) => f !== field);
  if (stray.length > 0) {
    throw invalid(`input '${quoted(name)}' is ${datatype} and takes contents.${field}, but contents.${stray.join(', contents.')} is set`);
  }
  const length = counted.elements.get(field) ?? 0;
  if (length !== count) {
    if (count > 0 && length === 0) throw invalid(`input '${quoted(name)}' has no data: set contents.${field} or raw_input_contents`);
    const size = elementByteSize(datatype);
    // Triton measures typed contents in bytes, and its core words the mismatch so.
    if (size !== undefined) throw serverError('INPUT_BYTE_SIZE', { model, input: name, expected: count * size, got: length * size });
    throw invalid(`input '${quoted(name)}': contents.${field} holds ${length} elements but shape ${formatShape(shape)} needs ${count}`);
  }
  if (count === 0 || !contents) {
    return datatype === 'BYTES' ? bytesTensorFromWire(name, shape, new Uint8Array(0)) : { name, datatype, shape, raw: new Uint8Array(0) };
  }
  if (datatype === 'BYTES') return bytesTensorFromWire(name, shape, await readBytesContents(contents, count, counted.bytesContentsBytes, slice));
  return { name, datatype, shape, raw: await readFixedContents(contents, name, datatype, count, slice) };
}

/**
 * Triton's request parameter asking ModelStreamInfer for a message even when
 * a decoupled model closes a request without a response. It is the
 * frontend's, so it never reaches the model.
 */
export const EMPTY_FINAL_RESPONSE_PARAMETER = 'triton_enable_empty_final_response';
/** Triton's response parameter on every ModelStreamInfer response: whether it is the last one of its request. */
export const FINAL_RESPONSE_PARAMETER = 'triton_final_response';

/** Whether a ModelStreamInfer request asks for empty final responses; any value but a bool_param is refused, as Triton does. */
export function enablesEmptyFinalResponse(message: ModelInferRequestMessage): boolean {
  const parameter = message.parameters?.[EMPTY_FINAL_RESPONSE_PARAMETER];
  if (parameter === undefined) return false;
  if (parameter.parameter_choice !== 'bool_param') {
    throw invalid(`invalid value type for '${EMPTY_FINAL_RESPONSE_PARAMETER}' parameter, expected bool_param.`);
  }
  return parameter.bool_param === true;
}

/**
 * One item of a request's response stream as a ModelStreamInferResponse,
 * flagged with triton_final_response as Triton flags it: a response, or an
 * error in error_message with the request's id, model and version. An empty
 * final goes out only when the request asked for it (`emptyFinal`); else
 * there is nothing to write (undefined).
 */
export function encodeStreamResponse(
  item: StreamedResponse, request: ModelInferRequestMessage, emptyFinal: boolean, inSharedMemory: ReadonlySet<string> = NO_NAMES,
): Record<string, unknown> | undefined {
  const final = { [FINAL_RESPONSE_PARAMETER]: { bool_param: item.final } };
  if (item.response) {
    const encoded = encodeModelInferResponse(item.response, inSharedMemory);
    return { infer_response: { ...encoded, parameters: { ...(encoded['parameters'] as object | undefined), ...final } } };
  }
  if (!item.error && !emptyFinal) return undefined;
  const infer_response = { id: request.id ?? '', model_name: request.model_name ?? '', model_version: request.model_version ?? '', parameters: final };
  return item.error ? { error_message: boundedMessage(item.error.message), infer_response } : { infer_response };
}

/** A decoded ModelInferRequest: the engine request, without its inputs in shared memory until they are read (see sharedMemory). */
export interface DecodedModelInfer {
  readonly request: InferenceRequest;
  /** The tensors in system shared memory, when the request places any there. */
  readonly sharedMemory?: SharedMemoryPlan;
}

export interface DecodeOptions {
  /** The call's signal: the request's, and it stops a long decode of contents. */
  readonly signal?: AbortSignal;
  /** Elements one BYTES input may hold (--max-bytes-elements). */
  readonly maxBytesElements?: number;
}

/**
 * The engine request. Every input's name, datatype and shape, and every
 * output, are checked before any tensor data is read; typed contents are
 * then counted against the shape before they are read.
 */
export async function decodeModelInferRequest(message: ModelInferRequestMessage, options: DecodeOptions = {}): Promise<DecodedModelInfer> {
  const { signal, maxBytesElements = DEFAULT_MAX_BYTES_ELEMENTS } = options;
  const model = message.model_name ?? '';
  const inputs = message.inputs ?? [];
  const raw = message.raw_input_contents ?? [];
  const sharedMemoryInputs: SharedMemoryInput[] = [];
  const headers = inputs.map((input, index) => {
    const name = input.name ?? '';
    if (name === '') throw invalid(`inputs[${index}] has no name`);
    const datatype = input.datatype ?? '';
    if (!isDataType(datatype)) {
      throw invalid(`invalid datatype for input ${quoted(name)}: ${JSON.stringify(datatype)} is not one of ${DATA_TYPES.join(', ')}`);
    }
    const shape = shapeOf(name, index, datatype, input.shape ?? []);
    const count = countOf(name, shape);
    if (datatype === 'BYTES') checkBytesElementLimit(name, count, maxBytesElements);
    const ref = sharedMemoryRef(input.parameters, name);
    if (ref) {
      if (input.contents !== undefined) {
        throw invalid(`unexpected 'content' provided when using shared memory for input tensor '${quoted(name)}' for model '${quoted(model)}'`);
      }
      sharedMemoryInputs.push({ index, name, datatype, shape, ref });
    }
    return { name, datatype, shape, count, inSharedMemory: ref !== undefined };
  });
  // As in Triton, raw_input_contents holds the inputs not in shared memory, in order.
  const carried = inputs.length - sharedMemoryInputs.length;
  if (raw.length > 0 && raw.length !== carried) {
    throw invalid(`raw_input_contents has ${raw.length} entries but the request has ${carried} inputs${sharedMemoryInputs.length > 0 ? ' not in shared memory' : ''} for model '${model}': ` +
      "when raw_input_contents is used it holds one entry per input, in the order of 'inputs'" +
      (sharedMemoryInputs.length > 0 ? ', leaving out those in shared memory' : ''));
  }

  const requested = new Set<string>();
  const classification = new Map<string, number>();
  const sharedMemoryOutputs = new Map<string, SharedMemoryRef>();
  const outputs = (message.outputs ?? []).map((output, index) => {
    const name = output.name ?? '';
    if (name === '') throw invalid(`outputs[${index}] has no name`);
    const classParameter = output.parameters?.['classification'];
    const ref = sharedMemoryRef(output.parameters, name);
    if (ref) {
      if (classParameter !== undefined) throw invalid("output can't set both 'shared_memory_region' and 'classification'");
      sharedMemoryOutputs.set(name, ref);
    }
    if (classParameter !== undefined) {
      const field = `outputs[${index}].parameters.classification`;
      classification.set(name, classCount(parameterValue(classParameter, field), field));
    }
    if (requested.has(name)) throw serverError('DUPLICATE_OUTPUT', { output: name, field: `outputs[${index}]` });
    requested.add(name);
    return name;
  });

  // Only typed contents are read in slices; raw data needs none.
  let slice: LoopSlice | undefined;
  const tensors: Tensor[] = [];
  let rawIndex = 0;
  for (const [index, { name, datatype, shape, count, inSharedMemory }] of headers.entries()) {
    if (inSharedMemory) continue;
    const contents = inputs[index]!.contents;
    if (contents) slice ??= new LoopSlice(signal);
    const counted = contents ? await countContents(contents, name, maxBytesElements, slice!) : NO_CONTENTS;
    const data = raw.length > 0 ? raw[rawIndex++] : undefined;
    if (data === undefined) {
      tensors.push(await fromContents(model, name, datatype, shape, count, contents, counted, slice ??= new LoopSlice(signal)));
      continue;
    }
    const [filled] = counted.elements.keys();
    if (filled !== undefined) throw serverError('CONTENTS_WITH_RAW', { input: name, model });
    tensors.push(fromRaw(name, datatype, shape, data, maxBytesElements));
  }

  const request: InferenceRequest = {
    modelName: model,
    ...(message.model_version ? { modelVersion: message.model_version } : {}),
    ...(message.id ? { id: message.id } : {}),
    inputs: tensors,
    ...(outputs.length > 0 ? { outputs } : {}),
    ...(classification.size > 0 ? { classification } : {}),
    parameters: modelParameters(message.parameters),
    ...(signal ? { signal } : {}),
  };
  return sharedMemoryInputs.length > 0 || sharedMemoryOutputs.size > 0
    ? { request, sharedMemory: { inputs: sharedMemoryInputs, outputs: sharedMemoryOutputs } } : { request };
}

/**
 * The ModelInferResponse for protobufjs. As Triton does, output data always
 * travels in raw_output_contents (one entry per output, in order), whichever
 * way the inputs came; clients written for Triton read it from there.
 */
export function encodeModelInferResponse(response: InferenceResponse, inSharedMemory: ReadonlySet<string> = NO_NAMES): Record<string, unknown> {
  const params = response.parameters ?? {};
  return {
    model_name: response.modelName,
    model_version: response.modelVersion,
    id: response.id ?? '',
    ...(Object.keys(params).length > 0
      ? { parameters: Object.fromEntries(Object.entries(params).map(([k, v]) => [k, parameterMessage(v)])) }
      : {}),
    outputs: response.outputs.map((tensor) => ({ name: tensor.name, datatype: tensor.datatype, shape: tensor.shape })),
    // An output in shared memory keeps its (empty) entry, so entries still line up with outputs, as in Triton.
    raw_output_contents: response.outputs.map((tensor) => (inSharedMemory.has(tensor.name) ? EMPTY : tensor.raw)),
  };
}
