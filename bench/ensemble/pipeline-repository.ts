/**
 * The ensemble benchmark's repository: three small FP32 MLPs (64 -> 128 -> 64,
 * different seeds) that chain input to output, and a Triton config.pbtxt
 * ensemble that runs them in order. Written to a temporary folder.
 *
 * The members have no dynamic_batching, so every mode of the benchmark runs
 * exactly three batch-1 session.runs per request and the modes differ only
 * in how the steps are handed from one to the next.
 */
import { join } from 'node:path';

export const WIDTH = 64;
export const HIDDEN = 128;
export const MAX_BATCH_SIZE = 8;
export const ENSEMBLE = 'three_step';
export const ENSEMBLE_INPUT = 'INPUT';
export const ENSEMBLE_OUTPUT = 'OUTPUT';

export interface PipelineStep {
  readonly model: string;
  readonly input: string;
  readonly output: string;
  readonly seed: number;
}

/** The members in pipeline order; each one's output feeds the next one's input. */
export const STEPS: readonly PipelineStep[] = [
  { model: 'step_embed', input: 'FEATURES', output: 'EMBEDDING', seed: 21 },
  { model: 'step_mix', input: 'EMBEDDING', output: 'MIXED', seed: 22 },
  { model: 'step_head', input: 'MIXED', output: 'SCORES', seed: 23 },
];

export interface PipelineRepository {
  readonly root: string;
  /** The ONNX file of a member, for the direct onnxruntime-node floor. */
  modelPath(model: string): string;
}

function memberConfig(step: PipelineStep): string {
  return [
    `name: "${step.model}"`,
    'platform: "onnxruntime_onnx"',
    `max_batch_size: ${MAX_BATCH_SIZE}`,
    `input [ { name: "${step.input}" data_type: TYPE_FP32 dims: [ ${WIDTH} ] } ]`,
    `output [ { name: "${step.output}" data_type: TYPE_FP32 dims: [ ${WIDTH} ] } ]`,
    'instance_group [ { count: 1, kind: KIND_CPU } ]',
    '',
  ].join('\n');
}

/** Ensemble tensor names: the ensemble's own input, then one per step output, the last being the ensemble's output. */
function ensembleConfig(): string {
  const tensors = [ENSEMBLE_INPUT, ...STEPS.map((_, i) => (i + 1 === STEPS.length ? ENSEMBLE_OUTPUT : `stage_${i + 1}`))];
  const steps = STEPS.map((step, i) => [
    '    {',
    `      model_name: "${step.model}"`,
    '      model_version: -1',
    `      input_map { key: "${step.input}" value: "${tensors[i]}" }`,
    `      output_map { key: "${step.output}" value: "${tensors[i + 1]}" }`,
    `    }${i + 1 < STEPS.length ? ',' : ''}`,
  ].join('\n'));
  return [
    `name: "${ENSEMBLE}"`,
    'platform: "ensemble"',
    `max_batch_size: ${MAX_BATCH_SIZE}`,
    `input [ { name: "${ENSEMBLE_INPUT}" data_type: TYPE_FP32 dims: [ ${WIDTH} ] } ]`,
    `output [ { name: "${ENSEMBLE_OUTPUT}" data_type: TYPE_FP32 dims: [ ${WIDTH} ] } ]`,
    'ensemble_scheduling {',
    '  step [',
    ...steps,
    '  ]',
    '}',
    '',
  ].join('\n');
}

export async function buildPipelineRepository(): Promise<PipelineRepository> {
  const { makeRepository } = await import('../../test/helpers/fixture-repository.ts');
  const { mlpModel } = await import('../../generator/models.ts');
  const members = Object.fromEntries(STEPS.map((step) => [step.model, {
    config: memberConfig(step),
    versions: { 1: mlpModel({ sizes: [WIDTH, HIDDEN, WIDTH], seed: step.seed, inputName: step.input, outputName: step.output }) },
  }]));
  const root = await makeRepository({ ...members, [ENSEMBLE]: { config: ensembleConfig(), versions: { 1: null } } });
  return { root, modelPath: (model) => join(root, model, '1', 'model.onnx') };
}
