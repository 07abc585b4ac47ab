/** The ONNX Runtime backend: opens model versions as OnnxModel. */
import type { Backend, BackendModel, ModelLoadContext } from '../backend.ts';
import { OnnxModel } from './onnx-model.ts';

export class OnnxBackend implements Backend {
  readonly name = 'onnxruntime';

  loadModel(context: ModelLoadContext): Promise<BackendModel> {
    return OnnxModel.create(context);
  }
}
