/**
 * Server-side statistics in Triton's JSON shape ({model_stats: [...]}),
 * read into counters, differenced across a window, and averaged per
 * request. Counts and nanoseconds arrive as numbers or as strings (64-bit
 * values in protobuf JSON), so everything is read as bigint.
 */

export interface ServerCounters {
  readonly inferenceCount: bigint;
  readonly executionCount: bigint;
  readonly successCount: bigint;
  readonly successNs: bigint;
  readonly failCount: bigint;
  readonly queueCount: bigint;
  readonly queueNs: bigint;
  readonly computeInputCount: bigint;
  readonly computeInputNs: bigint;
  readonly computeInferCount: bigint;
  readonly computeInferNs: bigint;
  readonly computeOutputCount: bigint;
  readonly computeOutputNs: bigint;
}

const FIELDS: readonly (keyof ServerCounters)[] = [
  'inferenceCount', 'executionCount', 'successCount', 'successNs', 'failCount', 'queueCount', 'queueNs',
  'computeInputCount', 'computeInputNs', 'computeInferCount', 'computeInferNs', 'computeOutputCount', 'computeOutputNs',
];

export const ZERO_COUNTERS: ServerCounters = Object.fromEntries(FIELDS.map((f) => [f, 0n])) as unknown as ServerCounters;

/** Statistics that do not have the expected shape. */
export class ServerStatsError extends Error {
  override readonly name = 'ServerStatsError';
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** A uint64 given as number, numeric string or bigint; absent is 0. */
export function toBigInt(value: unknown): bigint {
  if (value === undefined || value === null) return 0n;
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return BigInt(Math.trunc(value));
  if (typeof value === 'string' && /^\d+$/.test(value.trim())) return BigInt(value.trim());
  throw new ServerStatsError(`expected a count, got ${JSON.stringify(value)}`);
}

function duration(stats: Record<string, unknown>, key: string): [bigint, bigint] {
  const entry = record(stats[key]);
  return [toBigInt(entry['count']), toBigInt(entry['ns'])];
}

/**
 * Sums the entries of `model` (and only `version`, when given) in a
 * statistics response. Throws ServerStatsError when none is there.
 */
export function readCounters(response: unknown, model: string, version: string | undefined): ServerCounters {
  const entries = record(response)['model_stats'];
  if (!Array.isArray(entries)) throw new ServerStatsError('the statistics response has no model_stats list');
  const mine = entries
    .map(record)
    .filter((e) => e['name'] === model && (version === undefined || String(e['version'] ?? '') === version));
  if (mine.length === 0) {
    throw new ServerStatsError(`the statistics response has no entry for model '${model}'${version === undefined ? '' : ` version ${version}`}`);
  }
  let total: ServerCounters = ZERO_COUNTERS;
  for (const entry of mine) {
    const inference = record(entry['inference_stats']);
    const [successCount, successNs] = duration(inference, 'success');
    const [failCount] = duration(inference, 'fail');
    const [queueCount, queueNs] = duration(inference, 'queue');
    const [computeInputCount, computeInputNs] = duration(inference, 'compute_input');
    const [computeInferCount, computeInferNs] = duration(inference, 'compute_infer');
    const [computeOutputCount, computeOutputNs] = duration(inference, 'compute_output');
    total = add(total, {
      inferenceCount: toBigInt(entry['inference_count']),
      executionCount: toBigInt(entry['execution_count']),
      successCount, successNs, failCount, queueCount, queueNs,
      computeInputCount, computeInputNs, computeInferCount, computeInferNs, computeOutputCount, computeOutputNs,
    });
  }
  return total;
}

function combine(a: ServerCounters, b: ServerCounters, op: (x: bigint, y: bigint) => bigint): ServerCounters {
  return Object.fromEntries(FIELDS.map((f) => [f, op(a[f], b[f])])) as unknown as ServerCounters;
}

export function add(a: ServerCounters, b: ServerCounters): ServerCounters {
  return combine(a, b, (x, y) => x + y);
}

/** after - before; a counter that went backwards (server restart) counts from zero. */
export function subtract(after: ServerCounters, before: ServerCounters): ServerCounters {
  return combine(after, before, (x, y) => (x >= y ? x - y : x));
}

export interface ServerSummary {
  readonly inferenceCount: number;
  readonly executionCount: number;
  readonly successCount: number;
  readonly failCount: number;
  /** Averages per request, in ns. */
  readonly avgRequestNs: number;
  readonly avgQueueNs: number;
  readonly avgComputeInputNs: number;
  readonly avgComputeInferNs: number;
  readonly avgComputeOutputNs: number;
  /** Request time not spent queued or computing. */
  readonly avgOverheadNs: number;
}

function average(ns: bigint, count: bigint): number {
  return count > 0n ? Number(ns) / Number(count) : 0;
}

export function summarizeServer(delta: ServerCounters): ServerSummary {
  const avgRequestNs = average(delta.successNs, delta.successCount);
  const avgQueueNs = average(delta.queueNs, delta.queueCount);
  const avgComputeInputNs = average(delta.computeInputNs, delta.computeInputCount);
  const avgComputeInferNs = average(delta.computeInferNs, delta.computeInferCount);
  const avgComputeOutputNs = average(delta.computeOutputNs, delta.computeOutputCount);
  return {
    inferenceCount: Number(delta.inferenceCount),
    executionCount: Number(delta.executionCount),
    successCount: Number(delta.successCount),
    failCount: Number(delta.failCount),
    avgRequestNs,
    avgQueueNs,
    avgComputeInputNs,
    avgComputeInferNs,
    avgComputeOutputNs,
    avgOverheadNs: Math.max(0, avgRequestNs - avgQueueNs - avgComputeInputNs - avgComputeInferNs - avgComputeOutputNs),
  };
}
