/**
 * What the metrics endpoint exports and how often it samples the host:
 * options (all optional, defaults documented), compiled once into a
 * readonly form. parseMetricsSetting reads tritonserver's
 * `--metrics-config <key>=<value>` settings.
 */
import { didYouMean } from '../config/did-you-mean.ts';

/** One quantile a summary reports, with the rank error Triton's syntax gives it (`0.9:0.01`). */
export interface SummaryQuantile {
  readonly quantile: number;
  readonly error: number;
}

export interface MetricsOptions {
  /** Export the nv_inference_*_summary_us summaries (per-request latencies). Default false, as tritonserver. */
  readonly summaryLatencies?: boolean;
  /** The quantiles those summaries report. Default 0.5:0.05, 0.9:0.01, 0.95:0.001, 0.99:0.001, 0.999:0.001, as tritonserver. */
  readonly summaryQuantiles?: readonly SummaryQuantile[];
  /**
   * Export the latency histograms: tritonserver's nv_inference_first_response_histogram_ms (request to first response)
   * and Switchyard's switchyard_{request,queue,compute}_duration_ms. Default false, as tritonserver.
   */
  readonly histogramLatencies?: boolean;
  /**
   * Upper bounds, in milliseconds, of the switchyard_*_duration_ms histogram buckets (+Inf is always added):
   * positive, finite, strictly increasing, 1 to MAX_HISTOGRAM_BUCKETS of them. Default DEFAULT_LATENCY_BUCKETS_MS.
   * The first-response histogram keeps tritonserver's buckets.
   */
  readonly histogramBuckets?: readonly number[];
  /** Export the cumulative nv_inference_*_duration_us counters. Default true, as tritonserver. */
  readonly counterLatencies?: boolean;
  /** Export nv_cpu_utilization and the nv_cpu_memory_* gauges. Default true. */
  readonly cpuMetrics?: boolean;
  /** Milliseconds between two CPU samples (nv_cpu_utilization covers the last one). Default 2000, tritonserver's --metrics-interval-ms. */
  readonly intervalMs?: number;
  /** Add prom-client's default process_* and nodejs_* series. Default true. */
  readonly processMetrics?: boolean;
}

export type CompiledMetricsOptions = Required<MetricsOptions>;

export const DEFAULT_SUMMARY_QUANTILES: readonly SummaryQuantile[] = [
  { quantile: 0.5, error: 0.05 }, { quantile: 0.9, error: 0.01 }, { quantile: 0.95, error: 0.001 },
  { quantile: 0.99, error: 0.001 }, { quantile: 0.999, error: 0.001 },
];

export const DEFAULT_METRICS_INTERVAL_MS = 2000;

/** Buckets of the switchyard_*_duration_ms histograms, in milliseconds: 100 µs to 5 s, about three per decade. */
export const DEFAULT_LATENCY_BUCKETS_MS: readonly number[] = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

/** The most buckets histogram_buckets may set: each is a series per model version and family. */
export const MAX_HISTOGRAM_BUCKETS = 64;

export function compileMetricsOptions(options: MetricsOptions = {}): CompiledMetricsOptions {
  const intervalMs = options.intervalMs ?? DEFAULT_METRICS_INTERVAL_MS;
  if (!Number.isInteger(intervalMs) || intervalMs < 1) throw new RangeError(`metrics intervalMs ${intervalMs}: expected a whole number of milliseconds, at least 1`);
  return Object.freeze({
    summaryLatencies: options.summaryLatencies ?? false,
    summaryQuantiles: Object.freeze([...(options.summaryQuantiles ?? DEFAULT_SUMMARY_QUANTILES)]),
    counterLatencies: options.counterLatencies ?? true,
    histogramLatencies: options.histogramLatencies ?? false,
    histogramBuckets: Object.freeze(checkHistogramBuckets(options.histogramBuckets ?? DEFAULT_LATENCY_BUCKETS_MS)),
    cpuMetrics: options.cpuMetrics ?? true,
    intervalMs,
    processMetrics: options.processMetrics ?? true,
  });
}

/** The keys `--metrics-config` takes, as tritonserver names them. */
export const METRICS_CONFIG_KEYS = ['summary_latencies', 'summary_quantiles', 'counter_latencies', 'histogram_latencies', 'histogram_buckets'] as const;

/**
 * Reads one `<key>=<value>` setting into the options it changes. Throws an
 * Error saying what is wrong and what would be right.
 */
