/**
 * The result of one inference call, the same whichever transport carried it.
 */
import { InferenceServerError } from './inference-server-error.ts';
import type { OutputTensor } from './output-tensor.ts';

/** A request or response parameter value. */
export type ParameterValue = boolean | number | bigint | string;

/** A model's answer to one inference request. */
export interface InferResult {
  readonly modelName: string;
  readonly modelVersion: string;
  readonly id?: string;
  readonly parameters: Readonly<Record<string, ParameterValue>>;
  readonly outputs: readonly OutputTensor[];
  /** The named output; throws InferenceServerError (code 'NOT_FOUND') if the response has none by that name. */
  output(name: string): OutputTensor;
}

/** The fields a transport decodes from a response. */
export interface InferResultFields {
  readonly modelName: string;
  readonly modelVersion: string;
  readonly id?: string;
  readonly parameters: Readonly<Record<string, ParameterValue>>;
  readonly outputs: readonly OutputTensor[];
}

/** Builds an InferResult from decoded response fields. */
export function inferResult(fields: InferResultFields): InferResult {
  const { modelName, modelVersion, id, parameters, outputs } = fields;
  return {
    modelName, modelVersion, ...(id ? { id } : {}), parameters, outputs,
    output(name: string): OutputTensor {
      const found = outputs.find((o) => o.name === name);
      if (found) return found;
      const names = outputs.map((o) => `'${o.name}'`).join(', ');
      throw new InferenceServerError(`model '${modelName}' returned no output '${name}' (outputs: ${names || 'none'})`, 'NOT_FOUND');
    },
  };
}
