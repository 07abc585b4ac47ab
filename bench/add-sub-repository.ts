/**
 * The one-model repository both overhead benchmarks serve: add_sub with two
 * [size] inputs, max_batch_size 8, one CPU instance, and dynamic batching
 * only when asked for. Written to a temporary folder. With `echoBackend`
 * (a test backend's name) the same signature is served by that in-memory
 * backend instead, with no model file. BENCH_EXECUTION_THREAD (auto, inline
 * or worker) sets the model's execution_thread parameter, to compare the
 * ONNX worker hand-off with running inline; unset, the default (auto).
 */
import type { DataType } from '../engine/tensor.ts';

export async function buildAddSubRepository(model: string, datatype: DataType, size: number, dynamicBatching: boolean, echoBackend?: string): Promise<string> {
  const { makeRepository } = await import('../test/helpers/fixture-repository.ts');
  const { addSubModel } = await import('../generator/models.ts');
  const thread = process.env['BENCH_EXECUTION_THREAD'];
  const tensor = (name: string): string => `  { name: "${name}" data_type: TYPE_${datatype} dims: [ ${size} ] }`;
  const config = [
    `name: "${model}"`,
    echoBackend ? `backend: "${echoBackend}"` : 'platform: "onnxruntime_onnx"',
    'max_batch_size: 8',
    `input [\n${tensor('INPUT0')},\n${tensor('INPUT1')}\n]`,
    `output [\n${tensor('OUTPUT0')},\n${tensor('OUTPUT1')}\n]`,
    'instance_group [ { count: 1, kind: KIND_CPU } ]',
    ...(dynamicBatching ? ['dynamic_batching { }'] : []),
    ...(thread ? [`parameters { key: "execution_thread" value: { string_value: "${thread}" } }`] : []),
    '',
  ].join('\n');
  return makeRepository({ [model]: { config, versions: { 1: echoBackend ? null : addSubModel(datatype, size) } } });
}
