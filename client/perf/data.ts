/**
 * What the perf tool sends: the model's inputs as learnt from its metadata
 * and config, shapes completed from --shape, and the tensor data (random,
 * zero, or perf_analyzer's JSON input-data files) cut into batched payloads.
 * Pure: file reading and the server live in main.ts.
 */
import { DATA_TYPES, toBfloat16Bits, toFloat16Bits, type DataType, type Tensor, type TensorData } from '../index.ts';
import { decodeBytesElements } from '../src/bytes-elements.ts';
import { UsageError } from './args.ts';

export interface InputSpec {
  readonly name: string;
  readonly datatype: DataType;
  /** Without the batch dimension; -1 for a variable dim. */
  readonly dims: readonly number[];
  readonly optional: boolean;
}

export interface ModelSpec {
  readonly name: string;
  readonly maxBatchSize: number;
  /** The config has sequence_batching. */
  readonly isSequence: boolean;
  readonly inputs: readonly InputSpec[];
}

/** Element storage per datatype, as the client SDK takes it. */
export type ElementData =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array
  | BigUint64Array | BigInt64Array | Float32Array | Float64Array
  | (string | Uint8Array)[];

/** One input's value for one batch element. */
export interface StepTensor {
  readonly shape: readonly number[];
  readonly data: ElementData;
}

/** One entry of perf_analyzer's "data" array: every input for one batch element. */
export type DataStep = ReadonlyMap<string, StepTensor>;
export type DataStream = readonly DataStep[];

/** One request's inputs. */
export interface Payload {
  readonly inputs: readonly Tensor[];
}

interface TensorMetadataLike {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
}

function toInteger(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return Number(value);
  return undefined;
}

/**
 * Builds the model description from its metadata (names, datatypes, shapes)
 * and its config (max_batch_size, sequence_batching, optional inputs).
 */
export function describeModel(
  metadata: { readonly name: string; readonly inputs: readonly TensorMetadataLike[] },
  config: Readonly<Record<string, unknown>>,
): ModelSpec {
  const maxBatchSize = toInteger(config['max_batch_size']) ?? 0;
  const configInputs = Array.isArray(config['input']) ? (config['input'] as unknown[]) : [];
  const optional = new Set(
    configInputs
      .filter((i): i is Record<string, unknown> => typeof i === 'object' && i !== null && (i as Record<string, unknown>)['optional'] === true)
      .map((i) => String(i['name'])),
  );
  const inputs = metadata.inputs.map((input): InputSpec => {
    if (!(DATA_TYPES as readonly string[]).includes(input.datatype)) {
      throw new UsageError(`input '${input.name}' has datatype '${input.datatype}', which switchyard perf cannot generate`);
    }
    const shape = input.shape.map(Number);
    // Metadata shapes carry the batch dimension when the model batches; the rest of the tool works without it.
    const dims = maxBatchSize > 0 ? shape.slice(1) : shape;
    return { name: input.name, datatype: input.datatype as DataType, dims, optional: optional.has(input.name) };
  });
  const sequence = config['sequence_batching'];
  return { name: metadata.name, maxBatchSize, isSequence: typeof sequence === 'object' && sequence !== null, inputs };
}

/** Checks -b against the model's max_batch_size, as perf_analyzer does. */
export function checkBatchSize(model: ModelSpec, batchSize: number): void {
  if (model.maxBatchSize === 0 && batchSize > 1) {
    throw new UsageError(`-b ${batchSize}: model '${model.name}' does not batch (max_batch_size 0), so the batch size must be 1`);
  }
  if (model.maxBatchSize > 0 && batchSize > model.maxBatchSize) {
    throw new UsageError(`-b ${batchSize}: model '${model.name}' takes batches of at most ${model.maxBatchSize} (max_batch_size)`);
  }
}

/** Checks that every --shape names an input of the model. */
export function checkShapeNames(model: ModelSpec, shapes: ReadonlyMap<string, readonly number[]>): void {
  for (const name of shapes.keys()) {
    if (!model.inputs.some((i) => i.name === name)) {
      const names = model.inputs.map((i) => i.name);
      const near = names.find((n) => n.toLowerCase() === name.toLowerCase());
      throw new UsageError(`--shape: model '${model.name}' has no input '${name}'${near ? `; did you mean '${near}'?` : ''} (inputs: ${names.join(', ')})`);
    }
  }
}

