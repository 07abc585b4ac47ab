/**
 * Converts between the SDK's tensors and gRPC ModelInferRequest /
 * ModelInferResponse messages. Requests carry data raw
 * (raw_input_contents, little-endian bytes) or typed (`contents`);
 * responses are read from whichever of the two the server used.
 */
import { decodeBytesElements } from '../bytes-elements.ts';
import type { InferOptions } from '../client-options.ts';
import {
  isBigIntType, isDataType, TYPED_ARRAY_OF, typedArrayFromBytes, type DataType, type FixedDataType, type TypedTensorArray,
} from '../data-type.ts';
import { inferResult, type InferResult, type ParameterValue } from '../infer-result.ts';
import { InferenceServerError } from '../inference-server-error.ts';
import { ResponseTensor } from '../output-tensor.ts';
import { bytesTensorElements, fixedTensorBytes, tensor, tensorWireBytes, type Tensor } from '../tensor.ts';
import { bigIntToInt64, int64ToBigInt, int64ToNumber, type Int64 } from './int64.ts';

/** The oneof InferParameter, as decoded (with its virtual `parameter_choice`) or to encode. */
export interface ParameterMessage {
  readonly parameter_choice?: string;
  readonly bool_param?: boolean;
  readonly int64_param?: Int64;
  readonly string_param?: string;
  readonly double_param?: number;
  readonly uint64_param?: Int64;
}

/** InferTensorContents. */
export interface ContentsMessage {
  readonly bool_contents?: ArrayLike<boolean>;
  readonly int_contents?: ArrayLike<number>;
  readonly int64_contents?: ArrayLike<Int64>;
  readonly uint_contents?: ArrayLike<number>;
  readonly uint64_contents?: ArrayLike<Int64>;
  readonly fp32_contents?: ArrayLike<number>;
  readonly fp64_contents?: ArrayLike<number>;
  readonly bytes_contents?: ArrayLike<Uint8Array>;
}

interface OutputTensorMessage {
  readonly name?: string;
  readonly datatype?: string;
  readonly shape?: readonly Int64[];
  readonly contents?: ContentsMessage;
}

/** ModelInferResponse as protobufjs decodes it. */
export interface ModelInferResponseMessage {
  readonly model_name?: string;
  readonly model_version?: string;
  readonly id?: string;
  readonly parameters?: Readonly<Record<string, ParameterMessage>>;
  readonly outputs?: readonly OutputTensorMessage[];
  readonly raw_output_contents?: readonly Uint8Array[];
}

/** Which `contents` field carries each datatype; FP16 and BF16 have none. */
const CONTENTS_FIELD: Readonly<Record<DataType, keyof ContentsMessage | undefined>> = {
  BOOL: 'bool_contents',
  INT8: 'int_contents', INT16: 'int_contents', INT32: 'int_contents', INT64: 'int64_contents',
  UINT8: 'uint_contents', UINT16: 'uint_contents', UINT32: 'uint_contents', UINT64: 'uint64_contents',
  FP32: 'fp32_contents', FP64: 'fp64_contents', FP16: undefined, BF16: undefined,
  BYTES: 'bytes_contents',
};

const INT64_MAX = 0x7fffffffffffffffn;

/** A parameter value as an InferParameter message. */
export function parameterMessage(name: string, value: ParameterValue): ParameterMessage {
  switch (typeof value) {
    case 'boolean': return { bool_param: value };
    case 'string': return { string_param: value };
    case 'bigint': return value > INT64_MAX ? { uint64_param: bigIntToInt64(value) } : { int64_param: bigIntToInt64(value) };
    case 'number': return Number.isSafeInteger(value) ? { int64_param: value } : { double_param: value };
    default: throw new TypeError(`parameter '${name}' must be a boolean, number, bigint or string`);
  }
}

