/**
 * model_warmup, compiled: each sample's inputs checked against the model's
 * inputs and their data made once, at load time, as Triton makes it (zeros,
 * random bytes, or a file in the model's warmup/ folder). The samples run in
 * engine/repository/model-warmup.ts.
 */
import { join } from 'node:path';
import { readConfinedFileSync } from '../repository/confined-path.ts';
import { randomBytes } from 'node:crypto';
import { elementByteSize, formatShape, fromConfigDataType, toConfigDataType, type DataType } from '../tensor.ts';
import type { ConfigContext } from './compile-model-config.ts';
import type { TensorSpec, WarmupInputSpec, WarmupSampleSpec } from './compiled-model-config.ts';
import { asObj, asArray, asNumber, asString, failAt, type Obj } from './config-values.ts';

/** Where input_data_file paths are relative to, inside the model's folder (Triton's kWarmupDataFolder). */
export const WARMUP_FOLDER = 'warmup';



export interface WarmupTargets {
  readonly modelDir: string;
  readonly maxBatchSize: number;
  /** The inputs requests send. */
  readonly inputs: readonly TensorSpec[];
  /** Sequence control inputs a sample may set itself (Triton lets warmup override them); otherwise the warmup fills them. */
  readonly controlInputs: ReadonlyMap<string, DataType>;
}

export function compileModelWarmup(ctx: ConfigContext, entries: unknown[], targets: WarmupTargets): WarmupSampleSpec[] {
  return entries.map((value, index) => compileSample(ctx, asObj(value) ?? {}, `model_warmup[${index}]`, targets));
}

function compileSample(ctx: ConfigContext, entry: Obj, field: string, targets: WarmupTargets): WarmupSampleSpec {
  const name = asString(entry['name']) || field;
  const batchSize = asNumber(entry['batch_size']);
  const largest = Math.max(1, targets.maxBatchSize);
  if (!Number.isInteger(batchSize) || batchSize < 0 || batchSize > largest) {
    failAt(ctx, `${field}.batch_size`, `is ${batchSize}, but ${targets.maxBatchSize === 0
      ? 'the model does not batch (max_batch_size 0), so a sample is one request'
      : `the model takes at most max_batch_size ${targets.maxBatchSize} requests in one execution`}`,
    `set batch_size between 1 and ${largest}`);
  }
  const count = asNumber(entry['count']);
  if (!Number.isInteger(count) || count < 0) failAt(ctx, `${field}.count`, `is ${count}`, 'use the number of times to run the sample (0 or 1: once)');

  const given = Object.entries(asObj(entry['inputs']) ?? {});
  const inputs = given.map(([inputName, raw], position) => compileInput(ctx, `${field}.inputs[${position}]`, inputName, asObj(raw) ?? {}, targets));
  const named = new Set(inputs.map((i) => i.name));
  const missing = targets.inputs.filter((spec) => !spec.optional && !named.has(spec.name)).map((spec) => `'${spec.name}'`);
  if (missing.length > 0) {
    failAt(ctx, `${field}.inputs`, `leaves out the model's input${missing.length === 1 ? '' : 's'} ${missing.join(', ')}`,
      'give every input the model needs, each with data_type, dims and one of zero_data, random_data, input_data_file');
  }
  return { name, batchSize, count: Math.max(1, count), inputs };
}

