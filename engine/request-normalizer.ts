/**
 * Checks a request against the model's compiled config before it is queued,
 * in the order Triton checks: requested outputs, input count, names,
 * batch size, datatype, shape, then byte sizes. Returns the request's batch
 * size and the output names it wants.
 */
import type { CompiledModelConfig, TensorSpec } from './config/compiled-model-config.ts';
import { bytesElementCount } from './bytes-tensor.ts';
import { serverError } from './errors.ts';
import { assertClassifiable } from './output-classification.ts';
import type { InferenceRequest } from './inference-request.ts';
import { elementByteSize, elementCount, formatShape, TensorSizeError, type Tensor } from './tensor.ts';

export interface NormalizedRequest {
  readonly batchSize: number;
  readonly outputs: readonly string[];
}

const BATCH_NOTE = 'NOTE: Setting a non-zero max_batch_size in the model config requires a batch dimension to be prepended to each input shape. ' +
  'If you want to specify the full shape including the batch dim in your input dims config, try setting max_batch_size to zero.';

/** Each config's output names, in config order: what a request that lists no outputs gets, built once per config. */
const allOutputs = new WeakMap<CompiledModelConfig, readonly string[]>();

function configOutputs(config: CompiledModelConfig): readonly string[] {
  let names = allOutputs.get(config);
  if (!names) {
    names = Object.freeze(config.outputs.map((o) => o.name));
    allOutputs.set(config, names);
  }
  return names;
}

export function normalizeRequest(config: CompiledModelConfig, request: InferenceRequest): NormalizedRequest {
  const model = config.name;
  const outputs = request.outputs && request.outputs.length > 0 ? request.outputs : configOutputs(config);
  for (const output of outputs) {
    if (!config.outputByName.has(output)) throw serverError('UNKNOWN_OUTPUT', { model, output });
  }
  for (const output of request.classification?.keys() ?? []) {
    const spec = config.outputByName.get(output);
    if (!spec || !outputs.includes(output)) throw serverError('UNKNOWN_OUTPUT', { model, output });
    assertClassifiable(model, output, spec.datatype);
  }

  const seen = new Set<string>();
  for (const input of request.inputs) {
    if (!config.inputByName.has(input.name)) throw serverError('UNKNOWN_INPUT', { model, input: input.name });
    if (seen.has(input.name)) throw serverError('DUPLICATE_INPUT', { model, input: input.name });
    seen.add(input.name);
  }
  let missing: string[] | undefined;
  for (const spec of config.inputs) if (!spec.optional && !seen.has(spec.name)) (missing ??= []).push(spec.name);
  if (missing) {
    throw serverError('MISSING_INPUTS', {
      model, expected: config.inputs.length, got: request.inputs.map((t) => t.name), missing,
    });
  }

  let batchSize = 1;
  if (config.maxBatchSize > 0) {
    const first = request.inputs[0];
    if (first) {
      batchSize = first.shape[0] ?? 0;
      for (const input of request.inputs) {
        if (input.shape.length === 0) {
          throw serverError('INPUT_SHAPE', {
            model, input: input.name, expected: formatShape([-1, ...config.inputByName.get(input.name)!.dims]),
            got: '[]', hint: BATCH_NOTE,
          });
        }
        if (input.shape[0] !== batchSize) {
          throw serverError('BATCH_MISMATCH', { model, input: input.name, got: input.shape[0]!, expected: batchSize });
        }
      }
      if (batchSize > config.maxBatchSize || batchSize < 1) {
        throw serverError('BATCH_SIZE', { model, max: config.maxBatchSize, got: batchSize });
      }
    }
  }

  for (const input of request.inputs) checkInput(config, config.inputByName.get(input.name)!, input);
  return { batchSize, outputs };
}

function checkInput(config: CompiledModelConfig, spec: TensorSpec, input: Tensor): void {
  const model = config.name;
  if (input.datatype !== spec.datatype) {
    throw serverError('INPUT_DATATYPE', { model, input: input.name, got: input.datatype, expected: spec.datatype });
  }
  const batched = config.maxBatchSize > 0;
  if (!shapeMatches(spec.dims, batched, input.shape)) {
    const expected = batched ? [-1, ...spec.dims] : spec.dims;
    throw serverError('INPUT_SHAPE', {
      model, input: input.name, expected: formatShape(expected), got: formatShape(input.shape), hint: batched ? BATCH_NOTE : undefined,
    });
  }
  let count: number;
  try {
    count = elementCount(input.shape);
  } catch (err) {
    throw serverError('TENSOR_SIZE', { tensor: input.name, detail: (err as TensorSizeError).message });
  }
  if (input.datatype === 'BYTES') {
    const got = bytesElementCount(input);
    if (got !== count) {
      throw serverError('BAD_REQUEST', {
        detail: `expected ${count} string elements for inference input '${input.name}' for model '${model}', got ${got}`,
      });
    }
    return;
  }
  const bytes = count * elementByteSize(input.datatype)!;
  if (input.raw.byteLength !== bytes) {
    throw serverError('INPUT_BYTE_SIZE', { model, input: input.name, expected: bytes, got: input.raw.byteLength });
  }
}

/** Whether `shape` fits the config's dims (after a batch dim of any size when `batched`); -1 takes any size. */
function shapeMatches(dims: readonly number[], batched: boolean, shape: readonly number[]): boolean {
  const skip = batched ? 1 : 0;
  if (shape.length !== dims.length + skip) return false;
  for (let i = 0; i < dims.length; i++) {
    const dim = dims[i]!;
    if (dim !== -1 && dim !== shape[i + skip]) return false;
  }
  return true;
}