/** An InferParameter as a value; 64-bit integers are numbers while exact, bigints past that. */
export function parameterValue(message: ParameterMessage): ParameterValue | undefined {
  switch (message.parameter_choice) {
    case 'bool_param': return message.bool_param ?? false;
    case 'string_param': return message.string_param ?? '';
    case 'double_param': return message.double_param ?? 0;
    case 'int64_param':
    case 'uint64_param': {
      const big = int64ToBigInt(message[message.parameter_choice] ?? 0, message.parameter_choice === 'uint64_param');
      return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
    default: return undefined;
  }
}

function parameterValues(map: Readonly<Record<string, ParameterMessage>> | undefined): Record<string, ParameterValue> {
  const out: Record<string, ParameterValue> = {};
  for (const [key, message] of Object.entries(map ?? {})) {
    const value = parameterValue(message);
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/** The typed contents of one input. */
function contentsOf(t: Tensor): ContentsMessage {
  if (t.datatype === 'BYTES') return { bytes_contents: bytesTensorElements(t) };
  const typed = typedArrayFromBytes(t.datatype, fixedTensorBytes(t));
  switch (t.datatype) {
    case 'BOOL': return { bool_contents: Array.from(typed as Uint8Array, (v) => v !== 0) };
    case 'INT64':
    case 'UINT64': return { [CONTENTS_FIELD[t.datatype]!]: Array.from(typed as BigInt64Array, bigIntToInt64) };
    default: return { [CONTENTS_FIELD[t.datatype]!]: typed as Float64Array };
  }
}

/**
 * A ModelInferRequest as a plain object for protobufjs. With `raw` false the
 * data goes in typed `contents`, unless an input is FP16 or BF16: those have
 * no typed field, and the request then goes raw as a whole.
 */
export function modelInferRequest(model: string, inputs: readonly Tensor[], options: Omit<InferOptions, 'signal' | 'timeoutMs'>, raw: boolean): Record<string, unknown> {
  const checked = inputs.map(({ name, datatype, shape, data }) => tensor(name, datatype, shape, data));
  const useRaw = raw || checked.some((t) => CONTENTS_FIELD[t.datatype] === undefined);
  const parameters = Object.entries(options.parameters ?? {});
  return {
    model_name: model,
    model_version: options.modelVersion ?? '',
    id: options.id ?? '',
    ...(parameters.length > 0 ? { parameters: Object.fromEntries(parameters.map(([k, v]) => [k, parameterMessage(k, v)])) } : {}),
    inputs: checked.map((t) => ({
      name: t.name, datatype: t.datatype, shape: t.shape, ...(useRaw ? {} : { contents: contentsOf(t) }),
    })),
    ...(options.outputs ? { outputs: options.outputs.map((name) => ({ name })) } : {}),
    ...(useRaw ? { raw_input_contents: checked.map(tensorWireBytes) } : {}),
  };
}

function malformed(detail: string): InferenceServerError {
  return new InferenceServerError(`malformed inference response: ${detail}`, 'INTERNAL');
}

/** Output data from typed contents. */
function fromContents(name: string, datatype: DataType, contents: ContentsMessage | undefined): TypedTensorArray | Uint8Array[] {
  const field = CONTENTS_FIELD[datatype];
  if (field === undefined) throw malformed(`output '${name}' is ${datatype} but came without raw_output_contents`);
  const values = (contents?.[field] ?? []) as ArrayLike<unknown>;
  if (datatype === 'BYTES') return Array.from(values as ArrayLike<Uint8Array>);
  const out = new TYPED_ARRAY_OF[datatype as FixedDataType](values.length);
  if (isBigIntType(datatype)) {
    const unsigned = datatype === 'UINT64';
    for (let i = 0; i < values.length; i++) out[i] = int64ToBigInt(values[i] as Int64, unsigned);
  } else if (datatype === 'BOOL') {
    for (let i = 0; i < values.length; i++) out[i] = values[i] ? 1 : 0;
  } else {
    (out as Float64Array).set(values as ArrayLike<number>);
  }
  return out;
}

/** An InferResult from a decoded ModelInferResponse. */
export function inferResultFromMessage(message: ModelInferResponseMessage): InferResult {
  const raw = message.raw_output_contents ?? [];
  const outputs = (message.outputs ?? []).map((o, index) => {
    const name = o.name ?? '';
    const datatype = o.datatype ?? '';
    if (!isDataType(datatype)) throw malformed(`output '${name}' has datatype '${datatype}'`);
    const shape = (o.shape ?? []).map((d) => int64ToNumber(d));
    const bytes = raw[index];
    try {
      if (raw.length === 0) return new ResponseTensor(name, datatype, shape, fromContents(name, datatype, o.contents));
      if (bytes === undefined) throw malformed(`raw_output_contents has no entry for output '${name}'`);
      return new ResponseTensor(name, datatype, shape, datatype === 'BYTES' ? decodeBytesElements(bytes) : typedArrayFromBytes(datatype, bytes));
    } catch (err) {
      throw err instanceof InferenceServerError ? err : malformed(`output '${name}': ${(err as Error).message}`);
    }
  });
  return inferResult({
    modelName: message.model_name ?? '',
    modelVersion: message.model_version ?? '',
    ...(message.id ? { id: message.id } : {}),
    parameters: parameterValues(message.parameters),
    outputs,
  });
}
