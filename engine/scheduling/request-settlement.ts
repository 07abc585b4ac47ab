/**
 * How a scheduler answers a queued request exactly once, shared by the
 * dynamic and sequence batchers: whichever of the result, a failure, a
 * cancellation or a stop comes first settles it, and the rest are ignored.
 */
import type { Tensor } from '../tensor.ts';

export type Outcome = readonly Tensor[] | Error;

/** The part of a queued request that settling touches. */
export interface Settleable {
  readonly resolve: (outputs: readonly Tensor[]) => void;
  readonly reject: (error: Error) => void;
  settled: boolean;
  /** Detaches what was attached while queued (an abort listener). */
  cleanup: () => void;
}

export const noop = (): void => {};

export function settle(pending: Settleable, outcome: Outcome): void {
  if (pending.settled) return;
  pending.settled = true;
  pending.cleanup();
  if (outcome instanceof Error) pending.reject(outcome);
  else pending.resolve(outcome);
}

/** Why a request's signal fired, for its CANCELLED message. */
export function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason.message;
  return typeof reason === 'string' ? reason : 'the client went away';
}
