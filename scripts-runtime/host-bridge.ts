/**
 * The host side of the script boundary: tensors to and from the plain
 * { datatype, shape, data } form scripts see, with every value a script
 * hands back checked before it reaches the engine, and the bridge functions
 * (infer, log, and respond for decoupled models) that are all a script can call.
 */
import { bytesStrings, bytesTensor, forEachBytesElement } from '../engine/bytes-tensor.ts';
import type { TensorSpec } from '../engine/config/compiled-model-config.ts';
import type { InferenceRequest, Mutable, ParameterValue } from '../engine/inference-request.ts';
import type { Logger } from '../engine/logger.ts';
import type { BufferPool } from '../engine/memory/buffer-pool.ts';
import { markedIfOwned } from '../engine/memory/buffer-lease.ts';
import { isMovable, ownedCopy } from '../engine/memory/owned-buffer.ts';
import { serverError } from '../engine/errors.ts';
import type { InferFunction, StreamingInferFunction } from '../engine/infer-function.ts';
import type { InferenceResponse } from '../engine/inference-response.ts';
import { checkedProduct, formatShape, isDataType, type BytesTensor, type DataType, type FixedDataType, type Tensor } from '../engine/tensor.ts';
import type { ExecuteCalls } from './execute-calls.ts';
import type { HostBridge, ScriptInferAnswer, ScriptStreamOperation, ScriptTensor } from './sandbox.ts';
import { ScriptStreams, type ScriptStreamAnswer } from './script-streams.ts';

type TypedArrayClass =
  | Uint8ArrayConstructor | Int8ArrayConstructor | Uint16ArrayConstructor | Int16ArrayConstructor
  | Uint32ArrayConstructor | Int32ArrayConstructor | Float32ArrayConstructor | Float64ArrayConstructor
  | BigInt64ArrayConstructor | BigUint64ArrayConstructor;

/** The typed array a script sees for each datatype. FP16 and BF16 arrive as their raw 16-bit patterns. */
export const TYPED_ARRAYS: Readonly<Record<FixedDataType, TypedArrayClass>> = {
  BOOL: Uint8Array, UINT8: Uint8Array, INT8: Int8Array, UINT16: Uint16Array, INT16: Int16Array,
  FP16: Uint16Array, BF16: Uint16Array, UINT32: Uint32Array, INT32: Int32Array, FP32: Float32Array,
  FP64: Float64Array, INT64: BigInt64Array, UINT64: BigUint64Array,
};


/** A problem with a value a script handed over; the message names where it is. */
export class ScriptValueError extends Error {
  override readonly name = 'ScriptValueError';
}

/**
 * An engine tensor in the script's form. Fixed-size data goes in a buffer of
 * its own, listed in `transfer` so that it moves into the isolate: a pooled
 * tensor's own buffer when the tensor fills most of it (a small tensor is
 * copied and its buffer goes back to `pool`), or a copy of anything else
 * (which may be a view into a request body that must stay where it is).
 */
export function toScriptTensor(tensor: Tensor, transfer: ArrayBuffer[], pool?: BufferPool, binary = false): ScriptTensor {
  if (tensor.datatype === 'BYTES') {
    return { datatype: 'BYTES', shape: [...tensor.shape], data: binary ? bytesCopies(tensor, transfer) : bytesStrings(tensor) };
  }
  const Array = TYPED_ARRAYS[tensor.datatype];
  const raw = tensor.raw;
  const owned = tensor.pooled === true && isMovable(raw, true);
  // A pooled buffer is a whole size class: move it only when the tensor fills most of it, else copy and give it back.
  const moveWhole = owned && (!pool || raw.byteLength * 2 > raw.buffer.byteLength);
  const buffer = moveWhole ? raw.buffer as ArrayBuffer : ownedCopy(raw).buffer as ArrayBuffer;
  // Moved into the isolate, the buffer never comes back: the pool forgets it. Copied, it goes back now.
  if (owned && moveWhole) pool?.disown(raw.buffer as ArrayBuffer);
  if (owned && !moveWhole) pool!.release(raw.buffer as ArrayBuffer);
  transfer.push(buffer);
  return { datatype: tensor.datatype, shape: [...tensor.shape], data: new Array(buffer, 0, raw.byteLength / Array.BYTES_PER_ELEMENT) };
}

