/**
 * The scheduler of a stateful model (Triton's sequence batcher). Requests
 * name their sequence with the `sequence_id`, `sequence_start` and
 * `sequence_end` parameters (correlation-id.ts); each sequence is an actor
 * with an explicit lifecycle (sequence-machine.ts).
 *
 * A sequence holds one slot of one instance for its whole life, so its
 * requests run on that instance one after another, in arrival order, each
 * seeing the state the previous one left. Slots per instance: max(1,
 * max_batch_size) with the direct strategy, max_candidate_sequences with
 * oldest. A started sequence that finds no free slot waits in a backlog,
 * first come first served; slots go to the lowest slot number across
 * instances first, so sequences spread over instances.
 *
 * Every request gets the model's control tensors (control-tensors.ts) and
 * its sequence's state tensors (implicit-state.ts); after it runs, the state
 * outputs become the sequence's state and are stripped from the answer.
 *
 * An instance runs one batch at a time (the next request of a sequence needs
 * the state the previous one produced). The batch is formed when it is idle:
 * - direct: one row per slot, fillers (READY false) where a slot has nothing
 *   to send (direct-batch-plan.ts);
 * - oldest: the instance's sequences whose next request is ready, oldest
 *   request first, at most one per sequence, through the dynamic batcher's
 *   planBatch (preferred sizes, queue delay). Answers of one instance leave
 *   in the order its batches ran, which is what preserve_ordering asks.
 *
 * START on a correlation ID whose sequence is still open ends that sequence
 * early: what it already queued still runs, then the new sequence takes its
 * slot with a fresh state (Triton logs the conflict and does the same).
 * END closes the sequence as soon as it is queued: later requests without
 * START get Triton's START error. A sequence with nothing queued or running
 * for max_sequence_idle_microseconds expires: its slot and state are freed.
 */
import type { BackendInstance, ComputeTiming, ExecuteRequest, ExecuteResult } from '../backend.ts';
import { bytesElementCount, emptyBytesTensor } from '../bytes-tensor.ts';
import type { CompiledModelConfig, SequenceBatchingSpec } from '../config/compiled-model-config.ts';
import { asSwitchyardError, serverError } from '../errors.ts';
import type { InferenceRequest } from '../inference-request.ts';
import type { Logger } from '../logger.ts';
import type { BatchCloseReason, FailureReason, ModelStats } from '../observability/model-stats.ts';
import type { NormalizedRequest } from '../request-normalizer.ts';
import { planBatch } from '../scheduling/batch-plan.ts';
import type { InstanceGate, ResourceGrant } from '../scheduling/rate-limiter.ts';
import { systemClock, type Clock } from '../scheduling/clock.ts';
import { InflightCounter, type InflightTicket } from '../scheduling/inflight-counter.ts';
import type { Scheduler, SchedulerContext } from '../scheduling/scheduler.ts';
import type { Tensor } from '../tensor.ts';
import { ControlTensors, NOT_READY } from './control-tensors.ts';
import { correlationKey, describeCorrelationId, readSequenceParameters, type CorrelationId } from './correlation-id.ts';
import { planDirectBatch, type SlotHead } from './direct-batch-plan.ts';
import { ImplicitState, type StateTensors } from './implicit-state.ts';
import { SequenceActor, type SequenceEnd } from './sequence-machine.ts';
import { abortReason, noop, settle, type Outcome } from '../scheduling/request-settlement.ts';
import { traceNow } from '../observability/trace/request-trace.ts';


interface Pending {
  readonly request: InferenceRequest;
  readonly normalized: NormalizedRequest;
  readonly start: boolean;
  readonly end: boolean;
  readonly run: SequenceRun;
  readonly enqueuedAt: number;
  /** Arrival number, to order requests that arrived at the same time. */
  readonly arrival: number;
  readonly resolve: (outputs: readonly Tensor[]) => void;
  readonly reject: (error: Error) => void;
  readonly ticket: InflightTicket;
  dispatchedAt: number | undefined;
  settled: boolean;
  cleanup: () => void;
  /** Set while its batch waits for the rate limiter: called when it is cancelled there. */
  onCancelWhileWaiting: (() => void) | undefined;
}

