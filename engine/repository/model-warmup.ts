/**
 * Runs a version's model_warmup samples before it turns READY, the way
 * Triton does: on every instance, handed straight to the instance (no
 * scheduler, so warmup never shows in the statistics), each sample as
 * `batch_size` requests of batch size 1 executed together, `count` times.
 * A sample that fails fails the load, naming the sample and the error.
 */
import type { BackendInstance, ExecuteRequest } from '../backend.ts';
import { bytesTensor } from '../bytes-tensor.ts';
import type { CompiledModelConfig, WarmupInputSpec, WarmupSampleSpec } from '../config/compiled-model-config.ts';
import type { SwitchyardError } from '../errors.ts';
import type { ModelResponse } from '../inference-response.ts';
import type { Logger } from '../logger.ts';
import type { BufferPool } from '../memory/buffer-pool.ts';
import { BufferLease } from '../memory/buffer-lease.ts';
import { ownedCopy } from '../memory/owned-buffer.ts';
import { ControlTensors } from '../sequence/control-tensors.ts';
import { ImplicitState } from '../sequence/implicit-state.ts';
import type { Tensor } from '../tensor.ts';
import { inputsForModel } from '../tensor-reshape.ts';

export async function warmUp(
  config: CompiledModelConfig, instances: readonly BackendInstance[], logger: Logger, bufferPool: BufferPool | undefined,
): Promise<void> {
  const samples = config.warmup.filter((sample) => {
    if (sample.batchSize > 0) return true;
    logger.info(`model '${config.name}' skips warmup sample '${sample.name}': its batch_size is 0`);
    return false;
  });
  if (samples.length === 0) return;
  const outcomes = await Promise.allSettled(instances.map(async (instance) => {
    for (const sample of samples) {
      for (let iteration = 1; iteration <= sample.count; iteration++) {
        logger.info(`model '${config.name}' instance ${instance.name} is running warmup sample '${sample.name}' for iteration ${iteration} of ${sample.count}`);
        await runSample(config, instance, sample, bufferPool);
      }
    }
  }));
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failed) throw failed.reason;
}

async function runSample(config: CompiledModelConfig, instance: BackendInstance, sample: WarmupSampleSpec, bufferPool: BufferPool | undefined): Promise<void> {
  const batched = config.maxBatchSize > 0;
  const streamed: SwitchyardError[] = [];
  const requests: ExecuteRequest[] = Array.from({ length: sample.batchSize }, () => ({
    ...requestTensors(config, sample, batched),
    batchSize: 1,
    ...(config.decoupled ? { send: (response: ModelResponse) => { if (response.error) streamed.push(response.error); return true; } } : {}),
  }));
  let problem: string | undefined;
  try {
    const { results } = await instance.execute(requests);
    for (const result of results) {
      if (result.ok) releasePooled(result.outputs, bufferPool);
      else problem ??= result.error.message;
    }
  } catch (err) {
    problem = err instanceof Error ? err.message : String(err);
  }
  problem ??= streamed[0]?.message;
  if (problem !== undefined) throw new Error(`warmup sample '${sample.name}' failed on instance ${instance.name}: ${problem}`);
}

/**
 * One request's inputs and outputs. A sequence model's request stands
 * alone as a whole sequence (START, END and READY true, the initial
 * state), except for the control inputs the sample sets itself.
 */
function requestTensors(config: CompiledModelConfig, sample: WarmupSampleSpec, batched: boolean): { inputs: Tensor[]; outputs: string[] } {
  const inputs = [...inputsForModel(config, sample.inputs.map((input) => tensorOf(input, batched)))];
  const outputs = config.outputs.map((o) => o.name);
  if (config.scheduling.kind !== 'sequence') return { inputs, outputs };
  const given = new Set(inputs.map((t) => t.name));
  const controls = new ControlTensors(config.scheduling.batching.controls, batched)
    .tensorsFor({ start: true, end: true, ready: true, id: { kind: 'uint64', value: 0n } })
    .filter((t) => !given.has(t.name));
  const state = new ImplicitState(config.scheduling.batching.states, batched);
  return { inputs: [...inputs, ...controls, ...state.initial().values()], outputs: [...outputs, ...state.outputNames] };
}

/** A fresh tensor per request: a backend may take its memory (move it to a worker). */
function tensorOf(input: WarmupInputSpec, batched: boolean): Tensor {
  const shape = batched ? [1, ...input.dims] : [...input.dims];
  if (input.datatype === 'BYTES') return bytesTensor(input.name, shape, input.elements!);
  return { name: input.name, datatype: input.datatype, shape, raw: ownedCopy(input.raw!) };
}

function releasePooled(outputs: readonly Tensor[], bufferPool: BufferPool | undefined): void {
  BufferLease.ofTensors(bufferPool, outputs).release();
}
