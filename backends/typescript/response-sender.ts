/**
 * The host side of one request of a decoupled script while its batch runs:
 * each response the script sends is checked like an execute() answer and
 * handed to the engine in order; the first refusal (nobody listens any
 * more) or the request's abort cancels it, which the script sees as send()
 * answering false; and a request that execute() leaves open is closed with
 * an empty final. While the request's stream has no room, deliver() answers
 * a promise that the script's send() waits on: it settles once there is
 * room (true), or false as soon as the request is cancelled.
 */
import type { ModelResponse } from '../../engine/inference-response.ts';
import type { ExecuteRequest, ExecuteResult } from '../../engine/backend.ts';

const nsSince = (start: number): number => Math.round((performance.now() - start) * 1e6);

export class ResponseSender {
  /** Settles a send() waiting for room with false: the request was cancelled meanwhile. */
  private release: (() => void) | undefined;
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

  /** A response the script sent: null only closes the request (final). Answers whether it was wanted, once there is room for more. */
  deliver(response: unknown, final: boolean): boolean | Promise<boolean> {
    if (this.finalSent || this.cancelled) return false;
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
    const taken = this.request.send?.(answer) ?? true;
    if (taken === true) return true;
    if (taken === false) {
      this.cancel();
      return false;
    }
    return new Promise<boolean>((resolve) => {
      this.release = () => resolve(false);
      void taken.then((room) => {
        this.release = undefined;
        if (!room) this.cancel();
        resolve(room);
      });
    });
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
    this.releaseWaiting();
  }

  /** The request is cancelled (its client went away): the script is told, and a send() waiting for room answers false. */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.releaseWaiting();
    this.onCancel();
  }

  private releaseWaiting(): void {
    const release = this.release;
    this.release = undefined;
    release?.();
  }
}
