/**
 * The server's single inference entry as the parts that call back into it
 * see it: ensemble steps, scripts' ctx.infer and the backends that load
 * them. A leaf type, so that the backend contract and the schedulers can
 * both name it without importing each other.
 */
import type { InferenceRequest } from './inference-request.ts';
import type { InferenceResponse, StreamedResponse } from './inference-response.ts';

/** The server's single inference entry, as ensemble steps (and scripts) call it. */
export type InferFunction = (request: InferenceRequest) => Promise<InferenceResponse>;

/**
 * The server's entry for any number of responses per request, as a backend
 * sees it (scripts' ctx.inferStream): the responses as an async iterable that
 * ends after the final one; a reader that stops early cancels the request.
 * InferenceEngine.inferStream answers a ResponseStream, which is one.
 */
export type StreamingInferFunction = (request: InferenceRequest) => Promise<AsyncIterable<StreamedResponse>>;
