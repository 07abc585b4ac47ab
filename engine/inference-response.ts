/** The engine's answer to one InferenceRequest. */
import type { ParameterValue } from './inference-request.ts';
import type { Tensor } from './tensor.ts';

export interface InferenceResponse {
  readonly modelName: string;
  readonly modelVersion: string;
  readonly id?: string;
  readonly outputs: readonly Tensor[];
  readonly parameters?: Readonly<Record<string, ParameterValue>>;
}
