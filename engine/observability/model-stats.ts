/**
 * Per model version statistics, kept in Triton's shape so that the
 * statistics extension (HTTP and gRPC) and perf tools read them unchanged:
 * request outcomes, queue and compute durations, and one entry per batch
 * size. On top of Triton's fields it counts why each batch closed, which is
 * the question users of a dynamic batcher ask most.
 *
 * Durations are cumulative nanoseconds with a count, as Triton reports them.
 *
 * Anything that needs each event rather than the sums (the metrics
 * endpoint's summaries and histograms) subscribes with observe(); with
 * nobody subscribed, recording costs one length check more.
 */
import type { ComputeTiming } from '../backend.ts';

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

/**
 * Why a request failed after it reached the scheduler, in Triton's terms
 * (the `reason` label of nv_inference_request_failure).
 */
export type FailureReason =
  /** The queue refused it or timed it out: max_queue_size, a queue policy timeout. */
  | 'REJECTED'
  /** The client cancelled it, or went away, before it ran. */
  | 'CANCELED'
  /** The model ran and failed. */
  | 'BACKEND'
  /** Anything else, e.g. the model stopped while the request was queued. */
  | 'OTHER';

/** What padded batching added (ModelStats.paddingCounts). */
export interface PaddingCounts {
  batches: number;
  elements: number;
  paddingElements: number;
}

export const FAILURE_REASONS: readonly FailureReason[] = ['REJECTED', 'CANCELED', 'BACKEND', 'OTHER'];

/** Hears each event as it is recorded; every method is optional. Called synchronously, so it must be quick and never throw. */
export interface ModelStatsObserver {
  /** A request answered successfully (the arguments of recordSuccess). */
  success?(totalNs: number, queueNs: number, timing: ComputeTiming): void;
  /** A request failed after it reached the scheduler. */
  failure?(totalNs: number, reason: FailureReason): void;
  /** One successful model execution of `batchSize` inferences. */
  execution?(batchSize: number, timing: ComputeTiming): void;
  /** One call of ensemble step `index` to its model. */
  step?(index: number, ok: boolean, ns: number): void;
  /** A decoupled model's first response to a request, `ns` after the request arrived. */
  firstResponse?(ns: number): void;
  /** A request answered from the response cache (the arguments of recordCacheHit). */
  cacheHit?(totalNs: number, queueNs: number, lookupNs: number): void;
  /** A request the response cache did not have, answered by the model (the argument of recordCacheMiss). */
  cacheMiss?(ns: number): void;
}

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
  /** Requests for which the step did not run: a condition failed, or a tensor it needs was not there. */
  readonly skipped: number;
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

  private steps: Array<{ step: string; model: string; success: StatDuration; fail: StatDuration; skipped: number }> | undefined;

  private readonly padding: PaddingCounts = { batches: 0, elements: 0, paddingElements: 0 };

  private readonly failureReasons: Record<FailureReason, number> =
    Object.fromEntries(FAILURE_REASONS.map((r) => [r, 0])) as Record<FailureReason, number>;

  private observers: readonly ModelStatsObserver[] = [];

  /** Subscribes to every event recorded from now on; returns the function that unsubscribes. */
  observe(observer: ModelStatsObserver): () => void {
    this.observers = [...this.observers, observer];
    return () => {
      this.observers = this.observers.filter((o) => o !== observer);
    };
  }

  /** Failed requests by reason, since the version loaded; they add up to inference_stats.fail.count. */
  failureCounts(): Readonly<Record<FailureReason, number>> {
    return { ...this.failureReasons };
  }

  /** Makes this an ensemble's statistics, with one entry per step. */
  trackSteps(steps: ReadonlyArray<{ readonly step: string; readonly model: string }>): void {
    this.steps = steps.map((s) => ({ step: s.step, model: s.model, success: zero(), fail: zero(), skipped: 0 }));
  }

  /** One call of an ensemble step to its model, from the step's start to its answer. */
  recordStep(index: number, ok: boolean, ns: number): void {
    const entry = this.steps?.[index];
    if (entry) add(ok ? entry.success : entry.fail, ns);
    for (const o of this.observers) o.step?.(index, ok, ns);
  }

  /** An ensemble step that did not run for a request (its condition failed, or a tensor it needs was not there). */
  recordStepSkipped(index: number): void {
    const entry = this.steps?.[index];
    if (entry) entry.skipped++;
  }

  /**
   * A batch whose padded inputs (padded batching) were widened: `elements`
   * in those inputs as the model sees them, `paddingElements` of them the pad value.
   */
  recordPadding(elements: number, paddingElements: number): void {
    this.padding.batches++;
    this.padding.elements += elements;
    this.padding.paddingElements += paddingElements;
  }

  /** Padded batching since the version loaded: batches that needed padding, and the elements of their padded inputs, all and pad only. */
  paddingCounts(): Readonly<PaddingCounts> {
    return { ...this.padding };
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
    for (const o of this.observers) o.execution?.(batchSize, timing);
  }

  /** A request answered successfully: its whole time in the engine, its time queued, and its batch's compute time. */
  recordSuccess(totalNs: number, queueNs: number, timing: ComputeTiming): void {
    add(this.inference.success, totalNs);
    add(this.inference.queue, queueNs);
    add(this.inference.compute_input, timing.inputNs);
    add(this.inference.compute_infer, timing.inferNs);
    add(this.inference.compute_output, timing.outputNs);
    for (const o of this.observers) o.success?.(totalNs, queueNs, timing);
  }

  /**
   * A request answered from the response cache, as Triton counts one: a
   * success (its whole time, and the time before the lookup as queue time)
   * and a cache hit (the lookup), but no execution, no inference_count and
   * no compute time.
   */
  recordCacheHit(totalNs: number, queueNs: number, lookupNs: number): void {
    add(this.inference.success, totalNs);
    add(this.inference.queue, queueNs);
    add(this.inference.cache_hit, lookupNs);
    for (const o of this.observers) o.cacheHit?.(totalNs, queueNs, lookupNs);
  }

  /**
   * A successful request the response cache did not have: `ns` is its
   * lookup plus the insert of its answer, which also adds to its success
   * time (the scheduler recorded the success itself), as in Triton.
   */
  recordCacheMiss(ns: number): void {
    add(this.inference.cache_miss, ns);
    this.inference.success.ns += Math.round(ns);
    for (const o of this.observers) o.cacheMiss?.(ns);
  }

  /** A request that failed anywhere after it reached the scheduler (rejected, timed out, cancelled, or failed to run), and why. */
  recordFailure(totalNs: number, reason: FailureReason = 'OTHER'): void {
    add(this.inference.fail, totalNs);
    this.failureReasons[reason]++;
    for (const o of this.observers) o.failure?.(totalNs, reason);
  }

  /** A decoupled model sent the first response of a request, `ns` after the request arrived (nothing is counted; observers hear it). */
  recordFirstResponse(ns: number): void {
    for (const o of this.observers) o.firstResponse?.(ns);
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
      step_stats: (this.steps ?? []).map((s) => ({ step: s.step, model: s.model, success: copy(s.success), fail: copy(s.fail), skipped: s.skipped })),
    };
  }
}
