/**
 * One request through a decoupled ensemble: one with a step whose model may
 * send any number of responses. As in Triton, each response of such a step
 * runs the steps after it once more, with that response's tensors, and every
 * time the wanted outputs are all there the ensemble sends a response. The
 * run ends after the last step request has finished, and fails (cancelling
 * the rest) with the first step that fails.
 *
 * Tensors live in scopes: the request's own inputs in the root scope, and
 * the tensors of each response of a decoupled step in a new scope below the
 * one the step read from. A step runs in the scope that holds at least one
 * of its inputs itself, reading the rest from the scopes above it: so it
 * runs once per response of the deepest decoupled step it reads from, with
 * the request's tensors (and those of the responses above) broadcast to
 * each. The load-time check (ensemble-graph.ts) makes sure a step's inputs
 * lie on one line of scopes. A response scope whose step still waits on a
 * tensor from above (a slow step that does not follow the decoupled one) is
 * looked at again each time a scope above it gets tensors.
 *
 * Backpressure: a decoupled step's responses are read one at a time, and the
 * next is read only once the steps that the last one started have a slot
 * (max_inflight_requests) and the ensemble's own response was taken, so a
 * fast producer waits for a slow consumer or a slow client.
 *
 * Tensors are plain here (never pooled): a scope may be read by any number of
 * later responses' steps, so no step can own one.
 */
import { setMaxListeners } from 'node:events';
import { asSwitchyardError, serverError, SwitchyardError } from '../errors.ts';
import type { InferenceRequest } from '../inference-request.ts';
import type { ResponseTaken } from '../inference-response.ts';
import type { InferStreamFunction } from '../response-stream.ts';
import type { Tensor } from '../tensor.ts';
import { stepsNeeded, streamWithin, type PlannedStep } from './ensemble-plan.ts';
import { cancelOnAbort, renamed, stepParameters, type EnsembleRunContext } from './ensemble-run.ts';

/** Tensors of one response of a decoupled step (or of the request, at the root), and the steps run on them. */
interface Scope {
  readonly values: Map<string, Tensor>;
  readonly parent: Scope | undefined;
  /** Which of the plan's streams its tensors belong to (StreamLayout): 0 at the root. */
  readonly stream: number;
  readonly launched: Set<number>;
  emitted: boolean;
}

/**
 * Response scopes that may wait at once on tensors from above before the
 * decoupled steps feeding them stop reading (as a stream buffer holds 16).
 */
export const MAX_WAITING_SCOPES = 16;

/** Sends one response of the ensemble; answers as a decoupled model's send does. */
export type EnsembleSend = (outputs: readonly Tensor[]) => ResponseTaken;

export class EnsembleStreamRun {
  private readonly needed: ReadonlySet<number>;
  private readonly controller = new AbortController();
  private readonly parameters: InferenceRequest['parameters'];
  /** Step requests started (or waiting for a slot) and not yet finished. */
  private pending = 0;
  /** Response scopes with a step or the response still waiting on a tensor that a scope above them has not yet got. */
  private readonly waiting = new Set<Scope>();
  /** Decoupled steps that stopped reading because too many scopes wait; woken when anything moves. */
  private readonly stalled: (() => void)[] = [];
  private failed = false;
  private resolve!: () => void;
  private reject!: (error: SwitchyardError) => void;

  constructor(
    private readonly context: EnsembleRunContext,
    private readonly inferStream: InferStreamFunction,
    private readonly request: InferenceRequest,
    private readonly wanted: readonly string[],
    private readonly sendResponse: EnsembleSend,
  ) {
    this.needed = stepsNeeded(context.plan, wanted);
    // Every step request of the run listens on this signal, and a decoupled step can start any number of them.
    setMaxListeners(0, this.controller.signal);
    this.parameters = stepParameters(request.parameters, context.ownParameters);
  }

