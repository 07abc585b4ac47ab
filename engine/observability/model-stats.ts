/**
 * Per model version statistics, kept in Triton's shape so that the
 * statistics extension (HTTP and gRPC) and perf tools read them unchanged:
 * request outcomes, queue and compute durations, and one entry per batch
 * size. On top of Triton's fields it counts why each batch closed, which is
 * the question users of a dynamic batcher ask most.
 *
 * Durations are cumulative nanoseconds with a count, as Triton reports them.
 */
import type { ComputeTiming } from '../../backends/backend.ts';

/** Why the scheduler stopped adding requests to a batch and sent it. */
export type BatchCloseReason =
  /** The batch reached max_batch_size, or the next request would have passed it. */
  | 'max_batch_size'
  /** The batch reached a preferred_batch_size before the queue delay ran out. */
  | 'preferred_batch_size'
  /** The oldest request waited max_queue_delay_microseconds; the batch went as it was. */
  | 'queue_delay'
  /** The next request had different shapes for an input that must match. */
  | 'shape_mismatch'
  /** No more requests were queued and there is no queue delay to wait for more. */
  | 'queue_empty';

export const BATCH_CLOSE_REASONS: readonly BatchCloseReason[] =
  ['max_batch_size', 'preferred_batch_size', 'queue_delay', 'shape_mismatch', 'queue_empty'];

export interface StatDuration {
  count: number;
  ns: number;
}

export interface InferStatisticsJson {
  readonly success: StatDuration;
  readonly fail: StatDuration;
  readonly queue: StatDuration;
  readonly compute_input: StatDuration;
  readonly compute_infer: StatDuration;
  readonly compute_output: StatDuration;
  readonly cache_hit: StatDuration;
  readonly cache_miss: StatDuration;
}

export interface BatchStatisticsJson {
  readonly batch_size: number;
  readonly compute_input: StatDuration;
  readonly compute_infer: StatDuration;
  readonly compute_output: StatDuration;
}

/** Triton's per-response statistics of a decoupled model, for the responses at one position of their request. */
export interface ResponseStatisticsJson {
  readonly compute_infer: StatDuration;
  readonly compute_output: StatDuration;
  readonly success: StatDuration;
  readonly fail: StatDuration;
  readonly empty_response: StatDuration;
  readonly cancel: StatDuration;
}

/** How one response of a decoupled model ended, for response_stats. */
export type ResponseOutcome = 'success' | 'fail' | 'empty_response' | 'cancel';

/** Switchyard's own, for ensembles: how each step's calls to its model went, timed from the ensemble. */
export interface StepStatisticsJson {
  /** How messages name the step: its pipeline name or its position, with the model. */
  readonly step: string;
  readonly model: string;
  readonly success: StatDuration;
  readonly fail: StatDuration;
}

/** One entry of `model_stats`, as Triton's statistics extension prints it, plus `batch_close_reasons` (and `step_stats` for ensembles). */
export interface ModelStatisticsJson {
  readonly name: string;
  readonly version: string;
  /** Milliseconds since the epoch of the last successful execution; 0 before the first. */
  readonly last_inference: number;
  readonly inference_count: number;
  readonly execution_count: number;
  readonly inference_stats: InferStatisticsJson;
  /** Decoupled models only: keyed by the response's position in its request, "0" for first responses. */
  readonly response_stats: Readonly<Record<string, ResponseStatisticsJson>>;
  readonly batch_stats: readonly BatchStatisticsJson[];
  readonly memory_usage: readonly never[];
  /** Switchyard's own: how many batches closed for each reason. Models without dynamic batching count none. */
  readonly batch_close_reasons: Readonly<Record<BatchCloseReason, number>>;
  /** Switchyard's own, for ensembles: one entry per step, in config order. Empty for other models. */
  readonly step_stats: readonly StepStatisticsJson[];
}

const zero = (): StatDuration => ({ count: 0, ns: 0 });
const add = (d: StatDuration, ns: number, count = 1): void => {
  d.count += count;
  d.ns += Math.round(ns);
};

export class ModelStats {
  private lastInference = 0;
  private inferenceCount = 0;
  private executionCount = 0;
  private readonly inference = {
    success: zero(), fail: zero(), queue: zero(), compute_input: zero(), compute_infer: zero(), compute_output: zero(),
    cache_hit: zero(), cache_miss: zero(),
  };
  private readonly batches = new Map<number, { compute_input: StatDuration; compute_infer: StatDuration; compute_output: StatDuration }>();
  private readonly closeReasons: Record<BatchCloseReason, number> =
    Object.fromEntries(BATCH_CLOSE_REASONS.map((r) => [r, 0])) as Record<BatchCloseReason, number>;

