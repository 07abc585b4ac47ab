/**
 * The sequence benchmark's repository: one stateful model,
 * `stateMlpModel` from generator/models.ts (OUTPUT = STATE_IN + INPUT over
 * FP32 [batch, 256], the running sum kept as implicit state, and FEATURES =
 * an MLP 256 -> 2048 -> 2048 -> 16 over that sum), served under one config
 * per way, one model folder per config. Every folder holds the same model
 * bytes. Written to a temporary folder.
 */
import { join } from 'node:path';

export const STATE_WIDTH = 256;
export const HIDDEN = [2048, 2048] as const;
export const FEATURES = 16;
export const SEED = 23;
/** Bytes of one sequence's state tensor (STATE_IN, FP32 [1, STATE_WIDTH]). */
export const STATE_BYTES = STATE_WIDTH * 4;

/** How a model folder schedules its sequences. */
export interface SequenceServing {
  readonly name: string;
  readonly maxBatchSize: number;
  /** The strategy block, e.g. `oldest { max_candidate_sequences: 256 }` or `direct { }`. */
  readonly strategy: string;
  readonly maxSequenceIdleMicroseconds: number;
}

export interface SequenceRepository {
  readonly root: string;
  /** The ONNX file, for the in-process reference answers. */
  readonly modelPath: string;
}

export function sequenceConfig(serving: SequenceServing): string {
  return [
    `name: "${serving.name}"`,
    'platform: "onnxruntime_onnx"',
    `max_batch_size: ${serving.maxBatchSize}`,
    `input [ { name: "INPUT" data_type: TYPE_FP32 dims: [ ${STATE_WIDTH} ] } ]`,
    `output [ { name: "OUTPUT" data_type: TYPE_FP32 dims: [ ${STATE_WIDTH} ] }, { name: "FEATURES" data_type: TYPE_FP32 dims: [ ${FEATURES} ] } ]`,
    'instance_group [ { count: 1, kind: KIND_CPU } ]',
    'parameters { key: "intra_op_thread_count" value: { string_value: "1" } }',
    'sequence_batching {',
    `  max_sequence_idle_microseconds: ${serving.maxSequenceIdleMicroseconds}`,
    `  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_FP32 dims: [ ${STATE_WIDTH} ]`,
    `            initial_state { data_type: TYPE_FP32 dims: [ ${STATE_WIDTH} ] name: "zero" zero_data: true } } ]`,
    `  ${serving.strategy}`,
    '}',
    '',
  ].join('\n');
}

export async function buildSequenceRepository(servings: readonly SequenceServing[]): Promise<SequenceRepository> {
  const { makeRepository } = await import('../../test/helpers/fixture-repository.ts');
  const { stateMlpModel } = await import('../../generator/models.ts');
  const model = stateMlpModel({ width: STATE_WIDTH, hidden: HIDDEN, features: FEATURES, seed: SEED });
  const root = await makeRepository(Object.fromEntries(servings.map((s) => [s.name, { config: sequenceConfig(s), versions: { 1: model } }])));
  return { root, modelPath: join(root, servings[0]!.name, '1', 'model.onnx') };
}
