/**
 * The scheduler of a stateless model: a priority queue in front of the
 * model's instances.
 *
 * With `dynamic_batching`, an idle instance takes the next batch that
 * planBatch (batch-plan.ts) forms from the queue; the queue delay, preferred
 * sizes, priority levels, queue policies and preserve_ordering follow
 * Triton's config. Every batch records why it closed (statistics and a
 * verbose log line). With padded batching (parameters padded_batching*,
 * batch-padding.ts) requests whose listed inputs fall in the same width
 * bucket share a batch, and their inputs are padded to its widest member
 * before the instance gets them.
 *
 * Without it, each request runs alone, and an instance may hold a few at once
 * (PIPELINE_DEPTH): it still runs them one after another, but the next one
 * already waits in its worker, so the thread hand-off costs little.
 *
 * Either way no request waits while an instance that could take it is idle.
 */
import type { BackendInstance, ComputeTiming, ExecuteOutcome, ExecuteRequest, ExecuteResult } from '../backend.ts';
import { NO_QUEUE_POLICY, type CompiledModelConfig, type DynamicBatchingSpec, type PaddedBatchingSpec } from '../config/compiled-model-config.ts';
import { asSwitchyardError, quoted, serverError } from '../errors.ts';
import { callFrameModel, type InferenceRequest } from '../inference-request.ts';
import type { Logger } from '../logger.ts';
import type { BufferPool } from '../memory/buffer-pool.ts';
import { releaseMarked } from '../memory/buffer-lease.ts';
import type { NormalizedRequest } from '../request-normalizer.ts';
import type { BatchCloseReason, FailureReason, ModelStats } from '../observability/model-stats.ts';
import { traceNow, type RequestTrace } from '../observability/trace/request-trace.ts';
import type { Tensor } from '../tensor.ts';
import { padBatch, bucketedShape, type PaddedInputSummary } from './batch-padding.ts';
import { planBatch } from './batch-plan.ts';
import { systemClock, type Clock } from './clock.ts';
import { InflightCounter, type InflightTicket } from './inflight-counter.ts';
import { PriorityQueue } from './priority-queue.ts';
import type { InstanceGate, ResourceGrant } from './rate-limiter.ts';
import { requestPolicy, type RequestPolicy } from './queue-policy.ts';
import type { Scheduler, SchedulerContext } from './scheduler.ts';
import { abortReason, settle, type Outcome, type Settleable } from './request-settlement.ts';

/**
 * Unbatched requests an instance may hold at once (running plus waiting in its
 * worker). Deep for quick models, where the thread hand-off costs more than the
 * inference; shallow for slow ones, so a cancelled request is rarely computed.
 */
export const PIPELINE_DEPTH = { quick: 16, slow: 2 } as const;
/**
 * Full batches a busy instance may hold behind the one it runs. A full batch
 * cannot grow by waiting, and staging it in the worker means the worker starts
 * it the moment the previous run ends instead of waiting for the event loop to
 * hear of that end: under load the loop is busy answering the previous batch.
 * An idle instance is still always preferred (freestSlot). A staged batch has
 * left the queue: later requests of higher priority no longer pass it. With
 * max_batch_size 1 every request is a "full batch", so nothing is staged there
 * and the queue keeps its priority order.
 */
export const STAGED_BATCHES = 1;
/** An execution shorter than this on average makes the model "quick". */
const QUICK_EXECUTION_MS = 1;

const CLOSE_REASON_TEXT: Readonly<Record<BatchCloseReason, string>> = {
  max_batch_size: 'it reached max_batch_size, or the next request would not fit',
  preferred_batch_size: 'it reached a preferred batch size',
  queue_delay: 'its oldest request waited max_queue_delay_microseconds',
  shape_mismatch: 'the next request has different input shapes',
  queue_empty: 'no more requests were queued and there is no queue delay',
};

interface Slot {
  readonly instance: BackendInstance;
  /** The rate limiter's gate for this instance (--rate-limit=execution_count). */
  readonly gate: InstanceGate | undefined;
  inflight: number;
}


const NO_TIMING: ComputeTiming = Object.freeze({ inputNs: 0, inferNs: 0, outputNs: 0 });

