/**
 * The trace extension at the HTTP frontend: which request is traced (the
 * tracer's sampling, with the client's W3C trace context), and its receive
 * and send timestamps.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { traceNow, type RequestTrace } from '../../engine/observability/trace/request-trace.ts';
import type { Tracer } from '../../engine/observability/trace/tracer.ts';

/** The trace of an HTTP request to `model`, when the tracer samples it, stamped as received and released once answered. */
export function traceHttpRequest(tracer: Tracer, model: string, req: FastifyRequest, reply: FastifyReply): RequestTrace | undefined {
  // Only the opentelemetry mode reads a client's trace context: other requests skip the header lookups.
  const trace = tracer.sample(model, tracer.readsTraceContext ? traceContext(req.headers) : undefined);
  if (trace) startHttpTrace(trace, reply);
  return trace;
}

/**
 * A traced request's receive timestamps, and its send end once the response
 * is written (or the connection closes first), when the trace is released.
 * The handler starts once the body is read, which is when both receive
 * stamps are taken: they fall together.
 */
function startHttpTrace(trace: RequestTrace, reply: FastifyReply): void {
  const now = traceNow();
  trace.mark('HTTP_RECV_START', now);
  trace.mark('HTTP_RECV_END', now);
  const done = (): void => {
    reply.raw.off('finish', done);
    reply.raw.off('close', done);
    trace.mark('HTTP_SEND_END');
    trace.release();
  };
  reply.raw.on('finish', done);
  reply.raw.on('close', done);
}

/** A client's W3C trace context headers, for the opentelemetry trace mode. */
function traceContext(headers: FastifyRequest['headers']): { traceparent?: string; tracestate?: string } | undefined {
  const traceparent = headers['traceparent'];
  if (traceparent === undefined) return undefined;
  const tracestate = headers['tracestate'];
  return {
    traceparent: Array.isArray(traceparent) ? traceparent[0]! : traceparent,
    ...(tracestate !== undefined ? { tracestate: Array.isArray(tracestate) ? tracestate.join(',') : tracestate } : {}),
  };
}
