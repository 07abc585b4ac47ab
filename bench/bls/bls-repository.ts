/**
 * The BLS benchmark's repositories, written to temporary folders.
 *
 * The latency repository holds the target, `add_sub` (addSubModel('FP32', 16):
 * OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1, max_batch_size 8,
 * one CPU instance, no dynamic_batching), and two TypeScript models with the
 * same inputs and outputs, each in a few scheduling variants:
 *
 *   bls_*   execute() makes exactly one ctx.infer to add_sub per request and
 *           returns its outputs as they came
 *   echo_*  execute() returns its inputs as its outputs, with no ctx.infer:
 *           the script's own cost (scheduler, isolate hop, tensor checks)
 *
 * The cold-start repository holds one echo script and nothing else.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const TARGET = 'add_sub';
export const SIZE = 16;
export const MAX_BATCH_SIZE = 8;
export const INPUTS = ['INPUT0', 'INPUT1'] as const;
export const OUTPUTS = ['OUTPUT0', 'OUTPUT1'] as const;

/** How the script models are scheduled; add_sub itself is the same in every variant. */
export interface ScriptVariant {
  /** Suffix of the model names: bls_<key>, echo_<key>. */
  readonly key: string;
  /** What the report calls it. */
  readonly label: string;
  readonly instances: number;
  readonly dynamicBatching: boolean;
  /** parameters.inline_slice_ms, when the variant runs its executes on the event loop's thread. */
  readonly inlineSliceMs?: number;
}

export function scriptVariants(instances: number, inlineSliceMs: number): readonly ScriptVariant[] {
  return [
    { key: 'single', label: '1 instance', instances: 1, dynamicBatching: false },
    { key: 'instances', label: `${instances} instances`, instances, dynamicBatching: false },
    { key: 'batched', label: '1 instance, dynamic_batching', instances: 1, dynamicBatching: true },
    { key: 'inline', label: `1 instance, inline_slice_ms ${inlineSliceMs}`, instances: 1, dynamicBatching: false, inlineSliceMs },
    {
      key: 'inline_batched', label: `1 instance, dynamic_batching, inline_slice_ms ${inlineSliceMs}`, instances: 1, dynamicBatching: true,
      inlineSliceMs,
    },
  ];
}

export const blsModel = (variant: ScriptVariant): string => `bls_${variant.key}`;
export const echoModel = (variant: ScriptVariant): string => `echo_${variant.key}`;

/** One ctx.infer per request, its outputs returned untouched. */
export const BLS_SOURCE = `
interface Tensor { datatype: string; shape: number[]; data: ArrayBufferView }
interface Request { inputs: Record<string, Tensor> }
interface Context { infer(call: { model: string; inputs: Record<string, Tensor> }): Promise<{ outputs: Record<string, Tensor> }> }

export default class {
  async execute(requests: Request[], ctx: Context) {
    return Promise.all(requests.map(async (request) => {
      const answer = await ctx.infer({ model: '${TARGET}', inputs: request.inputs });
      return { outputs: answer.outputs };
    }));
  }
}
`;

/** The inputs back as the outputs: no ctx.infer. */
export const ECHO_SOURCE = `
interface Tensor { datatype: string; shape: number[]; data: ArrayBufferView }
interface Request { inputs: Record<string, Tensor> }

export default class {
  async execute(requests: Request[]) {
    return requests.map((request) => ({ outputs: { OUTPUT0: request.inputs.INPUT0, OUTPUT1: request.inputs.INPUT1 } }));
  }
}
`;

function tensors(kind: 'input' | 'output', names: readonly string[]): string {
  return `${kind} [\n${names.map((n) => `  { name: "${n}" data_type: TYPE_FP32 dims: [ ${SIZE} ] }`).join(',\n')}\n]`;
}

function config(name: string, head: string, instances: number, dynamicBatching: boolean, inlineSliceMs?: number): string {
  return [
    `name: "${name}"`,
    head,
    `max_batch_size: ${MAX_BATCH_SIZE}`,
    tensors('input', INPUTS),
    tensors('output', OUTPUTS),
    `instance_group [ { count: ${instances}, kind: KIND_CPU } ]`,
    ...(dynamicBatching ? ['dynamic_batching { }'] : []),
    ...(inlineSliceMs ? [`parameters { key: "inline_slice_ms" value: { string_value: "${inlineSliceMs}" } }`] : []),
    '',
  ].join('\n');
}

export const scriptConfig = (name: string, instances: number, dynamicBatching: boolean, inlineSliceMs?: number): string =>
  config(name, 'backend: "typescript"', instances, dynamicBatching, inlineSliceMs);

/** Writes a TypeScript model's config and its version 1 model.ts into a repository. */
export async function writeScriptModel(root: string, name: string, configText: string, source: string): Promise<void> {
  await mkdir(join(root, name, '1'), { recursive: true });
  await writeFile(join(root, name, 'config.pbtxt'), configText);
  await writeFile(join(root, name, '1', 'model.ts'), source);
}

export async function buildLatencyRepository(variants: readonly ScriptVariant[]): Promise<string> {
  const { makeRepository } = await import('../../test/helpers/fixture-repository.ts');
  const { addSubModel } = await import('../../generator/models.ts');
  const root = await makeRepository({
    [TARGET]: { config: config(TARGET, 'platform: "onnxruntime_onnx"', 1, false), versions: { 1: addSubModel('FP32', SIZE) } },
  });
  for (const variant of variants) {
    await writeScriptModel(root, blsModel(variant), scriptConfig(blsModel(variant), variant.instances, variant.dynamicBatching, variant.inlineSliceMs), BLS_SOURCE);
    await writeScriptModel(root, echoModel(variant), scriptConfig(echoModel(variant), variant.instances, variant.dynamicBatching, variant.inlineSliceMs), ECHO_SOURCE);
  }
  return root;
}