/** What the instance is given of a queued request: only the fields the request has; `inputs` replace the request's (padded batching). */
function executeRequest(pending: Pending, inputs: readonly Tensor[] = pending.request.inputs): ExecuteRequest {
  const request = pending.request;
  const out: { -readonly [K in keyof ExecuteRequest]: ExecuteRequest[K] } = { inputs, outputs: pending.normalized.outputs, batchSize: pending.batchSize };
  if (request.parameters) out.parameters = request.parameters;
  if (request.callChain) out.callChain = request.callChain;
  if (request.onResponse) out.send = request.onResponse;
  if (request.signal) out.signal = request.signal;
  if (request.trace) out.trace = request.trace;
  if (request.id) out.id = request.id;
  return out;
}

/** The options every queued request's abort listener is added with. */
const ONCE: AddEventListenerOptions = Object.freeze({ once: true });

/**
 * A queued request. It is its own abort listener (handleEvent), and its
 * answer goes straight to the promise enqueue() returned: queuing one
 * allocates no closure.
 */
class Pending implements Settleable {
  dispatchedAt: number | undefined = undefined;
  /** A result held back until the requests before it are answered (preserve_ordering). */
  held: Outcome | undefined = undefined;
  settled = false;
  /** Set while its batch waits for the rate limiter: called when it is cancelled there. */
  onCancelWhileWaiting: (() => void) | undefined = undefined;

  constructor(
    readonly request: InferenceRequest,
    readonly normalized: NormalizedRequest,
    readonly batchSize: number,
    readonly shapeKey: string,
    readonly levelIndex: number,
    readonly enqueuedAt: number,
    readonly deadline: number | undefined,
    readonly timeoutUs: number,
    /** Settled through settle() only, exactly once; the batcher ends the ticket's answer hold then. */
    readonly resolve: (outputs: readonly Tensor[]) => void,
    readonly reject: (error: Error) => void,
    /** A batch running the request holds it too. */
    readonly ticket: InflightTicket,
    /** What the batcher does when the request's signal fires. */
    private readonly onAbort: (pending: Pending) => void,
  ) {}

  /** Listens to the request's signal, when it has one. */
  listen(): void {
    this.request.signal?.addEventListener('abort', this, ONCE);
  }

  /** The signal fired: cancelled while queued, it leaves the queue; while executing, it is answered now and its result dropped. */
  handleEvent(): void {
    this.onAbort(this);
  }

  /** Detaches the abort listener (settle() calls it). */
  cleanup(): void {
    this.request.signal?.removeEventListener('abort', this);
  }
}

export class DynamicBatcher implements Scheduler {
  private readonly config: CompiledModelConfig;
  private readonly batching: DynamicBatchingSpec | undefined;
  private readonly padding: PaddedBatchingSpec | undefined;
  private readonly logger: Logger;
  private readonly stats: ModelStats;
  private readonly clock: Clock;
  /** Where pooled tensors nobody will read go back (see fail and complete). */
  private readonly pool: BufferPool | undefined;
  private readonly queue: PriorityQueue<Pending>;
  private readonly slots: Slot[];
  /** Requests in arrival order whose answers are not out yet; only with preserve_ordering. */
  private readonly order: Pending[] | undefined;
  /** Moving average of one execution's time in ms; undefined until the first one ends. */
  private executionMs: number | undefined;
  private executing = 0;
  /** Requests taken and not yet both answered and out of any executing batch. */
  private readonly inflight = new InflightCounter();
  /** Rate-limited (--rate-limit=execution_count): an instance holds one batch at a time, so its resources are held only while it computes. */
  private readonly limited: boolean;
  private timer: { handle: unknown; at: number } | undefined;
  /** cancel(), bound once for every request's Pending. */
  private readonly onAbort = (pending: Pending): void => this.cancel(pending);
  private stopped = false;
  private drained: (() => void) | undefined;

  constructor(context: SchedulerContext, batching: DynamicBatchingSpec | undefined) {
    this.config = context.config;
    this.batching = batching;
    this.padding = batching?.padding;
    this.logger = context.logger;
    this.stats = context.stats;
    this.clock = context.clock ?? systemClock;
    this.pool = context.bufferPool;
    this.queue = new PriorityQueue(batching?.queuePolicies ?? [NO_QUEUE_POLICY]);
    this.slots = context.instances.map((instance, i) => ({ instance, gate: context.gates?.[i], inflight: 0 }));
    this.limited = context.gates !== undefined;
    this.order = batching?.preserveOrdering ? [] : undefined;
    for (const slot of this.slots) slot.instance.onRoom?.(() => this.dispatch());
  }

