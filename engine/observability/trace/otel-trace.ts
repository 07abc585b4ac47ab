/**
 * The trace extension's opentelemetry mode: a traced request as
 * OpenTelemetry spans, in the tree Triton builds, exported over OTLP/HTTP
 * (protobuf) in batches.
 *
 *   InferRequest                 the request at the frontend: receive and send events
 *   └─ <model name>              REQUEST_START to REQUEST_END: QUEUE_START as an event
 *      ├─ compute                COMPUTE_START to COMPUTE_END, with the input and output events
 *      └─ <step or call model>   an ensemble step or a script's ctx.infer: a child of its caller's model span
 *
 * A model span carries Triton's attributes (`triton.model_name`,
 * `triton.model_version`, `triton.trace_id`, `triton.trace_parent_id`,
 * `triton.request_id`) and Switchyard's: the batch size of the execution
 * the request ran in and why its batch closed, its sequence id, and for an
 * ensemble step the step, as errors name it.
 * A request that fails gets its error on its model span.
 * A client's W3C `traceparent` makes InferRequest a child of the client's
 * span, so the client's trace goes on into the server.
 */
import { context as otelContext, trace as otelTrace, ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, type Context, type Span, type Tracer as OtelTracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { Tensor } from '../../tensor.ts';
import { computeStamps, holdGroup, nextTraceId, type OpenGroup, traceNow, type RequestTrace, type TensorActivity, type TraceActivity, type TraceBatch } from './request-trace.ts';

/** The monotonic trace clock's nanoseconds as a time OpenTelemetry takes: milliseconds since the epoch. */
const wallTime = (ns: number): number => performance.timeOrigin + ns / 1e6;

const FRONTEND_EVENTS: ReadonlySet<TraceActivity> = new Set([
  'HTTP_RECV_START', 'HTTP_RECV_END', 'HTTP_SEND_START', 'HTTP_SEND_END',
  'GRPC_WAITREAD_START', 'GRPC_WAITREAD_END', 'GRPC_SEND_START', 'GRPC_SEND_END', 'INFER_RESPONSE_COMPLETE',
]);

/** A client's W3C trace context, read from `traceparent` (and `tracestate`); undefined when absent or malformed. */
export function remoteContext(traceparent: string | undefined, tracestate: string | undefined): Context | undefined {
  if (traceparent === undefined) return undefined;
  const match = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/.exec(traceparent.trim());
  if (!match || match[1] === 'ff' || /^0+$/.test(match[2]!) || /^0+$/.test(match[3]!)) return undefined;
  if (match[1] === '00' && match[5] !== undefined) return undefined;
  const flags = Number.parseInt(match[4]!, 16) & TraceFlags.SAMPLED;
  return otelTrace.setSpanContext(ROOT_CONTEXT, {
    traceId: match[2]!, spanId: match[3]!, traceFlags: flags, isRemote: true,
    ...(tracestate !== undefined && tracestate.length <= 512 ? { traceState: createTraceState(tracestate) } : {}),
  });
}

/** tracestate carried as it came (list-members are not reordered or checked beyond their bound). */
function createTraceState(text: string): import('@opentelemetry/api').TraceState {
  const entries = new Map(text.split(',').map((member) => member.trim()).filter((m) => m.includes('='))
    .map((m) => [m.slice(0, m.indexOf('=')), m.slice(m.indexOf('=') + 1)] as const));
  const state = {
    set: (key: string, value: string) => { entries.set(key, value); return state; },
    unset: (key: string) => { entries.delete(key); return state; },
    get: (key: string) => entries.get(key),
    serialize: () => [...entries].map(([k, v]) => `${k}=${v}`).join(','),
  };
  return state;
}

/** The spans one top-level request and its children share: the open count, and the root to end last. */
class SpanGroup implements OpenGroup {
  open = 0;
  constructor(readonly root: Span) {}

  /** One fewer open trace or hold; the last one ends the root span. */
  close(): void {
    if (--this.open === 0) this.root.end(wallTime(traceNow()));
  }
}

export class OtelTrace implements RequestTrace {
  readonly id = nextTraceId();
  private modelSpan: Span | undefined;
  private released = false;

  private constructor(
    private readonly tracer: OtelTracer,
    private readonly group: SpanGroup,
    /** The span this trace's model span goes under: InferRequest, or the parent's model span. */
    private readonly parentSpan: Span,
    readonly parentId: number,
    /** The ensemble step this request is, as errors name it (`step 'classify' (model 'feature_classifier')`). */
    private readonly step?: string,
  ) {
    group.open += 1;
  }

  /** A top-level request: its InferRequest span starts now, under the client's span when it sent one. */
  static start(tracer: OtelTracer, remote: Context | undefined): OtelTrace {
    const root = tracer.startSpan('InferRequest', { kind: SpanKind.SERVER, startTime: wallTime(traceNow()) }, remote ?? ROOT_CONTEXT);
    return new OtelTrace(tracer, new SpanGroup(root), root, 0);
  }

  get nested(): boolean {
    return this.parentId !== 0;
  }

  get logId(): string {
    return this.group.root.spanContext().traceId;
  }

  begin(model: string, version: string, requestId: string | undefined, ns = traceNow(), sequenceId?: string): void {
    if (this.released || this.modelSpan) return;
    const span = this.tracer.startSpan(model, {
      kind: SpanKind.SERVER, startTime: wallTime(ns),
      attributes: {
        'triton.model_name': model, 'triton.model_version': Number(version) || 0,
        'triton.trace_id': this.id, 'triton.trace_parent_id': this.parentId,
        ...(requestId ? { 'triton.request_id': requestId } : {}),
        ...(this.step ? { 'switchyard.step': this.step } : {}),
        ...(sequenceId !== undefined ? { 'switchyard.sequence_id': sequenceId } : {}),
      },
    }, otelTrace.setSpan(otelContext.active(), this.parentSpan));
    span.addEvent('REQUEST_START', wallTime(ns));
    this.modelSpan = span;
  }

  mark(activity: TraceActivity, ns = traceNow()): void {
    if (this.group.open === 0) return;
    if (FRONTEND_EVENTS.has(activity)) {
      if (!this.nested) this.group.root.addEvent(activity, wallTime(ns));
      return;
    }
    const span = this.modelSpan;
    if (!span) return;
    span.addEvent(activity, wallTime(ns));
    if (activity === 'REQUEST_END') span.end(wallTime(ns));
  }

  compute(startNs: number, endNs: number, inputNs: number, outputNs: number, batch?: TraceBatch): void {
    const parent = this.modelSpan;
    if (!parent || this.released) return;
    const stamps = computeStamps(startNs, endNs, inputNs, outputNs);
    const span = this.tracer.startSpan('compute', { kind: SpanKind.SERVER, startTime: wallTime(startNs) }, otelTrace.setSpan(otelContext.active(), parent));
    span.addEvent('COMPUTE_START', wallTime(startNs));
    span.addEvent('COMPUTE_INPUT_END', wallTime(stamps.inputEnd));
    span.addEvent('COMPUTE_OUTPUT_START', wallTime(stamps.outputStart));
    const end = wallTime(endNs);
    span.addEvent('COMPUTE_END', end);
    if (batch) {
      parent.setAttribute('switchyard.batch_size', batch.size);
      if (batch.closeReason) parent.setAttribute('switchyard.batch_close_reason', batch.closeReason);
    }
    span.end(end);
  }

  /** Tensor summaries are a trace-file feature; spans do not carry them (as in Triton). */
  tensor(_activity: TensorActivity, _tensor: Tensor): void {}

  fail(message: string): void {
    this.modelSpan?.setStatus({ code: SpanStatusCode.ERROR, message });
  }

  child(step?: string): OtelTrace {
    // A call made before this request's model span began (it never does) hangs under the same parent.
    return new OtelTrace(this.tracer, this.group, this.modelSpan ?? this.parentSpan, this.id, step);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.group.close();
    // A model span the request never closed (nothing holds it for a REQUEST_END to come) ends with its group.
    if (this.group.open === 0 && this.modelSpan?.isRecording()) this.modelSpan.end();
  }

  hold(): () => void {
    return holdGroup(this.group);
  }
}

/** The settings of --trace-config opentelemetry,...: the endpoint, the resource, and the batch span processor's bounds. */
export interface OtelExportSettings {
  readonly url: string | undefined;
  readonly resource: readonly string[];
  readonly maxQueueSize: number;
  readonly scheduledDelayMillis: number;
  readonly maxExportBatchSize: number;
}

/** The exporter side: one tracer provider with a batch span processor sending OTLP/HTTP protobuf. */
export class OtelExport {
  readonly tracer: OtelTracer;

  private constructor(private readonly provider: TracerProvider) {
    this.tracer = provider.getTracer('switchyard');
  }

  static create(settings: OtelExportSettings): OtelExport {
    const attributes: Record<string, string> = { 'service.name': 'triton-inference-server' };
    for (const pair of settings.resource) {
      const at = pair.indexOf('=');
      if (at > 0) attributes[pair.slice(0, at)] = pair.slice(at + 1);
    }
    const url = settings.url === undefined ? undefined : /^[a-z]+:\/\//i.test(settings.url) ? settings.url : `http://${settings.url}`;
    const exporter = new OTLPTraceExporter(url ? { url } : {});
    const provider = new TracerProvider({
      resource: resourceFromAttributes(attributes),
      spanProcessors: [new BatchSpanProcessor({
        exporter, maxQueueSize: settings.maxQueueSize, scheduledDelayMillis: settings.scheduledDelayMillis,
        // The SDK refuses a batch larger than its queue.
        maxExportBatchSize: Math.min(settings.maxExportBatchSize, settings.maxQueueSize),
      })],
    });
    return new OtelExport(provider);
  }

  /** Sends what is still queued and stops. */
  async close(): Promise<void> {
    await this.provider.shutdown();
  }
}
