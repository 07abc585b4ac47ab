/**
 * Opening one ONNX Runtime instance straight from a config text, without an
 * engine: what the backend tests need to drive execute() themselves.
 */
import { OnnxBackend } from '../../backends/onnxruntime/onnx-backend.ts';
import type { OnnxInstance } from '../../backends/onnxruntime/onnx-instance.ts';
import { defaultBackends } from '../../backends/default-backends.ts';
import type { BackendModel } from '../../engine/backend.ts';
import { compileModelConfig, readModelSettings } from '../../engine/config/compile-model-config.ts';
import type { CompiledModelConfig } from '../../engine/config/compiled-model-config.ts';
import { parseModelConfig } from '../../engine/config/parse-model-config.ts';
import type { BufferPool } from '../../engine/memory/buffer-pool.ts';

const BACKENDS = defaultBackends();

export interface OpenedOnnxInstance {
  readonly model: BackendModel;
  readonly config: CompiledModelConfig;
  readonly instance: OnnxInstance;
}

/** Loads version 1 of `<root>/<model>` with `configText` as its config.pbtxt and starts the first instance of its first group. */
export async function openOnnxInstance(root: string, model: string, configText: string, bufferPool?: BufferPool): Promise<OpenedOnnxInstance> {
  const dir = `${root}/${model}`;
  const parsed = parseModelConfig(`${dir}/config.pbtxt`, configText);
  const settings = readModelSettings(model, dir, parsed, BACKENDS);
  const backendModel = await new OnnxBackend().loadModel({ modelName: model, version: 1, modelDir: dir, versionDir: `${dir}/1`, settings, bufferPool });
  const config = compileModelConfig(model, dir, parsed, settings, backendModel.signature);
  const instance = await backendModel.createInstance(config, config.instanceGroups[0]!, 0);
  return { model: backendModel, config, instance: instance as OnnxInstance };
}
