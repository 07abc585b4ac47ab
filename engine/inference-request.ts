/** A request as the engine takes it, whichever frontend (or script, or ensemble step) sent it. */
import type { RequestTrace } from './observability/trace/request-trace.ts';
import type { ModelResponse, ResponseTaken } from './inference-response.ts';
import type { Tensor } from './tensor.ts';

export type ParameterValue = string | number | boolean | bigint;

export interface InferenceRequest {
  readonly modelName: string;
  /** A version number as text; empty or undefined lets the version policy choose (the highest ready version). */
  readonly modelVersion?: string;
  /** Echoed back in the response. */
  readonly id?: string;
  readonly inputs: readonly Tensor[];
  /** Names of the outputs wanted; undefined or empty means all of them. */
  readonly outputs?: readonly string[];
  readonly parameters?: Readonly<Record<string, ParameterValue>>;
  /** The classification extension: output name -> how many classes that output answers with (see output-classification.ts). */
  readonly classification?: ReadonlyMap<string, number>;
  /** Fires when the client goes away or its deadline passes. */
  readonly signal?: AbortSignal;
  /**
   * The calls up the stack of this request, outermost first: an ensemble
   * adds its name, a script batch calling ctx.infer adds
   * `<model>@<instance>#<n>` (see callFrameModel). The server refuses a call
   * back into a model whose every instance is held by the calls above it,
   * which would otherwise wait forever.
   */
  readonly callChain?: readonly string[];
  /**
   * With --model-namespacing: the repository folder of the model making
   * this call (an ensemble step, a script's ctx.infer). A name that several
   * repositories hold means the one in this folder, when it has one.
   */
  readonly modelNamespace?: string;
  /**
   * Where a decoupled model's responses go, one call each, the last with
   * `final`; it answers false once nobody wants more (the stream was
   * cancelled or already ended), and a promise while the stream is full
   * (see ResponseTaken). InferenceEngine.inferStream sets it;
   * callers use inferStream rather than setting it themselves.
   */
  readonly onResponse?: (response: ModelResponse) => ResponseTaken;
  /**
   * This request's trace, when the trace extension sampled it (a frontend
   * did), or the trace of a request made on its behalf (an ensemble step).
   * The engine stamps its timestamps; whoever made the trace releases it.
   */
  readonly trace?: RequestTrace;
  /**
   * Internal (ensemble steps, scripts' ctx.infer): the caller takes the answer's pooled memory
   * as the tensors themselves say it, each output whose buffer is the
   * caller's to release marked `pooled`, with no lease around them. Saves a
   * lease the caller would take at once, and two copies of each output
   * object (unmarked, then marked again). Ignored with `classification`.
   */
  readonly ownOutputs?: true;
}

/** A request (or response) built field by field, optional fields set only when present: no spread of a temporary object per field. */
export type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The model a call-chain entry belongs to: `model@instance#n` (a script batch) or `model` (an ensemble). */
export function callFrameModel(frame: string): string {
  const at = frame.lastIndexOf('@');
  return at < 0 ? frame : frame.slice(0, at);
}