/** A BYTES tensor's elements byte for byte: views into one copy, which moves into the isolate. */
function bytesCopies(tensor: BytesTensor, transfer: ArrayBuffer[]): Uint8Array[] {
  const elements: Uint8Array[] = [];
  forEachBytesElement(tensor, (element) => elements.push(element));
  const copy = new Uint8Array(elements.reduce((sum, e) => sum + e.byteLength, 0));
  let at = 0;
  const views = elements.map((e) => {
    copy.set(e, at);
    at += e.byteLength;
    return copy.subarray(at - e.byteLength, at);
  });
  transfer.push(copy.buffer);
  return views;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A tensor a script handed over, checked: a known datatype (or the
 * config's), a shape of whole numbers, and data of that datatype with one
 * element per position. `data` may be the datatype's typed array, or a plain
 * array (numbers, bigints, booleans; strings or Uint8Arrays for BYTES).
 */
export function fromScriptTensor(name: string, value: unknown, where: string, spec?: TensorSpec): Tensor {
  if (!isObject(value)) throw new ScriptValueError(`${where} must be { datatype, shape, data }, got ${describe(value)}`);
  const written = value['datatype'] ?? spec?.datatype;
  if (!isDataType(written)) {
    throw new ScriptValueError(`${where} has datatype ${describe(written)}; use a KServe datatype such as 'FP32', 'INT64' or 'BYTES'`);
  }
  const datatype: DataType = written;
  if (spec && spec.datatype !== datatype) throw new ScriptValueError(`${where} is ${datatype} but the model config declares it ${spec.datatype}`);
  const shape = value['shape'];
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new ScriptValueError(`${where} has shape ${describe(shape)}; use an array of non-negative whole numbers`);
  }
  const count = checkedProduct(shape as number[]);
  const data = value['data'];
  const length = ArrayBuffer.isView(data) ? (data as unknown as { length: number }).length : Array.isArray(data) ? data.length : -1;
  if (length < 0) throw new ScriptValueError(`${where} has data ${describe(data)}; use a typed array or an array`);
  if (length !== count) {
    throw new ScriptValueError(`${where} has ${length} element(s) but shape ${formatShape(shape as number[])} holds ${count}`);
  }
  if (datatype === 'BYTES') {
    if (!Array.isArray(data)) throw new ScriptValueError(`${where} is BYTES: its data is an array of strings (or Uint8Arrays)`);
    data.forEach((e, i) => {
      if (typeof e !== 'string' && !(e instanceof Uint8Array)) {
        throw new ScriptValueError(`${where} element ${i} is ${describe(e)}; BYTES elements are strings or Uint8Arrays`);
      }
    });
    return bytesTensor(name, shape as number[], data as (string | Uint8Array)[]);
  }
  const Typed = TYPED_ARRAYS[datatype];
  let typed: ArrayBufferView;
  if (data instanceof Typed) {
    typed = data;
  } else if (Array.isArray(data)) {
    const big = Typed === BigInt64Array || Typed === BigUint64Array;
    try {
      typed = (Typed as { from(items: readonly unknown[]): ArrayBufferView }).from(data.map((e) => (big ? BigInt(e as never) : Number(e))));
    } catch {
      throw new ScriptValueError(`${where} is ${datatype} but its data holds a value that is not one`);
    }
  } else {
    throw new ScriptValueError(`${where} is ${datatype}, so its data is a ${Typed.name} (or an array), not a ${(data as object).constructor.name}`);
  }
  return { name, datatype, shape: shape as number[], raw: new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength) };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `[${value.slice(0, 4).map(describe).join(', ')}${value.length > 4 ? ', ...' : ''}]`;
  if (typeof value === 'string') return `'${value.length > 40 ? `${value.slice(0, 40)}...` : value}'`;
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'an object';
  return String(value);
}

export interface BridgeOptions {
  readonly modelName: string;
  readonly instance: string;
  readonly infer: InferFunction;
  /** The server's inferStream(), for ctx.inferStream; without it ctx.inferStream is refused. */
  readonly inferStream?: StreamingInferFunction;
  readonly logger: Logger;
  /**
   * The calls of the execute() numbered `batch` (0: initialize(), or the ctx it was given): their chain, limit
   * and signal; undefined when no such execute runs, and the call is refused.
   */
  readonly callsOf: (batch: number) => ExecuteCalls | undefined;
  /** Where the pooled memory of small answers goes back once copied for the script. */
  readonly bufferPool?: BufferPool;
  /** Decoupled models: where request.send() delivers, by batch and request. */
  readonly respond?: HostBridge['respond'];
}