export function parseMetricsSetting(setting: string): MetricsOptions {
  const eq = setting.indexOf('=');
  if (eq < 0) throw new Error(`expected <key>=<value>, e.g. summary_latencies=true (keys: ${METRICS_CONFIG_KEYS.join(', ')})`);
  const key = setting.slice(0, eq).trim();
  const value = setting.slice(eq + 1).trim();
  switch (key) {
    case 'summary_latencies': return { summaryLatencies: parseSettingBool(key, value) };
    case 'counter_latencies': return { counterLatencies: parseSettingBool(key, value) };
    case 'histogram_latencies': return { histogramLatencies: parseSettingBool(key, value) };
    case 'summary_quantiles': return { summaryQuantiles: parseQuantiles(value) };
    case 'histogram_buckets': return { histogramBuckets: parseBuckets(value) };
    default: {
      const guess = didYouMean(key, METRICS_CONFIG_KEYS);
      throw new Error(`unknown key '${key}'${guess ? `; did you mean '${guess}'?` : ''} (keys: ${METRICS_CONFIG_KEYS.join(', ')})`);
    }
  }
}

function parseSettingBool(key: string, value: string): boolean {
  const lower = value.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(lower)) return true;
  if (['false', '0', 'no', 'off'].includes(lower)) return false;
  throw new Error(`${key}=${value}: expected true or false`);
}

/** `0.5:0.05,0.9:0.01`: quantiles in (0, 1], each with a rank error in [0, 1); no quantile twice. */
function parseQuantiles(value: string): SummaryQuantile[] {
  const example = 'e.g. summary_quantiles=0.5:0.05,0.9:0.01,0.99:0.001';
  if (value === '') throw new Error(`summary_quantiles is empty: give <quantile>:<error> pairs, ${example}`);
  const seen = new Set<number>();
  return value.split(',').map((pair) => {
    const parts = pair.trim().split(':');
    const [q, e] = parts.map((p) => (/^\s*\d*\.?\d+(e-?\d+)?\s*$/i.test(p) ? Number(p) : Number.NaN));
    if (parts.length !== 2 || q === undefined || e === undefined || Number.isNaN(q) || Number.isNaN(e)) {
      throw new Error(`summary_quantiles: '${pair}' is not <quantile>:<error>, ${example}`);
    }
    if (!(q > 0 && q <= 1)) throw new Error(`summary_quantiles: quantile ${q} in '${pair}' is outside (0, 1]`);
    if (!(e >= 0 && e < 1)) throw new Error(`summary_quantiles: error ${e} in '${pair}' is outside [0, 1)`);
    if (seen.has(q)) throw new Error(`summary_quantiles: quantile ${q} appears twice`);
    seen.add(q);
    return { quantile: q, error: e };
  });
}

const BUCKETS_EXAMPLE = 'e.g. histogram_buckets=1,5,10,50,100';
/** A decimal number, signed so that a negative bound is refused as negative rather than as not a number. */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
/** How much of a bad bound an error message repeats. */
const SHOWN_CHARS = 40;

/** `1,5,10`: bucket upper bounds in milliseconds, checked by checkHistogramBuckets. */
function parseBuckets(value: string): number[] {
  if (value === '') throw new Error(`histogram_buckets is empty: give bucket upper bounds in milliseconds, ${BUCKETS_EXAMPLE}`);
  const parts = value.split(',');
  if (parts.length > MAX_HISTOGRAM_BUCKETS) throw new Error(`histogram_buckets: ${parts.length} bounds given, at most ${MAX_HISTOGRAM_BUCKETS}`);
  return checkHistogramBuckets(parts.map((part) => {
    const text = part.trim();
    if (!DECIMAL.test(text)) {
      const shown = text.length > SHOWN_CHARS ? `${text.slice(0, SHOWN_CHARS)}...` : text;
      throw new Error(`histogram_buckets: '${shown}' is not a number of milliseconds, ${BUCKETS_EXAMPLE}`);
    }
    return Number(text);
  }));
}

/** Returns `buckets` if they are 1 to MAX_HISTOGRAM_BUCKETS positive finite numbers in strictly increasing order; throws otherwise. */
function checkHistogramBuckets(buckets: readonly number[]): number[] {
  if (buckets.length === 0) throw new Error(`histogram_buckets is empty: give bucket upper bounds in milliseconds, ${BUCKETS_EXAMPLE}`);
  if (buckets.length > MAX_HISTOGRAM_BUCKETS) throw new Error(`histogram_buckets: ${buckets.length} bounds given, at most ${MAX_HISTOGRAM_BUCKETS}`);
  buckets.forEach((bound, i) => {
    if (typeof bound !== 'number' || !Number.isFinite(bound)) throw new Error(`histogram_buckets: bound ${String(bound)} is not a finite number`);
    if (bound <= 0) throw new Error(`histogram_buckets: bound ${bound} is not positive`);
    const previous = buckets[i - 1];
    if (previous !== undefined && bound <= previous) {
      throw new Error(`histogram_buckets: ${bound} follows ${previous}; bounds must strictly increase`);
    }
  });
  return [...buckets];
}
