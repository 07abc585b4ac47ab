// @ts-check
/**
 * Worker thread entry: owns one InferenceSession. session.run blocks the
 * thread it runs on, which is why it runs here and not on the event loop.
 * Plain JavaScript (type-checked through JSDoc) so that a worker starts
 * without a TypeScript loader; Node 20 gives workers none.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

/** @typedef {import('./worker-protocol.ts').WireTensor} WireTensor */
/** @typedef {import('./worker-protocol.ts').WorkerInit} WorkerInit */
/** @typedef {import('./worker-protocol.ts').ToWorker} ToWorker */
/** @typedef {import('./worker-protocol.ts').FromWorker} FromWorker */
/** @typedef {import('./worker-protocol.ts').SignatureEntry} SignatureEntry */
/** @typedef {import('./worker-protocol.ts').WireRun} WireRun */
/** @typedef {import('./worker-protocol.ts').WireResult} WireResult */
/** @typedef {import('./ort-types.ts').OrtType} OrtType */

// onnxruntime-node's binding cannot read a Float16Array: handed one for a
// float16 tensor it sees zero bytes ("not enough space: expected 6, got 0").
// onnxruntime-common converts float16 data to a Float16Array wherever the
// global exists (Node 24), so this thread, which runs only ONNX Runtime, goes
// without it, and float16 travels as Uint16Array bits as on Node 20 and 22.
Reflect.deleteProperty(globalThis, 'Float16Array');

const port = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);
const init = /** @type {import('./worker-protocol.ts').WorkerData} */ (workerData);
const stopFlag = new Int32Array(init.stop);
/** The instance gave this worker up: no run may start, and no answer is wanted. */
const stopped = () => Atomics.load(stopFlag, 0) !== 0;

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
 * @param {FromWorker} message
 * @param {ArrayBuffer[]} [transfer]
 */
function post(message, transfer = []) {
  port.postMessage(message, transfer);
}

/**
 * @param {readonly ort.InferenceSession.ValueMetadata[]} metadata
 * @returns {SignatureEntry[]}
 */
function signatureOf(metadata) {
  return metadata.map((m) => ({
    name: m.name,
    type: m.isTensor ? m.type : 'non-tensor',
    shape: m.isTensor ? m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)) : [],
  }));
}

/**
 * @param {WireTensor} t
 * @returns {ort.Tensor}
 */
