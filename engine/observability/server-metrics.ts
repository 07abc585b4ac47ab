/**
 * Prometheus metrics for one InferenceEngine, under tritonserver's names and
 * labels (`model`, `version`) so that Triton dashboards and alerts work
 * unchanged, plus Switchyard's own `switchyard_*` series.
 *
 * Counters and gauges are read when scraped, from each READY version's
 * ModelStats and scheduler: there is no second set of books, and a version
 * that is unloaded drops out of the next scrape. Only what needs every
 * event rather than the sums listens on ModelStats as requests run: the
 * latency summaries and histograms (when asked for) and the ensemble step
 * histogram.
 */
import { Counter, Gauge, Histogram, Registry, Summary, collectDefaultMetrics } from 'prom-client';
import type { InferenceEngine } from '../inference-engine.ts';
import type { ModelVersion } from '../repository/model-version.ts';
import { renderBatchSizeHistogram } from './batch-size-histogram.ts';
import { HostUsage } from './host-usage.ts';
import { compileMetricsOptions, type CompiledMetricsOptions, type MetricsOptions } from './metrics-options.ts';
import { BATCH_CLOSE_REASONS, FAILURE_REASONS, type ModelStatisticsJson, type ModelStats, type StatDuration } from './model-stats.ts';

type ModelLabel = 'model' | 'version';
const MODEL_LABELS: readonly ModelLabel[] = ['model', 'version'];

/** Upper bounds, in microseconds, of the ensemble step duration buckets: 100 us to 10 s. */
export const STEP_DURATION_BUCKETS_US: readonly number[] = [
  100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 10_000_000,
];

/** How long a scrape waits for an isolate's heap size before it reports the last one it got (a busy script answers late). */
const HEAP_QUERY_TIMEOUT_MS = 250;

/** Triton's summaries forget observations older than this, over this many rotating buckets. */
const SUMMARY_MAX_AGE_SECONDS = 60;
const SUMMARY_AGE_BUCKETS = 5;

/** One READY version as a scrape sees it. */
interface VersionView {
  readonly version: ModelVersion;
  readonly labels: Readonly<Record<ModelLabel, string>>;
  readonly stats: ModelStatisticsJson;
}

const micros = (d: StatDuration): number => Math.round(d.ns / 1000);

const heapKey = (labels: Readonly<Record<string, string>>): string => `${labels['model']}\0${labels['version']}\0${labels['model_instance']}`;

/** Whether the version's scheduler forms batches whose close reasons it counts (dynamic batching, or the sequence batcher's oldest strategy). */
function formsBatches(version: ModelVersion): boolean {
  const scheduling = version.config?.scheduling;
  if (scheduling?.kind === 'dynamic') return scheduling.batching !== undefined;
  return scheduling?.kind === 'sequence' && scheduling.batching.strategy.kind === 'oldest';
}

/**
 * switchyard_batch_size, built at scrape time from each version's batch_stats
 * (which already counts every execution by size), so it always agrees with
 * the statistics extension. Each model gets buckets up to its own
 * max_batch_size.
 */
/** tritonserver's default buckets for the first-response histogram, in milliseconds. */
const FIRST_RESPONSE_BUCKETS_MS = [100, 500, 2000, 5000] as const;

/** The five per-request latency summaries, observed from ModelStats as requests succeed. */
interface LatencySummaries {
  readonly request: Summary<ModelLabel>;
  readonly queue: Summary<ModelLabel>;
  readonly computeInput: Summary<ModelLabel>;
  readonly computeInfer: Summary<ModelLabel>;
  readonly computeOutput: Summary<ModelLabel>;
}

/** Switchyard's per-request latency histograms (histogram_latencies), in milliseconds, observed from ModelStats as requests succeed. */
interface LatencyHistograms {
  readonly request: Histogram<ModelLabel>;
  readonly queue: Histogram<ModelLabel>;
  readonly compute: Histogram<ModelLabel>;
}

/** What this registry listens to on one version's stats. */
interface Attachment {
  readonly stats: ModelStats;
  readonly labels: Readonly<Record<ModelLabel, string>>;
  readonly stop: () => void;
  /** Step label sets this attachment observed, to remove with it. */
  readonly stepLabels: Map<string, Record<string, string>>;
}

