/**
 * Test fixtures for scheduler tests: a model config compiled from config
 * text against a declared signature, and an in-memory BackendInstance whose
 * executions the test finishes by hand. With a ManualClock this makes every
 * queue delay, timeout and ordering decision exact.
 */
import type { BackendInstance, ComputeTiming, ExecuteOutcome, ExecuteRequest } from '../../../engine/backend.ts';
import { compileModelConfig, readModelSettings } from '../../../engine/config/compile-model-config.ts';
import type { CompiledModelConfig } from '../../../engine/config/compiled-model-config.ts';
import type { ModelSignature } from '../../../engine/config/model-signature.ts';
import { parseModelConfig } from '../../../engine/config/parse-model-config.ts';
import type { InferenceRequest } from '../../../engine/inference-request.ts';
import { silentLogger, type Logger } from '../../../engine/logger.ts';
import { normalizeRequest } from '../../../engine/request-normalizer.ts';
import { ManualClock } from '../../../engine/scheduling/clock.ts';
import { DynamicBatcher } from '../../../engine/scheduling/dynamic-batcher.ts';
import type { InstanceGate } from '../../../engine/scheduling/rate-limiter.ts';
import { ModelStats } from '../../../engine/observability/model-stats.ts';
import { serverError } from '../../../engine/errors.ts';
import type { Tensor } from '../../../engine/tensor.ts';
import { defaultBackends } from '../../../backends/default-backends.ts';

/** The backends `switchyard` serves with, which configs are read against. */
const BACKENDS = defaultBackends();

/** By default, a model with one FP32 input INPUT [-1, -1] (batch, then any width) and output OUTPUT of the same shape. */
export function compileTestConfig(text: string, model = 'm', signature?: Omit<ModelSignature, 'file'>): CompiledModelConfig {
  const dir = `/repo/${model}`;
  const parsed = parseModelConfig(`${dir}/config.pbtxt`, text);
  const settings = readModelSettings(model, dir, parsed, BACKENDS);
  return compileModelConfig(model, dir, parsed, settings, {
    file: `${model}/1/model.onnx`,
    inputs: signature?.inputs ?? [{ name: 'INPUT', datatype: 'FP32' as const, modelType: 'float32', shape: [-1, -1] }],
    outputs: signature?.outputs ?? [{ name: 'OUTPUT', datatype: 'FP32' as const, modelType: 'float32', shape: [-1, -1] }],
  });
}

export interface Execution {
  readonly instance: string;
  readonly requests: readonly ExecuteRequest[];
  /** Rows per request, in batch order. */
  readonly sizes: readonly number[];
  /** Answers every request with its own input as OUTPUT. */
  finish(): void;
  /** Answers every request with the same error, as a failed batch does. */
  failAll(message: string): void;
}

export const TIMING: ComputeTiming = { inputNs: 1000, inferNs: 5000, outputNs: 2000 };

/** An instance that records each execute() call and answers only when the test says so. */
export class ScriptedInstance implements BackendInstance {
  readonly executions: Execution[] = [];

  constructor(readonly name: string) {}

  execute(requests: readonly ExecuteRequest[]): Promise<ExecuteOutcome> {
    return new Promise((resolve) => {
      this.executions.push({
        instance: this.name,
        requests,
        sizes: requests.map((r) => r.batchSize),
        finish: () => resolve({
          results: requests.map((r) => ({ ok: true, outputs: [{ ...r.inputs[0]!, name: 'OUTPUT' } as Tensor] })),
          timing: TIMING,
        }),
        failAll: (message) => {
          const error = serverError('INFERENCE_FAILED', { model: 'm', detail: message });
          resolve({ results: requests.map(() => ({ ok: false, error })), timing: TIMING });
        },
      });
    });
  }

  async finalize(): Promise<void> {}
}

/** Rows of width `width`, each filled with `tag`, so answers can be traced to requests. */
export function rows(tag: number, count = 1, width = 4, parameters?: InferenceRequest['parameters'], signal?: AbortSignal): InferenceRequest {
  const data = new Float32Array(count * width).fill(tag);
  return {
    modelName: 'm',
    inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [count, width], raw: new Uint8Array(data.buffer) }],
    ...(parameters ? { parameters } : {}),
    ...(signal ? { signal } : {}),
  };
}

/** The tag a response carries (the first value of its OUTPUT). */
export function tagOf(outputs: readonly Tensor[]): number {
  const t = outputs[0]!;
  return t.datatype === 'BYTES' ? NaN : new Float32Array(t.raw.slice().buffer)[0]!;
}

export interface Harness {
  readonly clock: ManualClock;
  readonly stats: ModelStats;
  readonly instances: ScriptedInstance[];
  readonly scheduler: DynamicBatcher;
  readonly config: CompiledModelConfig;
  /** Enqueues like InferenceEngine.infer does; the promise never rejects (the outcome is returned instead). */
  send(request: InferenceRequest): Promise<readonly Tensor[] | Error>;
  /** Every execution so far across instances, in the order they started. */
  readonly executions: Execution[];
  /** Lets promise callbacks run. */
  settle(): Promise<void>;
}

/** @param gates the rate limiter's gates of the instances (--rate-limit=execution_count), in order; with `model`, the model's name. */
export function harness(configText: string, instanceCount = 1, logger: Logger = silentLogger, gates?: readonly InstanceGate[], model = 'm'): Harness {
  return harnessFor(compileTestConfig(configText, model), instanceCount, logger, gates);
}

/** The harness around an already compiled config (one with its own signature, say). */
export function harnessFor(config: CompiledModelConfig, instanceCount = 1, logger: Logger = silentLogger, gates?: readonly InstanceGate[]): Harness {
  const clock = new ManualClock();
  const stats = new ModelStats();
  const instances = Array.from({ length: instanceCount }, (_, i) => new ScriptedInstance(`i${i}`));
  const executions: Execution[] = [];
  for (const instance of instances) {
    const original = instance.execute.bind(instance);
    instance.execute = (requests) => {
      const promise = original(requests);
      executions.push(instance.executions[instance.executions.length - 1]!);
      return promise;
    };
  }
  const batching = config.scheduling.kind === 'dynamic' ? config.scheduling.batching : undefined;
  const scheduler = new DynamicBatcher({ config, instances, logger, stats, clock, ...(gates ? { gates } : {}) }, batching);
  return {
    clock, stats, instances, scheduler, config, executions,
    send: (request) => {
      try {
        return scheduler.enqueue(request, normalizeRequest(config, request)).catch((err: Error) => err);
      } catch (err) {
        return Promise.resolve(err as Error);
      }
    },
    settle: () => new Promise((resolve) => setImmediate(resolve)),
  };
}