/** The bridge one script instance gets: ctx.infer and ctx.inferStream into the server's facade, and ctx.log. */
export function createHostBridge(options: BridgeOptions): HostBridge {
  const prefix = `'${options.modelName}' (${options.instance})`;
  // The answer's pooled buffers are the bridge's now: each moves into the isolate or is copied and given back. A
  // ctx.infer answer comes with its pooled outputs marked (ownOutputs); a stream's responses come with a lease.
  const toScript = (response: InferenceResponse): ScriptInferAnswer => {
    const transfer: ArrayBuffer[] = [];
    const taken = response.lease?.take();
    const owned = taken && taken.length > 0 ? new Set<ArrayBufferLike>(taken) : undefined;
    const entries: [string, ScriptTensor][] = [];
    for (const t of response.outputs) entries.push([t.name, toScriptTensor(owned ? markedIfOwned(t, owned) : t, transfer, options.bufferPool)]);
    // Own properties whatever the names: an output named '__proto__' assigned into a literal would set its prototype.
    const outputs = Object.fromEntries(entries);
    return response.parameters ? { outputs, parameters: response.parameters } : { outputs };
  };
  const streams = options.inferStream ? new ScriptStreams(options.inferStream, toScript) : undefined;
  const callsFor = (batch: number): ExecuteCalls => {
    const calls = options.callsOf(batch);
    if (!calls) throw serverError('INFER_AFTER_EXECUTE', { model: options.modelName });
    return calls;
  };
  return {
    async infer(call: unknown, batch: number): Promise<ScriptInferAnswer> {
      try {
        const calls = callsFor(batch);
        const request = inferRequest(call, calls);
        calls.begin(request.modelName);
        return toScript(await options.infer(request).finally(() => calls.finish()));
      } catch (err) {
        return errorAnswer(err);
      }
    },
    async stream(operation: ScriptStreamOperation, batch: number): Promise<ScriptStreamAnswer> {
      try {
        if (!streams) throw new ScriptValueError('ctx.inferStream is not available to this model');
        if (operation.kind === 'open') {
          const calls = callsFor(batch);
          return await streams.open(inferRequest(operation.call, calls, 'ctx.inferStream'), calls);
        }
        return operation.kind === 'next' ? await streams.next(operation.stream) : streams.close(operation.stream);
      } catch (err) {
        return errorAnswer(err);
      }
    },
    log(level, text, batch) {
      const requests = batch === undefined ? undefined : options.callsOf(batch)?.requests;
      options.logger[level](`${prefix}${requests ? ` ${requests}` : ''}: ${text}`);
    },
    ...(options.respond ? { respond: options.respond } : {}),
  };
}

/** What the script's call rejects with: the message and, where the error has one, its catalogue code. */
function errorAnswer(err: unknown): { readonly error: string; readonly code?: string } {
  const code = (err as { code?: unknown }).code;
  return { error: err instanceof Error ? err.message : String(err), ...(typeof code === 'string' ? { code } : {}) };
}

/** A ctx.infer (or ctx.inferStream) call as an engine request, every field checked, carrying its execute's chain and signal. */
function inferRequest(call: unknown, calls: ExecuteCalls, api = 'ctx.infer'): InferenceRequest {
  if (!isObject(call)) throw new ScriptValueError(`${api} takes { model, inputs, outputs?, parameters?, version? }`);
  const model = call['model'];
  if (typeof model !== 'string' || model === '') throw new ScriptValueError(`${api}: 'model' must name a model, got ${describe(model)}`);
  const version = call['version'];
  if (version !== undefined && !(typeof version === 'string' || (typeof version === 'number' && Number.isInteger(version)))) {
    throw new ScriptValueError(`${api} to '${model}': 'version' must be a version number, got ${describe(version)}`);
  }
  const inputs = call['inputs'];
  if (!isObject(inputs)) throw new ScriptValueError(`${api} to '${model}': 'inputs' must map input names to tensors`);
  const outputs = call['outputs'];
  if (outputs !== undefined && !(Array.isArray(outputs) && outputs.every((o) => typeof o === 'string'))) {
    throw new ScriptValueError(`${api} to '${model}': 'outputs' must be an array of output names`);
  }
  const parameters = call['parameters'];
  if (parameters !== undefined && !isObject(parameters)) {
    throw new ScriptValueError(`${api} to '${model}': 'parameters' must map names to values`);
  }
  for (const [key, value] of Object.entries(parameters ?? {})) {
    if (!['string', 'number', 'boolean', 'bigint'].includes(typeof value)) {
      throw new ScriptValueError(`${api} to '${model}': parameter '${key}' is ${describe(value)}; parameters are strings, numbers or booleans`);
    }
  }
  const tensors: Tensor[] = [];
  for (const name of Object.keys(inputs)) tensors.push(fromScriptTensor(name, inputs[name], `${api} to '${model}': input '${name}'`));
  // Built field by field (no spread of a temporary object per optional field). A ctx.infer answer's pooled outputs
  // come marked, for toScript to move or copy (ownOutputs); a stream's responses keep their lease, which the stream
  // releases for any response the script never reads.
  const request: Mutable<InferenceRequest> = { modelName: model, inputs: tensors, callChain: calls.chain, signal: calls.signal };
  if (api === 'ctx.infer') request.ownOutputs = true;
  if (version !== undefined) request.modelVersion = String(version);
  if (outputs) request.outputs = outputs as string[];
  if (parameters) request.parameters = parameters as Record<string, ParameterValue>;
  if (calls.trace) request.trace = calls.trace.child();
  return request;
}
