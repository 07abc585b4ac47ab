/**
 * The host side of one request of a decoupled script while its batch runs:
 * each response the script sends is checked like an execute() answer and
 * handed to the engine in order; the first refusal (nobody listens any
 * more) or the request's abort cancels it, which the script sees as send()
 * answering false; and a request that execute() leaves open is closed with
 * an empty final.
 */
import type { ModelResponse } from '../../engine/inference-response.ts';
import type { ExecuteRequest, ExecuteResult } from '../backend.ts';

const nsSince = (start: number): number => Math.round((performance.now() - start) * 1e6);

export class ResponseSender {
  /** Responses the script handed over so far, whether or not they were wanted. */
  private received = 0;
  private waiting: { count: number; resolve: () => void } | undefined;
  private finalSent = false;
  private cancelled = false;
  /** When the script started on this request, or sent its previous response. */
  private since: number;
  private readonly detach: () => void;

  constructor(
    private readonly request: ExecuteRequest,
    /** Checks one response against the config, as an execute() answer would be. */
    private readonly check: (response: unknown) => ExecuteResult,
    /** Tells the script (its isolate) that this request is cancelled. */
    private readonly onCancel: () => void,
    start: number,
  ) {
    this.since = start;
    const signal = request.signal;
    if (signal?.aborted) {
      this.cancel();
      this.detach = () => {};
    } else if (signal) {
      const abort = (): void => this.cancel();
      signal.addEventListener('abort', abort, { once: true });
      this.detach = () => signal.removeEventListener('abort', abort);
    } else {
      this.detach = () => {};
    }
  }

  /** Whether the request's final response has gone (sent by the script, or by close()). */
  get final(): boolean {
    return this.finalSent;
  }

  /** A response the script sent: null only closes the request (final). */
  deliver(response: unknown, final: boolean): void {
    this.received++;
    if (this.waiting && this.received >= this.waiting.count) this.waiting.resolve();
    if (this.finalSent) return;
    if (final) this.finalSent = true;
    const inferNs = nsSince(this.since);
    const checkStart = performance.now();
    let answer: ModelResponse;
    if (response === null) {
      answer = { final, timing: { inferNs, outputNs: 0 } };
    } else {
      const result = this.check(response);
      const timing = { inferNs, outputNs: nsSince(checkStart) };
      answer = result.ok ? { outputs: result.outputs, final, timing } : { error: result.error, final, timing };
    }
    this.since = performance.now();
    if (!this.cancelled && this.request.send?.(answer) === false) this.cancel();
  }

  /** Resolves once `count` responses have arrived: execute() counted what it sent, and the last ones may still be on their way. */
  arrived(count: number): Promise<void> {
    if (this.received >= count) return Promise.resolve();
    return new Promise((resolve) => { this.waiting = { count, resolve }; });
  }

  /** The script's execute() ended: a request still open gets its final, with no response. */
  close(): void {
    this.detach();
    if (this.finalSent) return;
    this.finalSent = true;
    if (!this.cancelled) this.request.send?.({ final: true, timing: { inferNs: nsSince(this.since), outputNs: 0 } });
  }

  /** The batch failed: nothing more goes out for this request (the scheduler answers it with the failure). */
  abandon(): void {
    this.detach();
  }

  private cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.onCancel();
  }
}
