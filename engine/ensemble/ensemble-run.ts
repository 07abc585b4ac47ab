/**
 * One request through an ensemble. Event-driven: a step starts the moment
 * every tensor it reads exists, so independent branches run side by side,
 * and only the steps that lead to a wanted tensor run at all. Each step
 * goes back through the server's infer(), so its model keeps its own
 * scheduler, batching and statistics.
 *
 * The first step to fail fails the run with a message naming the ensemble
 * and the step (`ensemble 'e' step 'classify' (model 'm') failed: ...`), and cancels every other step still queued or running.
 *
 * Conditional steps (Switchyard's `when` and `switch`): a step whose
 * parameter conditions fail is skipped before anything runs; one whose
 * tensor conditions fail, or that lacks a tensor it needs (its writer was
 * skipped, or an optional ensemble input was not sent), is skipped once
 * the tensors it waits for are settled. A skipped step writes nothing, so
 * the steps that need its outputs are skipped in turn. A member that does
 * not produce an output it declares leaves that tensor unset, as in
 * Triton: a step that needs it fails naming both steps, an ensemble output
 * is left out of the answer.
 *
 * Tensor memory: an intermediate tensor whose buffer came from the pool is
 * handed to its last reader to own (an ONNX instance then moves it to its
 * worker instead of copying); otherwise it returns to the pool once its
 * last reader has finished.
 */
import { serverError, SwitchyardError, asSwitchyardError } from '../errors.ts';
import type { InferenceRequest, Mutable, ParameterValue } from '../inference-request.ts';
import type { BufferPool } from '../memory/buffer-pool.ts';
import { releaseMarked } from '../memory/buffer-lease.ts';
import type { ModelStats } from '../observability/model-stats.ts';
import type { InferFunction } from '../infer-function.ts';
import type { Tensor } from '../tensor.ts';
import { stepsNeeded, type EnsemblePlan, type PlannedStep } from './ensemble-plan.ts';
import { conditionHolds, tensorConditionValue } from './step-condition.ts';
import type { StepInflightLimiter } from './step-inflight-limiter.ts';

export interface EnsembleRunContext {
  readonly plan: EnsemblePlan;
  readonly infer: InferFunction;
  readonly stats: ModelStats;
  readonly pool: BufferPool | undefined;
  /** Request parameters that belong to the ensemble and are not passed on to its steps. */
  readonly ownParameters: readonly string[];
  /** One per step, shared by every run of the ensemble (max_inflight_requests); absent when there is no limit. */
  readonly limiters?: readonly StepInflightLimiter[];
  /**
   * Each step (in plan order) reads what the one before it wrote, so a run has at most one step in flight: no
   * failure ever has a sibling to cancel, and the steps can carry the request's own signal (see isChain).
   */
  readonly chain?: boolean;
}

/** Whether every step, in plan order, reads a tensor the step before it writes: then steps run one at a time. */
export function isChain(plan: EnsemblePlan): boolean {
  return plan.order.every((index, k) => k === 0 || plan.steps[index]!.inputs.some((l) => plan.producer.get(l.tensor) === plan.order[k - 1]));
}

/** What a step waiting for its limiter listens to when nothing can cancel it. */
const NEVER_ABORTED = new AbortController().signal;

/** The tensor under another name; `owned` says whether the receiver gets its buffer. */
export function renamed(tensor: Tensor, name: string, owned = false): Tensor {
  if (tensor.datatype === 'BYTES') return tensor.name === name ? tensor : { ...tensor, name };
  if (tensor.name === name && (tensor.pooled === true) === owned) return tensor;
  return { name, datatype: tensor.datatype, shape: tensor.shape, raw: tensor.raw, ...(owned ? { pooled: true } : {}) };
}

