// @ts-check
/**
 * One session.run in the wire form, shared by the worker thread and the
 * instance's inline session: wire tensors in, ort.Tensors for the session,
 * wire tensors out, and the run's timing split into building the inputs,
 * the run itself, and reading the outputs. Plain JavaScript (type-checked
 * through JSDoc) because the worker starts without a TypeScript loader.
 * Needs only onnxruntime-common's Tensor, handed in, so that importing it
 * loads no native binding.
 */

/** @typedef {import('./worker-protocol.ts').WireTensor} WireTensor */
/** @typedef {import('./worker-protocol.ts').WireRun} WireRun */
/** @typedef {import('./worker-protocol.ts').WireResult} WireResult */
/** @typedef {import('./ort-types.ts').OrtType} OrtType */
/** @typedef {import('onnxruntime-common').Tensor} OrtTensor */
/** @typedef {typeof import('onnxruntime-common').Tensor} OrtTensorClass */
/**
 * A session's run: feeds, and fetches (a tensor to write into, or null to let
 * ONNX Runtime allocate), to outputs by name; synchronous or not.
 * @typedef {(feeds: Record<string, OrtTensor>, fetches: Record<string, OrtTensor | null>) =>
 *   Record<string, OrtTensor> | Promise<Record<string, OrtTensor>>} SessionRun
 */

/**
 * Typed views over the first `n` elements of a buffer, which may be larger
 * than the tensor (pooled buffers come in size classes).
 * @type {Record<Exclude<OrtType, 'string'>, [number, (b: ArrayBuffer, n: number) => ArrayBufferView]>}
 */
const VIEW_OF = {
  float32: [4, (b, n) => new Float32Array(b, 0, n)], float64: [8, (b, n) => new Float64Array(b, 0, n)],
  float16: [2, (b, n) => new Uint16Array(b, 0, n)], int8: [1, (b, n) => new Int8Array(b, 0, n)],
  uint8: [1, (b, n) => new Uint8Array(b, 0, n)], int16: [2, (b, n) => new Int16Array(b, 0, n)],
  uint16: [2, (b, n) => new Uint16Array(b, 0, n)], int32: [4, (b, n) => new Int32Array(b, 0, n)],
  uint32: [4, (b, n) => new Uint32Array(b, 0, n)], int64: [8, (b, n) => new BigInt64Array(b, 0, n)],
  uint64: [8, (b, n) => new BigUint64Array(b, 0, n)], bool: [1, (b, n) => new Uint8Array(b, 0, n)],
};

/**
 * @param {OrtTensorClass} Tensor
 * @param {WireTensor} t
 * @returns {OrtTensor}
 */
function toOrt(Tensor, t) {
  if (t.type === 'string') return new Tensor('string', stringsOf(t.data, t.byteLength), [...t.dims]);
  const [size, view] = VIEW_OF[t.type];
  return new Tensor(t.type, /** @type {never} */ (view(t.data, t.byteLength / size)), [...t.dims]);
}

/**
 * BYTES elements from the wire form: each a 4-byte little-endian length, then UTF-8.
 * @param {ArrayBuffer} data
 * @param {number} byteLength
 * @returns {string[]}
 */
function stringsOf(data, byteLength) {
  const bytes = Buffer.from(data, 0, byteLength);
  /** @type {string[]} */
  const strings = [];
  for (let at = 0; at < byteLength;) {
    const length = bytes.readUInt32LE(at);
    strings.push(length === 0 ? '' : bytes.toString('utf8', at + 4, at + 4 + length));
    at += 4 + length;
  }
  return strings;
}

/**
 * The wire form of strings, in a buffer of its own.
 * @param {readonly string[]} strings
 * @returns {ArrayBuffer}
 */
function wireOf(strings) {
  let total = 0;
  for (const s of strings) total += 4 + Buffer.byteLength(s, 'utf8');
  const buffer = new ArrayBuffer(total);
  const bytes = Buffer.from(buffer);
  let at = 0;
  for (const s of strings) {
    const length = bytes.write(s, at + 4, 'utf8');
    bytes.writeUInt32LE(length, at);
    at += 4 + length;
  }
  return buffer;
}

/**
 * An output ONNX Runtime allocated, as a whole buffer of its own (ready to
 * transfer, or to own on this thread). It is copied when it shares memory
 * with anything else leaving the run (a pool buffer, another output).
 * @param {string} name
 * @param {OrtTensor} tensor
 * @param {ArrayBuffer[]} moving
 * @returns {WireTensor}
 */
