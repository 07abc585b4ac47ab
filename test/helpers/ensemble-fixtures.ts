/**
 * Ensemble fixtures shared by the ensemble tests: member configs for the
 * generator's add_sub and lookup models, ensembles over them in Triton's
 * config.pbtxt form and as pipeline.yaml, and tensor helpers.
 *
 * A "slow" member holds a lone request in its queue for 5 s (it waits for a
 * preferred batch of 8 that never comes), so a step is known to be queued
 * without timing luck.
 */
import type { Tensor } from '../../engine/tensor.ts';
import { ADD_SUB_IO } from './fixture-configs.ts';

/** Holds a lone request for 5 s: it waits for a preferred batch of 8. */
export const SLOW_BATCHING = 'dynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 5000000 }';

/** An add_sub member (INPUT0, INPUT1 -> OUTPUT0 = sum, OUTPUT1 = diff; INT32 [batch, 16]). */
export function addSubMember(name: string, extra = ''): string {
  return `name: "${name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n${ADD_SUB_IO}${extra}\n`;
}

/** A lookup member (INDEX INT64 [batch, 1] -> VALUE FP32 [batch, 1]; fails the run on an index outside 0..3). */
export function lookupMember(name: string, extra = ''): string {
  return `name: "${name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n${extra}\n`;
}

/**
 * Triton's form of a two-step chain over add_sub members:
 * step 1 first(A, B) -> sum, diff; step 2 second(sum, diff) -> TWICE_A = 2A, TWICE_B = 2B.
 */
export function chainEnsemble(first = 'add_sub', second = 'add_sub', secondVersion = -1): string {
  return `platform: "ensemble"
max_batch_size: 8
input [ { name: "A" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "B" data_type: TYPE_INT32 dims: [ 16 ] } ]
output [ { name: "TWICE_A" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "TWICE_B" data_type: TYPE_INT32 dims: [ 16 ] } ]
ensemble_scheduling {
  step [
    { model_name: "${first}" model_version: -1
      input_map { key: "INPUT0" value: "A" } input_map { key: "INPUT1" value: "B" }
      output_map { key: "OUTPUT0" value: "sum" } output_map { key: "OUTPUT1" value: "diff" } },
    { model_name: "${second}" model_version: ${secondVersion}
      input_map { key: "INPUT0" value: "sum" } input_map { key: "INPUT1" value: "diff" }
      output_map { key: "OUTPUT0" value: "TWICE_A" } output_map { key: "OUTPUT1" value: "TWICE_B" } }
  ]
}
`;
}

/** The same chain as a pipeline.yaml, its second step pinned to version 1; intermediates are first.OUTPUT0 / first.OUTPUT1. */
export const CHAIN_PIPELINE = `max_batch_size: 8
inputs: { A: {}, B: { datatype: INT32, dims: [16] } }
outputs: { TWICE_A: second.OUTPUT0, TWICE_B: second.OUTPUT1 }
steps:
  first: { model: add_sub, inputs: { INPUT0: A, INPUT1: B } }
  second: { model: add_sub, version: 1, inputs: { INPUT0: first.OUTPUT0, INPUT1: first.OUTPUT1 } }
`;

/**
 * A diamond over add_sub: step 1 (X, Y) -> s = X+Y, d = X-Y; step 2 (s, d) -> b = 2X, TWICE_Y = 2Y;
 * step 3 (s, s) -> c = 2X+2Y; step 4 (b, c) -> JOIN_SUM = 4X+2Y, JOIN_DIFF = -2Y.
 * Steps 2 and 3 are independent branches; step 4 joins them.
 */
export const DIAMOND_ENSEMBLE = `platform: "ensemble"
max_batch_size: 8
input [ { name: "X" }, { name: "Y" } ]
output [ { name: "TWICE_Y" }, { name: "JOIN_SUM" }, { name: "JOIN_DIFF" } ]
ensemble_scheduling {
  step [
    { model_name: "add_sub" model_version: -1
      input_map { key: "INPUT0" value: "X" } input_map { key: "INPUT1" value: "Y" }
      output_map { key: "OUTPUT0" value: "s" } output_map { key: "OUTPUT1" value: "d" } },
    { model_name: "add_sub" model_version: -1
      input_map { key: "INPUT0" value: "s" } input_map { key: "INPUT1" value: "d" }
      output_map { key: "OUTPUT0" value: "b" } output_map { key: "OUTPUT1" value: "TWICE_Y" } },
    { model_name: "add_sub" model_version: -1
      input_map { key: "INPUT0" value: "s" } input_map { key: "INPUT1" value: "s" }
      output_map { key: "OUTPUT0" value: "c" } },
    { model_name: "add_sub" model_version: -1
      input_map { key: "INPUT0" value: "b" } input_map { key: "INPUT1" value: "c" }
      output_map { key: "OUTPUT0" value: "JOIN_SUM" } output_map { key: "OUTPUT1" value: "JOIN_DIFF" } }
  ]
}
`;

/**
 * Two branches from one input: step 1 `lookup` (fails on an index outside 0..3) -> FAST,
 * step 2 `slow` (a slow lookup member) -> SLOW.
 */
export function forkEnsemble(fast = 'lookup', slow = 'slow_lookup'): string {
  return `platform: "ensemble"
max_batch_size: 8
input [ { name: "INDEX" } ]
output [ { name: "FAST" }, { name: "SLOW" } ]
ensemble_scheduling {
  step [
    { model_name: "${fast}" model_version: -1 input_map { key: "INDEX" value: "INDEX" } output_map { key: "VALUE" value: "FAST" } },
    { model_name: "${slow}" model_version: -1 input_map { key: "INDEX" value: "INDEX" } output_map { key: "VALUE" value: "SLOW" } }
  ]
}
`;
}

export const range16 = (f: (i: number) => number): number[] => Array.from({ length: 16 }, (_, i) => f(i));

/** An INT32 [rows, 16] request tensor. */
export function int32Tensor(name: string, values: readonly number[], rows = 1): Tensor {
  return { name, datatype: 'INT32', shape: [rows, values.length / rows], raw: new Uint8Array(Int32Array.from(values).buffer) };
}

/** An INT64 [n, 1] request tensor. */
export function int64Tensor(name: string, values: readonly number[]): Tensor {
  return { name, datatype: 'INT64', shape: [values.length, 1], raw: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) };
}

/** The elements of a fixed-size tensor as numbers (copied, so pooled buffers may be reused afterwards). */
export function valuesOf(tensor: Tensor | undefined): number[] {
  if (!tensor || tensor.datatype === 'BYTES') throw new Error(`no numeric tensor: ${tensor?.name}`);
  const bytes = Uint8Array.from(tensor.raw);
  switch (tensor.datatype) {
    case 'INT32': return [...new Int32Array(bytes.buffer)];
    case 'FP32': return [...new Float32Array(bytes.buffer)];
    case 'INT64': return [...new BigInt64Array(bytes.buffer)].map(Number);
    default: throw new Error(`valuesOf: ${tensor.datatype} not handled`);
  }
}

/** Output name -> values, in answer order. */
export function outputsByName(outputs: readonly Tensor[]): Record<string, number[]> {
  return Object.fromEntries(outputs.map((t) => [t.name, valuesOf(t)]));
}

/** Resolves once the condition holds, checking between event-loop turns; fails after `ms`. */
export async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}