export class EnsembleRun {
  private readonly values = new Map<string, Tensor>();
  private readonly needed: ReadonlySet<number>;
  /** Tensors each needed step still waits for. */
  private readonly waiting = new Map<number, Set<string>>();
  /** How many needed steps have yet to finish reading each tensor. */
  private readonly readsLeft = new Map<string, number>();
  private readonly keep: ReadonlySet<string>;
  /**
   * Cancels the steps in flight when the run fails or its client goes away. A chain has no sibling to cancel, so its
   * steps carry the request's own signal and no controller is made (an AbortController and a listener per step
   * cost more than the rest of the step's bookkeeping).
   */
  private readonly controller: AbortController | undefined;
  private readonly stepSignal: AbortSignal | undefined;
  private readonly callChain: readonly string[];
  private readonly parameters: Readonly<Record<string, ParameterValue>> | undefined;
  private finished = 0;
  private failed = false;
  private answered = false;
  /** Steps whose call is in flight: once the run failed, the tensors they read go back to the pool only after them. */
  private readonly running = new Set<PlannedStep>();
  /** Steps whose parameter conditions failed: skipped before anything runs. */
  private readonly skippedUpFront: ReadonlySet<number> | undefined;
  /** Tensors a member did not produce although it declares them, by the step that ran it (Triton leaves them unset). */
  private unset: Map<string, PlannedStep> | undefined;
  /** Joined tensors: how many of their needed writers have yet to finish or skip. */
  private joinWritersLeft: Map<string, number> | undefined;
  private resolve!: (values: ReadonlyMap<string, Tensor>) => void;
  private reject!: (error: SwitchyardError) => void;

  constructor(private readonly context: EnsembleRunContext, private readonly request: InferenceRequest, wanted: readonly string[]) {
    const { plan } = context;
    this.keep = new Set(wanted);
    this.skippedUpFront = plan.conditional ? skippedByParameters(plan, request) : undefined;
    this.needed = stepsNeeded(plan, wanted, this.skippedUpFront);
    for (const input of request.inputs) this.values.set(input.name, input);
    for (const index of this.needed) {
      if (this.skippedUpFront?.has(index)) continue;
      const waitsFor = new Set<string>();
      for (const tensor of wiringOf(plan.steps[index]!).reads) {
        this.readsLeft.set(tensor, (this.readsLeft.get(tensor) ?? 0) + 1);
        if (plan.producer.has(tensor)) waitsFor.add(tensor);
      }
      this.waiting.set(index, waitsFor);
    }
    if (plan.joins) {
      this.joinWritersLeft = new Map();
      for (const [tensor, writers] of plan.joins) this.joinWritersLeft.set(tensor, writers.filter((w) => this.needed.has(w)).length);
    }
    this.parameters = stepParameters(request.parameters, context.ownParameters);
    this.controller = context.chain ? undefined : new AbortController();
    this.stepSignal = this.controller?.signal ?? request.signal;
    this.callChain = [...(request.callChain ?? []), plan.ensemble];
  }

  /** Resolves with every wanted tensor by its ensemble name, or rejects with the first failure. */
  run(): Promise<ReadonlyMap<string, Tensor>> {
    const done = new Promise<ReadonlyMap<string, Tensor>>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    if (!cancelOnAbort(this.request.signal, done, () => this.cancel())) return done;
    if (this.needed.size === 0) this.answer();
    const { plan } = this.context;
    if (!this.skippedUpFront) {
      for (const index of plan.order) {
        if (this.needed.has(index) && this.waiting.get(index)!.size === 0) this.launch(plan.steps[index]!);
      }
      return done;
    }
    // Settling a skipped step can make others ready, so the first ones are picked before any is settled.
    const first = plan.order.filter((i) => this.needed.has(i) && !this.skippedUpFront!.has(i) && this.waiting.get(i)!.size === 0);
    for (const index of plan.order) if (this.skippedUpFront.has(index) && this.needed.has(index)) this.skip(plan.steps[index]!, false);
    for (const index of first) this.dispatch(plan.steps[index]!);
    return done;
  }

