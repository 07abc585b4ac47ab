/**
 * The server's single inference entry as the parts that call back into it
 * see it: ensemble steps, scripts' ctx.infer and the backends that load
 * them. A leaf type, so that the backend contract and the schedulers can
 * both name it without importing each other.
 */
import type { InferenceRequest } from './inference-request.ts';
import type { InferenceResponse } from './inference-response.ts';

/** The server's single inference entry, as ensemble steps (and scripts) call it. */
export type InferFunction = (request: InferenceRequest) => Promise<InferenceResponse>;