function compileInput(ctx: ConfigContext, field: string, name: string, input: Obj, targets: WarmupTargets): WarmupInputSpec {
  const spec = targets.inputs.find((s) => s.name === name);
  const expectedType = spec?.datatype ?? targets.controlInputs.get(name);
  if (expectedType === undefined) {
    const known = [...targets.inputs.map((s) => s.name), ...targets.controlInputs.keys()].map((n) => `'${n}'`).join(', ');
    failAt(ctx, `${field}.key`, `'${name}' is not an input of the model`, `use one of the model's inputs: ${known || '(none)'}`);
  }
  const typeName = asString(input['data_type']);
  const datatype = fromConfigDataType(typeName);
  if (datatype !== expectedType) {
    failAt(ctx, `${field}.value.data_type`, `is ${typeName || 'missing'} but input '${name}' is ${toConfigDataType(expectedType)}`,
      `set data_type: ${toConfigDataType(expectedType)}`);
  }
  const dims = asArray(input['dims']).map((d) => asNumber(d));
  if (dims.some((d) => !Number.isInteger(d) || d < 0)) {
    failAt(ctx, `${field}.value.dims`, `${formatShape(dims)} has a variable-size dim; a warmup sample gives every dim its size`,
      spec ? `set dims to a shape that fits ${formatShape(spec.dims)}, with a size for each -1` : 'give every dim a size');
  }
  if (spec && (dims.length !== spec.dims.length || spec.dims.some((d, i) => d !== -1 && d !== dims[i]))) {
    failAt(ctx, `${field}.value.dims`, `${formatShape(dims)} does not fit input '${name}', which is ${formatShape(spec.dims)}` +
      (targets.maxBatchSize > 0 ? ' without its batch dimension (a warmup sample leaves it out)' : ''),
    `set dims to ${formatShape(spec.dims)}, with a size for each -1`);
  }
  const count = dims.reduce((n, d) => n * d, 1);
  const size = elementByteSize(datatype);
  const fileName = asString(input['input_data_file']);
  if (fileName) {
    const bytes = readWarmupFile(ctx, `${field}.value.input_data_file`, targets.modelDir, fileName);
    if (size === undefined) {
      return { name, datatype, dims, source: 'input_data_file', elements: splitBytesElements(ctx, `${field}.value.input_data_file`, bytes, count, fileName) };
    }
    if (bytes.byteLength < count * size) {
      failAt(ctx, `${field}.value.input_data_file`, `${WARMUP_FOLDER}/${fileName} has ${bytes.byteLength} bytes, but ${formatShape(dims)} of ${typeName} takes ${count * size}`,
        'write the full tensor into the file as little-endian bytes, or change dims');
    }
    return { name, datatype, dims, source: 'input_data_file', raw: new Uint8Array(bytes.subarray(0, count * size)) };
  }
  if (input['random_data'] === true) {
    // Random strings would be arbitrary bytes; Triton sends empty ones, and so do we.
    if (size === undefined) return { name, datatype, dims, source: 'random_data', elements: Array.from({ length: count }, () => new Uint8Array(0)) };
    const raw = new Uint8Array(randomBytes(count * size));
    if (datatype === 'BOOL') raw.forEach((b, i) => { raw[i] = b & 1; });
    return { name, datatype, dims, source: 'random_data', raw };
  }
  if (input['zero_data'] === true) {
    if (size === undefined) return { name, datatype, dims, source: 'zero_data', elements: Array.from({ length: count }, () => new Uint8Array(0)) };
    return { name, datatype, dims, source: 'zero_data', raw: new Uint8Array(count * size) };
  }
  failAt(ctx, `${field}.value`, `gives input '${name}' no data`, 'set one of zero_data: true, random_data: true, input_data_file: "<file in the model\'s warmup folder>"');
}

function readWarmupFile(ctx: ConfigContext, field: string, modelDir: string, fileName: string): Uint8Array {
  const read = readConfinedFileSync(modelDir, fileName, WARMUP_FOLDER);
  if (read.problem !== undefined) {
    failAt(ctx, field, read.problem, `put the input's data in a file inside ${join(modelDir, WARMUP_FOLDER)} and name it relative to that folder`);
  }
  return read.bytes;
}

/** A BYTES input's file holds its elements as Triton serializes them: a 4-byte little-endian length, then the bytes, for each. */
function splitBytesElements(ctx: ConfigContext, field: string, bytes: Uint8Array, count: number, fileName: string): Uint8Array[] {
  const elements: Uint8Array[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  while (offset < bytes.byteLength) {
    const length = offset + 4 <= bytes.byteLength ? view.getUint32(offset, true) : -1;
    if (length < 0 || offset + 4 + length > bytes.byteLength) {
      failAt(ctx, field, `${WARMUP_FOLDER}/${fileName} ends inside element ${elements.length}`,
        'write each string as a 4-byte little-endian length followed by its bytes');
    }
    elements.push(bytes.slice(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  if (elements.length !== count) {
    failAt(ctx, field, `${WARMUP_FOLDER}/${fileName} holds ${elements.length} string${elements.length === 1 ? '' : 's'}, but the dims take ${count}`,
      'write one length-prefixed string per element, or change dims');
  }
  return elements;
}