  /**
   * A step whose tensors are all settled: runs it, skips it (a tensor it
   * needs is not there, or a condition on a tensor fails), or fails the run
   * (a member did not produce a tensor it needs, or a condition tensor is
   * not one value).
   */
  private dispatch(step: PlannedStep): void {
    if (this.failed) return;
    if (!this.context.plan.conditional && !this.unset) {
      this.launch(step);
      return;
    }
    for (const tensor of step.needs ?? []) {
      if (this.values.has(tensor)) continue;
      const writer = this.unset?.get(tensor);
      if (writer) {
        const link = step.inputs.find((l) => l.tensor === tensor);
        const output = writer.outputs.find((l) => l.tensor === tensor)?.member ?? tensor;
        this.fail(serverError('BAD_REQUEST', {
          detail: `ensemble '${this.context.plan.ensemble}' ${step.label} cannot run: ${writer.label} did not output tensor '${tensor}' ` +
            `(its output '${output}'), which ${link ? `input '${link.member}' of model '${step.modelName}' requires` : 'a condition of the step reads'}`,
        }));
        return;
      }
      this.skip(step, true);
      return;
    }
    for (const condition of step.conditions ?? []) {
      if (condition.operand.kind !== 'tensor') continue;
      let holds: boolean;
      try {
        const value = tensorConditionValue(this.values.get(condition.operand.tensor)!, this.context.plan.ensemble, condition.operand.tensor);
        holds = conditionHolds(condition, value, this.context.plan.ensemble, step.label);
      } catch (err) {
        const error = asSwitchyardError(err, step.modelName);
        this.fail(new SwitchyardError(error.code, error.status, `ensemble '${this.context.plan.ensemble}' ${step.label}: ${error.message}`));
        return;
      }
      if (!holds) {
        this.skip(step, true);
        return;
      }
    }
    // Tensors only the step's conditions read are done with once it is decided.
    const inputs = new Set(step.inputs.map((l) => l.tensor));
    for (const condition of step.conditions ?? []) {
      if (condition.operand.kind === 'tensor' && !inputs.has(condition.operand.tensor)) this.readDone(condition.operand.tensor);
    }
    this.launch(step);
  }

  /** The step does not run for this request: counted, and its outputs settle as not there. */
  private skip(step: PlannedStep, registered: boolean): void {
    this.context.stats.recordStepSkipped(step.index);
    if (registered) for (const tensor of wiringOf(step).reads) this.readDone(tensor);
    this.settle(step, [], true);
  }

  /** Starts the step, once its limiter (max_inflight_requests) has room for it. */
  private launch(step: PlannedStep): void {
    const limiter = this.context.limiters?.[step.index];
    const waiting = limiter?.acquire(this.context.plan.ensemble, this.stepSignal ?? NEVER_ABORTED);
    if (!waiting) {
      this.send(step, limiter);
      return;
    }
    // A rejection means the run was cancelled or failed while the step waited: there is nothing left to do.
    waiting.then(() => {
      if (this.failed) limiter!.release();
      else this.send(step, limiter);
    }, () => {});
  }

  private send(step: PlannedStep, limiter: StepInflightLimiter | undefined): void {
    const inputs: Tensor[] = [];
    for (const link of step.inputs) {
      const tensor = this.values.get(link.tensor);
      if (!tensor) continue; // an optional ensemble input the request left out
      inputs.push(renamed(tensor, link.member, this.handOver(step, link.tensor, tensor)));
    }
    const outputs: string[] = [];
    for (const link of step.outputs) if (this.keep.has(link.tensor) || this.readsLeft.has(link.tensor)) outputs.push(link.member);
    // Built field by field: a literal of conditional spreads makes a temporary object per field, per step.
    // The run takes the step's pooled outputs as marked tensors (ownOutputs): it hands each on or releases it (readDone).
    const call: Mutable<InferenceRequest> = { modelName: step.modelName, inputs, outputs, callChain: this.callChain, ownOutputs: true };
    if (step.modelVersion) call.modelVersion = step.modelVersion;
    if (this.request.id) call.id = this.request.id;
    if (this.parameters) call.parameters = this.parameters;
    if (this.stepSignal) call.signal = this.stepSignal;
    if (this.request.trace) call.trace = this.request.trace.child(step.label);
    const started = performance.now();
    this.running.add(step);
    this.context.infer(call).then((response) => {
      limiter?.release();
      this.running.delete(step);
      if (this.failed) {
        // Pooled outputs of a step that answered after the run failed: nobody reads them.
        releaseMarked(this.context.pool, response.outputs);
        this.releaseUnread();
        return;
      }
      this.context.stats.recordStep(step.index, true, (performance.now() - started) * 1e6);
      this.stepDone(step, response.outputs);
    }, (err: unknown) => {
      limiter?.release();
      this.running.delete(step);
      if (this.failed) {
        this.releaseUnread();
        return;
      }
      this.context.stats.recordStep(step.index, false, (performance.now() - started) * 1e6);
      const error = asSwitchyardError(err, step.modelName);
      this.fail(new SwitchyardError(error.code, error.status, `ensemble '${this.context.plan.ensemble}' ${step.label} failed: ${error.message}`));
    });
  }