/** A request the batcher takes: its sequence's ID and flags, and the open sequence it continues, if any. */
interface Admission {
  readonly id: CorrelationId;
  readonly key: string;
  readonly start: boolean;
  readonly end: boolean;
  readonly current: SequenceRun | undefined;
}

/** One sequence: a correlation ID from one START to its end. */
interface SequenceRun {
  readonly id: CorrelationId;
  readonly key: string;
  readonly actor: SequenceActor;
  /** Requests accepted and not yet sent to the instance, in arrival order. */
  readonly queue: Pending[];
  state: StateTensors;
  slot: Slot | undefined;
  /** Requests of this sequence executing now (0 or 1). */
  running: number;
  /** The sequence a START on this one's ID began; it takes this one's place when this one ends. */
  successor: SequenceRun | undefined;
  predecessor: SequenceRun | undefined;
}

interface Slot {
  readonly lane: Lane;
  readonly index: number;
  run: SequenceRun | undefined;
}

/** One instance and its slots. */
interface Lane {
  readonly instance: BackendInstance;
  /** The rate limiter's gate for this instance (--rate-limit=execution_count). */
  readonly gate: InstanceGate | undefined;
  readonly slots: Slot[];
  busy: boolean;
  timer: { handle: unknown; at: number } | undefined;
}

export class SequenceBatcher implements Scheduler {
  private readonly config: CompiledModelConfig;
  private readonly spec: SequenceBatchingSpec;
  private readonly logger: Logger;
  private readonly stats: ModelStats;
  private readonly clock: Clock;
  private readonly controls: ControlTensors;
  private readonly state: ImplicitState;
  private readonly lanes: Lane[];
  /** Sequences that still take requests, by correlation key. */
  private readonly open = new Map<string, SequenceRun>();
  /** Every sequence that has not ended. */
  private readonly runs = new Set<SequenceRun>();
  /** Started sequences waiting for a slot, oldest first. */
  private readonly backlog: SequenceRun[] = [];
  private arrivals = 0;
  private executing = 0;
  /** Requests taken and not yet both answered and out of any executing batch. */
  private readonly inflight = new InflightCounter();
  private stopped = false;
  private drained: (() => void) | undefined;

  constructor(context: SchedulerContext, spec: SequenceBatchingSpec) {
    this.config = context.config;
    this.spec = spec;
    this.logger = context.logger;
    this.stats = context.stats;
    this.clock = context.clock ?? systemClock;
    const batched = context.config.maxBatchSize > 0;
    this.controls = new ControlTensors(spec.controls, batched);
    this.state = new ImplicitState(spec.states, batched);
    this.lanes = context.instances.map((instance, i) => {
      const lane: Lane = { instance, gate: context.gates?.[i], slots: [], busy: false, timer: undefined };
      for (let s = 0; s < spec.slotsPerInstance; s++) lane.slots.push({ lane, index: s, run: undefined });
      return lane;
    });
  }

