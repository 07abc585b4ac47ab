/**
 * The scheduler seam, as in Triton: enqueue, in-flight count, stop; idle()
 * is the in-flight count as an event. One scheduler per loaded model
 * version, picked by createScheduler.
 */
import type { BackendInstance } from '../backend.ts';
import type { CompiledModelConfig } from '../config/compiled-model-config.ts';
import type { InferenceRequest, ParameterValue } from '../inference-request.ts';
import type { Logger } from '../logger.ts';
import type { BufferPool } from '../memory/buffer-pool.ts';
import type { ModelStats } from '../observability/model-stats.ts';
import type { NormalizedRequest } from '../request-normalizer.ts';
import type { Tensor } from '../tensor.ts';
import type { InferFunction } from '../infer-function.ts';
import type { InferStreamFunction } from '../response-stream.ts';
import type { Clock } from './clock.ts';
import type { InstanceGate } from './rate-limiter.ts';

/** What createScheduler hands the scheduler it picks. */
export interface SchedulerContext {
  readonly config: CompiledModelConfig;
  readonly instances: readonly BackendInstance[];
  /**
   * With --rate-limit=execution_count: the rate limiter's gate of each
   * instance, in the order of `instances`; an instance executes only once its
   * gate grants it. Absent: nothing is limited.
   */
  readonly gates?: readonly InstanceGate[];
  readonly logger: Logger;
  readonly stats: ModelStats;
  /** Injected by tests to control time; the monotonic system clock otherwise. */
  readonly clock?: Clock;
  /** The server's infer(), which ensemble steps go back through so each member keeps its own scheduler. */
  readonly infer?: InferFunction;
  /** The server's inferStream(), which the steps of a decoupled ensemble go through. */
  readonly inferStream?: InferStreamFunction;
  /** The server's tensor memory, where ensembles return intermediate buffers. */
  readonly bufferPool?: BufferPool;
}

export interface Scheduler {
  /** Resolves with the request's outputs, or rejects with a catalogue error. */
  enqueue(request: InferenceRequest, normalized: NormalizedRequest): Promise<readonly Tensor[]>;
  /** Requests taken and not yet answered: queued, waiting for an instance, or executing. */
  inflightCount(): number;
  /** Resolves once inflightCount() is 0: at once if it is now. */
  idle(): Promise<void>;
  /**
   * Parameters every response to this request carries; only the ensemble
   * scheduler has them (Triton's ensembles answer with the request's
   * sequence_id, sequence_start and sequence_end). Throws the request's
   * error when they cannot be read, before any work.
   */
  responseParameters?(request: InferenceRequest): Readonly<Record<string, ParameterValue>>;
  /** Sequences open now; only schedulers of stateful models (the sequence batcher) have it. */
  activeSequenceCount?(): number;
  /**
   * Takes no new requests, lets executing ones finish, and rejects the ones still queued.
   * `reason` (why the model stops, e.g. 'unloaded') may be named in those rejections.
   */
  stop(reason?: string): Promise<void>;
}
