/**
 * One traced request, and the traces of the requests it makes (ensemble
 * steps, a script's ctx.infer calls). RequestTrace is what the frontends,
 * the engine and the schedulers stamp; FileTrace writes it in Triton's
 * trace-file form (OtelTrace, in otel-trace.ts, as OpenTelemetry spans).
 *
 * The trace-file form: each
 * trace has an id from one process-wide counter, a header object
 * `{"id","model_name","model_version"[,"request_id"][,"parent_id"]}`, one
 * object per timestamp `{"id","timestamps":[{"name","ns"}]}`, and, at the
 * TENSORS level, one object per tensor summary. A request and the traces it
 * started form one group, written out together once every one of them is
 * released.
 *
 * Timestamps are nanoseconds of the process's monotonic clock
 * (performance.now()), so they order events and measure spans; they are not
 * wall-clock times.
 */
import type { Tensor } from '../../tensor.ts';
import { tensorSummary } from './tensor-summary.ts';

/** The timestamps Triton's trace file names, core's and the frontends'. */
export type TraceActivity =
  | 'HTTP_RECV_START' | 'HTTP_RECV_END' | 'HTTP_SEND_START' | 'HTTP_SEND_END'
  | 'GRPC_WAITREAD_START' | 'GRPC_WAITREAD_END' | 'GRPC_SEND_START' | 'GRPC_SEND_END'
  | 'REQUEST_START' | 'QUEUE_START' | 'COMPUTE_START' | 'COMPUTE_INPUT_END' | 'COMPUTE_OUTPUT_START' | 'COMPUTE_END'
  | 'REQUEST_END' | 'INFER_RESPONSE_COMPLETE';

/** Where a tensor summary was taken, in Triton's activity names. */
export type TensorActivity = 'TENSOR_QUEUE_INPUT' | 'TENSOR_BACKEND_OUTPUT';

/** The monotonic clock traces are stamped with, in nanoseconds. */
export const traceNow = (): number => Math.round(performance.now() * 1e6);

/**
 * Where an execution's input ended and its output began: its start plus the
 * backend's input time, its end less the output time, kept in order within
 * the execution (a backend's durations need not add up to its wall time).
 */
export function computeStamps(startNs: number, endNs: number, inputNs: number, outputNs: number): { inputEnd: number; outputStart: number } {
  const inputEnd = Math.min(startNs + inputNs, endNs);
  return { inputEnd, outputStart: Math.max(inputEnd, endNs - outputNs) };
}

/** What a finished group goes to. */
export interface TraceSink {
  /** A group of traces, as the comma-joined objects of the trace file. */
  written(group: string): void;
}

let lastId = 0;

/** The traces of one request and those it made, counted open until each is released (or let go of, by a hold). */
export interface OpenGroup {
  open: number;
  /** One fewer open: the last one finishes the group. */
  close(): void;
}

/** Keeps `group` open once more; the function given back lets go, once. */
export function holdGroup(group: OpenGroup): () => void {
  group.open += 1;
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    group.close();
  };
}

/** The next trace id: one counter for the process, every mode and every child. */
export const nextTraceId = (): number => ++lastId;

/** The execution a traced request ran in, as its span shows it: its batch size, and why the batcher closed the batch. */
export interface TraceBatch {
  readonly size: number;
  readonly closeReason?: string;
}

/** What the frontends, the engine and the schedulers record on a traced request. */
export interface RequestTrace {
  /** This trace's id; a step's or call's trace names its parent's. */
  readonly id: number;
  /** The id log lines show: the trace file's number, or OpenTelemetry's trace id (32 hex digits), which the client's traceparent gives. */
  readonly logId: string;
  /** Whether this trace belongs to a request made by another (it has a parent): the engine releases those. */
  readonly nested: boolean;
  /** REQUEST_START, with which model and version, the request's id, and its sequence id when it has one. */
  begin(model: string, version: string, requestId: string | undefined, ns?: number, sequenceId?: string): void;
  mark(activity: TraceActivity, ns?: number): void;
  /**
   * The four compute timestamps of one execution, from when it started and
   * ended and the backend's input and output durations; and its batch size.
   */
  compute(startNs: number, endNs: number, inputNs: number, outputNs: number, batch?: TraceBatch): void;
  /** The request failed with this message. */
  fail(message: string): void;
  /** A tensor summary (TENSORS level). */
  tensor(activity: TensorActivity, tensor: Tensor): void;
  /** The trace of a request this one makes: an ensemble step (named by `step`, as errors name it), a script's call. */
  child(step?: string): RequestTrace;
  /** Whoever made the trace is done with it. Safe to call twice. */
  release(): void;
  /**
   * Keeps the trace's group open beyond its maker's release, for stamps
   * still to come (a stream's REQUEST_END, which its reader may outrun);
   * the function given back lets go, once.
   */
  hold(): () => void;
}