export class ServerMetrics {
  /** Every family but switchyard_batch_size (see batch-size-histogram.ts); scrape() gives both. */
  private readonly registry = new Registry();
  private readonly options: CompiledMetricsOptions;
  private host: HostUsage | undefined;
  private readonly summaries: LatencySummaries | undefined;
  private readonly firstResponse: Histogram<ModelLabel> | undefined;
  private readonly histograms: LatencyHistograms | undefined;
  private readonly stepDuration: Histogram<ModelLabel | 'step' | 'step_model'>;
  /** By `model\0version`: the stats object listened to for that label set. */
  private readonly attached = new Map<string, Attachment>();
  /** Stats already looked at, whether or not they needed a listener: the per-request check stays one lookup. */
  private readonly seen = new WeakSet<ModelStats>();
  private unwatch: (() => void) | undefined;
  /** The versions of the scrape under way, read once and shared by every series. */
  private scrapeViews: readonly VersionView[] | undefined;
  /** Last heap size answered per isolate, for scrapes the isolate is too busy to answer in time. */
  private readonly lastHeap = new Map<string, number>();
  private closed = false;

  private constructor(private readonly engine: InferenceEngine, options: MetricsOptions) {
    this.options = compileMetricsOptions(options);
    const registry = this.registry;
    const views = (): readonly VersionView[] => this.views();

    const counter = (name: string, help: string, read: (view: VersionView) => number | undefined): void => {
      const metric: Counter<ModelLabel> = new Counter({
        name, help, labelNames: MODEL_LABELS, registers: [registry],
        collect: () => {
          metric.reset();
          for (const view of views()) {
            const value = read(view);
            if (value !== undefined) metric.inc(view.labels, value);
          }
        },
      });
    };
    const gauge = (name: string, help: string, read: (view: VersionView) => number | undefined): void => {
      const metric: Gauge<ModelLabel> = new Gauge({
        name, help, labelNames: MODEL_LABELS, registers: [registry],
        collect: () => {
          metric.reset();
          for (const view of views()) {
            const value = read(view);
            if (value !== undefined) metric.set(view.labels, value);
          }
        },
      });
    };

    counter('nv_inference_request_success', 'Requests answered successfully, whatever their batch size.',
      (v) => v.stats.inference_stats.success.count);
    const failure: Counter<ModelLabel | 'reason'> = new Counter({
      name: 'nv_inference_request_failure', labelNames: [...MODEL_LABELS, 'reason'], registers: [registry],
      help: 'Requests that failed after reaching the scheduler, by reason: REJECTED (queue full or timed out), CANCELED, BACKEND (the model failed), OTHER.',
      collect: () => {
        failure.reset();
        for (const view of views()) {
          const counts = view.version.stats.failureCounts();
          for (const reason of FAILURE_REASONS) failure.inc({ ...view.labels, reason }, counts[reason]);
        }
      },
    });
    counter('nv_inference_count', 'Inferences run: a request of batch size 4 counts 4.', (v) => v.stats.inference_count);
    counter('nv_inference_exec_count', 'Model executions: a dynamic batch formed from several requests counts once.', (v) => v.stats.execution_count);
    gauge('nv_inference_pending_request_count', 'Requests queued or executing in the model right now.',
      (v) => v.version.scheduler?.inflightCount());

    if (this.options.counterLatencies) {
      counter('nv_inference_request_duration_us', 'Total time successful requests spent in the server, in microseconds.',
        (v) => micros(v.stats.inference_stats.success));
      counter('nv_inference_queue_duration_us', 'Total time successful requests waited in the queue, in microseconds.',
        (v) => micros(v.stats.inference_stats.queue));
      counter('nv_inference_compute_input_duration_us', 'Total input preparation time of successful requests, in microseconds (a batch counts for each request in it).',
        (v) => micros(v.stats.inference_stats.compute_input));
      counter('nv_inference_compute_infer_duration_us', 'Total model run time of successful requests, in microseconds (a batch counts for each request in it).',
        (v) => micros(v.stats.inference_stats.compute_infer));
      counter('nv_inference_compute_output_duration_us', 'Total output preparation time of successful requests, in microseconds (a batch counts for each request in it).',
        (v) => micros(v.stats.inference_stats.compute_output));
    }

    gauge('nv_model_load_duration_secs', 'How long the version took to load, in seconds.',
      (v) => (v.version.loadDurationMs === undefined ? undefined : v.version.loadDurationMs / 1000));

    // Only models that use the response cache have cache series: response_cache enabled, or answers already counted.
    const cached = (v: VersionView): boolean => v.version.config?.responseCache === true
      || v.stats.inference_stats.cache_hit.count + v.stats.inference_stats.cache_miss.count > 0;
    counter('nv_cache_num_hits_per_model', 'Requests answered from the response cache.',
      (v) => (cached(v) ? v.stats.inference_stats.cache_hit.count : undefined));
    counter('nv_cache_num_misses_per_model', 'Requests the response cache did not hold.',
      (v) => (cached(v) ? v.stats.inference_stats.cache_miss.count : undefined));
    counter('nv_cache_hit_duration_per_model', 'Total time spent answering cache hits, in microseconds.',
      (v) => (cached(v) ? micros(v.stats.inference_stats.cache_hit) : undefined));
    counter('nv_cache_miss_duration_per_model', 'Total time spent on cache misses (lookup and insert), in microseconds.',
      (v) => (cached(v) ? micros(v.stats.inference_stats.cache_miss) : undefined));

    if (this.options.cpuMetrics) {
      const host = (): HostUsage | undefined => this.host;
      const hostGauge = (name: string, help: string, read: () => number): void => {
        const metric: Gauge = new Gauge({ name, help, registers: [registry], collect: () => { metric.set(read()); } });
      };
      hostGauge('nv_cpu_utilization', 'Share of all CPU cores\' time spent busy over the last sampling interval, from 0 to 1.', () => host()?.cpuUtilization() ?? 0);
      hostGauge('nv_cpu_memory_total_bytes', 'Memory (RAM) of the machine, in bytes.', () => host()?.memoryTotalBytes() ?? 0);
      hostGauge('nv_cpu_memory_used_bytes', 'Memory (RAM) of the machine in use, in bytes.', () => host()?.memoryUsedBytes() ?? 0);
    }

    if (this.options.summaryLatencies) {
      const percentiles = this.options.summaryQuantiles.map((q) => q.quantile);
      const summary = (name: string, help: string): Summary<ModelLabel> => new Summary({
        name, help, labelNames: MODEL_LABELS, registers: [registry], percentiles,
        maxAgeSeconds: SUMMARY_MAX_AGE_SECONDS, ageBuckets: SUMMARY_AGE_BUCKETS,
      });
      this.summaries = {
        request: summary('nv_inference_request_summary_us', 'Time each successful request spent in the server, in microseconds, over the last minute.'),
        queue: summary('nv_inference_queue_summary_us', 'Time each successful request waited in the queue, in microseconds, over the last minute.'),
        computeInput: summary('nv_inference_compute_input_summary_us', 'Input preparation time of each successful request\'s batch, in microseconds, over the last minute.'),
        computeInfer: summary('nv_inference_compute_infer_summary_us', 'Model run time of each successful request\'s batch, in microseconds, over the last minute.'),
        computeOutput: summary('nv_inference_compute_output_summary_us', 'Output preparation time of each successful request\'s batch, in microseconds, over the last minute.'),
      };
    }

    if (this.options.histogramLatencies) {
      this.firstResponse = new Histogram({
        name: 'nv_inference_first_response_histogram_ms', labelNames: MODEL_LABELS, registers: [registry],
        buckets: [...FIRST_RESPONSE_BUCKETS_MS],
        help: 'Time from a request\'s arrival to its first response, in milliseconds.',
      });
      const buckets = [...this.options.histogramBuckets];
      const histogram = (name: string, help: string): Histogram<ModelLabel> => new Histogram({
        name, help, labelNames: MODEL_LABELS, registers: [registry], buckets,
      });
      this.histograms = {
        request: histogram('switchyard_request_duration_ms', 'How long each successful request took in the server, from arrival to answer, in milliseconds.'),
        queue: histogram('switchyard_queue_duration_ms', 'How long each successful request waited in the queue before its execution, in milliseconds.'),
        compute: histogram('switchyard_compute_duration_ms',
          'Compute time (input preparation, model run, output preparation) of the execution each successful request was part of, in milliseconds; answers from the response cache are not observed.'),
      };
    }

    const closeReasons: Counter<ModelLabel | 'reason'> = new Counter({
      name: 'switchyard_batch_close_total', labelNames: [...MODEL_LABELS, 'reason'], registers: [registry],
      help: 'Batches the scheduler formed, by why it stopped adding requests (see batch_close_reasons in docs/statistics.md).',
      collect: () => {
        closeReasons.reset();
        for (const view of views()) {
          if (!formsBatches(view.version)) continue;
          for (const reason of BATCH_CLOSE_REASONS) closeReasons.inc({ ...view.labels, reason }, view.stats.batch_close_reasons[reason]);
        }
      },
    });
    const padding: Counter<ModelLabel | 'part'> = new Counter({
      name: 'switchyard_padded_batch_elements_total', labelNames: [...MODEL_LABELS, 'part'], registers: [registry],
      help: 'Elements of the padded inputs of batches that padded batching widened, by part: data (sent by clients) or padding (the pad value).',
      collect: () => {
        padding.reset();
        for (const view of views()) {
          const scheduling = view.version.config?.scheduling;
          if (scheduling?.kind !== 'dynamic' || !scheduling.batching?.padding) continue;
          const counts = view.version.stats.paddingCounts();
          padding.inc({ ...view.labels, part: 'data' }, counts.elements - counts.paddingElements);
          padding.inc({ ...view.labels, part: 'padding' }, counts.paddingElements);
        }
      },
    });
    gauge('switchyard_active_sequences', 'Sequences of a stateful model started and not yet ended (holding a slot or waiting for one).',
      (v) => v.version.scheduler?.activeSequenceCount?.());
    this.stepDuration = new Histogram({
      name: 'switchyard_ensemble_step_duration_us', labelNames: [...MODEL_LABELS, 'step', 'step_model'], registers: [registry],
      buckets: [...STEP_DURATION_BUCKETS_US],
      help: 'Time each successful call of an ensemble step to its model took, seen from the ensemble, in microseconds.',
    });
    const heap: Gauge<ModelLabel | 'model_instance'> = new Gauge({
      name: 'switchyard_script_isolate_heap_bytes', labelNames: [...MODEL_LABELS, 'model_instance'], registers: [registry],
      // Not 'instance': Prometheus sets that label on every scraped series itself.
      help: 'Bytes of V8 heap in use by each TypeScript model instance\'s isolate.',
      collect: async () => {
        const wanted = views().flatMap((view) => view.version.instances
          .filter((instance) => instance.heapUsedBytes !== undefined)
          .map((instance) => ({ labels: { ...view.labels, model_instance: instance.name }, instance })));
        const sizes = await Promise.all(wanted.map(({ labels, instance }) => this.heapOf(labels, instance.heapUsedBytes!.bind(instance))));
        const keys = new Set(wanted.map(({ labels }) => heapKey(labels)));
        for (const key of this.lastHeap.keys()) if (!keys.has(key)) this.lastHeap.delete(key);
        heap.reset();
        wanted.forEach(({ labels }, i) => heap.set(labels, sizes[i]!));
      },
    });

    if (this.options.processMetrics) collectDefaultMetrics({ register: registry });
  }

