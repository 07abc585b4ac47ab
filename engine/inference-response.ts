/** The engine's answer to one InferenceRequest, and the pieces a decoupled model answers in. */
import type { SwitchyardError } from './errors.ts';
import type { BufferLease } from './memory/buffer-lease.ts';
import type { ParameterValue } from './inference-request.ts';
import type { Tensor } from './tensor.ts';

export interface InferenceResponse {
  readonly modelName: string;
  readonly modelVersion: string;
  readonly id?: string;
  readonly outputs: readonly Tensor[];
  readonly parameters?: Readonly<Record<string, ParameterValue>>;
  /**
   * The outputs' pooled memory, when some of it came from the server's
   * BufferPool: whoever holds the response ends the lease once, after
   * encoding it to the wire (release), when dropping it (release), or when
   * handing the memory on (take, keep). The outputs themselves are plain
   * tensors; none carries `pooled`. Absent: nothing to give back.
   */
  readonly lease?: BufferLease;
}

/**
 * One response of a decoupled model as its backend sends it: outputs, or an
 * error, or neither (an empty final that only closes the request). Only the
 * last response of a request has `final`.
 */
export interface ModelResponse {
  readonly outputs?: readonly Tensor[];
  readonly error?: SwitchyardError;
  readonly final: boolean;
  /** Response parameters (an ensemble's sequence flags), passed on to the client. */
  readonly parameters?: Readonly<Record<string, ParameterValue>>;
  /**
   * Nanoseconds the model took to produce it (since the execution started or
   * its previous response) and to check and convert it; for response_stats.
   */
  readonly timing?: { readonly inferNs: number; readonly outputNs: number };
}

/**
 * What taking a decoupled model's response answers: true (taken, room for
 * more), false (nobody wants more), or, when the stream's buffer is full, a
 * promise the producer waits on before its next response, which settles true
 * once there is room or false once nobody wants more.
 */
export type ResponseTaken = boolean | Promise<boolean>;

/**
 * One item of InferenceEngine.inferStream: a response, an error response,
 * or (neither set) an empty final. Exactly one item per request has `final`,
 * and it is the last.
 */
export interface StreamedResponse {
  readonly response?: InferenceResponse;
  readonly error?: SwitchyardError;
  readonly final: boolean;
}