/** An input's dims with variable (-1) dims filled from --shape. */
export function resolveDims(input: InputSpec, shapes: ReadonlyMap<string, readonly number[]>): number[] {
  const given = shapes.get(input.name);
  if (given === undefined) {
    if (input.dims.some((d) => d < 0)) {
      throw new UsageError(
        `input '${input.name}' has variable shape [${input.dims.join(',')}]; give its shape with --shape ${input.name}:${input.dims.map((d) => (d < 0 ? 'N' : d)).join(',')}`,
      );
    }
    return [...input.dims];
  }
  const fits = given.length === input.dims.length && input.dims.every((d, i) => d < 0 || d === given[i]);
  if (!fits) {
    throw new UsageError(`--shape ${input.name}:${given.join(',')} does not fit the model's shape [${input.dims.join(',')}] for '${input.name}' (without the batch dimension)`);
  }
  return [...given];
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function allocate(datatype: DataType, count: number): ElementData {
  switch (datatype) {
    case 'BOOL': case 'UINT8': return new Uint8Array(count);
    case 'INT8': return new Int8Array(count);
    case 'UINT16': case 'FP16': case 'BF16': return new Uint16Array(count);
    case 'INT16': return new Int16Array(count);
    case 'UINT32': return new Uint32Array(count);
    case 'INT32': return new Int32Array(count);
    case 'UINT64': return new BigUint64Array(count);
    case 'INT64': return new BigInt64Array(count);
    case 'FP32': return new Float32Array(count);
    case 'FP64': return new Float64Array(count);
    case 'BYTES': return Array.from({ length: count }, () => '');
  }
}

const ALPHANUMERIC = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

export interface GeneratedDataOptions {
  readonly kind: 'random' | 'zero';
  readonly stringLength: number;
  readonly stringData: string | undefined;
  /** Uniform in [0, 1); injectable for tests. */
  readonly random?: () => number;
}

/**
 * One input's data for one batch element. Random integers are small
 * (0..99) so that every integer type holds them; random floats lie in
 * [-1, 1); BYTES elements are random alphanumeric strings.
 */
export function generateData(datatype: DataType, count: number, options: GeneratedDataOptions): ElementData {
  const random = options.random ?? Math.random;
  const data = allocate(datatype, count);
  if (datatype === 'BYTES') {
    const strings = data as string[];
    for (let i = 0; i < count; i++) {
      if (options.stringData !== undefined) strings[i] = options.stringData;
      else if (options.kind === 'zero') strings[i] = '';
      else {
        let s = '';
        for (let j = 0; j < options.stringLength; j++) s += ALPHANUMERIC[Math.floor(random() * ALPHANUMERIC.length)];
        strings[i] = s;
      }
    }
    return data;
  }
  if (options.kind === 'zero') return data;
  for (let i = 0; i < count; i++) {
    const unit = random();
    switch (datatype) {
      case 'BOOL': (data as Uint8Array)[i] = unit < 0.5 ? 0 : 1; break;
      case 'FP32': case 'FP64': (data as Float32Array | Float64Array)[i] = unit * 2 - 1; break;
      case 'FP16': (data as Uint16Array)[i] = toFloat16Bits(unit * 2 - 1); break;
      case 'BF16': (data as Uint16Array)[i] = toBfloat16Bits(unit * 2 - 1); break;
      case 'UINT64': case 'INT64': (data as BigInt64Array | BigUint64Array)[i] = BigInt(Math.floor(unit * 100)); break;
      default: (data as Int32Array)[i] = Math.floor(unit * 100);
    }
  }
  return data;
}

/** One step of random or zero data for every non-optional input. */
export function generatedStep(model: ModelSpec, shapes: ReadonlyMap<string, readonly number[]>, options: GeneratedDataOptions): DataStep {
  const step = new Map<string, StepTensor>();
  for (const input of model.inputs) {
    if (input.optional && !shapes.has(input.name)) continue;
    const shape = resolveDims(input, shapes);
    step.set(input.name, { shape, data: generateData(input.datatype, elementCount(shape), options) });
  }
  return step;
}

const FIXED_BYTES: Readonly<Record<Exclude<DataType, 'BYTES'>, number>> = {
  BOOL: 1, UINT8: 1, INT8: 1, UINT16: 2, INT16: 2, FP16: 2, BF16: 2, UINT32: 4, INT32: 4, FP32: 4, UINT64: 8, INT64: 8, FP64: 8,
};

/** Decodes {"b64": ...} content: little-endian elements, or 4-byte-length-prefixed BYTES elements. */
export function decodeBase64(datatype: DataType, base64: string, where: string): ElementData {
  const bytes = Buffer.from(base64, 'base64');
  if (datatype === 'BYTES') {
    try {
      return decodeBytesElements(bytes);
    } catch (error) {
      throw new UsageError(`${where}: BYTES base64 data: ${(error as Error).message}`);
    }
  }
  const size = FIXED_BYTES[datatype];
  if (bytes.byteLength % size !== 0) {
    throw new UsageError(`${where}: ${bytes.byteLength} base64-decoded bytes is not a whole number of ${datatype} elements (${size} bytes each)`);
  }
  const count = bytes.byteLength / size;
  const data = allocate(datatype, count);
  // Copy into fresh, aligned storage; typed arrays read in platform (little-endian) order.
  new Uint8Array((data as Uint8Array).buffer).set(bytes);
  return data;
}

function flatten(values: readonly unknown[]): unknown[] {
  return (values as unknown[]).flat(Infinity as 1);
}

/** Converts JSON values to one datatype's storage. */
export function fromJsonValues(datatype: DataType, values: readonly unknown[], where: string): ElementData {
  const data = allocate(datatype, values.length);
  const bad = (i: number, expected: string): UsageError =>
    new UsageError(`${where}[${i}]: expected ${expected} for ${datatype}, got ${JSON.stringify(values[i])}`);
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (datatype === 'BYTES') {
      if (typeof value === 'string') (data as string[])[i] = value;
      else if (typeof value === 'number' || typeof value === 'boolean') (data as string[])[i] = String(value);
      else throw bad(i, 'a string');
      continue;
    }
    if (datatype === 'BOOL') {
      if (typeof value === 'boolean') (data as Uint8Array)[i] = value ? 1 : 0;
      else if (value === 0 || value === 1) (data as Uint8Array)[i] = value;
      else throw bad(i, 'true or false');
      continue;
    }
    if (datatype === 'INT64' || datatype === 'UINT64') {
      let big: bigint;
      if (typeof value === 'number' && Number.isInteger(value)) big = BigInt(value);
      else if (typeof value === 'string' && /^-?\d+$/.test(value)) big = BigInt(value);
      else throw bad(i, 'an integer');
      (data as BigInt64Array | BigUint64Array)[i] = big;
      // Typed arrays wrap out-of-range values silently; refuse them instead.
      if ((data as BigInt64Array | BigUint64Array)[i] !== big) throw bad(i, `an integer in ${datatype} range`);
      continue;
    }
    if (typeof value !== 'number') throw bad(i, 'a number');
    if (datatype === 'FP16') (data as Uint16Array)[i] = toFloat16Bits(value);
    else if (datatype === 'BF16') (data as Uint16Array)[i] = toBfloat16Bits(value);
    else if (datatype === 'FP32' || datatype === 'FP64') (data as Float32Array)[i] = value;
    else if (!Number.isInteger(value)) throw bad(i, 'an integer');
    else {
      (data as Int32Array)[i] = value;
      if ((data as Int32Array)[i] !== value) throw bad(i, `an integer in ${datatype} range`);
    }
  }
  return data;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Fills the single unknown dim of a shape from an element count, when that is unambiguous. */
function inferShape(dims: readonly number[], count: number): number[] | undefined {
  const unknown = dims.filter((d) => d < 0).length;
  if (unknown !== 1) return undefined;
  const known = elementCount(dims.filter((d) => d >= 0));
  if (known === 0 || count % known !== 0) return undefined;
  return dims.map((d) => (d < 0 ? count / known : d));
}

function parseStepTensor(input: InputSpec, raw: unknown, shapes: ReadonlyMap<string, readonly number[]>, where: string): StepTensor {
  let content: unknown = raw;
  let explicitShape: number[] | undefined;
  if (isRecord(raw) && 'content' in raw) {
    content = raw['content'];
    if (raw['shape'] !== undefined) {
      const shape = raw['shape'];
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
        throw new UsageError(`${where}.shape: expected a list of non-negative integers`);
      }
      explicitShape = shape as number[];
    }
  }
  let data: ElementData;
  if (isRecord(content) && typeof content['b64'] === 'string') data = decodeBase64(input.datatype, content['b64'], where);
  else if (Array.isArray(content)) data = fromJsonValues(input.datatype, flatten(content), where);
  else throw new UsageError(`${where}: expected a list of values, {"b64": ...}, or {"content": ..., "shape": [...]}`);

  const count = data.length;
  let shape: number[] | undefined = explicitShape;
  if (shape === undefined) {
    const given = shapes.get(input.name);
    if (given !== undefined) shape = resolveDims(input, shapes);
    else if (input.dims.every((d) => d >= 0)) shape = [...input.dims];
    else shape = inferShape(input.dims, count);
    if (shape === undefined) {
      throw new UsageError(`${where}: '${input.name}' has variable shape [${input.dims.join(',')}]; add "shape" to the data or give --shape`);
    }
  } else if (shape.length !== input.dims.length || !input.dims.every((d, i) => d < 0 || d === shape?.[i])) {
    throw new UsageError(`${where}.shape [${shape.join(',')}] does not fit the model's shape [${input.dims.join(',')}] for '${input.name}'`);
  }
  if (elementCount(shape) !== count) {
    throw new UsageError(`${where}: ${count} elements do not fill shape [${shape.join(',')}] (${elementCount(shape)} elements)`);
  }
  return { shape, data };
}

