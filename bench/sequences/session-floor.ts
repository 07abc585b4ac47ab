/**
 * The reference line: the benchmark's model in an onnxruntime-node session
 * in this thread, with the options a Switchyard instance of it gets (one
 * intra-op thread), run back to back at one batch size. No scheduler, no
 * worker hand-off, no state bookkeeping: what one session on one thread can
 * do, in rows (steps) per second.
 */
import { nowMs } from '../latencies.ts';
import { STATE_WIDTH } from './state-mlp-repository.ts';

export interface FloorResult {
  readonly batchSize: number;
  readonly rowsPerSecond: number;
  /** Milliseconds per session.run. */
  readonly msPerRun: number;
}

export async function measureSessionFloor(modelPath: string, batchSizes: readonly number[], seconds: number): Promise<FloorResult[]> {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(modelPath, {
    intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionProviders: ['cpu'], logSeverityLevel: 3,
  });
  try {
    const results: FloorResult[] = [];
    for (const batchSize of batchSizes) {
      const values = new Float32Array(batchSize * STATE_WIDTH).map((_, i) => (i % 31) - 15);
      const feeds = {
        INPUT: new ort.Tensor('float32', values, [batchSize, STATE_WIDTH]),
        STATE_IN: new ort.Tensor('float32', values.slice(), [batchSize, STATE_WIDTH]),
      };
      const warmEnd = nowMs() + 300;
      while (nowMs() < warmEnd) await session.run(feeds);
      let runs = 0;
      const start = nowMs();
      while (nowMs() - start < seconds * 1000) {
        await session.run(feeds);
        runs++;
      }
      const ms = nowMs() - start;
      results.push({ batchSize, rowsPerSecond: (runs * batchSize * 1000) / ms, msPerRun: ms / runs });
    }
    return results;
  } finally {
    await session.release();
  }
}
