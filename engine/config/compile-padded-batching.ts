/**
 * Switchyard's padded batching, read from the model config's `parameters`:
 *
 *   padded_batching            comma-separated inputs whose -1 dims may differ within one batch
 *   padded_batching_pad_value  what padding is filled with: one number for all, or "x=0,y=-1"; default 0
 *   padded_batching_bucket     bucket width along each padded dim; default 32
 *
 * Everything is checked here, once, at load; the batcher only reads the
 * compiled spec. docs/batching.md describes the semantics.
 */
import { allocateTyped, bytesOf, fromBfloat16Bits, fromHalfBits, toBfloat16Bits, toConfigDataType, toHalfBits, type FixedDataType } from '../tensor.ts';
import type { PaddedBatchingSpec, PaddedInputSpec, TensorSpec } from './compiled-model-config.ts';
import { didYouMean } from './did-you-mean.ts';
import { failAtParameter, type ConfigContext } from './config-values.ts';

export const PADDED_BATCHING_PARAMETER = 'padded_batching';
export const PAD_VALUE_PARAMETER = 'padded_batching_pad_value';
export const BUCKET_PARAMETER = 'padded_batching_bucket';

export const DEFAULT_BUCKET_WIDTH = 32;
/** The widest bucket: a dim is at most INT32_MAX in practice, so a wider bucket means nothing more. */
export const MAX_BUCKET_WIDTH = 2 ** 31 - 1;
/** Longest parameter value quoted back in an error message. */
const QUOTED_CHARS = 64;

export interface PaddedBatchingContext {
  readonly parameters: ReadonlyMap<string, string>;
  readonly inputs: readonly TensorSpec[];
  readonly maxBatchSize: number;
  /** The config has dynamic_batching. */
  readonly dynamicBatching: boolean;
  /** The config has sequence_batching. */
  readonly sequenceBatching: boolean;
}

/** The compiled spec, or undefined when the config does not ask for padded batching. */
export function compilePaddedBatching(ctx: ConfigContext, options: PaddedBatchingContext): PaddedBatchingSpec | undefined {
  const { parameters } = options;
  const list = parameters.get(PADDED_BATCHING_PARAMETER);
  if (list === undefined) {
    for (const key of [PAD_VALUE_PARAMETER, BUCKET_PARAMETER]) {
      if (parameters.has(key)) {
        failAtParameter(ctx, key, `is set but parameters '${PADDED_BATCHING_PARAMETER}' is not`,
          `name the inputs to pad in parameters '${PADDED_BATCHING_PARAMETER}', or remove '${key}'`);
      }
    }
    return undefined;
  }
  const field = PADDED_BATCHING_PARAMETER;
  if (options.sequenceBatching) {
    failAtParameter(ctx, field, 'is set on a sequence_batching model; padded batching belongs to the dynamic batcher',
      `remove parameters '${PADDED_BATCHING_PARAMETER}'`);
  }
  if (options.maxBatchSize <= 0 || !options.dynamicBatching) {
    failAtParameter(ctx, field, options.maxBatchSize <= 0
      ? 'is set but max_batch_size is 0, so the model has no batches to pad'
      : 'is set but the model has no dynamic_batching, so each request runs alone and nothing is padded',
    `set max_batch_size above 0 and add dynamic_batching { }, or remove parameters '${PADDED_BATCHING_PARAMETER}'`);
  }
  const names = list.split(',').map((n) => n.trim());
  const byName = new Map(options.inputs.map((s) => [s.name, s]));
  const inputs = new Map<string, PaddedInputSpec>();
  const padValues = readPadValues(ctx, parameters.get(PAD_VALUE_PARAMETER), names);
  for (const name of names) {
    if (name === '') failAtParameter(ctx, field, `is '${quote(list)}', which has an empty input name`, 'list input names separated by commas, such as "x" or "x,y"');
    if (inputs.has(name)) failAtParameter(ctx, field, `names input '${quote(name)}' twice`, 'list each input once');
    const spec = byName.get(name);
    if (!spec) {
      const guess = didYouMean(name, byName.keys());
      failAtParameter(ctx, field, `names '${quote(name)}', which is not an input of the model`,
        guess ? `did you mean '${guess}'?` : `use inputs of the model: ${[...byName.keys()].map((n) => `'${n}'`).join(', ')}`);
    }
    inputs.set(name, compileInput(ctx, spec, padValues.get(name) ?? padValues.get('') ?? '0'));
  }
  return { inputs, bucketWidth: readBucketWidth(ctx, parameters.get(BUCKET_PARAMETER)) };
}

