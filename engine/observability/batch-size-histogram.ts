/**
 * switchyard_batch_size, rendered from each version's batch_stats when
 * scraped. It is a Prometheus histogram, but not a prom-client Histogram:
 * each model has buckets up to its own max_batch_size, where prom-client
 * gives one bucket layout to every series of a metric, and a scrape reads
 * counts per batch size, where prom-client observes one value at a time. So
 * this family writes its own lines in the text format, and ServerMetrics
 * appends them to what its prom-client registry writes.
 */
import type { BatchStatisticsJson } from './model-stats.ts';

export const BATCH_SIZE_METRIC = {
  name: 'switchyard_batch_size',
  help: 'Batch sizes the model ran: one observation per successful execution, of the inferences it held.',
} as const;

/** One version's series. */
export interface BatchSizeSeries {
  readonly labels: Readonly<Record<string, string>>;
  readonly maxBatchSize: number;
  readonly batchStats: readonly BatchStatisticsJson[];
}

/** Upper bounds of the batch size buckets of a model: 1, 2, 4, ... below max_batch_size, then max_batch_size itself. */
export function batchSizeBuckets(maxBatchSize: number): number[] {
  const buckets: number[] = [];
  for (let b = 1; b < maxBatchSize; b *= 2) buckets.push(b);
  buckets.push(Math.max(1, maxBatchSize));
  return buckets;
}

/** The family in Prometheus' text format (version 0.0.4), HELP and TYPE first, with no trailing newline. */
export function renderBatchSizeHistogram(series: readonly BatchSizeSeries[]): string {
  const { name, help } = BATCH_SIZE_METRIC;
  const lines = [`# HELP ${name} ${escapeText(help)}`, `# TYPE ${name} histogram`];
  for (const { labels, maxBatchSize, batchStats } of series) {
    let count = 0;
    let sum = 0;
    for (const entry of batchStats) {
      count += entry.compute_infer.count;
      sum += entry.batch_size * entry.compute_infer.count;
    }
    for (const le of batchSizeBuckets(maxBatchSize)) {
      const below = batchStats.reduce((n, e) => n + (e.batch_size <= le ? e.compute_infer.count : 0), 0);
      lines.push(`${name}_bucket${labelSet({ ...labels, le: String(le) })} ${below}`);
    }
    lines.push(`${name}_bucket${labelSet({ ...labels, le: '+Inf' })} ${count}`);
    lines.push(`${name}_sum${labelSet(labels)} ${sum}`);
    lines.push(`${name}_count${labelSet(labels)} ${count}`);
  }
  return lines.join('\n');
}

function labelSet(labels: Readonly<Record<string, string>>): string {
  const parts = Object.entries(labels).map(([key, value]) => `${key}="${escapeText(value).replace(/"/g, '\\"')}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/** Backslashes and newlines escaped, as the text format wants in HELP and label values. */
function escapeText(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}