  /**
   * Whether the step may own the tensor's buffer: it came from the pool, no
   * other step still reads it, it is not part of the answer, and the step
   * reads it once. The run then forgets it.
   */
  private handOver(step: PlannedStep, name: string, tensor: Tensor): boolean {
    if (tensor.datatype === 'BYTES' || tensor.pooled !== true || this.keep.has(name) || this.readsLeft.get(name) !== 1) return false;
    if (step.inputs.filter((l) => l.tensor === name).length !== 1) return false;
    this.values.delete(name);
    return true;
  }

  private stepDone(step: PlannedStep, produced: readonly Tensor[]): void {
    for (const tensor of wiringOf(step).inputTensors) this.readDone(tensor);
    this.settle(step, produced, false);
  }

  /**
   * The step's outputs are settled: each is there, or not (the step was
   * skipped, or its member did not produce it). Readers waiting on them
   * become ready.
   */
  private settle(step: PlannedStep, produced: readonly Tensor[], skipped: boolean): void {
    const { plan } = this.context;
    const ready: number[] = [];
    for (const link of step.outputs) {
      const tensor = skipped ? undefined : produced.find((t) => t.name === link.member);
      const writersLeft = this.joinWritersLeft?.get(link.tensor);
      if (writersLeft !== undefined) {
        this.joinWritersLeft!.set(link.tensor, writersLeft - 1);
        if (tensor) this.values.set(link.tensor, tensor);
        // A joined tensor settles with the writer that ran, or once every writer is done without it.
        if (tensor || (writersLeft === 1 && !this.values.has(link.tensor))) this.settled(link.tensor, ready);
        continue;
      }
      if (tensor) this.values.set(link.tensor, tensor);
      else if (!skipped) (this.unset ??= new Map()).set(link.tensor, step);
      this.settled(link.tensor, ready);
    }
    this.finished++;
    if (this.finished === this.needed.size) {
      this.answer();
      return;
    }
    for (const index of ready) this.dispatch(plan.steps[index]!);
  }

  /** The tensor is settled: each reader that waited on nothing else goes on `ready`. */
  private settled(name: string, ready: number[]): void {
    const readers = this.context.plan.consumers.get(name);
    if (!readers) return;
    for (const reader of readers) {
      const waiting = this.waiting.get(reader);
      if (waiting?.delete(name) && waiting.size === 0) ready.push(reader);
    }
  }

  /** A reader finished with the tensor; after the last one, its pooled buffer goes back. */
  private readDone(name: string): void {
    const left = (this.readsLeft.get(name) ?? 1) - 1;
    this.readsLeft.set(name, left);
    if (left > 0 || this.keep.has(name)) return;
    const tensor = this.values.get(name);
    if (tensor && tensor.datatype !== 'BYTES' && tensor.pooled === true) {
      this.values.delete(name);
      this.context.pool?.release(tensor.raw.buffer as ArrayBuffer);
    }
  }

  private fail(error: SwitchyardError): void {
    this.failed = true;
    this.controller?.abort(error);
    this.reject(error);
    this.releaseUnread();
  }

