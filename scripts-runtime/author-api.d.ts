/**
 * Types for authors of TypeScript models (`<model>/<version>/model.ts`).
 * Import them type-only, so that nothing is left to import at run time
 * (this file is only types; a script's value imports may name npm
 * packages, which are bundled into it at load: docs/scripts.md):
 *
 *   import type { InferRequest, InferResponse, ModelContext, ModelScript } from '../../../scripts-runtime/author-api.js';
 *
 *   export default class Doubler implements ModelScript {
 *     async execute(requests: readonly InferRequest[], ctx: ModelContext): Promise<InferResponse[]> { ... }
 *   }
 *
 * These declarations describe what the runtime (scripts-runtime/
 * isolate-bootstrap/bootstrap.ts and host-bridge.ts) hands over and checks; they add
 * no checks of their own. docs/scripts.md is the guide.
 */

/** A KServe v2 tensor datatype. */
export type DataType =
  | 'BOOL' | 'UINT8' | 'UINT16' | 'UINT32' | 'UINT64' | 'INT8' | 'INT16' | 'INT32' | 'INT64'
  | 'FP16' | 'BF16' | 'FP32' | 'FP64' | 'BYTES';

/**
 * How a script receives each datatype's elements. BOOL is 0 or 1 per
 * element; FP16 and BF16 are their raw 16-bit patterns; BYTES elements are
 * decoded as UTF-8 strings.
 */
export interface TensorDataTypes {
  BOOL: Uint8Array;
  UINT8: Uint8Array;
  UINT16: Uint16Array;
  UINT32: Uint32Array;
  UINT64: BigUint64Array;
  INT8: Int8Array;
  INT16: Int16Array;
  INT32: Int32Array;
  INT64: BigInt64Array;
  FP16: Uint16Array;
  BF16: Uint16Array;
  FP32: Float32Array;
  FP64: Float64Array;
  BYTES: string[];
}

/**
 * What a script may hand back for each datatype: the typed array above, or
 * a plain array the host converts (numbers for the 16- and 32-bit types and
 * raw FP16/BF16 bits, bigints or whole numbers for the 64-bit integers,
 * booleans or 0/1 for BOOL, strings or Uint8Arrays for BYTES).
 */
export interface TensorDataInit {
  BOOL: Uint8Array | readonly (boolean | number)[];
  UINT8: Uint8Array | readonly number[];
  UINT16: Uint16Array | readonly number[];
  UINT32: Uint32Array | readonly number[];
  UINT64: BigUint64Array | readonly (bigint | number)[];
  INT8: Int8Array | readonly number[];
  INT16: Int16Array | readonly number[];
  INT32: Int32Array | readonly number[];
  INT64: BigInt64Array | readonly (bigint | number)[];
  FP16: Uint16Array | readonly number[];
  BF16: Uint16Array | readonly number[];
  FP32: Float32Array | readonly number[];
  FP64: Float64Array | readonly number[];
  BYTES: readonly (string | Uint8Array)[];
}

/**
 * A tensor as a script receives it. `Tensor<'FP32'>` has a Float32Array as
 * its data; plain `Tensor` is the union over every datatype, so checking
 * `t.datatype` narrows `t.data`. Elements are in row-major order, and
 * `shape` includes the batch dimension when the model batches.
 */
export type Tensor<T extends DataType = DataType> = {
  [K in T]: {
    readonly datatype: K;
    readonly shape: readonly number[];
    readonly data: TensorDataTypes[K];
  };
}[T];

/**
 * A BYTES input named in the config's `binary_inputs` parameter: each
 * element arrives byte for byte as a Uint8Array (an image, an audio clip),
 * not decoded as UTF-8. Declare it in the script's input map, e.g.
 * `{ image: BinaryTensor }`.
 */
export type BinaryTensor = {
  readonly datatype: 'BYTES';
  readonly shape: readonly number[];
  readonly data: Uint8Array[];
};

