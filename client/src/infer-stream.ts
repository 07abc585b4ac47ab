/** The streaming inference interface (gRPC ModelStreamInfer). */
import type { InferOptions } from './client-options.ts';
import type { InferResult } from './infer-result.ts';
import type { InferenceServerError } from './inference-server-error.ts';
import type { Tensor } from './tensor.ts';

/** One message from the stream: a result, or the error the server sent for one request. */
export interface StreamResult {
  readonly result?: InferResult;
  readonly error?: InferenceServerError;
  /** The id of the request this answers, when it had one; responses may come back in any order. */
  readonly id?: string;
}

/**
 * A bidirectional inference stream. Iterate it for results in the order the
 * server sends them. A failure of the stream itself (not of one request)
 * makes iteration throw an InferenceServerError; breaking out of the loop
 * cancels the call.
 */
export interface InferStream extends AsyncIterable<StreamResult> {
  /** Sends one request on the stream. Throws once the stream is ended or cancelled. */
  send(model: string, inputs: readonly Tensor[], options?: Omit<InferOptions, 'signal' | 'timeoutMs'>): void;
  /** Half-closes the stream; iteration ends after the last response. */
  end(): void;
  /** Aborts the call; iteration ends at once, dropping responses not yet taken. */
  cancel(): void;
}
