/**
 * Fixtures for TypeScript model tests: configs for `backend: "typescript"`,
 * model.ts files written into a repository, tensors in the engine's form and
 * back, a logger that keeps its lines, and bounds for calls that might hang.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SwitchyardError } from '../../engine/errors.ts';
import type { Logger } from '../../engine/logger.ts';
import { bytesOf, typedView, type DataType, type FixedDataType, type NumericArray, type Tensor } from '../../engine/tensor.ts';
import { bytesStrings, bytesTensor as bytesTensorOf } from '../../engine/bytes-tensor.ts';

/** One input or output: name, config type (TYPE_INT32, TYPE_STRING, ...), dims without the batch dim. */
export type IoSpec = readonly [name: string, configType: string, dims: readonly number[]];

export interface ScriptConfigOptions {
  readonly maxBatchSize?: number;
  readonly inputs?: readonly IoSpec[];
  readonly outputs?: readonly IoSpec[];
  readonly executeTimeoutMs?: number;
  readonly memoryLimitMb?: number;
  /** Any other parameters (max_transfer_mb, allow_webassembly, ...). */
  readonly parameters?: Readonly<Record<string, string | number | boolean>>;
  /** Extra config lines: dynamic_batching, instance_group, ... */
  readonly extra?: string;
}

const X16: IoSpec = ['X', 'TYPE_INT32', [16]];
const Y16: IoSpec = ['Y', 'TYPE_INT32', [16]];

/** A TypeScript model's config.pbtxt; by default INT32 X [16] -> INT32 Y [16], max_batch_size 8. */
export function scriptConfig(options: ScriptConfigOptions = {}): string {
  const io = (list: readonly IoSpec[]): string => list
    .map(([name, type, dims]) => `{ name: "${name}" data_type: ${type} dims: [ ${dims.join(', ')} ] }`).join(',\n  ');
  const parameters = [
    ...(options.executeTimeoutMs !== undefined ? [['execute_timeout_ms', options.executeTimeoutMs]] : []),
    ...(options.memoryLimitMb !== undefined ? [['memory_limit_mb', options.memoryLimitMb]] : []),
    ...Object.entries(options.parameters ?? {}),
  ].map(([k, v]) => `parameters { key: "${k}" value: { string_value: "${v}" } }`).join('\n');
  return `backend: "typescript"
max_batch_size: ${options.maxBatchSize ?? 8}
input [
  ${io(options.inputs ?? [X16])}
]
output [
  ${io(options.outputs ?? [Y16])}
]
${parameters}
${options.extra ?? ''}
`;
}

/** Writes `<root>/<model>/<version>/model.ts`. */
export async function writeScript(root: string, model: string, version: number, source: string): Promise<void> {
  const dir = join(root, model, String(version));
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.ts'), source);
}

/** Writes every model's scripts: { model: { version: source } }. */
export async function writeScripts(root: string, scripts: Readonly<Record<string, Readonly<Record<number, string>>>>): Promise<void> {
  for (const [model, versions] of Object.entries(scripts)) {
    for (const [version, source] of Object.entries(versions)) await writeScript(root, model, Number(version), source);
  }
}

/** A logger that keeps every line, with its level, for assertions. */
export interface CapturingLogger extends Logger {
  readonly lines: string[];
}

export function capturingLogger(): CapturingLogger {
  const lines: string[] = [];
  const keep = (level: string) => (message: string): void => { lines.push(`${level} ${message}`); };
  return { lines, error: keep('error'), warn: keep('warn'), info: keep('info'), verbose: keep('verbose'), verboseEnabled: false };
}

/** A fixed-size engine tensor holding a copy of `data`. */
export function fixedTensor(name: string, datatype: FixedDataType, shape: readonly number[], data: NumericArray): Tensor {
  return { name, datatype, shape, raw: bytesOf(data).slice() };
}

export function bytesTensor(name: string, shape: readonly number[], strings: readonly string[]): Tensor {
  return bytesTensorOf(name, shape, strings);
}

/** INT32 [1, 16] holding 0..15 plus `offset`. */
export function int32x16(name = 'X', offset = 0): Tensor {
  return fixedTensor(name, 'INT32', [1, 16], Int32Array.from({ length: 16 }, (_, i) => i + offset));
}

/** A fixed tensor's elements as numbers (bigints as numbers too). */
export function valuesOf(tensor: Tensor | undefined): number[] {
  if (!tensor) throw new Error('no tensor');
  if (tensor.datatype === 'BYTES') throw new Error(`tensor '${tensor.name}' is BYTES`);
  return [...typedView(tensor.datatype, tensor.raw)].map(Number);
}

export function stringsOf(tensor: Tensor | undefined): string[] {
  if (!tensor) throw new Error('no tensor');
  if (tensor.datatype !== 'BYTES') throw new Error(`tensor '${tensor.name}' is ${tensor.datatype}, not BYTES`);
  return bytesStrings(tensor);
}

export function outputNamed(outputs: readonly Tensor[], name: string): Tensor {
  const found = outputs.find((t) => t.name === name);
  if (!found) throw new Error(`no output '${name}' among ${outputs.map((t) => t.name).join(', ')}`);
  return found;
}

/** The error a promise rejects with; fails if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<SwitchyardError & { code: string }> {
  try {
    await promise;
  } catch (err) {
    return err as SwitchyardError & { code: string };
  }
  throw new Error('expected a rejection, but the promise resolved');
}

/** Rejects when `promise` takes longer than `ms`: a hang becomes a failure, not a stuck test run. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms); });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** Config type names for each datatype (BYTES is TYPE_STRING). */
export const CONFIG_TYPE: Readonly<Record<DataType, string>> = {
  BOOL: 'TYPE_BOOL', UINT8: 'TYPE_UINT8', UINT16: 'TYPE_UINT16', UINT32: 'TYPE_UINT32', UINT64: 'TYPE_UINT64',
  INT8: 'TYPE_INT8', INT16: 'TYPE_INT16', INT32: 'TYPE_INT32', INT64: 'TYPE_INT64',
  FP16: 'TYPE_FP16', BF16: 'TYPE_BF16', FP32: 'TYPE_FP32', FP64: 'TYPE_FP64', BYTES: 'TYPE_STRING',
};

/** An echo script: every input NAME comes back as output NAME_OUT, and NAME_CLASS reports data.constructor.name. */
export const ECHO_SCRIPT = `
interface Tensor { datatype: string; shape: number[]; data: ArrayLike<unknown> }
export default class Echo {
  async execute(requests: { inputs: Record<string, Tensor> }[]) {
    return requests.map((r) => {
      const outputs: Record<string, unknown> = {};
      for (const [name, t] of Object.entries(r.inputs)) {
        outputs[name + '_OUT'] = { datatype: t.datatype, shape: t.shape, data: t.data };
        outputs[name + '_CLASS'] = { datatype: 'BYTES', shape: [t.shape[0] ?? 1, 1], data: Array.from({ length: t.shape[0] ?? 1 }, () => (t.data as object).constructor.name) };
      }
      return { outputs };
    });
  }
}
`;