function parseStep(model: ModelSpec, raw: unknown, shapes: ReadonlyMap<string, readonly number[]>, where: string): DataStep {
  if (!isRecord(raw)) throw new UsageError(`${where}: expected an object mapping input names to data`);
  const step = new Map<string, StepTensor>();
  for (const name of Object.keys(raw)) {
    if (!model.inputs.some((i) => i.name === name)) {
      throw new UsageError(`${where}: model '${model.name}' has no input '${name}' (inputs: ${model.inputs.map((i) => i.name).join(', ')})`);
    }
  }
  for (const input of model.inputs) {
    if (!(input.name in raw)) {
      if (input.optional) continue;
      throw new UsageError(`${where}: no data for input '${input.name}'`);
    }
    step.set(input.name, parseStepTensor(input, raw[input.name], shapes, `${where}.${input.name}`));
  }
  return step;
}

/**
 * Reads one perf_analyzer input-data document: {"data": [step, ...]} is one
 * stream; {"data": [[step, ...], [step, ...]]} is one stream per sequence.
 */
export function parseInputData(
  model: ModelSpec,
  document: unknown,
  shapes: ReadonlyMap<string, readonly number[]>,
  label: string,
): DataStream[] {
  if (!isRecord(document) || !Array.isArray(document['data'])) {
    throw new UsageError(`${label}: expected {"data": [...]} as in perf_analyzer's input-data format`);
  }
  const entries = document['data'] as unknown[];
  if (entries.length === 0) throw new UsageError(`${label}: "data" is empty`);
  const nested = entries.every(Array.isArray);
  if (!nested && entries.some(Array.isArray)) {
    throw new UsageError(`${label}: "data" mixes streams (lists) and single entries (objects)`);
  }
  if (!nested) return [entries.map((entry, i) => parseStep(model, entry, shapes, `${label}: data[${i}]`))];
  return entries.map((stream, s) => {
    const steps = stream as unknown[];
    if (steps.length === 0) throw new UsageError(`${label}: data[${s}] is an empty stream`);
    return steps.map((entry, i) => parseStep(model, entry, shapes, `${label}: data[${s}][${i}]`));
  });
}