function compileInput(ctx: ConfigContext, spec: TensorSpec, padText: string): PaddedInputSpec {
  const field = PADDED_BATCHING_PARAMETER;
  if (spec.datatype === 'BYTES') {
    failAtParameter(ctx, field, `names input '${spec.name}', which is TYPE_STRING: its elements vary in size, so there is no pad value to fill with`,
      'pad string inputs on the client, or mark the input allow_ragged_batch');
  }
  if (spec.allowRaggedBatch) {
    failAtParameter(ctx, field, `names input '${spec.name}', which has allow_ragged_batch: ragged inputs are joined flat, never padded`,
      `remove '${spec.name}' from the list, or set allow_ragged_batch: false`);
  }
  if (spec.modelDims.length !== spec.dims.length || spec.modelDims.some((d, i) => d !== spec.dims[i])) {
    failAtParameter(ctx, field, `names input '${spec.name}', which has a reshape: padding along the request's dims would not line up with the model's`,
      `remove the reshape of '${spec.name}', or remove it from the list`);
  }
  const axes = spec.dims.flatMap((d, i) => (d === -1 ? [i + 1] : []));
  if (axes.length === 0) {
    failAtParameter(ctx, field, `names input '${spec.name}', whose dims [${spec.dims.join(', ')}] have no variable (-1) dim to pad along`,
      `give '${spec.name}' a -1 dim where sizes vary, or remove it from the list`);
  }
  return { name: spec.name, datatype: spec.datatype, axes, padText, padElement: encodePadValue(ctx, spec, padText) };
}

/** "0" for every input (key ''), or "x=0,y=-1" per input. */
function readPadValues(ctx: ConfigContext, written: string | undefined, names: readonly string[]): Map<string, string> {
  const values = new Map<string, string>();
  if (written === undefined) return values;
  const field = PAD_VALUE_PARAMETER;
  if (!written.includes('=')) {
    values.set('', written.trim());
    return values;
  }
  for (const entry of written.split(',')) {
    const eq = entry.indexOf('=');
    const name = eq < 0 ? '' : entry.slice(0, eq).trim();
    if (eq < 0 || name === '') {
      failAtParameter(ctx, field, `is '${quote(written)}': entry '${quote(entry.trim())}' is not input=value`,
        'give one number for every input, such as "0", or one per input, such as "x=0,y=-1"');
    }
    if (!names.includes(name)) {
      failAtParameter(ctx, field, `gives a pad value for '${quote(name)}', which parameters '${PADDED_BATCHING_PARAMETER}' does not list`,
        `give pad values only for the padded inputs: ${names.map((n) => `'${quote(n)}'`).join(', ')}`);
    }
    if (values.has(name)) failAtParameter(ctx, field, `gives a pad value for '${quote(name)}' twice`, 'give each input one pad value');
    values.set(name, entry.slice(eq + 1).trim());
  }
  return values;
}

const INTEGER_RANGES: Partial<Record<FixedDataType, readonly [bigint, bigint]>> = {
  BOOL: [0n, 1n], UINT8: [0n, 255n], INT8: [-128n, 127n], UINT16: [0n, 65535n], INT16: [-32768n, 32767n],
  UINT32: [0n, 4294967295n], INT32: [-2147483648n, 2147483647n],
  UINT64: [0n, 18446744073709551615n], INT64: [-9223372036854775808n, 9223372036854775807n],
};

/** The pad value as one element of the input's datatype, or a config error naming what it takes. */
function encodePadValue(ctx: ConfigContext, spec: TensorSpec, text: string): Uint8Array {
  const datatype = spec.datatype as FixedDataType;
  const element = allocateTyped(datatype, 1);
  const range = INTEGER_RANGES[datatype];
  const bad = (takes: string): never => failAtParameter(ctx, PAD_VALUE_PARAMETER,
    `gives input '${spec.name}' (${toConfigDataType(datatype)}) the pad value '${quote(text)}'`, `use ${takes}`);
  if (range) {
    const value = /^[+-]?[0-9]{1,20}$/.test(text) ? BigInt(text) : undefined;
    if (value === undefined || value < range[0] || value > range[1]) bad(`a whole number from ${range[0]} to ${range[1]}`);
    if (element instanceof BigInt64Array || element instanceof BigUint64Array) element[0] = value!;
    else element[0] = Number(value);
    return bytesOf(element);
  }
  const value = text === '' ? Number.NaN : Number(text);
  const takes = 'a finite number the datatype can hold';
  if (!Number.isFinite(value)) bad(takes);
  if (datatype === 'FP16') element[0] = toHalfBits(value);
  else if (datatype === 'BF16') element[0] = toBfloat16Bits(value);
  else element[0] = value;
  const stored = datatype === 'FP16' ? fromHalfBits(element[0] as number) : datatype === 'BF16' ? fromBfloat16Bits(element[0] as number) : element[0] as number;
  if (!Number.isFinite(stored)) bad(takes);
  return bytesOf(element);
}

function readBucketWidth(ctx: ConfigContext, written: string | undefined): number {
  if (written === undefined) return DEFAULT_BUCKET_WIDTH;
  const value = /^[0-9]{1,10}$/.test(written.trim()) ? Number(written.trim()) : Number.NaN;
  if (!(value >= 1 && value <= MAX_BUCKET_WIDTH)) {
    failAtParameter(ctx, BUCKET_PARAMETER, `is '${quote(written)}'`,
      `use a whole number from 1 to ${MAX_BUCKET_WIDTH}: requests share a batch when each padded dim has the same ceil(dim / bucket); default ${DEFAULT_BUCKET_WIDTH}`);
  }
  return value;
}

/** A value from the config, cut short for a message. */
function quote(text: string): string {
  return text.length > QUOTED_CHARS ? `${text.slice(0, QUOTED_CHARS)}...` : text;
}
