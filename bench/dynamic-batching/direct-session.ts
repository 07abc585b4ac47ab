/**
 * The in-process limit (mode c): onnxruntime-node called directly in a worker
 * thread (direct-session-worker.mjs), session.run back to back at each batch
 * size. Its best inferences per second is what Switchyard's batched
 * throughput is compared against.
 */
import { Worker } from 'node:worker_threads';
import { LatencyRecorder } from '../latencies.ts';

export interface DirectSessionInit {
  readonly modelPath: string;
  readonly inputName: string;
  readonly outputName: string;
  /** One request's input row; every batch is copies of it. */
  readonly row: readonly number[];
  readonly intraOpThreads: number;
  readonly batchSizes: readonly number[];
  /** Runs before measuring each batch size. */
  readonly warmupMs: number;
  /** Measured time per batch size. */
  readonly durationMs: number;
}

export type FromDirectWorker =
  | { kind: 'reference'; output: ArrayBuffer }
  | { kind: 'batch'; batchSize: number; runs: number; seconds: number; runMs: ArrayBuffer }
  | { kind: 'done' }
  | { kind: 'failed'; message: string };

export interface DirectBatchResult {
  readonly batchSize: number;
  readonly runs: number;
  readonly inferencesPerSecond: number;
  /** Time of one session.run at this batch size, milliseconds. */
  readonly runP50: number;
  readonly runP99: number;
}

export interface DirectSessionResult {
  /** The model's output for the request row at batch 1, to check the server's answers against. */
  readonly reference: Float32Array;
  readonly batches: readonly DirectBatchResult[];
  /** The batch size with the most inferences per second. */
  readonly best: DirectBatchResult;
}

export async function measureDirectSession(init: DirectSessionInit): Promise<DirectSessionResult> {
  const worker = new Worker(new URL('./direct-session-worker.mjs', import.meta.url), { workerData: init });
  let reference: Float32Array | undefined;
  const batches: DirectBatchResult[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      worker.on('error', reject);
      worker.on('exit', (code) => reject(new Error(`the direct session worker exited with code ${code}`)));
      worker.on('message', (m: FromDirectWorker) => {
        if (m.kind === 'reference') reference = new Float32Array(m.output);
        else if (m.kind === 'batch') batches.push(summarise(m));
        else if (m.kind === 'failed') reject(new Error(`direct session: ${m.message}`));
        else resolve();
      });
    });
  } finally {
    worker.removeAllListeners();
    await worker.terminate();
  }
  if (!reference || batches.length === 0) throw new Error('the direct session worker reported no results');
  const best = batches.reduce((a, b) => (b.inferencesPerSecond > a.inferencesPerSecond ? b : a));
  return { reference, batches, best };
}

function summarise(m: Extract<FromDirectWorker, { kind: 'batch' }>): DirectBatchResult {
  const recorder = new LatencyRecorder();
  for (const ms of new Float64Array(m.runMs)) recorder.record(ms);
  const { p50, p99 } = recorder.summary();
  return { batchSize: m.batchSize, runs: m.runs, inferencesPerSecond: (m.runs * m.batchSize) / m.seconds, runP50: p50, runP99: p99 };
}
