/**
 * `reshape` in a model's input and output config (Triton's
 * ModelTensorReshape): an input arrives in its config `dims` and reaches
 * the model in `reshape.shape`; an output leaves the model in
 * `reshape.shape` and goes back in its config `dims`. The batch dimension
 * stays as it is. The target's variable dims (-1) take the sizes of the
 * source's variable dims, in order; load-time checks (compile-model-config)
 * make the two agree in element count and number of variable dims.
 */
import type { CompiledModelConfig, TensorSpec } from './config/compiled-model-config.ts';
import type { Tensor } from './tensor.ts';

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** `actual` (a shape matching the `from` pattern) in the `to` pattern; unchanged when it does not match `from`. */
export function reshapeDims(from: readonly number[], to: readonly number[], actual: readonly number[]): readonly number[] {
  if (actual.length !== from.length) return actual;
  const variable = actual.filter((_, i) => from[i] === -1);
  let next = 0;
  return to.map((d) => (d === -1 ? variable[next++] ?? -1 : d));
}

function reshaped(tensor: Tensor, from: readonly number[], to: readonly number[], batched: boolean): Tensor {
  const batch = batched ? tensor.shape.slice(0, 1) : [];
  const shape = [...batch, ...reshapeDims(from, to, tensor.shape.slice(batch.length))];
  return { ...tensor, shape };
}

/** The tensors with each one whose spec reshapes it reshaped; the same array, not a copy, when none is (the usual case). */
function reshapeAll(
  tensors: readonly Tensor[], specs: ReadonlyMap<string, TensorSpec>, batched: boolean, direction: 'in' | 'out',
): readonly Tensor[] {
  let out: Tensor[] | undefined;
  for (let i = 0; i < tensors.length; i++) {
    const tensor = tensors[i]!;
    const spec = specs.get(tensor.name);
    if (!spec || sameDims(spec.dims, spec.modelDims)) continue;
    out ??= tensors.slice();
    out[i] = direction === 'in' ? reshaped(tensor, spec.dims, spec.modelDims, batched) : reshaped(tensor, spec.modelDims, spec.dims, batched);
  }
  return out ?? tensors;
}

/** Request inputs in the shapes the model takes. */
export function inputsForModel(config: CompiledModelConfig, inputs: readonly Tensor[]): readonly Tensor[] {
  return reshapeAll(inputs, config.inputByName, config.maxBatchSize > 0, 'in');
}

/** Model outputs in the shapes the client is told of (the config's dims). */
export function outputsForClient(config: CompiledModelConfig, outputs: readonly Tensor[]): readonly Tensor[] {
  return reshapeAll(outputs, config.outputByName, config.maxBatchSize > 0, 'out');
}
