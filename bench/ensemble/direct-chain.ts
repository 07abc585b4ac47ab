/**
 * The floor: the three members as onnxruntime-node sessions in the bench's
 * own thread, each run's output tensor handed straight to the next session.
 * No scheduler, no worker, no copy between steps. Session options match what
 * Switchyard gives an instance (1 intra-op and 1 inter-op thread, all graph
 * optimizations). Its answer is also the reference every mode is checked
 * against.
 */
import * as ort from 'onnxruntime-node';
import type { PipelineStep } from './pipeline-repository.ts';

export class DirectChain {
  private constructor(private readonly steps: readonly { readonly step: PipelineStep; readonly session: ort.InferenceSession }[]) {}

  static async create(steps: readonly PipelineStep[], modelPath: (model: string) => string): Promise<DirectChain> {
    const sessions = await Promise.all(steps.map(async (step) => ({
      step,
      session: await ort.InferenceSession.create(modelPath(step.model), {
        intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionProviders: ['cpu'], logSeverityLevel: 3,
      }),
    })));
    return new DirectChain(sessions);
  }

  /** One request: [rows, width] FP32 through the three sessions in order. */
  async run(input: Float32Array, shape: readonly number[]): Promise<Float32Array> {
    let tensor: ort.Tensor = new ort.Tensor('float32', input, [...shape]);
    for (const { step, session } of this.steps) {
      const result = await session.run({ [step.input]: tensor });
      tensor = result[step.output] as ort.Tensor;
    }
    return tensor.data as Float32Array;
  }

  async release(): Promise<void> {
    await Promise.all(this.steps.map(({ session }) => session.release()));
  }
}