/** An input of a request that execute() receives. Its data is the script's own: reading it in place, or changing it, is fine. */
export type InputTensor<T extends DataType = DataType> = Tensor<T>;

/**
 * An output in a response. `datatype` may be left out: the model config's
 * is used. Each output is checked against the config (datatype, and a shape
 * whose first dimension is the request's batch size when the model
 * batches); a mismatch fails that request with a message naming the output.
 */
export type OutputTensor<T extends DataType = DataType> = {
  [K in T]: {
    readonly datatype?: K;
    readonly shape: readonly number[];
    readonly data: TensorDataInit[K];
  };
}[T];

/** An input of a ctx.infer call: like an output, but the datatype must be given (the host has no config to take it from). */
export type InferCallTensor<T extends DataType = DataType> = {
  [K in T]: {
    readonly datatype: K;
    readonly shape: readonly number[];
    readonly data: TensorDataInit[K];
  };
}[T];

/** A request or response parameter value. */
export type ParameterValue = string | number | boolean | bigint;

/** Tensors by name. */
export type TensorMap = Readonly<Record<string, Tensor>>;

/**
 * A narrower map naming a model's own tensors, e.g. `{ TEXT: Tensor<'BYTES'> }`
 * (a type alias or an interface).
 */
export type NamedTensors<Self> = { readonly [K in keyof Self]: Tensor | BinaryTensor };

/**
 * One request of the batch execute() receives. Every input the config
 * declares is there (the server checked datatype and shape before the
 * script runs), except inputs marked `optional` that the client left out.
 */
export interface InferRequest<Inputs extends NamedTensors<Inputs> = TensorMap> {
  readonly inputs: Inputs;
  /** The request's parameters, as the client sent them (empty when none). */
  readonly parameters: Readonly<Record<string, ParameterValue>>;
}

/**
 * The answer to one request: its outputs, or an error that fails only this
 * request (with status 500 and the message as given). Outputs the client
 * did not ask for may be included (they are dropped); outputs the config
 * does not declare fail the request.
 */
export type InferResponse<Outputs extends string = string> =
  | { readonly outputs: Readonly<Record<Outputs, OutputTensor>>; readonly error?: undefined }
  | {
    readonly error: string;
    /**
     * Whose fault, as Triton's TritonError codes say it: INVALID_ARG for a
     * bad request (HTTP 400, gRPC INVALID_ARGUMENT), NOT_FOUND, UNAVAILABLE
     * (503), UNSUPPORTED (501), ALREADY_EXISTS, CANCELLED; INTERNAL (500)
     * when left out.
     */
    readonly status?: 'INVALID_ARG' | 'NOT_FOUND' | 'UNAVAILABLE' | 'INTERNAL' | 'UNSUPPORTED' | 'ALREADY_EXISTS' | 'CANCELLED';
    readonly outputs?: undefined;
  };

/** A call to another model through ctx.infer. */
export interface InferCall {
  /** The model's name: any model the server has loaded (ONNX, ensemble, another script, this one). */
  readonly model: string;
  /** A version number; the latest ready version when left out. */
  readonly version?: string | number;
  readonly inputs: Readonly<Record<string, InferCallTensor>>;
  /** The outputs wanted; all of them when left out. */
  readonly outputs?: readonly string[];
  /** Request parameters for the called model, e.g. `priority` or `timeout`. */
  readonly parameters?: Readonly<Record<string, ParameterValue>>;
}

/** What ctx.infer resolves to. */
export interface InferResult<Outputs extends NamedTensors<Outputs> = TensorMap> {
  readonly outputs: Outputs;
  /** Parameters the called model answered with, if any. */
  readonly parameters?: Readonly<Record<string, ParameterValue>>;
}

/**
 * What ctx.infer rejects with: the server's message (the same text a
 * client would get) and its catalogue code, such as 'MODEL_NOT_FOUND',
 * 'INPUT_SHAPE', 'INFERENCE_FAILED', 'CANCELLED', 'CALL_CYCLE' or
 * 'INFER_CALLS_IN_FLIGHT'. Match on `code`, not
 * on the message, and not with instanceof.
 */