  enqueue(request: InferenceRequest, normalized: NormalizedRequest): Promise<readonly Tensor[]> {
    const model = this.config.name;
    if (this.stopped) return Promise.reject(serverError('SERVER_STOPPING', { model }));
    if (request.signal?.aborted) return Promise.reject(serverError('CANCELLED', { model, reason: abortReason(request.signal) }));
    let policy: RequestPolicy;
    try {
      policy = requestPolicy(model, this.batching, request);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const enqueuedAt = this.clock.now();
      if (request.trace) traceQueued(request.trace, request);
      const pending = new Pending(
        request, normalized, normalized.batchSize, this.batching ? this.shapeKey(request) : '', policy.levelIndex, enqueuedAt,
        policy.timeoutUs > 0 ? enqueuedAt + policy.timeoutUs / 1000 : undefined, policy.timeoutUs, resolve, reject,
        this.inflight.ticket(), this.onAbort,
      );
      if (!this.queue.push(pending)) {
        this.fail(pending, serverError('QUEUE_FULL', {
          model, max: policy.policy.maxQueueSize, level: this.batching?.priorityLevels ? policy.levelIndex + 1 : undefined,
        }), 'REJECTED');
        return;
      }
      pending.listen();
      this.order?.push(pending);
      this.dispatch();
    });
  }

  /** A queued or executing request's signal fired. */
  private cancel(pending: Pending): void {
    this.queue.remove(pending);
    this.fail(pending, serverError('CANCELLED', { model: this.config.name, reason: abortReason(pending.request.signal!) }), 'CANCELED');
    pending.onCancelWhileWaiting?.();
    this.checkDrained();
  }

  /** Settles a request once (settle()), ending its ticket's answer hold first; a batch running it may hold the ticket on. */
  private answer(pending: Pending, outcome: Outcome): void {
    if (pending.settled) return;
    pending.ticket.done();
    settle(pending, outcome);
  }

  inflightCount(): number {
    return this.inflight.count;
  }

  idle(): Promise<void> {
    return this.inflight.idle();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.setTimer(undefined);
    for (const pending of this.queue.drain()) this.fail(pending, serverError('SERVER_STOPPING', { model: this.config.name }), 'OTHER');
    if (this.executing > 0) await new Promise<void>((resolve) => { this.drained = resolve; });
  }

  /** Hands queued work to instances with room, then arms the timer for the next queue delay or timeout. */
  private dispatch(): void {
    if (this.stopped) return;
    const now = this.clock.now();
    for (const expired of this.queue.expire(now)) {
      this.fail(expired, serverError('QUEUE_TIMEOUT', { model: this.config.name, waitedMs: now - expired.enqueuedAt, timeoutUs: expired.timeoutUs }), 'REJECTED');
    }
    let wakeAt: number | undefined;
    while (this.queue.size > 0) {
      const slot = this.freestSlot();
      if (!slot) break;
      if (!this.batching) {
        const next = this.queue.peek()!;
        this.queue.remove(next);
        void this.run(slot, [next], undefined);
        continue;
      }
      const plan = planBatch(this.queue, {
        maxBatchSize: this.config.maxBatchSize,
        preferredBatchSizes: this.batching.preferredBatchSizes,
        maxQueueDelayMs: this.batching.maxQueueDelayMicroseconds / 1000,
        now,
        passOthers: this.padding !== undefined,
      });
      if (plan.kind === 'wait') wakeAt = plan.until;
      if (plan.kind !== 'send') break;
      // A busy instance only takes a batch that is already full (see STAGED_BATCHES).
      if (this.load(slot) > 0 && (plan.size < this.config.maxBatchSize || this.config.maxBatchSize === 1)) break;
      for (const entry of plan.entries) this.queue.remove(entry);
      void this.run(slot, plan.entries, plan.reason);
    }
    if (this.queue.size > 0) this.failCallsThatCouldDeadlock();
    const deadline = this.queue.nextDeadline();
    this.setTimer(wakeAt === undefined ? deadline : deadline === undefined ? wakeAt : Math.min(wakeAt, deadline));
  }

  /** One timer serves both the queue delay and queue timeouts: it re-runs dispatch at the earliest. */
  private setTimer(at: number | undefined): void {
    if (this.timer && this.timer.at === at) return;
    if (this.timer) this.clock.clearTimer(this.timer.handle);
    this.timer = undefined;
    if (at === undefined) return;
    const handle = this.clock.setTimer(() => {
      this.timer = undefined;
      this.dispatch();
    }, at - this.clock.now());
    this.timer = { handle, at };
  }

  /** How much work an instance may hold: a batch (plus a staged full one) when batching, else a pipeline sized by speed. */
  private depth(): number {
    if (this.limited) return 1;
    if (this.batching) return 1 + STAGED_BATCHES;
    return this.executionMs !== undefined && this.executionMs < QUICK_EXECUTION_MS ? PIPELINE_DEPTH.quick : PIPELINE_DEPTH.slow;
  }

  /** The instance with the least work that still has room, so idle instances go first. */
  private freestSlot(): Slot | undefined {
    const depth = this.depth();
    let best: Slot | undefined;
    let bestLoad = Infinity;
    for (const slot of this.slots) {
      const load = this.load(slot);
      if (load < depth && load < bestLoad && slot.instance.reentrancy?.().full !== true) {
        best = slot;
        bestLoad = load;
      }
    }
    return best;
  }

  /** The work an instance holds, less its batches parked on calls into the server (re-entrant instances): they compute nothing. */
  private load(slot: Slot): number {
    return slot.inflight - (slot.instance.reentrancy?.().parked ?? 0);
  }

  /**
   * Once every instance runs its limit of batches and all of them wait on
   * calls, a queued call made by a model's batch (it has a call chain) may be
   * what they wait on, directly or through other models: it would wait
   * forever, so it fails now, naming the limit. Requests from clients wait on.
   */
  private failCallsThatCouldDeadlock(): void {
    if (this.slots.length === 0) return;
    // Most instances are not re-entrant: the first answers, with nothing allocated.
    for (const slot of this.slots) if (slot.instance.reentrancy?.().saturated !== true) return;
    const states = this.slots.map((slot) => slot.instance.reentrancy!());
    const calls = [...this.queue].filter((pending) => (pending.request.callChain?.length ?? 0) > 0);
    for (const pending of calls) {
      this.queue.remove(pending);
      const chain = pending.request.callChain!.map(callFrameModel);
      this.fail(pending, serverError('CALL_CYCLE', {
        model: this.config.name, chain: [...chain, this.config.name], instances: this.slots.length, limit: states[0]!.limit,
      }), 'REJECTED');
    }
  }

  private async run(slot: Slot, batch: Pending[], reason: BatchCloseReason | undefined): Promise<void> {
    slot.inflight++;
    this.executing += batch.length;
    for (const pending of batch) pending.ticket.hold();
    if (reason) this.recordClose(slot, batch, reason);
    let grant: ResourceGrant | undefined;
    try {
      if (slot.gate) {
        grant = await this.waitForResources(slot.gate, batch);
        if (!grant) return;
      }
      const live = this.dispatched(batch);
      if (live.length === 0) return;
      let outcome: ExecuteOutcome;
      const computeStart = live.some((p) => p.request.trace) ? traceNow() : 0;
      try {
        outcome = await slot.instance.execute(this.padding ? this.padded(this.padding, live) : live.map((p) => executeRequest(p)));
      } catch (err) {
        const error = asSwitchyardError(err, this.config.name);
        outcome = { results: live.map(() => ({ ok: false, error })), timing: NO_TIMING };
      }
      if (computeStart > 0) traceComputed(live, outcome.timing, computeStart, reason);
      this.executed(live, outcome.results, outcome.timing);
    } finally {
      grant?.release();
      this.executing -= batch.length;
      for (const pending of batch) pending.ticket.done();
      slot.inflight--;
      this.dispatch();
      this.checkDrained();
    }
  }

  /**
   * The batch waits for its instance's turn at the rate limiter. Its requests
   * can still be cancelled meanwhile; once all are, it leaves the limiter's
   * queue (undefined) and holds nothing.
   */
  private async waitForResources(gate: InstanceGate, batch: Pending[]): Promise<ResourceGrant | undefined> {
    const cancel = new AbortController();
    const onCancel = (): void => {
      if (batch.every((p) => p.settled)) cancel.abort();
    };
    onCancel();
    for (const pending of batch) pending.onCancelWhileWaiting = onCancel;
    const started = this.clock.now();
    const grant = await gate.acquire(cancel.signal);
    for (const pending of batch) pending.onCancelWhileWaiting = undefined;
    if (grant?.waited && this.logger.verboseEnabled) {
      this.logger.verbose(`model '${this.config.name}': batch of ${batch.length} request(s) waited ${(this.clock.now() - started).toFixed(1)} ms ` +
        'for rate limiter resources');
    }
    return grant;
  }

  private recordClose(slot: Slot, batch: readonly Pending[], reason: BatchCloseReason): void {
    this.stats.recordBatchClosed(reason);
    if (!this.logger.verboseEnabled) return;
    const live = batch.filter((p) => !p.settled);
    this.logger.verbose(`model '${this.config.name}': batch of ${live.length} request(s), batch size ` +
      `${live.reduce((n, p) => n + p.batchSize, 0)}, closed by ${reason} (${CLOSE_REASON_TEXT[reason]}); ` +
      `to instance ${slot.instance.name}, ${this.queue.size} still queued${slot.gate ? ', once the rate limiter grants its resources' : ''}` +
      requestIds(live));
  }

  /** The batch's requests with their padded inputs widened to the batch's widest; the padding is counted and logged. */
  private padded(spec: PaddedBatchingSpec, live: readonly Pending[]): ExecuteRequest[] {
    const batch = padBatch(spec, live.map((p) => p.request.inputs));
    if (batch.padded.length > 0) {
      this.stats.recordPadding(batch.padded.reduce((n, p) => n + p.elements, 0), batch.padded.reduce((n, p) => n + p.paddingElements, 0));
      if (this.logger.verboseEnabled) {
        this.logger.verbose(`model '${this.config.name}': batch of ${live.length} request(s) padded ${batch.padded.map(paddingText).join(', ')}`);
      }
    }
    return live.map((p, i) => executeRequest(p, batch.inputs[i]));
  }

  /** The requests of a batch still to be computed (those cancelled since they were queued are not), marked dispatched now. */
  private dispatched(batch: readonly Pending[]): Pending[] {
    const now = this.clock.now();
    const live: Pending[] = [];
    for (const pending of batch) {
      pending.dispatchedAt = now;
      if (!pending.settled) live.push(pending);
    }
    return live;
  }

  /** Records an execution and answers each of its requests. */
  private executed(live: readonly Pending[], results: readonly ExecuteResult[], timing: ComputeTiming): void {
    const tookMs = (timing.inputNs + timing.inferNs + timing.outputNs) / 1e6;
    if (tookMs > 0) this.executionMs = this.executionMs === undefined ? tookMs : 0.8 * this.executionMs + 0.2 * tookMs;
    let okRows = 0;
    for (let i = 0; i < results.length; i++) if (results[i]!.ok) okRows += live[i]!.batchSize;
    if (okRows > 0) this.stats.recordExecution(okRows, timing);
    for (let i = 0; i < results.length; i++) {
      const result = results[i]!;
      this.complete(live[i]!, result.ok ? result.outputs : result.error, timing);
    }
  }

  /** Records and delivers an execution's outcome for one request, in arrival order under preserve_ordering. */
  private complete(pending: Pending, outcome: Outcome, timing: ComputeTiming): void {
    if (pending.settled) {
      // Cancelled while its batch ran: nobody takes the answer, so its pooled outputs go back.
      if (!(outcome instanceof Error)) releaseMarked(this.pool, outcome);
      return;
    }
    const totalNs = (this.clock.now() - pending.enqueuedAt) * 1e6;
    if (outcome instanceof Error) this.stats.recordFailure(totalNs, 'BACKEND');
    else this.stats.recordSuccess(totalNs, ((pending.dispatchedAt ?? pending.enqueuedAt) - pending.enqueuedAt) * 1e6, timing);
    if (!this.order) {
      this.answer(pending, outcome);
      return;
    }
    pending.held = outcome;
    this.releaseInOrder();
  }

  /** Under preserve_ordering: answers held results from the front while nothing earlier is still out. */
  private releaseInOrder(): void {
    const order = this.order!;
    while (order.length > 0) {
      const head = order[0]!;
      if (!head.settled && head.held === undefined) break;
      order.shift();
      if (!head.settled) this.answer(head, head.held!);
      else if (head.held !== undefined && !(head.held instanceof Error)) releaseMarked(this.pool, head.held);
    }
  }

  /** Answers a request that never got a result (rejected, timed out, cancelled, stopped). */
  private fail(pending: Pending, error: Error, reason: FailureReason): void {
    if (pending.settled) return;
    this.stats.recordFailure((this.clock.now() - pending.enqueuedAt) * 1e6, reason);
    this.answer(pending, error);
    // Pooled inputs handed over with the request (an ensemble's intermediates) are the batcher's until a batch takes
    // them to an instance; one that fails before (queue full, timed out, cancelled while queued) gives them back.
    if (pending.dispatchedAt === undefined) releaseMarked(this.pool, pending.request.inputs);
    // A failure is answered at once; it may unblock results held behind it.
    if (this.order) this.releaseInOrder();
  }

  /**
   * Inputs whose shapes must agree for two requests to share a batch: all but
   * those allowing ragged batches; a padded input's variable dims need only
   * fall in the same bucket.
   */
  private shapeKey(request: InferenceRequest): string {
    const parts: string[] = [];
    for (const input of request.inputs) {
      if (this.config.inputByName.get(input.name)?.allowRaggedBatch) continue;
      const padded = this.padding?.inputs.get(input.name);
      parts.push(`${input.name}:${padded ? bucketedShape(padded, input.shape, this.padding!.bucketWidth) : input.shape.slice(1).join('x')}`);
    }
    return parts.length > 1 ? parts.sort().join(';') : parts[0] ?? '';
  }

  private checkDrained(): void {
    if (this.executing === 0 && this.drained) {
      this.drained();
      this.drained = undefined;
    }
  }
}