  enqueue(request: InferenceRequest, normalized: NormalizedRequest): Promise<readonly Tensor[]> {
    const model = this.config.name;
    if (this.stopped) return Promise.reject(serverError('SERVER_STOPPING', { model }));
    if (request.signal?.aborted) return Promise.reject(serverError('CANCELLED', { model, reason: abortReason(request.signal) }));
    let admitted: Admission;
    try {
      admitted = this.admit(request, normalized);
    } catch (err) {
      return Promise.reject(err);
    }
    const { id, key, start, end, current } = admitted;
    request.trace?.mark('QUEUE_START');

    return new Promise((resolve, reject) => {
      const run = start ? this.begin(id, key) : current!;
      const ticket = this.inflight.ticket();
      const pending: Pending = {
        request, normalized, start, end, run,
        // settle() calls exactly one of these, exactly once; a batch running the request holds its ticket too.
        resolve: (outputs) => { ticket.done(); resolve(outputs); },
        reject: (error) => { ticket.done(); reject(error); },
        ticket,
        enqueuedAt: this.clock.now(), arrival: this.arrivals++,
        dispatchedAt: undefined, settled: false, cleanup: noop, onCancelWhileWaiting: undefined,
      };
      run.queue.push(pending);
      run.actor.send({ type: 'REQUEST' });
      if (start) {
        if (current) {
          this.logger.warn(`sequence ${describeCorrelationId(id)} for model '${model}' has a conflict. The previous sequence did not end ` +
            'before this sequence start. Previous sequence will be terminated early.');
          current.successor = run;
          run.predecessor = current;
          this.close(current);
        } else {
          this.place(run);
        }
      }
      if (end) this.close(run);
      const signal = request.signal;
      if (signal) {
        // Cancelled while queued: it leaves its sequence's queue. Cancelled while executing: answered now, its result dropped.
        const onAbort = (): void => {
          const at = run.queue.indexOf(pending);
          if (at >= 0) run.queue.splice(at, 1);
          this.fail(pending, serverError('CANCELLED', { model, reason: abortReason(signal) }), 'CANCELED');
          pending.onCancelWhileWaiting?.();
          if (at >= 0) {
            this.checkDrained(run);
            if (run.slot) this.dispatch(run.slot.lane);
          }
        };
        signal.addEventListener('abort', onAbort, { once: true });
        pending.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      if (run.slot) this.dispatch(run.slot.lane);
    });
  }

  /** Triton's checks, in its order: the parameters, batch size 1, an ID, and START unless the sequence is open. */
  private admit(request: InferenceRequest, normalized: NormalizedRequest): Admission {
    const model = this.config.name;
    const { id, start, end } = readSequenceParameters(request.parameters);
    if (normalized.batchSize > 1) throw serverError('SEQUENCE_BATCH_SIZE', { model });
    if (!id) throw serverError('SEQUENCE_NO_ID', { model });
    const key = correlationKey(id);
    const current = this.open.get(key);
    if (!start && !current) throw serverError('SEQUENCE_NOT_STARTED', { model, sequence: describeCorrelationId(id) });
    this.controls.checkId(model, id);
    // A new sequence (not one taking over its predecessor's place) waits for a slot only while the backlog has room.
    if (start && !current && !this.freeSlot() && this.backlog.length >= this.spec.maxBacklog) {
      throw serverError('SEQUENCE_BACKLOG_FULL', { model, max: this.spec.maxBacklog });
    }
    return { id, key, start, end, current };
  }

  /** Sequences started and not yet ended: holding a slot, or waiting in the backlog for one. */
  activeSequenceCount(): number {
    return this.runs.size;
  }

  inflightCount(): number {
    return this.inflight.count;
  }

  idle(): Promise<void> {
    return this.inflight.idle();
  }

  /** Ends every sequence: queued requests get SEQUENCE_ENDED naming the reason, executing ones finish. */
  async stop(reason?: string): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      for (const lane of this.lanes) this.setTimer(lane, undefined);
      const why = `the model is stopping${reason ? ` (${reason})` : ''}`;
      for (const run of [...this.runs]) {
        for (const pending of run.queue.splice(0)) {
          this.fail(pending, serverError('SEQUENCE_ENDED', { model: this.config.name, sequence: describeCorrelationId(run.id), reason: why }), 'OTHER');
        }
        run.actor.send({ type: 'STOP' });
      }
      this.open.clear();
      this.backlog.length = 0;
    }
    if (this.executing > 0) await new Promise<void>((resolve) => { this.drained = resolve; });
  }

  /** A new sequence, not yet placed. */
  private begin(id: CorrelationId, key: string): SequenceRun {
    const run: SequenceRun = {
      id, key, queue: [], state: this.state.initial(), slot: undefined, running: 0, successor: undefined, predecessor: undefined,
      actor: new SequenceActor({
        idleMs: this.spec.maxSequenceIdleMicroseconds / 1000,
        clock: this.clock,
        onEnd: (end) => this.ended(run, end),
      }),
    };
    this.runs.add(run);
    this.open.set(key, run);
    return run;
  }

  /** No more requests join the sequence; it ends once what it has queued has run. */
  private close(run: SequenceRun): void {
    if (this.open.get(run.key) === run) this.open.delete(run.key);
    run.actor.send({ type: 'CLOSE' });
    this.checkDrained(run);
  }

  private checkDrained(run: SequenceRun): void {
    if (run.queue.length === 0 && run.running === 0) run.actor.send({ type: 'DRAINED' });
  }

  /** Gives a new sequence a free slot (lowest slot number, then instance), or a place in the backlog. */
  private place(run: SequenceRun): void {
    const free = this.freeSlot();
    if (free) this.assign(free, run);
    else this.backlog.push(run);
  }

  /** The free slot a new sequence would take: the lowest slot number, then the first instance. */
  private freeSlot(): Slot | undefined {
    let free: Slot | undefined;
    for (const lane of this.lanes) {
      const slot = lane.slots.find((s) => !s.run);
      if (slot && (!free || slot.index < free.index)) free = slot;
    }
    return free;
  }

  private assign(slot: Slot, run: SequenceRun): void {
    slot.run = run;
    run.slot = slot;
    run.actor.send({ type: 'SLOT' });
    this.checkDrained(run);
    this.dispatch(slot.lane);
  }

  /** The actor reached a final state: the sequence's slot goes to its successor or the backlog, and its state is dropped. */
  private ended(run: SequenceRun, end: SequenceEnd): void {
    this.runs.delete(run);
    if (this.open.get(run.key) === run) this.open.delete(run.key);
    if (end === 'expired' && this.logger.verboseEnabled) {
      this.logger.verbose(`model '${this.config.name}': sequence ${describeCorrelationId(run.id)} expired after ` +
        `${this.spec.maxSequenceIdleMicroseconds} us idle; its slot and state are freed`);
    }
    run.state = new Map();
    const { successor, predecessor } = run;
    run.successor = undefined;
    run.predecessor = undefined;
    if (successor) successor.predecessor = predecessor;
    const slot = run.slot;
    if (slot) {
      run.slot = undefined;
      slot.run = undefined;
      if (this.stopped) return;
      const next = successor ?? this.backlog.shift();
      if (next) this.assign(slot, next);
      return;
    }
    // It ended without ever holding a slot (its requests were all cancelled): its successor takes its place in line.
    if (predecessor) {
      predecessor.successor = successor;
      return;
    }
    const at = this.backlog.indexOf(run);
    if (at >= 0) {
      if (successor) this.backlog[at] = successor;
      else this.backlog.splice(at, 1);
    } else if (successor && !this.stopped) {
      this.place(successor);
    }
  }

  /** Sends the lane's next batch if it is idle and one is due, or arms its timer for when one will be. */
  private dispatch(lane: Lane): void {
    if (this.stopped || lane.busy) return;
    const now = this.clock.now();
    const strategy = this.spec.strategy;
    if (strategy.kind === 'direct') {
      const heads = lane.slots.map((slot): SlotHead | undefined => {
        const head = slot.run?.queue[0];
        return head ? { enqueuedAt: head.enqueuedAt, shapeKey: this.shapeKey(head) } : undefined;
      });
      const plan = planDirectBatch(heads, {
        maxQueueDelayMs: strategy.maxQueueDelayMicroseconds / 1000, minimumSlotUtilization: strategy.minimumSlotUtilization, now,
      });
      this.setTimer(lane, plan.kind === 'wait' ? plan.until : undefined);
      if (plan.kind !== 'send') return;
      const rows = plan.rows.map((take, slot) => (take ? lane.slots[slot]!.run!.queue.shift()! : undefined));
      void this.execute(lane, rows, undefined);
      return;
    }
    const ready = lane.slots.flatMap((slot) => {
      const run = slot.run;
      const head = run && run.running === 0 ? run.queue[0] : undefined;
      return head ? [{ pending: head, enqueuedAt: head.enqueuedAt, batchSize: 1, shapeKey: this.shapeKey(head) }] : [];
    }).sort((a, b) => a.enqueuedAt - b.enqueuedAt || a.pending.arrival - b.pending.arrival);
    const plan = planBatch(ready, {
      maxBatchSize: Math.max(1, this.config.maxBatchSize),
      preferredBatchSizes: strategy.preferredBatchSizes,
      maxQueueDelayMs: strategy.maxQueueDelayMicroseconds / 1000,
      now,
    });
    this.setTimer(lane, plan.kind === 'wait' ? plan.until : undefined);
    if (plan.kind !== 'send') return;
    for (const entry of plan.entries) entry.pending.run.queue.shift();
    void this.execute(lane, plan.entries.map((e) => e.pending), plan.reason);
  }

  private setTimer(lane: Lane, at: number | undefined): void {
    if (lane.timer && lane.timer.at === at) return;
    if (lane.timer) this.clock.clearTimer(lane.timer.handle);
    lane.timer = undefined;
    if (at === undefined) return;
    const handle = this.clock.setTimer(() => {
      lane.timer = undefined;
      this.dispatch(lane);
    }, at - this.clock.now());
    lane.timer = { handle, at };
  }

  /** Runs one batch on the lane's instance; `rows` holds undefined where a filler goes (direct strategy). */
  private async execute(lane: Lane, rows: readonly (Pending | undefined)[], reason: BatchCloseReason | undefined): Promise<void> {
    lane.busy = true;
    const live = rows.filter((p): p is Pending => p !== undefined);
    const now = this.clock.now();
    for (const pending of live) {
      pending.dispatchedAt = now;
      pending.run.running++;
    }
    this.executing += live.length;
    for (const pending of live) pending.ticket.hold();
    if (reason) this.stats.recordBatchClosed(reason);
    if (this.logger.verboseEnabled) {
      this.logger.verbose(`model '${this.config.name}': sequence batch of ${rows.length} row(s) to instance ${lane.instance.name}: ` +
        rows.map((p, slot) => (p ? `${describeCorrelationId(p.run.id)}${p.start ? ' START' : ''}${p.end ? ' END' : ''}` : `slot ${slot} not ready`)).join(', ') +
        (reason ? `; closed by ${reason}` : ''));
    }
    let grant: ResourceGrant | undefined;
    try {
      let batchRows = rows;
      if (lane.gate) {
        grant = await this.waitForResources(lane.gate, live);
        if (!grant) return;
        batchRows = this.withoutCancelled(rows);
        if (!batchRows.some((p) => p !== undefined)) return;
        const started = this.clock.now();
        for (const pending of live) pending.dispatchedAt = started;
      }
      await this.executeRows(lane, batchRows);
    } finally {
      grant?.release();
      this.executing -= live.length;
      for (const pending of live) {
        pending.ticket.done();
        pending.run.running--;
        this.checkDrained(pending.run);
      }
      lane.busy = false;
      this.dispatch(lane);
      if (this.executing === 0 && this.drained) {
        this.drained();
        this.drained = undefined;
      }
    }
  }

  /**
   * The batch waits for its instance's turn at the rate limiter. Its requests
   * can still be cancelled meanwhile; once all are, it leaves the limiter's
   * queue (undefined) and holds nothing.
   */
  private async waitForResources(gate: InstanceGate, live: readonly Pending[]): Promise<ResourceGrant | undefined> {
    const cancel = new AbortController();
    const onCancel = (): void => {
      if (live.every((p) => p.settled)) cancel.abort();
    };
    onCancel();
    for (const pending of live) pending.onCancelWhileWaiting = onCancel;
    const started = this.clock.now();
    const grant = await gate.acquire(cancel.signal);
    for (const pending of live) pending.onCancelWhileWaiting = undefined;
    if (grant?.waited && this.logger.verboseEnabled) {
      this.logger.verbose(`model '${this.config.name}': sequence batch waited ${(this.clock.now() - started).toFixed(1)} ms for rate limiter resources`);
    }
    return grant;
  }

  /** Requests cancelled while their batch waited are not computed: with the direct strategy a not-ready row takes their slot's place. */
  private withoutCancelled(rows: readonly (Pending | undefined)[]): readonly (Pending | undefined)[] {
    const kept = rows.map((p) => (p && !p.settled ? p : undefined));
    return this.spec.strategy.kind === 'direct' ? kept : kept.filter((p) => p !== undefined);
  }

  /** Executes the rows on the lane's instance and answers each; the sequences' state moves on with each answer. */
  private async executeRows(lane: Lane, rows: readonly (Pending | undefined)[]): Promise<void> {
    const requests = rows.map((p) => (p ? this.executeRequest(p) : undefined));
    const template = requests.find((r) => r !== undefined)!;
    const batch = requests.map((r) => r ?? this.filler(template));
    let results: readonly ExecuteResult[];
    let timing: ComputeTiming = { inputNs: 0, inferNs: 0, outputNs: 0 };
    const computeStart = rows.some((p) => p?.request.trace) ? traceNow() : 0;
    try {
      ({ results, timing } = await lane.instance.execute(batch));
    } catch (err) {
      const error = asSwitchyardError(err, this.config.name);
      results = batch.map(() => ({ ok: false, error }));
    }
    if (computeStart > 0) {
      const computeEnd = traceNow();
      for (const pending of rows) pending?.request.trace?.compute(computeStart, computeEnd, timing.inputNs, timing.outputNs, { size: rows.length });
    }
    let okRows = 0;
    rows.forEach((pending, i) => {
      if (!pending) return;
      const result = results[i] ?? { ok: false, error: serverError('INFERENCE_FAILED', { model: this.config.name, detail: 'the instance gave no result' }) };
      if (!result.ok) {
        this.complete(pending, result.error, timing);
        return;
      }
      // The model ran, so the sequence moves on even if its client went away meanwhile.
      pending.run.state = this.state.next(pending.run.state, result.outputs);
      okRows++;
      this.complete(pending, this.state.clientOutputs(result.outputs), timing);
    });
    if (okRows > 0) this.stats.recordExecution(okRows, timing);
  }

  /** The request as the instance gets it: the client's inputs, then the controls, then the sequence's state. */
  private executeRequest(pending: Pending): ExecuteRequest {
    const { request, normalized, run } = pending;
    const controls = this.controls.tensorsFor({ start: pending.start, end: pending.end, ready: true, id: run.id });
    return {
      inputs: [...request.inputs, ...controls, ...run.state.values()],
      outputs: [...normalized.outputs, ...this.state.outputNames],
      batchSize: normalized.batchSize,
      ...(request.parameters ? { parameters: request.parameters } : {}),
      ...(request.callChain ? { callChain: request.callChain } : {}),
      // A decoupled model streams its answers through these, as under the dynamic batcher.
      ...(request.onResponse ? { send: request.onResponse } : {}),
      ...(request.signal ? { signal: request.signal } : {}),
    };
  }

  /** A not-ready row: zeros shaped like the batch's requests, with READY false; its answer is dropped. */
  private filler(template: ExecuteRequest): ExecuteRequest {
    const zeros = template.inputs.filter((t) => !this.controls.names.has(t.name)).map((t): Tensor => (t.datatype === 'BYTES'
      ? emptyBytesTensor(t.name, t.shape, bytesElementCount(t))
      : { name: t.name, datatype: t.datatype, shape: t.shape, raw: new Uint8Array(t.raw.byteLength) }));
    return { inputs: [...zeros, ...this.controls.tensorsFor(NOT_READY)], outputs: [], batchSize: template.batchSize };
  }

  /** Inputs whose shapes must agree for two requests to share a batch: the request's (bar ragged ones) and its state. */
  private shapeKey(pending: Pending): string {
    const parts: string[] = [];
    for (const input of pending.request.inputs) {
      if (this.config.inputByName.get(input.name)?.allowRaggedBatch) continue;
      parts.push(`${input.name}:${input.shape.slice(1).join('x')}`);
    }
    for (const state of pending.run.state.values()) parts.push(`${state.name}:${state.shape.slice(1).join('x')}`);
    return parts.sort().join(';');
  }

  private complete(pending: Pending, outcome: Outcome, timing: ComputeTiming): void {
    if (pending.settled) return;
    const totalNs = (this.clock.now() - pending.enqueuedAt) * 1e6;
    if (outcome instanceof Error) this.stats.recordFailure(totalNs, 'BACKEND');
    else this.stats.recordSuccess(totalNs, ((pending.dispatchedAt ?? pending.enqueuedAt) - pending.enqueuedAt) * 1e6, timing);
    settle(pending, outcome);
  }

  /** Answers a request that never ran (cancelled, or its sequence ended). */
  private fail(pending: Pending, error: Error, reason: FailureReason): void {
    if (pending.settled) return;
    this.stats.recordFailure((this.clock.now() - pending.enqueuedAt) * 1e6, reason);
    settle(pending, error);
  }
}
