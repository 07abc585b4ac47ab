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

const port = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);
const init = /** @type {WorkerInit} */ (workerData);

/** @type {Record<Exclude<OrtType, 'string'>, (b: ArrayBuffer) => ArrayBufferView>} */
const VIEW_OF = {
  float32: (b) => new Float32Array(b), float64: (b) => new Float64Array(b), float16: (b) => new Uint16Array(b),
  int8: (b) => new Int8Array(b), uint8: (b) => new Uint8Array(b), int16: (b) => new Int16Array(b),
  uint16: (b) => new Uint16Array(b), int32: (b) => new Int32Array(b), uint32: (b) => new Uint32Array(b),
  int64: (b) => new BigInt64Array(b), uint64: (b) => new BigUint64Array(b), bool: (b) => new Uint8Array(b),
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
  if (t.type === 'string') return new ort.Tensor('string', [.../** @type {readonly string[]} */ (t.data)], [...t.dims]);
  const view = VIEW_OF[t.type](/** @type {ArrayBuffer} */ (t.data));
  return new ort.Tensor(t.type, /** @type {never} */ (view), [...t.dims]);
}

/**
 * @param {string} name
 * @param {ort.Tensor} tensor
 * @param {ArrayBuffer[]} transfer
 * @returns {WireTensor}
 */
function fromOrt(name, tensor, transfer) {
  const type = /** @type {OrtType} */ (tensor.type);
  if (type === 'string') return { name, type, dims: tensor.dims, data: /** @type {string[]} */ (tensor.data) };
  const view = /** @type {ArrayBufferView} */ (tensor.data);
  let buffer = /** @type {ArrayBuffer} */ (view.buffer);
  if (view.byteOffset !== 0 || buffer.byteLength !== view.byteLength) {
    buffer = buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
  }
  transfer.push(buffer);
  return { name, type, dims: tensor.dims, data: buffer };
}

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
      try {
        /** @type {Record<string, ort.Tensor>} */
        const feeds = {};
        for (const input of run.inputs) feeds[input.name] = toOrt(input);
        const outputs = await session.run(feeds, [...run.outputs]);
        results.push({ id: run.id, outputs: run.outputs.map((name) => fromOrt(name, /** @type {ort.Tensor} */ (outputs[name]), transfer)) });
      } catch (err) {
        results.push({ id: run.id, error: messageOf(err) });
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