  /**
   * Metrics for `engine`: starts sampling the host and listening to its
   * versions, including ones it loads later. close() stops both.
   */
  static create(engine: InferenceEngine, options: MetricsOptions = {}): ServerMetrics {
    const metrics = new ServerMetrics(engine, options);
    if (metrics.options.cpuMetrics) metrics.host = HostUsage.start(metrics.options.intervalMs);
    metrics.unwatch = engine.watchVersions((version) => metrics.attach(version));
    return metrics;
  }

  /** The Content-Type of scrape()'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every series in Prometheus' text format. */
  async scrape(): Promise<string> {
    // Every series' collect runs synchronously at the start of metrics(): they share one reading of the versions.
    this.scrapeViews = this.readViews();
    try {
      const batchSizes = renderBatchSizeHistogram(this.scrapeViews.map((v) => ({
        labels: v.labels, maxBatchSize: v.version.config?.maxBatchSize ?? 0, batchStats: v.stats.batch_stats,
      })));
      // The registry ends its text with a newline and parts families with an empty line.
      return `${await this.registry.metrics()}\n${batchSizes}\n`;
    } finally {
      this.scrapeViews = undefined;
    }
  }

  /** Stops listening to the engine and sampling the host. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unwatch?.();
    this.host?.stop();
    for (const attachment of this.attached.values()) attachment.stop();
    this.attached.clear();
  }

  private views(): readonly VersionView[] {
    return this.scrapeViews ?? this.readViews();
  }

  /** The READY versions now, with one stats snapshot each; drops what it listened to on versions no longer there. */
  private readViews(): VersionView[] {
    const views = this.engine.readyVersions().map((version) => {
      const model = version.config!.name;
      const labels = { model, version: String(version.version) };
      return { version, labels, stats: version.stats.snapshot(model, labels.version) };
    });
    const live = new Set(views.map((v) => v.version.stats));
    for (const [key, attachment] of this.attached) {
      if (!live.has(attachment.stats)) this.detach(key, attachment);
    }
    return views;
  }

