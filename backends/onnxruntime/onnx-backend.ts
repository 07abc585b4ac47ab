/** The ONNX Runtime backend: opens model versions as OnnxModel. */
import type { Backend, BackendModel, ModelLoadContext } from '../../engine/backend.ts';
import { systemClock, type Clock } from '../../engine/scheduling/clock.ts';
import type { OnnxBackendSettings } from './onnx-backend-settings.ts';
import { OnnxModel } from './onnx-model.ts';

export class OnnxBackend implements Backend {
  readonly name = 'onnxruntime';
  readonly platforms = ['onnxruntime_onnx'];
  readonly defaultModelFilename = 'model.onnx';

  /**
   * @param settings the --backend-config=onnxruntime,... settings every model gets unless its config says otherwise.
   * @param clock what the instances read the worker restart interval from; tests inject a ManualClock. Default: the monotonic system clock.
   */
  constructor(private readonly settings: OnnxBackendSettings = {}, private readonly clock: Clock = systemClock) {}

  loadModel(context: ModelLoadContext): Promise<BackendModel> {
    return OnnxModel.create(context, this.settings, this.clock);
  }
}
