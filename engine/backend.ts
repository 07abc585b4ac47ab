/**
 * The backend contract, in three levels as in Triton: a Backend loads
 * models, a BackendModel (one version of one model) creates instances, and a
 * BackendInstance executes a list of requests, answering each one. Every
 * level has a matching finalize.
 */
import type { CompiledModelConfig, InstanceGroupSpec } from './config/compiled-model-config.ts';
import type { BackendTraits } from './config/backend-catalog.ts';
import type { ModelSettings } from './config/compile-model-config.ts';
import type { ModelSignature } from './config/model-signature.ts';
import type { SwitchyardError } from './errors.ts';
import type { ModelConfigObject } from './config/model-config-schema.ts';
import type { ParameterValue } from './inference-request.ts';
import type { ModelResponse, ResponseTaken } from './inference-response.ts';
import type { Logger } from './logger.ts';
import type { InferFunction, StreamingInferFunction } from './infer-function.ts';
import type { BufferPool } from './memory/buffer-pool.ts';
import type { Tensor } from './tensor.ts';
import type { RequestTrace } from './observability/trace/request-trace.ts';

export interface ModelLoadContext {
  readonly modelName: string;
  readonly version: number;
  /** The model's folder (its config and version folders; a load request's temporary folder for uploaded files). */
  readonly modelDir: string;
  /** The numbered version folder. */
  readonly versionDir: string;
  readonly settings: ModelSettings;
  /** Where a backend reports what happens after load (a worker crashed and was restarted). Default: silent. */
  readonly logger?: Logger;
  /** The server's shared tensor memory. Default: a pool of the model's own. */
  readonly bufferPool?: BufferPool;
  /** The config as parsed, before compiling, for backends whose signature is the config itself (scripts). */
  readonly config?: ModelConfigObject;
  /** The server's infer(), for backends whose models call other models (scripts' ctx.infer). */
  readonly infer?: InferFunction;
  /** The server's inferStream(), for backends whose models read other models' streams (scripts' ctx.inferStream). */
  readonly inferStream?: StreamingInferFunction;
}

/**
 * One backend: its traits (name, platforms, default model file, whether its
 * models may be decoupled) and how it opens a model. A server gets its
 * backends in a BackendRegistry; a third-party backend is one more object.
 */
export interface Backend extends BackendTraits {
  /** Opens one version of a model and reads its signature. */
  loadModel(context: ModelLoadContext): Promise<BackendModel>;
}

export interface BackendModel {
  /** Inputs and outputs as the model file declares them. */
  readonly signature: ModelSignature;
  /** Starts one execution instance; called after the config is compiled against the signature. */
  createInstance(config: CompiledModelConfig, group: InstanceGroupSpec, indexInGroup: number): Promise<BackendInstance>;
  finalize(): Promise<void>;
}

/** One request of a batch as an instance receives it. Inputs already match the config. */
export interface ExecuteRequest {
  readonly inputs: readonly Tensor[];
  /** Outputs this request wants back. */
  readonly outputs: readonly string[];
  /** Size of this request along the batch dimension (1 when the model does not batch). */
  readonly batchSize: number;
  /** The request's parameters, for backends whose code reads them (scripts). */
  readonly parameters?: Readonly<Record<string, ParameterValue>>;
  /** Models up the call stack of this request (see InferenceRequest.callChain). */
  readonly callChain?: readonly string[];
  /**
   * Decoupled models only: sends one response of this request, the last one
   * with `final`. Answers false once nobody wants more (the client went away
   * or stopped reading); the backend then tells the model so. A promise
   * means the stream's buffer is full: the backend waits for it before the
   * next response (backpressure), and it settles as ResponseTaken says.
   */
  readonly send?: (response: ModelResponse) => ResponseTaken;
  /** Fires when the client goes away or its deadline passes (see InferenceRequest.signal). */
  readonly signal?: AbortSignal;
  /** The request's trace, when it is traced: backends whose models call others (scripts) hang those calls' traces under it. */
  readonly trace?: RequestTrace;
  /** The request's id, as the client gave it, for log lines about it. */
  readonly id?: string;
}

/** A request's result; for a decoupled model `outputs` is empty, its responses having gone through `send`. */
export type ExecuteResult =
  | { readonly ok: true; readonly outputs: readonly Tensor[] }
  | { readonly ok: false; readonly error: SwitchyardError };

/**
 * Where one execution's time went, in nanoseconds, as Triton's statistics
 * split it: preparing inputs (joining requests, handing memory to the
 * runtime), the model run itself, and preparing outputs (reading results,
 * cutting them per request).
 */
export interface ComputeTiming {
  readonly inputNs: number;
  readonly inferNs: number;
  readonly outputNs: number;
}

/** The answer to one execute() call: one result per request, in order, and the batch's timing. */
export interface ExecuteOutcome {
  readonly results: readonly ExecuteResult[];
  readonly timing: ComputeTiming;
}

/** See BackendInstance.reentrancy. */
export interface Reentrancy {
  /** Batches that wait on calls into the server, computing nothing. */
  readonly parked: number;
  /** It holds its limit of batches (running or about to) and takes no more. */
  readonly full: boolean;
  /** It runs its limit of batches and every one is parked: nothing it holds moves until a call it made answers. */
  readonly saturated: boolean;
  /** Its limit of batches at once (max_concurrent_executes for scripts), for messages. */
  readonly limit: number;
}

export interface BackendInstance {
  readonly name: string;
  /**
   * Re-entrant instances (scripts, whose batches wait on calls into the
   * server): how the batches it holds stand. The scheduler gives it room for
   * one more batch per parked one, stops handing it batches once it is full,
   * and fails queued calls made by other models' batches once every instance
   * is saturated, since those could be waiting on the very calls queued.
   */
  reentrancy?(): Reentrancy;
  /** Re-entrant instances call `listener` when room opened without a batch ending: a batch began waiting on a call, or stopped. */
  onRoom?(listener: () => void): void;
  /**
   * Runs the requests together and answers each, in order. Never rejects for a
   * per-request problem. May be called again before an earlier call finished;
   * the calls then run one after another, in the order they were made (a
   * re-entrant instance starts the next while the ones before are parked).
   * A failure that hits the whole batch (the runtime refused it, the worker
   * died) answers every request with that error rather than rejecting.
   */
  execute(requests: readonly ExecuteRequest[]): Promise<ExecuteOutcome>;
  /** Bytes of script heap this instance holds, for backends that run code in an isolate (scripts); for metrics. */
  heapUsedBytes?(): Promise<number>;
  finalize(): Promise<void>;
}