  /** Listens on a version's stats for what needs every event: summaries, and an ensemble's steps. */
  private attach(version: ModelVersion): void {
    const config = version.config;
    if (this.closed || !config || this.seen.has(version.stats)) return;
    this.seen.add(version.stats);
    const labels = { model: config.name, version: String(version.version) };
    const key = `${labels.model}\0${labels.version}`;
    const previous = this.attached.get(key);
    // A reload put a new version under the same labels: its series start again from zero.
    if (previous) this.detach(key, previous);
    const steps = config.scheduling.kind === 'ensemble' ? config.scheduling.plan.steps : undefined;
    const summaries = this.summaries;
    const histograms = this.histograms;
    const firstResponse = this.firstResponse;
    if (!summaries && !steps && !firstResponse) return;
    const stepLabels = new Map<string, Record<string, string>>();
    const answered = (ns: number): void => firstResponse?.observe(labels, ns / 1e6);
    // A model that is not decoupled answers once: its first response is its answer (a cached one too).
    const answersOnce = firstResponse !== undefined && !config.decoupled;
    const perRequest = summaries !== undefined || histograms !== undefined || answersOnce;
    const stop = version.stats.observe({
      ...(firstResponse && config.decoupled ? { firstResponse: answered } : {}),
      ...(perRequest ? {
        success: (totalNs, queueNs, timing) => {
          if (answersOnce) answered(totalNs);
          if (summaries) {
            summaries.request.observe(labels, totalNs / 1000);
            summaries.queue.observe(labels, queueNs / 1000);
            summaries.computeInput.observe(labels, timing.inputNs / 1000);
            summaries.computeInfer.observe(labels, timing.inferNs / 1000);
            summaries.computeOutput.observe(labels, timing.outputNs / 1000);
          }
          if (histograms) {
            histograms.request.observe(labels, totalNs / 1e6);
            histograms.queue.observe(labels, queueNs / 1e6);
            histograms.compute.observe(labels, (timing.inputNs + timing.inferNs + timing.outputNs) / 1e6);
          }
        },
        // A cached answer is a request served, as Triton counts it: it has a total and a queue time, and no compute.
        cacheHit: (totalNs, queueNs) => {
          if (answersOnce) answered(totalNs);
          if (summaries) {
            summaries.request.observe(labels, totalNs / 1000);
            summaries.queue.observe(labels, queueNs / 1000);
          }
          if (histograms) {
            histograms.request.observe(labels, totalNs / 1e6);
            histograms.queue.observe(labels, queueNs / 1e6);
          }
        },
      } : {}),
      ...(steps ? {
        step: (index, ok, ns) => {
          const step = steps[index];
          if (!ok || !step) return;
          let stepSet = stepLabels.get(step.label);
          if (!stepSet) {
            stepSet = { ...labels, step: step.label, step_model: step.modelName };
            stepLabels.set(step.label, stepSet);
          }
          this.stepDuration.observe(stepSet, ns / 1000);
        },
      } : {}),
    });
    this.attached.set(key, { stats: version.stats, labels, stop, stepLabels });
  }

  private detach(key: string, attachment: Attachment): void {
    attachment.stop();
    this.attached.delete(key);
    if (this.summaries) for (const summary of Object.values(this.summaries)) summary.remove(attachment.labels);
    for (const stepSet of attachment.stepLabels.values()) this.stepDuration.remove(stepSet);
    this.firstResponse?.remove(attachment.labels);
    if (this.histograms) for (const histogram of Object.values(this.histograms)) histogram.remove(attachment.labels);
  }

  /** An isolate's heap size, or the last one it gave when it does not answer in time. */
  private async heapOf(labels: Record<string, string>, ask: () => Promise<number>): Promise<number> {
    const key = heapKey(labels);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => { timer = setTimeout(resolve, HEAP_QUERY_TIMEOUT_MS, undefined); });
    try {
      const bytes = await Promise.race([ask(), late]);
      if (bytes !== undefined) this.lastHeap.set(key, bytes);
      return bytes ?? this.lastHeap.get(key) ?? 0;
    } finally {
      clearTimeout(timer);
    }
  }
}