/** The group a top-level request's traces share, until every one of them is released. */
class TraceGroup implements OpenGroup {
  readonly objects: string[] = [];
  open = 0;
  /** Written out: nothing more is recorded. */
  done = false;
  constructor(readonly sink: TraceSink) {}

  close(): void {
    if (--this.open > 0 || this.done) return;
    this.done = true;
    if (this.objects.length > 0) this.sink.written(this.objects.join(','));
  }
}

export class FileTrace implements RequestTrace {
  readonly id = nextTraceId();

  get logId(): string {
    return String(this.id);
  }
  private released = false;

  private constructor(
    private readonly group: TraceGroup,
    readonly parentId: number,
    /** Whether timestamps are recorded (TIMESTAMPS level). */
    readonly timestamps: boolean,
    /** Whether tensor summaries are recorded (TENSORS level). */
    readonly tensors: boolean,
  ) {
    group.open += 1;
  }

  /** A top-level request's trace; its group goes to `sink` once it and its children are released. */
  static start(sink: TraceSink, timestamps: boolean, tensors: boolean): FileTrace {
    return new FileTrace(new TraceGroup(sink), 0, timestamps, tensors);
  }

  /** The trace of a request this one makes (an ensemble step, a script's call): same group, this one its parent. */
  child(_step?: string): FileTrace {
    return new FileTrace(this.group, this.id, this.timestamps, this.tensors);
  }

  /** Whether this trace belongs to a request made by another (it has a parent). */
  get nested(): boolean {
    return this.parentId !== 0;
  }

  /** The header Triton writes at REQUEST_START: which model and version, the request's id, the parent. */
  begin(model: string, version: string, requestId: string | undefined, ns = traceNow()): void {
    if (!this.timestamps) return;
    this.group.objects.push(`{"id":${this.id},"model_name":${JSON.stringify(model)},"model_version":${Number(version) || 0}` +
      `${requestId ? `,"request_id":${JSON.stringify(requestId)}` : ''}${this.parentId !== 0 ? `,"parent_id":${this.parentId}` : ''}}`);
    this.mark('REQUEST_START', ns);
  }

  mark(activity: TraceActivity, ns = traceNow()): void {
    if (!this.timestamps || this.group.done) return;
    this.group.objects.push(`{"id":${this.id},"timestamps":[{"name":"${activity}","ns":${ns}}]}`);
  }

  compute(startNs: number, endNs: number, inputNs: number, outputNs: number): void {
    const stamps = computeStamps(startNs, endNs, inputNs, outputNs);
    this.mark('COMPUTE_START', startNs);
    this.mark('COMPUTE_INPUT_END', stamps.inputEnd);
    this.mark('COMPUTE_OUTPUT_START', stamps.outputStart);
    this.mark('COMPUTE_END', endNs);
  }

  /** The file form has no place for a failure: the trace simply ends. */
  fail(_message: string): void {}

  /** A tensor summary (TENSORS level): name, datatype, shape and its first elements. */
  tensor(activity: TensorActivity, tensor: Tensor): void {
    if (!this.tensors || this.group.done) return;
    this.group.objects.push(`{"id":${this.id},"activity":"${activity}","tensor":${JSON.stringify(tensorSummary(tensor))}}`);
  }

  /** The request is done with its trace; the group is written once all of its traces are. Safe to call twice. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.group.close();
  }

  hold(): () => void {
    return holdGroup(this.group);
  }
}