export interface InferError extends Error {
  readonly code?: string;
}

/** Log lines go to the server's log, prefixed with the model and instance. Non-string parts are written as JSON. */
export interface ModelLog {
  info(...parts: unknown[]): void;
  warn(...parts: unknown[]): void;
  error(...parts: unknown[]): void;
}

/** A `parameters` entry of the model config, in Triton's JSON form. */
export interface ModelConfigParameter {
  readonly string_value: string;
}

/** An `input` or `output` entry of the model config, in Triton's JSON form. */
export interface ModelConfigTensor {
  readonly name: string;
  /** The config's type name, e.g. 'TYPE_FP32' or 'TYPE_STRING'. */
  readonly data_type: string;
  /** Without the batch dimension when max_batch_size > 0. */
  readonly dims: readonly number[];
  readonly [field: string]: unknown;
}

/** The model's completed config, as `GET /v2/models/<model>/config` shows it. */
export interface ModelConfig {
  readonly name: string;
  readonly backend?: string;
  readonly max_batch_size: number;
  readonly input: readonly ModelConfigTensor[];
  readonly output: readonly ModelConfigTensor[];
  /** `parameters { key: "k" value: { string_value: "v" } }` reads as `parameters.k.string_value`. */
  readonly parameters?: Readonly<Record<string, ModelConfigParameter>>;
  readonly [field: string]: unknown;
}

/** The model's view of the server, passed to initialize() and to every execute(). */
export interface ModelContext {
  /** The model's name. */
  readonly name: string;
  /** The version being served, e.g. '1'. */
  readonly version: string;
  /** This instance's name, e.g. 'text_features_0'; each instance has an isolate of its own. */
  readonly instance: string;
  readonly config: ModelConfig;
  readonly log: ModelLog;
  /**
   * Runs a request on any loaded model through the server's own entry, so
   * it is queued and batched like a client's. Calls may run side by side
   * (Promise.all), up to parameters.max_infer_calls_in_flight (default 64)
   * per execute(); the next one rejects at once with INFER_CALLS_IN_FLIGHT.
   * Rejects with an InferError. Calls still running when execute() ends, or
   * when every client of the batch went away, are cancelled: await them.
   * Each execute() gets a ctx of its own, and its calls count as that
   * execute's. While execute() waits on a call, its instance may run another
   * batch (a call back into this model, say), up to
   * parameters.max_concurrent_executes; past that, a call that could wait
   * on the very batches waiting for it fails at once with CALL_CYCLE.
   *
   * The type argument names the outputs expected; it is not checked.
   */
  infer<Outputs extends NamedTensors<Outputs> = TensorMap>(call: InferCall): Promise<InferResult<Outputs>>;
  /**
   * Runs a request on any loaded model and reads its responses as they
   * come: every response of a decoupled model, or the one answer of any
   * other. The call starts at once; what goes wrong before the first
   * response (an unknown model, a bad input) rejects the first next().
   *
   * Read it with `for await`. The callee is held back while the script does
   * not read: it waits in its own send() once the stream buffer (the
   * server's --stream-buffer-* flags, 16 responses by default) is full.
   * An error response rejects next() with an InferError and ends the
   * stream. Leaving the loop early (break, return, a throw), calling
   * return() or cancel(), or the execute() ending cancel the callee: its
   * send() answers false from then on. An open stream counts as one call
   * of parameters.max_infer_calls_in_flight until it ends; a call past the
   * limit throws at once with INFER_CALLS_IN_FLIGHT.
   */
  inferStream<Outputs extends NamedTensors<Outputs> = TensorMap>(call: InferCall): InferStream<Outputs>;
}

