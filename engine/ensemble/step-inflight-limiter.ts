/**
 * Triton's per-step bound on an ensemble (ensemble_scheduling
 * max_inflight_requests): at most `limit` requests of one step are in
 * flight at once, across every running request of the ensemble. A step that
 * finds no room waits in line, first come first served, until a request of
 * that step finishes; nothing polls. A decoupled step upstream then stops
 * reading its responses, so it waits too, which bounds the memory a fast
 * producer in front of a slow consumer can pile up. A limit of 0 means none.
 */
import { serverError } from '../errors.ts';

export class StepInflightLimiter {
  private inflight = 0;
  /** Steps waiting for a slot, oldest first; calling one hands it the slot. */
  private readonly waiting: (() => void)[] = [];

  constructor(readonly limit: number) {}

  /**
   * Takes a slot: undefined when one is free (taken at once), else a promise
   * that settles when one is handed over, or rejects with CANCELLED when
   * `signal` fires first (the ensemble request failed or its client left).
   * Every slot taken goes back with release(), exactly once.
   */
  acquire(model: string, signal: AbortSignal): Promise<void> | undefined {
    if (this.limit === 0) return undefined;
    if (this.inflight < this.limit) {
      this.inflight++;
      return undefined;
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const at = this.waiting.indexOf(waiter);
        if (at >= 0) this.waiting.splice(at, 1);
        const reason: unknown = signal.reason;
        reject(serverError('CANCELLED', { model, reason: reason instanceof Error ? reason.message : undefined }));
      };
      const waiter = (): void => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  /** Gives a slot back: to the first step waiting, or to the pool. */
  release(): void {
    if (this.limit === 0) return;
    const next = this.waiting.shift();
    // The slot passes straight to the next waiter, so the count stays as it is.
    if (next) next();
    else this.inflight--;
  }
}
