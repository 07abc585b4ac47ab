/**
 * An ensemble output's `default` (Switchyard's extension): the value sent,
 * filling the output's shape, when no step wrote the output for a request
 * (its writers were skipped, or its member did not produce it).
 */
import { bytesTensor } from '../bytes-tensor.ts';
import { allocateTyped, bytesOf, elementCount, type DataType, type Tensor } from '../tensor.ts';
import type { ConditionLiteral } from './step-condition.ts';

export interface OutputDefault {
  readonly value: ConditionLiteral;
  readonly datatype: DataType;
  /** Fixed dims, without the batch dimension. */
  readonly dims: readonly number[];
  /** The ensemble batches: the answer gets the request's batch size in front. */
  readonly batched: boolean;
}

export function defaultOutputTensor(name: string, fallback: OutputDefault, batchSize: number): Tensor {
  const shape = fallback.batched ? [batchSize, ...fallback.dims] : [...fallback.dims];
  const count = elementCount(shape);
  if (fallback.datatype === 'BYTES') return bytesTensor(name, shape, new Array<string>(count).fill(String(fallback.value)));
  const view = allocateTyped(fallback.datatype, count);
  const value = Number(fallback.value);
  if (view instanceof BigInt64Array || view instanceof BigUint64Array) view.fill(BigInt(value));
  else view.fill(value);
  return { name, datatype: fallback.datatype, shape, raw: bytesOf(view) };
}