/**
 * One response read from ctx.inferStream. `final` is true on a response the
 * callee flagged as its last (`send(response, { final: true })`); a callee
 * that closes its request without one ends the stream after a response
 * with `final` false. A script forwarding the stream can pass it on.
 */
export interface StreamedResult<Outputs extends NamedTensors<Outputs> = TensorMap> extends InferResult<Outputs> {
  readonly final: boolean;
}

/** What ctx.inferStream returns: an async iterator of the callee's responses, and its own async iterable. */
export interface InferStream<Outputs extends NamedTensors<Outputs> = TensorMap> extends AsyncIterableIterator<StreamedResult<Outputs>> {
  /** The next response, or done after the last. One at a time: await each before asking for the next. */
  next(): Promise<IteratorResult<StreamedResult<Outputs>, undefined>>;
  /** Ends the stream and cancels the callee if it has not finished; `for await` calls it when the loop ends early. */
  return(): Promise<IteratorResult<StreamedResult<Outputs>, undefined>>;
  /** The same as return(), for code that is not iterating. */
  cancel(): Promise<void>;
}

/**
 * The class a model.ts exports as its default export. The server makes one
 * per instance, each in its own isolate.
 */
export interface ModelScript<Inputs extends NamedTensors<Inputs> = TensorMap> {
  /** Runs once per isolate, before any execute(); throwing fails the model's load. Same time limit as execute(). */
  initialize?(ctx: ModelContext): void | Promise<void>;
  /**
   * Answers a batch: one response per request, in order. With dynamic
   * batching the batch may hold several requests; each request may itself
   * carry several rows. Throwing fails every request of the batch; return
   * `{ error }` to fail one.
   */
  execute(requests: readonly InferRequest<Inputs>[], ctx: ModelContext): readonly InferResponse[] | Promise<readonly InferResponse[]>;
  /** Runs when the model unloads (or the server stops), within the same time limit. */
  finalize?(): void | Promise<void>;
}

/** Options of DecoupledRequest.send. */
export interface SendOptions {
  /** The last response of this request: nothing may be sent for it afterwards. Default false. */
  readonly final?: boolean;
}

/**
 * A request of a decoupled model (`model_transaction_policy { decoupled: true }`),
 * which answers with any number of responses, zero included, through send().
 */
export interface DecoupledRequest<Inputs extends NamedTensors<Inputs> = TensorMap> extends InferRequest<Inputs> {
  /**
   * Sends one response now: `{ outputs }`, checked like an execute() answer
   * of a model that is not decoupled, or `{ error }`, which fails this
   * response alone (later ones may follow). `send(undefined, { final: true })`
   * closes the request without a response. Responses reach the client in
   * the order sent. While the client has 16 responses (or 16 MiB) unread,
   * send() blocks until it reads more (the server's --stream-buffer-*
   * flags); that wait counts toward execute_timeout_ms.
   *
   * Answers false once the request is cancelled (the client went away or
   * stopped reading, or its deadline passed): the response is dropped, and
   * the script should stop working on this request. Throws on a send after
   * the final one, or after execute() resolved, and on a response that is not
   * plain data.
   */
  send(response: InferResponse | undefined, options?: SendOptions): boolean;
  /** Whether the request was cancelled; send() would answer false. */
  isCancelled(): boolean;
}

/**
 * The class a decoupled model's model.ts exports. execute() sends every
 * response through the requests' send() before it resolves; what it returns
 * is ignored, and a request it never closed gets a final response with no
 * outputs when it resolves. Throwing fails the requests that have not sent
 * their final response yet.
 */
export interface DecoupledModelScript<Inputs extends NamedTensors<Inputs> = TensorMap> {
  /** Runs once per isolate, before any execute(); throwing fails the model's load. */
  initialize?(ctx: ModelContext): void | Promise<void>;
  execute(requests: readonly DecoupledRequest<Inputs>[], ctx: ModelContext): void | Promise<void>;
  /** Runs when the model unloads (or the server stops). */
  finalize?(): void | Promise<void>;
}
