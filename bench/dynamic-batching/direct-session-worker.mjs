// @ts-check
/**
 * Worker thread entry for the in-process limit: one onnxruntime-node
 * InferenceSession with the options Switchyard gives an instance of the
 * benchmark model (1 intra-op thread), run back to back on a pre-built input
 * at each batch size. No HTTP, no scheduler, no hand-off per request: the
 * most one session on one thread can do. Plain JavaScript, like
 * backends/onnxruntime/onnx-worker.mjs, because Node 20 gives workers no
 * TypeScript loader.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

/** @typedef {import('./direct-session.ts').DirectSessionInit} DirectSessionInit */
/** @typedef {import('./direct-session.ts').FromDirectWorker} FromDirectWorker */

const port = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);
const init = /** @type {DirectSessionInit} */ (workerData);

/**
 * @param {FromDirectWorker} message
 * @param {ArrayBuffer[]} [transfer]
 */
const post = (message, transfer = []) => port.postMessage(message, transfer);

/**
 * `batch` copies of the request row, as one [batch, features] tensor.
 * @param {Float32Array} row
 * @param {number} batch
 */
function batchOf(row, batch) {
  const data = new Float32Array(batch * row.length);
  for (let i = 0; i < batch; i++) data.set(row, i * row.length);
  return new ort.Tensor('float32', data, [batch, row.length]);
}

async function main() {
  const session = await ort.InferenceSession.create(init.modelPath, {
    intraOpNumThreads: init.intraOpThreads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
    logSeverityLevel: 3,
  });
  const row = new Float32Array(init.row);
  const first = await session.run({ [init.inputName]: batchOf(row, 1) });
  const reference = Float32Array.from(/** @type {Float32Array} */ (first[init.outputName]?.data));
  post({ kind: 'reference', output: reference.buffer }, [reference.buffer]);

  for (const batchSize of init.batchSizes) {
    const feeds = { [init.inputName]: batchOf(row, batchSize) };
    const warmEnd = performance.now() + init.warmupMs;
    while (performance.now() < warmEnd) await session.run(feeds);
    let runMs = new Float64Array(1024);
    let runs = 0;
    const start = performance.now();
    let now = start;
    while (now - start < init.durationMs) {
      const t0 = now;
      await session.run(feeds);
      now = performance.now();
      if (runs === runMs.length) {
        const grown = new Float64Array(runMs.length * 2);
        grown.set(runMs);
        runMs = grown;
      }
      runMs[runs++] = now - t0;
    }
    const samples = runMs.slice(0, runs);
    post({ kind: 'batch', batchSize, runs, seconds: (now - start) / 1000, runMs: samples.buffer }, [samples.buffer]);
  }
  await session.release();
  post({ kind: 'done' });
}

main().catch((err) => post({ kind: 'failed', message: err instanceof Error ? err.stack ?? err.message : String(err) }));
