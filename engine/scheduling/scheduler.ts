/**
 * The scheduler seam, as in Triton: enqueue, in-flight count, stop. One
 * scheduler per loaded model version, picked by createScheduler.
 */
import type { InferenceRequest } from '../inference-request.ts';
import type { NormalizedRequest } from '../request-normalizer.ts';
import type { Tensor } from '../tensor.ts';

export interface Scheduler {
  /** Resolves with the request's outputs, or rejects with a catalogue error. */
  enqueue(request: InferenceRequest, normalized: NormalizedRequest): Promise<readonly Tensor[]>;
  /** Requests queued or executing. */
  inflightCount(): number;
  /** Takes no new requests, lets executing ones finish, and rejects the ones still queued. */
  stop(): Promise<void>;
}