  private readonly responses = new Map<number, Record<keyof ResponseStatisticsJson, StatDuration>>();

  private steps: Array<{ step: string; model: string; success: StatDuration; fail: StatDuration }> | undefined;

  /** Makes this an ensemble's statistics, with one entry per step. */
  trackSteps(steps: ReadonlyArray<{ readonly step: string; readonly model: string }>): void {
    this.steps = steps.map((s) => ({ step: s.step, model: s.model, success: zero(), fail: zero() }));
  }

  /** One call of an ensemble step to its model, from the step's start to its answer. */
  recordStep(index: number, ok: boolean, ns: number): void {
    const entry = this.steps?.[index];
    if (entry) add(ok ? entry.success : entry.fail, ns);
  }

  /** A batch was formed and sent; counted whatever its outcome. */
  recordBatchClosed(reason: BatchCloseReason): void {
    this.closeReasons[reason]++;
  }

  /** One successful model execution of `batchSize` inferences. */
  recordExecution(batchSize: number, timing: ComputeTiming, nowMs = Date.now()): void {
    this.executionCount++;
    this.inferenceCount += batchSize;
    this.lastInference = nowMs;
    let entry = this.batches.get(batchSize);
    if (!entry) {
      entry = { compute_input: zero(), compute_infer: zero(), compute_output: zero() };
      this.batches.set(batchSize, entry);
    }
    add(entry.compute_input, timing.inputNs);
    add(entry.compute_infer, timing.inferNs);
    add(entry.compute_output, timing.outputNs);
  }

  /** A request answered successfully: its whole time in the engine, its time queued, and its batch's compute time. */
  recordSuccess(totalNs: number, queueNs: number, timing: ComputeTiming): void {
    add(this.inference.success, totalNs);
    add(this.inference.queue, queueNs);
    add(this.inference.compute_input, timing.inputNs);
    add(this.inference.compute_infer, timing.inferNs);
    add(this.inference.compute_output, timing.outputNs);
  }

  /** A request that failed anywhere after it reached the scheduler (rejected, timed out, cancelled, or failed to run). */
  recordFailure(totalNs: number): void {
    add(this.inference.fail, totalNs);
  }

  /**
   * One response of a decoupled model, at position `index` of its request:
   * successes and failures count their compute time, an empty final its
   * wait, a cancellation none.
   */
  recordResponse(index: number, outcome: ResponseOutcome, inferNs: number, outputNs: number): void {
    let entry = this.responses.get(index);
    if (!entry) {
      entry = { compute_infer: zero(), compute_output: zero(), success: zero(), fail: zero(), empty_response: zero(), cancel: zero() };
      this.responses.set(index, entry);
    }
    if (outcome === 'success' || outcome === 'fail') {
      add(entry.compute_infer, inferNs);
      add(entry.compute_output, outputNs);
      add(entry[outcome], inferNs + outputNs);
    } else {
      add(entry[outcome], outcome === 'empty_response' ? inferNs : 0);
    }
  }

  snapshot(name: string, version: string): ModelStatisticsJson {
    const copy = (d: StatDuration): StatDuration => ({ count: d.count, ns: d.ns });
    const inference = this.inference;
    return {
      name,
      version,
      last_inference: this.lastInference,
      inference_count: this.inferenceCount,
      execution_count: this.executionCount,
      inference_stats: {
        success: copy(inference.success), fail: copy(inference.fail), queue: copy(inference.queue),
        compute_input: copy(inference.compute_input), compute_infer: copy(inference.compute_infer),
        compute_output: copy(inference.compute_output), cache_hit: copy(inference.cache_hit), cache_miss: copy(inference.cache_miss),
      },
      response_stats: Object.fromEntries([...this.responses.entries()].sort(([a], [b]) => a - b).map(([index, e]) => [String(index), {
        compute_infer: copy(e.compute_infer), compute_output: copy(e.compute_output), success: copy(e.success), fail: copy(e.fail),
        empty_response: copy(e.empty_response), cancel: copy(e.cancel),
      }])),
      batch_stats: [...this.batches.entries()].sort(([a], [b]) => a - b).map(([size, e]) => ({
        batch_size: size, compute_input: copy(e.compute_input), compute_infer: copy(e.compute_infer), compute_output: copy(e.compute_output),
      })),
      memory_usage: [],
      batch_close_reasons: { ...this.closeReasons },
      step_stats: (this.steps ?? []).map((s) => ({ step: s.step, model: s.model, success: copy(s.success), fail: copy(s.fail) })),
    };
  }
}
