/**
 * The statistics extension's answer (`GET /v2/models[/<m>[/versions/<v>]]/stats`
 * / ModelStatistics), typed, in Triton's JSON shape with snake_case keys.
 * Both transports read their answer through `modelStatisticsResponse`, so
 * they return equal objects; a field the server leaves out reads as zero or
 * empty. Counts and nanoseconds are uint64 on the wire and numbers here:
 * exact up to 2^53 (about 104 days of cumulative nanoseconds).
 */

/** How many times something happened, and the nanoseconds it took in all. */
export interface StatisticDuration {
  count: number;
  ns: number;
}

/** Per-request outcomes and where their time went. */
export interface InferStatistics {
  success: StatisticDuration;
  fail: StatisticDuration;
  queue: StatisticDuration;
  compute_input: StatisticDuration;
  compute_infer: StatisticDuration;
  compute_output: StatisticDuration;
  cache_hit: StatisticDuration;
  cache_miss: StatisticDuration;
}

/** Per-response statistics of decoupled models, keyed by response index. */
export interface InferResponseStatistics {
  compute_infer: StatisticDuration;
  compute_output: StatisticDuration;
  success: StatisticDuration;
  fail: StatisticDuration;
  empty_response: StatisticDuration;
  cancel: StatisticDuration;
}

/** Compute time of the executions that ran `batch_size` inferences together. */
export interface InferBatchStatistics {
  batch_size: number;
  compute_input: StatisticDuration;
  compute_infer: StatisticDuration;
  compute_output: StatisticDuration;
}

export interface MemoryUsage {
  type: string;
  id: number;
  byte_size: number;
}

/** One model version's statistics. */
export interface ModelStatistics {
  name: string;
  version: string;
  /** Milliseconds since the epoch of the last inference; 0 before the first. */
  last_inference: number;
  /** Inferences run (a batch of 4 counts 4). */
  inference_count: number;
  /** Model executions (a batch of 4 counts 1). */
  execution_count: number;
  inference_stats: InferStatistics;
  batch_stats: InferBatchStatistics[];
  memory_usage: MemoryUsage[];
  response_stats: Record<string, InferResponseStatistics>;
  /**
   * Switchyard's own: how many batches closed for each reason
   * (max_batch_size, preferred_batch_size, queue_delay, shape_mismatch,
   * queue_empty). Empty from a Triton server.
   */
  batch_close_reasons: Record<string, number>;
  /** Switchyard's own, for ensembles: each step's calls to its model. Empty for other models and from a Triton server. */
  step_stats: EnsembleStepStatistics[];
}

export interface EnsembleStepStatistics {
  /** The step as Switchyard's messages name it: its pipeline name, or its position, with the model. */
  step: string;
  model: string;
  success: StatisticDuration;
  fail: StatisticDuration;
  /** Requests for which the step did not run (a condition failed, or a tensor it needs was not there); 0 from older servers. */
  skipped: number;
}

export interface ModelStatisticsResponse {
  model_stats: ModelStatistics[];
}

type Json = Record<string, unknown>;

const object = (v: unknown): Json => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const text = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));

/** A uint64 as a number, whether it came as a number, a numeric string or a bigint; absent is 0. */
function count(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return 0;
}

function duration(v: unknown): StatisticDuration {
  const d = object(v);
  return { count: count(d['count']), ns: count(d['ns']) };
}

function durations<K extends string>(v: unknown, keys: readonly K[]): Record<K, StatisticDuration> {
  const o = object(v);
  return Object.fromEntries(keys.map((k) => [k, duration(o[k])])) as Record<K, StatisticDuration>;
}

const INFER_KEYS = ['success', 'fail', 'queue', 'compute_input', 'compute_infer', 'compute_output', 'cache_hit', 'cache_miss'] as const;
const RESPONSE_KEYS = ['compute_infer', 'compute_output', 'success', 'fail', 'empty_response', 'cancel'] as const;

function modelStatistics(v: unknown): ModelStatistics {
  const e = object(v);
  return {
    name: text(e['name']),
    version: text(e['version']),
    last_inference: count(e['last_inference']),
    inference_count: count(e['inference_count']),
    execution_count: count(e['execution_count']),
    inference_stats: durations(e['inference_stats'], INFER_KEYS),
    batch_stats: list(e['batch_stats']).map((b) => {
      const batch = object(b);
      return {
        batch_size: count(batch['batch_size']),
        compute_input: duration(batch['compute_input']),
        compute_infer: duration(batch['compute_infer']),
        compute_output: duration(batch['compute_output']),
      };
    }),
    memory_usage: list(e['memory_usage']).map((m) => {
      const usage = object(m);
      return { type: text(usage['type']), id: count(usage['id']), byte_size: count(usage['byte_size']) };
    }),
    response_stats: Object.fromEntries(Object.entries(object(e['response_stats'])).map(([k, r]) => [k, durations(r, RESPONSE_KEYS)])),
    batch_close_reasons: Object.fromEntries(Object.entries(object(e['batch_close_reasons'])).map(([k, n]) => [k, count(n)])),
    step_stats: list(e['step_stats']).map((s) => {
      const step = object(s);
      return {
        step: text(step['step']), model: text(step['model']), success: duration(step['success']), fail: duration(step['fail']),
        skipped: count(step['skipped']),
      };
    }),
  };
}

/** A statistics answer from either transport, with every field present. */
export function modelStatisticsResponse(json: unknown): ModelStatisticsResponse {
  return { model_stats: list(object(json)['model_stats']).map(modelStatistics) };
}
