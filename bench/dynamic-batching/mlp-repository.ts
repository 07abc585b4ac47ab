/**
 * The dynamic batching benchmark's repository: one compute-heavy MLP
 * (256 -> 2048 -> 2048 -> 16, FP32) served under several configs, one model
 * folder per config, so that each server child loads only the one it
 * measures. Every folder holds the same model bytes. Written to a temporary
 * folder.
 */
import { join } from 'node:path';

export const MLP_SIZES = [256, 2048, 2048, 16] as const;
export const MLP_INPUT = 'INPUT';
export const MLP_OUTPUT = 'OUTPUT';
export const MLP_FEATURES = MLP_SIZES[0];
export const MLP_CLASSES = MLP_SIZES[MLP_SIZES.length - 1]!;
export const INTRA_OP_THREADS = 1;

export interface MlpServing {
  /** Model (folder) name. */
  readonly name: string;
  /** undefined: no dynamic_batching section, so each request runs alone. */
  readonly queueDelayMicroseconds: number | undefined;
}

export interface MlpRepository {
  readonly root: string;
  /** The ONNX file of a model in it, for the in-process baseline. */
  modelPath(name: string): string;
}

export async function buildMlpRepository(servings: readonly MlpServing[], maxBatchSize: number): Promise<MlpRepository> {
  const { makeRepository } = await import('../../test/helpers/fixture-repository.ts');
  const { mlpModel } = await import('../../generator/models.ts');
  const model = mlpModel({ sizes: MLP_SIZES, seed: 11, inputName: MLP_INPUT, outputName: MLP_OUTPUT });
  const config = (serving: MlpServing): string => [
    `name: "${serving.name}"`,
    'platform: "onnxruntime_onnx"',
    `max_batch_size: ${maxBatchSize}`,
    `input [ { name: "${MLP_INPUT}" data_type: TYPE_FP32 dims: [ ${MLP_FEATURES} ] } ]`,
    `output [ { name: "${MLP_OUTPUT}" data_type: TYPE_FP32 dims: [ ${MLP_CLASSES} ] } ]`,
    'instance_group [ { count: 1, kind: KIND_CPU } ]',
    `parameters { key: "intra_op_thread_count" value: { string_value: "${INTRA_OP_THREADS}" } }`,
    ...(serving.queueDelayMicroseconds === undefined
      ? []
      : [`dynamic_batching { max_queue_delay_microseconds: ${serving.queueDelayMicroseconds} }`]),
    '',
  ].join('\n');
  const root = await makeRepository(Object.fromEntries(servings.map((s) => [s.name, { config: config(s), versions: { 1: model } }])));
  return { root, modelPath: (name) => join(root, name, '1', 'model.onnx') };
}