function concat(datatype: DataType, parts: readonly ElementData[]): ElementData {
  if (datatype === 'BYTES') return parts.flatMap((p) => p as (string | Uint8Array)[]);
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = allocate(datatype, total);
  let offset = 0;
  for (const part of parts) {
    (out as Uint8Array).set(part as Uint8Array, offset);
    offset += part.length;
  }
  return out;
}

function greatestCommonDivisor(a: number, b: number): number {
  return b === 0 ? a : greatestCommonDivisor(b, a % b);
}

/**
 * Cuts a stream into the distinct requests a round-robin walk produces:
 * request k takes steps k*B .. k*B+B-1 (mod the stream length), so the walk
 * repeats after length / gcd(length, B) requests. Models that batch get a
 * leading batch dimension of B.
 */
export function buildPayloads(model: ModelSpec, stream: DataStream, batchSize: number): Payload[] {
  const length = stream.length;
  const distinct = length / greatestCommonDivisor(length, batchSize);
  const payloads: Payload[] = [];
  for (let k = 0; k < distinct; k++) {
    const indices = Array.from({ length: batchSize }, (_, i) => (k * batchSize + i) % length);
    const steps = indices.map((i) => stream[i] as DataStep);
    const inputs: Tensor[] = [];
    for (const input of model.inputs) {
      const present = steps.map((s) => s.get(input.name));
      if (present.every((p) => p === undefined)) continue;
      if (present.some((p) => p === undefined)) {
        throw new UsageError(`input-data entries ${indices.join(', ')} do not all give optional input '${input.name}', so they cannot be batched together (-b ${batchSize})`);
      }
      const parts = present as StepTensor[];
      const shape = (parts[0] as StepTensor).shape;
      if (parts.some((p) => p.shape.length !== shape.length || p.shape.some((d, i) => d !== shape[i]))) {
        throw new UsageError(`input-data entries ${indices.join(', ')} give '${input.name}' different shapes, so they cannot be batched together (-b ${batchSize})`);
      }
      inputs.push({
        name: input.name,
        datatype: input.datatype,
        shape: model.maxBatchSize > 0 ? [batchSize, ...shape] : [...shape],
        data: concat(input.datatype, parts.map((p) => p.data)) as TensorData,
      });
    }
    payloads.push({ inputs });
  }
  return payloads;
}