function toOrt(t) {
  if (t.type === 'string') return new ort.Tensor('string', stringsOf(t.data, t.byteLength), [...t.dims]);
  const [size, view] = VIEW_OF[t.type];
  return new ort.Tensor(t.type, /** @type {never} */ (view(/** @type {ArrayBuffer} */ (t.data), t.byteLength / size)), [...t.dims]);
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
 * The wire form of strings, in a buffer of its own to transfer.
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
 * An output ONNX Runtime allocated, as a whole buffer of its own, ready to
 * transfer. It is copied when it shares memory with anything else moving in
 * the same message (a pool buffer going back, another output).
 * @param {string} name
 * @param {ort.Tensor} tensor
 * @param {ArrayBuffer[]} transfer
 * @returns {WireTensor}
 */
function fromOrt(name, tensor, transfer) {
  const type = /** @type {OrtType} */ (tensor.type);
  if (type === 'string') {
    const buffer = wireOf(/** @type {string[]} */ (tensor.data));
    transfer.push(buffer);
    return { name, type, dims: tensor.dims, data: buffer, byteLength: buffer.byteLength };
  }
  const view = /** @type {ArrayBufferView} */ (tensor.data);
  let buffer = /** @type {ArrayBuffer} */ (view.buffer);
  if (view.byteOffset !== 0 || buffer.byteLength !== view.byteLength || transfer.includes(buffer)) {
    buffer = buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
  }
  transfer.push(buffer);
  return { name, type, dims: tensor.dims, data: buffer, byteLength: buffer.byteLength };
}

/** Nanoseconds between two performance.now() readings. */
const ns = (/** @type {number} */ from, /** @type {number} */ to) => Math.round((to - from) * 1e6);

/** @param {unknown} err */
const messageOf = (err) => (err instanceof Error ? err.message : String(err));

async function main() {
  const { options } = init;
  /** @type {ort.InferenceSession} */
  let session;
  try {
    session = await ort.InferenceSession.create(init.modelPath, {
      intraOpNumThreads: options.intraOpNumThreads,
      interOpNumThreads: options.interOpNumThreads,
      graphOptimizationLevel: options.graphOptimizationLevel,
      executionProviders: options.executionProvider === 'cuda' ? [{ name: 'cuda', deviceId: options.deviceId }] : ['cpu'],
      logSeverityLevel: 3,
    });
  } catch (err) {
    post({ kind: 'failed', message: messageOf(err) });
    return;
  }
  post({ kind: 'ready', inputs: signatureOf(session.inputMetadata), outputs: signatureOf(session.outputMetadata) });

  /**
   * Runs a message's session.runs in order. Answers travel back together,
   * except that once a millisecond has passed the ones ready so far are sent
   * ahead, so a long run never holds back a finished one for long.
   */
  /** @param {readonly WireRun[]} runs */
  async function runAll(runs) {
    /** @type {WireResult[]} */
    let results = [];
    /** @type {ArrayBuffer[]} */
    let transfer = [];
    let since = performance.now();
    for (const run of runs) {
      if (stopped()) process.exit(0);
      // The input buffers go back with the answer, whatever it is: they belong to the pool.
      /** @type {ArrayBuffer[]} */
      const inputBuffers = [];
      for (const input of run.inputs) {
        if (input.data instanceof ArrayBuffer && !inputBuffers.includes(input.data)) inputBuffers.push(input.data);
      }
      const preallocated = new Map((run.outputBuffers ?? []).map((o) => [o.name, o]));
      const outputBuffers = (run.outputBuffers ?? []).map((o) => /** @type {ArrayBuffer} */ (o.data));
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
      try {
        /** @type {Record<string, ort.Tensor>} */
        const feeds = {};
        for (const input of run.inputs) feeds[input.name] = toOrt(input);
        // A tensor in fetches is written in place; null lets ONNX Runtime allocate the output.
        /** @type {Record<string, ort.Tensor | null>} */
        const fetches = {};
        for (const name of run.outputs) {
          const out = preallocated.get(name);
          fetches[name] = out ? toOrt(out) : null;
        }
        lap('inferNs');
        const outputs = await session.run(feeds, fetches);
        if (stopped()) process.exit(0);
        lap('outputNs');
        /** @type {ArrayBuffer[]} */
        const moving = [...inputBuffers, ...outputBuffers];
        // The binding hands back its own copy of a preallocated output; ours already holds the data.
        const wire = run.outputs.map((name) => {
          const out = preallocated.get(name);
          return out ? { ...out, preallocated: true } : fromOrt(name, /** @type {ort.Tensor} */ (outputs[name]), moving);
        });
        lap('outputNs');
        transfer.push(...moving);
        results.push({ id: run.id, outputs: wire, inputBuffers, timing });
      } catch (err) {
        lap(stage);
        transfer.push(...inputBuffers, ...outputBuffers);
        results.push({ id: run.id, error: messageOf(err), inputBuffers, outputBuffers, timing });
      }
      if (performance.now() - since > 1) {
        post({ kind: 'results', results }, transfer);
        results = [];
        transfer = [];
        since = performance.now();
      }
    }
    if (results.length > 0) post({ kind: 'results', results }, transfer);
  }

  /** Messages are handled strictly one after another, so runs keep their order. */
  let queue = Promise.resolve();
  port.on('message', (/** @type {ToWorker} */ message) => {
    if (message.kind === 'stop') {
      // Between runs: the queued ones see the flag and end at once, then the thread exits.
      queue = queue.then(() => process.exit(0));
      return;
    }
    if (message.kind === 'close') {
      queue = queue.then(() => session.release()).finally(() => {
        post({ kind: 'closed' });
        port.close();
      });
      return;
    }
    queue = queue.then(() => runAll(message.runs));
  });
}

void main();
