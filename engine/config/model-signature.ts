/** The inputs and outputs a backend reads from the model file itself, used to check and complete the config. */
import { fromConfigDataType, type DataType } from '../tensor.ts';
import type { ModelConfigObject } from './model-config-schema.ts';

export interface SignatureTensor {
  readonly name: string;
  /** undefined when the model's element type has no KServe datatype. */
  readonly datatype: DataType | undefined;
  /** The element type as the model file names it, for error messages. */
  readonly modelType: string;
  /** -1 for a dynamic (symbolic) dimension. */
  readonly shape: readonly number[];
}

export interface ModelSignature {
  /** The model file the signature was read from, for error messages. */
  readonly file: string;
  readonly inputs: readonly SignatureTensor[];
  readonly outputs: readonly SignatureTensor[];
}

/**
 * The signature of a model with no model file to read it from (a script, an
 * in-memory backend): the config's own inputs and outputs, each needing
 * data_type and dims. `backend` names the kind of model in the errors;
 * `file` is what the signature's errors say it came from.
 */
export function signatureFromConfig(config: ModelConfigObject | undefined, backend: string, file: string): ModelSignature {
  const maxBatchSize = Number(config?.['max_batch_size'] ?? 0);
  const read = (kind: 'input' | 'output'): SignatureTensor[] => {
    const list = Array.isArray(config?.[kind]) ? config[kind] as Record<string, unknown>[] : [];
    return list.map((t, i) => {
      const typeName = String(t['data_type'] ?? '');
      const datatype = fromConfigDataType(typeName);
      const dims = Array.isArray(t['dims']) ? (t['dims'] as unknown[]).map(Number) : [];
      if (!datatype || dims.length === 0) {
        throw new Error(`${kind}[${i}] ('${String(t['name'] ?? '')}') needs data_type and dims: a ${backend} model has no model file to complete them from`);
      }
      return { name: String(t['name'] ?? ''), datatype, modelType: typeName, shape: maxBatchSize > 0 ? [-1, ...dims] : dims };
    });
  };
  const inputs = read('input');
  const outputs = read('output');
  if (outputs.length === 0) throw new Error(`the config declares no output: a ${backend} model lists its inputs and outputs with data_type and dims`);
  return { file, inputs, outputs };
}