function fromOrt(name, tensor, moving) {
  const type = /** @type {OrtType} */ (tensor.type);
  if (type === 'string') {
    const buffer = wireOf(/** @type {string[]} */ (tensor.data));
    moving.push(buffer);
    return { name, type, dims: tensor.dims, data: buffer, byteLength: buffer.byteLength };
  }
  const view = /** @type {ArrayBufferView} */ (tensor.data);
  let buffer = /** @type {ArrayBuffer} */ (view.buffer);
  if (view.byteOffset !== 0 || buffer.byteLength !== view.byteLength || moving.includes(buffer)) {
    buffer = buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
  }
  moving.push(buffer);
  return { name, type, dims: tensor.dims, data: buffer, byteLength: buffer.byteLength };
}

/** Nanoseconds between two performance.now() readings. */
const ns = (/** @type {number} */ from, /** @type {number} */ to) => Math.round((to - from) * 1e6);

/** @param {unknown} err */
export const messageOf = (err) => (err instanceof Error ? err.message : String(err));

/**
 * Runs one WireRun through `run`. The answer carries the input buffers back
 * (they belong to the pool) whatever happens, and the preallocated output
 * buffers either as outputs or, on failure, beside the error. `moving` gets
 * every buffer the answer holds, for a worker to transfer. A synchronous
 * `run` gives a synchronous answer; a promise-returning one, a promise.
 * @param {OrtTensorClass} Tensor
 * @param {SessionRun} run
 * @param {WireRun} wire
 * @param {ArrayBuffer[]} moving
 * @returns {WireResult | Promise<WireResult>}
 */
export function runWire(Tensor, run, wire, moving) {
  /** @type {ArrayBuffer[]} */
  const inputBuffers = [];
  for (const input of wire.inputs) {
    if (!inputBuffers.includes(input.data)) inputBuffers.push(input.data);
  }
  const preallocated = new Map((wire.outputBuffers ?? []).map((o) => [o.name, o]));
  const outputBuffers = (wire.outputBuffers ?? []).map((o) => o.data);
  const timing = { inputNs: 0, inferNs: 0, outputNs: 0 };
  /** The stage running now; a failure's time is counted there. @type {keyof typeof timing} */
  let stage = 'inputNs';
  let mark = performance.now();
  /** Ends the current stage and starts the next. @param {keyof typeof timing} next */
  const lap = (next) => {
    const now = performance.now();
    timing[stage] = ns(mark, now);
    stage = next;
    mark = now;
  };
  /** @param {unknown} err @returns {WireResult} */
  const failed = (err) => {
    lap(stage);
    moving.push(...inputBuffers, ...outputBuffers);
    return { id: wire.id, error: messageOf(err), inputBuffers, outputBuffers, timing };
  };
  /** @param {Record<string, OrtTensor>} outputs @returns {WireResult} */
  const finish = (outputs) => {
    lap('outputNs');
    /** @type {ArrayBuffer[]} */
    const leaving = [...inputBuffers, ...outputBuffers];
    // The binding hands back its own copy of a preallocated output; ours already holds the data.
    const outs = wire.outputs.map((name) => {
      const out = preallocated.get(name);
      return out ? { ...out, preallocated: true } : fromOrt(name, /** @type {OrtTensor} */ (outputs[name]), leaving);
    });
    lap('outputNs');
    moving.push(...leaving);
    return { id: wire.id, outputs: outs, inputBuffers, timing };
  };
  /** @type {Record<string, OrtTensor> | Promise<Record<string, OrtTensor>>} */
  let outputs;
  try {
    /** @type {Record<string, OrtTensor>} */
    const feeds = {};
    for (const input of wire.inputs) feeds[input.name] = toOrt(Tensor, input);
    // A tensor in fetches is written in place; null lets ONNX Runtime allocate the output.
    /** @type {Record<string, OrtTensor | null>} */
    const fetches = {};
    for (const name of wire.outputs) {
      const out = preallocated.get(name);
      fetches[name] = out ? toOrt(Tensor, out) : null;
    }
    lap('inferNs');
    outputs = run(feeds, fetches);
  } catch (err) {
    return failed(err);
  }
  if (!(outputs instanceof Promise)) {
    try {
      return finish(outputs);
    } catch (err) {
      return failed(err);
    }
  }
  return outputs.then(finish).catch(failed);
}

/**
 * The options a session opens with, the same on the worker and inline.
 * @param {import('./worker-protocol.ts').WorkerSessionOptions} options
 */
export function ortSessionOptions(options) {
  return {
    intraOpNumThreads: options.intraOpNumThreads,
    interOpNumThreads: options.interOpNumThreads,
    graphOptimizationLevel: options.graphOptimizationLevel,
    executionProviders: options.executionProvider === 'cuda' ? [{ name: 'cuda', deviceId: options.deviceId }] : ['cpu'],
    logSeverityLevel: /** @type {const} */ (3),
    ...(options.allowSpinning === false
      ? { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } }
      : {}),
  };
}
