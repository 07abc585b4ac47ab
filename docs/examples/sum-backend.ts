/**
 * A complete third-party backend, written against the engine's contract
 * only (engine/backend.ts): `backend: "sum"` models add up the elements of
 * their FP32 input INPUT and answer them as the one-element FP32 output SUM.
 * docs/custom-backend.md walks through it; test/server/custom-backend.test.ts
 * serves it over HTTP.
 */
import type {
  Backend, BackendInstance, BackendModel, ExecuteOutcome, ExecuteRequest, ExecuteResult, ModelLoadContext,
} from '../../engine/backend.ts';
import type { CompiledModelConfig, InstanceGroupSpec } from '../../engine/config/compiled-model-config.ts';
import type { ModelSignature } from '../../engine/config/model-signature.ts';
import { typedView } from '../../engine/tensor.ts';

/** What every sum model takes and gives: INPUT, any number of FP32 values; SUM, their total. */
const SIGNATURE: ModelSignature = {
  file: '(sum backend: no model file)',
  inputs: [{ name: 'INPUT', datatype: 'FP32', modelType: 'TYPE_FP32', shape: [-1] }],
  outputs: [{ name: 'SUM', datatype: 'FP32', modelType: 'TYPE_FP32', shape: [1] }],
};

class SumInstance implements BackendInstance {
  constructor(readonly name: string) {}

  async execute(requests: readonly ExecuteRequest[]): Promise<ExecuteOutcome> {
    const started = performance.now();
    // The engine checked datatype and shape against the config: INPUT is FP32 here.
    const results = requests.map((request): ExecuteResult => {
      const input = request.inputs.find((t) => t.name === 'INPUT')!;
      const values = typedView('FP32', input.raw) as Float32Array;
      let total = 0;
      for (const value of values) total += value;
      const sum = new Uint8Array(new Float32Array([total]).buffer);
      return { ok: true, outputs: [{ name: 'SUM', datatype: 'FP32', shape: [1], raw: sum }] };
    });
    const inferNs = Math.round((performance.now() - started) * 1e6);
    return { results, timing: { inputNs: 0, inferNs, outputNs: 0 } };
  }

  async finalize(): Promise<void> {}
}

class SumModel implements BackendModel {
  readonly signature = SIGNATURE;

  async createInstance(_config: CompiledModelConfig, group: InstanceGroupSpec, indexInGroup: number): Promise<BackendInstance> {
    return new SumInstance(`${group.name}_${indexInGroup}`);
  }

  async finalize(): Promise<void> {}
}

/** The backend: one object, handed to the engine in its BackendRegistry. */
export const sumBackend: Backend = {
  name: 'sum',
  // Each version folder must exist, but holds no file this backend reads.
  defaultModelFilename: '',
  async loadModel(context: ModelLoadContext): Promise<BackendModel> {
    context.logger?.info(`sum backend: loading '${context.modelName}' version ${context.version}`);
    return new SumModel();
  },
};
