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
  /** Export the nv_inference_first_response_histogram_ms histogram (request to first response). Default false, as tritonserver. */
  readonly histogramLatencies?: boolean;
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

export function compileMetricsOptions(options: MetricsOptions = {}): CompiledMetricsOptions {
  const intervalMs = options.intervalMs ?? DEFAULT_METRICS_INTERVAL_MS;
  if (!Number.isInteger(intervalMs) || intervalMs < 1) throw new RangeError(`metrics intervalMs ${intervalMs}: expected a whole number of milliseconds, at least 1`);
  return Object.freeze({
    summaryLatencies: options.summaryLatencies ?? false,
    summaryQuantiles: Object.freeze([...(options.summaryQuantiles ?? DEFAULT_SUMMARY_QUANTILES)]),
    counterLatencies: options.counterLatencies ?? true,
    histogramLatencies: options.histogramLatencies ?? false,
    cpuMetrics: options.cpuMetrics ?? true,
    intervalMs,
    processMetrics: options.processMetrics ?? true,
  });
}

/** The keys `--metrics-config` takes, as tritonserver names them. */
export const METRICS_CONFIG_KEYS = ['summary_latencies', 'summary_quantiles', 'counter_latencies', 'histogram_latencies'] as const;

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
