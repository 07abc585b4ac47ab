/**
 * The ctx.infer calls of one script execute() (or initialize()): how many
 * are in flight, bounded by parameters.max_infer_calls_in_flight; the call
 * chain they extend; and the AbortSignal every one of them carries. The
 * signal fires when the execute ends (returned, threw, ran past its time
 * limit) or when every client of its batch went away, so calls still queued
 * at the callee leave its queue and calls still running answer at once.
 * Calls made once it fired are refused.
 */
import { getEventListeners, setMaxListeners } from 'node:events';
import { serverError, type SwitchyardError } from '../engine/errors.ts';
import type { RequestTrace } from '../engine/observability/trace/request-trace.ts';

/**
 * Signals of executes that ended with no call in flight, never aborted and with no listener left: a later execute
 * takes one rather than making an AbortController (about 2-4 µs each, per execute that calls anything).
 */
const spareControllers: AbortController[] = [];
const MAX_SPARE_CONTROLLERS = 64;

/** Calls in flight from which the signal's listener limit is raised: two calls hold at most about 8 listeners. */
const LISTENERS_RAISED_AT_CALLS = 2;

export class ExecuteCalls {
  private inFlight = 0;
  /** Made on first use: an execute that calls nothing never pays for a signal. */
  private controller: AbortController | undefined;
  private listenerLimitRaised = false;
  /** Why the execute ended, once it did. */
  private ended: string | undefined;
  private readonly detach: (() => void)[] = [];
  /** Why every client of the batch went away, once they did: later calls are cancelled as theirs were. */
  private gone: string | undefined;

  /**
   * `signals` are the batch's requests' own (undefined where a request has
   * none: that one never goes away). `listeners.parked` hears when the
   * execute starts or stops waiting on calls (see `parked`), `listeners.gone`
   * when every client went away.
   */
  constructor(
    private readonly model: string,
    readonly chain: readonly string[],
    private readonly limit: number,
    signals: readonly (AbortSignal | undefined)[],
    private readonly listeners: { readonly parked?: () => void; readonly gone?: () => void } = {},
    /** The trace of the batch's traced request (the first, when several are), which the calls' traces hang under. */
    readonly trace?: RequestTrace,
    /** How log lines name the batch's requests (`[request 'r1' trace 12, ...]`), when any has an id or a trace. */
    readonly requests?: string,
  ) {
    this.followClients(signals);
  }

  /** What each call of this execute carries: aborted when the execute ends with calls in flight. */
  get signal(): AbortSignal {
    if (!this.controller) {
      // An ended execute's signal is aborted at once: never a spare one, which another execute would take next.
      this.controller = (this.ended === undefined ? spareControllers.pop() : undefined) ?? new AbortController();
      this.raiseListenerLimit();
      if (this.ended !== undefined) this.controller.abort(new Error(this.ended));
    }
    return this.controller.signal;
  }

  /**
   * Every call in flight listens on the signal a few times at most (the callee's queue, an ensemble's run), so
   * Node's warning at 11 listeners is no leak once several calls are in flight: the limit goes up then, once.
   * Most executes make one or two calls at a time and never pay for it (about 2 µs).
   */
  private raiseListenerLimit(): void {
    if (this.listenerLimitRaised || !this.controller || this.inFlight < LISTENERS_RAISED_AT_CALLS) return;
    setMaxListeners(Math.max(10, this.limit * 4), this.controller.signal);
    this.listenerLimitRaised = true;
  }

  /** Whether the execute waits on at least one call: a parked execute computes nothing. */
  get parked(): boolean {
    return this.inFlight > 0;
  }

  /** Why every client of the batch went away, once they did. */
  get cancelled(): string | undefined {
    return this.gone;
  }

  /** False once the execute ended. */
  get open(): boolean {
    return this.ended === undefined;
  }

  /** Takes a place for one call to `callee`; throws the catalogue error when the execute ended or already has its limit in flight. */
  begin(callee: string): void {
    const refusal = this.refusal(callee);
    if (refusal) throw refusal;
    if (++this.inFlight === 1) this.listeners.parked?.();
    this.raiseListenerLimit();
  }

  /** Gives the place back once the call answered. */
  finish(): void {
    if (--this.inFlight === 0) this.listeners.parked?.();
  }

  /**
   * The execute ended: calls still in flight are cancelled with `reason`, later ones refused. With none in flight
   * nothing listens on the signal, and it is left as it is (an abort, and its Error, cost microseconds per execute).
   */
  close(reason: string): void {
    for (const detach of this.detach.splice(0)) detach();
    if (this.ended !== undefined) return;
    this.ended = reason;
    if (!this.controller) return;
    if (this.inFlight > 0) {
      this.controller.abort(new Error(reason));
      return;
    }
    // Every call answered and took its listeners along: the signal is as good as new, and the next execute takes it.
    const signal = this.controller.signal;
    if (!signal.aborted && getEventListeners(signal, 'abort').length === 0 && spareControllers.length < MAX_SPARE_CONTROLLERS) {
      spareControllers.push(this.controller);
      // Anything asking this execute for its signal from now on gets a fresh one, aborted (see signal).
      this.controller = undefined;
    }
  }

  private refusal(callee: string): SwitchyardError | undefined {
    if (this.gone !== undefined) return serverError('CANCELLED', { model: callee, reason: this.gone });
    if (!this.open) return serverError('INFER_AFTER_EXECUTE', { model: this.model });
    if (this.inFlight >= this.limit) return serverError('INFER_CALLS_IN_FLIGHT', { model: this.model, max: this.limit });
    return undefined;
  }

  /** Once every request of the batch was cancelled by its client, nobody wants the calls' answers. */
  private followClients(signals: readonly (AbortSignal | undefined)[]): void {
    if (signals.length === 0 || signals.some((s) => s === undefined)) return;
    const live = (signals as readonly AbortSignal[]).filter((s) => !s.aborted);
    if (live.length === 0) {
      this.abandon();
      return;
    }
    let left = live.length;
    const gone = (): void => {
      if (--left === 0) this.abandon();
    };
    for (const signal of live) {
      signal.addEventListener('abort', gone, { once: true });
      this.detach.push(() => signal.removeEventListener('abort', gone));
    }
  }

  private abandon(): void {
    this.gone = `every client of the calling execute() of '${this.model}' went away`;
    // The owner hears first (a decoupled script's requests are marked cancelled in its isolate), then the calls fail
    // CANCELLED: a script that sees a call fail so finds isCancelled() already true.
    this.listeners.gone?.();
    this.close(this.gone);
  }
}