  /** Resolves once every step request has finished and every response was sent; rejects with the first failure. */
  run(): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    if (!cancelOnAbort(this.request.signal, done, () => this.cancel())) return done;
    const root: Scope = { values: new Map(this.request.inputs.map((t) => [t.name, t])), parent: undefined, stream: 0, launched: new Set(), emitted: false };
    // Counted as pending itself, so the run cannot end while the first steps are still being started.
    this.pending++;
    this.advance(root).then(() => this.stepFinished(), (err: unknown) => this.fail(asSwitchyardError(err, this.context.plan.ensemble)));
    return done;
  }

  /**
   * New tensors arrived in the scope: starts every step they complete (each
   * once it has a slot), and sends the ensemble's response when the scope
   * and those above it hold every wanted output.
   */
  private async advance(scope: Scope): Promise<void> {
    const { plan } = this.context;
    const ready = plan.order.filter((i) => this.needed.has(i) && !scope.launched.has(i) && this.readyIn(plan.steps[i]!, scope));
    for (const index of ready) scope.launched.add(index);
    // The caller holds a pending count of its own until this returns, so the run cannot end while a step waits for its slot.
    for (const index of ready) {
      const step = plan.steps[index]!;
      const limiter = this.context.limiters?.[index];
      try {
        await limiter?.acquire(plan.ensemble, this.controller.signal);
      } catch {
        return; // the run failed or was cancelled while the step waited
      }
      if (this.failed) {
        limiter?.release();
        return;
      }
      this.pending++;
      this.start(step, scope).then(
        () => { limiter?.release(); this.stepFinished(); },
        (err: unknown) => { limiter?.release(); this.stepFailed(step, err); },
      );
    }
    if (!scope.emitted && this.wanted.length > 0 && this.wanted.every((name) => lookup(scope, name))) {
      scope.emitted = true;
      const taken = await this.sendResponse(this.wanted.map((name) => renamed(lookup(scope, name)!, name)));
      if (!taken) this.cancel();
    }
    this.noteWaiting(scope);
  }

  /**
   * Whether the step runs in this scope now: each tensor it reads is here or
   * in a scope above (an ensemble input the request left out counts as
   * there), and at least one is here itself, the root excepted. So a step
   * runs once per scope of the deepest stream it reads, never again for the
   * scopes below.
   */
  private readyIn(step: PlannedStep, scope: Scope): boolean {
    let own = scope.parent === undefined;
    for (const link of step.inputs) {
      if (scope.values.has(link.tensor)) own = true;
      else if (!lookup(scope, link.tensor) && this.context.plan.producer.has(link.tensor)) return false;
    }
    return own;
  }

  /**
   * Keeps a response scope that still waits on tensors from above among
   * those looked at again when they come: a step of its stream not yet run,
   * or its response, when every wanted output belongs to its stream or one
   * above (else a scope below it answers instead).
   */
  private noteWaiting(scope: Scope): void {
    const layout = this.context.plan.streams;
    if (scope.parent === undefined || !layout) return;
    const { plan } = this.context;
    const stepWaits = plan.order.some((i) => this.needed.has(i) && !scope.launched.has(i) && layout.step[i] === scope.stream);
    const responseWaits = !scope.emitted && this.wanted.length > 0
      && this.wanted.every((name) => streamWithin(layout, scope.stream, layout.tensor.get(name) ?? 0));
    if (stepWaits || responseWaits) this.waiting.add(scope);
    else if (this.waiting.delete(scope)) this.wakeStalled();
  }

  /** The stream a decoupled step's responses open. */
  private streamOf(step: PlannedStep): number {
    return this.context.plan.streams?.tensor.get(step.outputs[0]?.tensor ?? '') ?? 0;
  }

  /** `scope` got tensors: the scopes below it that wait on tensors from above are looked at again. */
  private async advanceBelow(scope: Scope): Promise<void> {
    for (const below of [...this.waiting]) {
      if (below !== scope && descendsFrom(below, scope)) await this.advance(below);
    }
  }

  /** Runs one step request to its end: each response of a decoupled member opens a scope of its own. */
  private async start(step: PlannedStep, scope: Scope): Promise<void> {
    const started = performance.now();
    const stepRequest: InferenceRequest = {
      modelName: step.modelName,
      ...(step.modelVersion ? { modelVersion: step.modelVersion } : {}),
      ...(this.request.id ? { id: this.request.id } : {}),
      inputs: step.inputs.flatMap((l) => {
        const tensor = lookup(scope, l.tensor);
        return tensor ? [renamed(tensor, l.member)] : [];
      }),
      outputs: step.outputs.map((l) => l.member),
      ...(this.parameters ? { parameters: this.parameters } : {}),
      signal: this.controller.signal,
      callChain: [...(this.request.callChain ?? []), this.context.plan.ensemble],
      ...(this.request.trace ? { trace: this.request.trace.child(step.label) } : {}),
    };
    const stream = await this.inferStream(stepRequest);
    for await (const item of stream) {
      if (this.failed) return;
      if (item.error) throw item.error;
      if (!item.response) continue;
      // The step's outputs stay in this run's scopes (and may go out in a response) for as long as it lasts: the memory stays with them.
      item.response.lease?.keep();
      const target: Scope = step.decoupled
        ? { values: new Map(), parent: scope, stream: this.streamOf(step), launched: new Set(), emitted: false }
        : scope;
      for (const link of step.outputs) {
        const tensor = item.response.outputs.find((t) => t.name === link.member);
        if (tensor) target.values.set(link.tensor, renamed(tensor, link.tensor));
      }
      await this.advance(target);
      if (this.waiting.size > 0) await this.advanceBelow(target);
      // Responses whose steps wait on a slow tensor from above are not read ahead without bound: the decoupled step
      // waits (and, through its stream buffer, its model), as long as something else is running that can end the wait.
      while (this.waiting.size >= MAX_WAITING_SCOPES && !this.failed && this.pending > this.stalled.length + 1) {
        await new Promise<void>((resolve) => this.stalled.push(resolve));
      }
    }
    this.context.stats.recordStep(step.index, true, (performance.now() - started) * 1e6);
  }

  private stepFinished(): void {
    this.wakeStalled();
    if (--this.pending === 0 && !this.failed) this.resolve();
  }

  /** Something moved (a step ended, a waiting scope was served, the run failed): stalled readers look again. */
  private wakeStalled(): void {
    for (const wake of this.stalled.splice(0)) wake();
  }

  private stepFailed(step: PlannedStep, err: unknown): void {
    if (this.failed) return;
    this.context.stats.recordStep(step.index, false, 0);
    const error = asSwitchyardError(err, step.modelName);
    this.fail(new SwitchyardError(error.code, error.status, `ensemble '${this.context.plan.ensemble}' ${step.label} failed: ${error.message}`));
  }

  private fail(error: SwitchyardError): void {
    if (this.failed) return;
    this.failed = true;
    this.wakeStalled();
    this.controller.abort(error);
    this.reject(error);
  }

  private cancel(): void {
    if (this.failed) return;
    const reason = this.request.signal?.reason;
    this.fail(serverError('CANCELLED', {
      model: this.context.plan.ensemble,
      reason: reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : undefined,
    }));
  }
}

/** Whether `scope` lies below `above`. */
function descendsFrom(scope: Scope, above: Scope): boolean {
  for (let s = scope.parent; s; s = s.parent) if (s === above) return true;
  return false;
}

/** The tensor by its ensemble name, in the scope or the scopes above it. */
function lookup(scope: Scope, name: string): Tensor | undefined {
  for (let s: Scope | undefined = scope; s; s = s.parent) {
    const tensor = s.values.get(name);
    if (tensor) return tensor;
  }
  return undefined;
}