/** At most this many requests of a batch are named in its verbose log line. */
const LOGGED_REQUEST_IDS = 8;

/** The batch's requests as its log line names them: each one's id, and its trace when traced; empty when none has either. */
function requestIds(live: readonly Pending[]): string {
  const named = live.filter((p) => p.request.id || p.request.trace);
  if (named.length === 0) return '';
  const shown = named.slice(0, LOGGED_REQUEST_IDS).map((p) => {
    const { id, trace } = p.request;
    return `${id ? `'${quoted(id, 64)}'` : '-'}${trace ? ` (trace ${trace.logId})` : ''}`;
  });
  return `; requests ${shown.join(', ')}${named.length > shown.length ? ` and ${named.length - shown.length} more` : ''}`;
}

/** One padded input of a batch as its log line reads: "x to [3, 1, 48, 120] (840 of 17280 elements, 4.9%, are padding)". */
function paddingText(p: PaddedInputSummary): string {
  const share = (100 * p.paddingElements / p.elements).toFixed(1);
  return `'${p.name}' to [${p.shape.join(', ')}] (${p.paddingElements} of ${p.elements} elements, ${share}%, are padding)`;
}

/** QUEUE_START, and the inputs as queued (TENSORS level), on a traced request's trace. */
function traceQueued(trace: RequestTrace, request: InferenceRequest): void {
  trace.mark('QUEUE_START');
  for (const tensor of request.inputs) trace.tensor('TENSOR_QUEUE_INPUT', tensor);
}

/** The four compute timestamps of one execution on each traced request of its batch. */
function traceComputed(live: readonly Pending[], timing: ComputeTiming, startNs: number, reason: BatchCloseReason | undefined): void {
  let size = 0;
  for (const pending of live) size += pending.batchSize;
  const endNs = traceNow();
  const batch = reason ? { size, closeReason: reason } : { size };
  for (const pending of live) pending.request.trace?.compute(startNs, endNs, timing.inputNs, timing.outputNs, batch);
}
