// @ts-check
/**
 * Worker thread entry: owns one InferenceSession. session.run blocks the
 * thread it runs on, which is why it runs here and not on the event loop.
 * Plain JavaScript (type-checked through JSDoc) so that a worker starts
 * without a TypeScript loader; Node 20 gives workers none.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { messageOf, ortSessionOptions, runWire } from './ort-run.mjs';

/** @typedef {import('./worker-protocol.ts').WorkerInit} WorkerInit */
/** @typedef {import('./worker-protocol.ts').ToWorker} ToWorker */
/** @typedef {import('./worker-protocol.ts').FromWorker} FromWorker */
/** @typedef {import('./worker-protocol.ts').SignatureEntry} SignatureEntry */
/** @typedef {import('./worker-protocol.ts').WireRun} WireRun */
/** @typedef {import('./worker-protocol.ts').WireResult} WireResult */

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

async function main() {
  const { options } = init;
  /** @type {ort.InferenceSession} */
  let session;
  try {
    session = await ort.InferenceSession.create(init.modelPath, ortSessionOptions(options));
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
      results.push(await runWire(ort.Tensor, (feeds, fetches) => session.run(feeds, fetches), run, transfer));
      if (stopped()) process.exit(0);
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
