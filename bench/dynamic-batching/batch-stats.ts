/**
 * How the server batched a model during a window: two readings of
 * `GET /v2/models/<m>/stats` (Triton's statistics extension, plus
 * Switchyard's `batch_close_reasons`), one at each end, and their
 * difference. A server without the extension (501) or any other failure
 * gives the reason instead of numbers, and the report prints "n/a".
 */
import http from 'node:http';

export interface BatchCounters {
  readonly inferenceCount: number;
  readonly executionCount: number;
  /** Summed session.run time of every execution, from batch_stats (ns). */
  readonly computeInferNs: number;
  readonly closeReasons: Readonly<Record<string, number>>;
}

/** Counters, or why they could not be read. */
export type BatchStatsReading = { readonly ok: true; readonly counters: BatchCounters } | { readonly ok: false; readonly reason: string };

export interface BatchStatsWindow {
  /** inference_count / execution_count over the window. */
  readonly averageBatchSize: number;
  readonly executions: number;
  /** Time the model ran in the window (ms), summed over executions: divided by the window, the instance's busy share. */
  readonly computeMs: number;
  /** Batches closed in the window, per reason, only the reasons that occurred. */
  readonly closeReasons: Readonly<Record<string, number>>;
}

interface ModelStatsJson {
  readonly name?: string;
  readonly inference_count?: number;
  readonly execution_count?: number;
  readonly batch_close_reasons?: Readonly<Record<string, number>>;
  readonly batch_stats?: readonly { readonly compute_infer?: { readonly ns?: number } }[];
}

export async function readBatchStats(port: number, model: string): Promise<BatchStatsReading> {
  const { status, body } = await get(port, `/v2/models/${encodeURIComponent(model)}/stats`).catch((err: Error) => ({ status: 0, body: err.message }));
  if (status !== 200) return { ok: false, reason: status === 0 ? body : `HTTP ${status}` };
  let entries: readonly ModelStatsJson[];
  try {
    entries = ((JSON.parse(body) as { model_stats?: ModelStatsJson[] }).model_stats ?? []).filter((e) => e.name === model);
  } catch {
    return { ok: false, reason: 'unparsable statistics' };
  }
  if (entries.length === 0) return { ok: false, reason: 'no statistics for the model' };
  const closeReasons: Record<string, number> = {};
  let inferenceCount = 0;
  let executionCount = 0;
  let computeInferNs = 0;
  for (const e of entries) {
    for (const b of e.batch_stats ?? []) computeInferNs += b.compute_infer?.ns ?? 0;
    inferenceCount += e.inference_count ?? 0;
    executionCount += e.execution_count ?? 0;
    for (const [reason, count] of Object.entries(e.batch_close_reasons ?? {})) closeReasons[reason] = (closeReasons[reason] ?? 0) + count;
  }
  return { ok: true, counters: { inferenceCount, executionCount, computeInferNs, closeReasons } };
}

/** What happened between two readings; the first failed reading's reason when either failed. */
export function batchStatsBetween(start: BatchStatsReading, end: BatchStatsReading): BatchStatsWindow | string {
  if (!start.ok) return start.reason;
  if (!end.ok) return end.reason;
  const executions = end.counters.executionCount - start.counters.executionCount;
  const inferences = end.counters.inferenceCount - start.counters.inferenceCount;
  const closeReasons: Record<string, number> = {};
  for (const [reason, count] of Object.entries(end.counters.closeReasons)) {
    const delta = count - (start.counters.closeReasons[reason] ?? 0);
    if (delta > 0) closeReasons[reason] = delta;
  }
  const computeMs = (end.counters.computeInferNs - start.counters.computeInferNs) / 1e6;
  return { averageBatchSize: executions > 0 ? inferences / executions : Number.NaN, executions, computeMs, closeReasons };
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}