  /**
   * The run failed: nobody will read its tensors now but the steps still in
   * flight. Every pooled tensor it holds (written by a step, or handed over
   * with the request) goes back to the pool, except those a running step
   * reads: they go back once it settles.
   */
  private releaseUnread(): void {
    this.releaseHeld((name) => this.readByRunning(name));
  }

  /** Gives back to the pool every pooled tensor the run holds, except those `kept` says are still wanted. */
  private releaseHeld(kept: (name: string) => boolean): void {
    for (const [name, tensor] of this.values) {
      if (tensor.datatype === 'BYTES' || tensor.pooled !== true || kept(name)) continue;
      this.values.delete(name);
      this.context.pool?.release(tensor.raw.buffer as ArrayBuffer);
    }
  }

  private readByRunning(name: string): boolean {
    for (const step of this.running) if (wiringOf(step).inputTensors.includes(name)) return true;
    return false;
  }

  /**
   * Every needed step settled: the run answers with its tensors, which are
   * the answer's from now on. A pooled tensor the answer does not hold and
   * no step read to the end (an input handed over for a step this request
   * did not need) goes back to the pool first: nothing runs any more.
   */
  private answer(): void {
    this.answered = true;
    this.releaseHeld((name) => this.keep.has(name));
    this.resolve(this.values);
  }

  private cancel(): void {
    // Once answered, the tensors belong to the answer: a client leaving now is the frontend's to handle.
    if (this.failed || this.answered) return;
    const reason = this.request.signal?.reason;
    this.fail(serverError('CANCELLED', {
      model: this.context.plan.ensemble,
      reason: reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : undefined,
    }));
  }
}

interface StepWiring {
  /** The ensemble tensors the step's inputs read, each once. */
  readonly inputTensors: readonly string[];
  /** What the step reads: those, and the tensors its conditions read, each once. */
  readonly reads: readonly string[];
}

/** Each step's wiring, worked out on its first run: a plan never changes once built. */
const wirings = new WeakMap<PlannedStep, StepWiring>();

function wiringOf(step: PlannedStep): StepWiring {
  let wiring = wirings.get(step);
  if (!wiring) {
    const inputs = new Set(step.inputs.map((l) => l.tensor));
    const reads = new Set(inputs);
    for (const c of step.conditions ?? []) if (c.operand.kind === 'tensor') reads.add(c.operand.tensor);
    wiring = { inputTensors: [...inputs], reads: [...reads] };
    wirings.set(step, wiring);
  }
  return wiring;
}

/** Steps with a condition on a request parameter that fails for this request. */
function skippedByParameters(plan: EnsemblePlan, request: InferenceRequest): Set<number> {
  const skipped = new Set<number>();
  for (const step of plan.steps) {
    for (const condition of step.conditions ?? []) {
      if (condition.operand.kind !== 'parameter') continue;
      if (!conditionHolds(condition, request.parameters?.[condition.operand.name], plan.ensemble, step.label)) skipped.add(step.index);
    }
  }
  return skipped;
}

/** The request's parameters as its steps get them: without the ones the ensemble itself consumes. */
export function stepParameters(
  parameters: InferenceRequest['parameters'], own: readonly string[],
): InferenceRequest['parameters'] {
  return parameters && Object.keys(parameters).some((k) => own.includes(k))
    ? Object.fromEntries(Object.entries(parameters).filter(([k]) => !own.includes(k)))
    : parameters;
}

/**
 * Cancels a run when its request's signal aborts, until `done` settles.
 * Answers false when the signal had already aborted (the run is cancelled
 * now and must not start).
 */
export function cancelOnAbort(signal: AbortSignal | undefined, done: Promise<unknown>, cancel: () => void): boolean {
  if (signal?.aborted) {
    cancel();
    return false;
  }
  if (!signal) return true;
  signal.addEventListener('abort', cancel, { once: true });
  void done.finally(() => signal.removeEventListener('abort', cancel)).catch(() => {});
  return true;
}
