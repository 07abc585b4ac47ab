/**
 * Everything the perf tool prints: perf_analyzer's settings header, a block
 * per load level, the closing summary and table, the CSV file, the JSON
 * report, and the live progress line. Pure formatting, apart from Progress,
 * which writes to a stream.
 */
import type { PerfOptions } from './args.ts';
import type { LevelResult, TrialProgress } from './profiler.ts';
import { reportedPercentiles } from './stats.ts';

export interface LevelReport {
  /** Concurrency, or requests per second. */
  readonly level: number;
  readonly result: LevelResult;
}

export interface ServerStatsStatus {
  readonly available: boolean;
  /** Why not, in the server's words. */
  readonly message: string | undefined;
}

export interface RunReport {
  readonly options: PerfOptions;
  readonly sequenceModel: boolean;
  readonly serverStats: ServerStatsStatus;
  readonly levels: readonly LevelReport[];
}

/** C++ iostream's default: 6 significant digits, no trailing zeros. */
export function sig6(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  return String(Number(value.toPrecision(6)));
}

/** Nanoseconds as whole microseconds, as perf_analyzer prints them. */
export function usec(ns: number): number {
  return Math.floor(ns / 1000);
}

export function levelLabel(options: PerfOptions): string {
  return options.load.kind === 'concurrency' ? 'Concurrency' : 'Request Rate';
}

function latencyName(options: PerfOptions): string {
  return options.percentile === undefined ? 'Average' : `p${options.percentile}`;
}

export function formatSettings(options: PerfOptions, sequenceModel: boolean, serverStats: ServerStatsStatus): string {
  const lines = [
    '*** Measurement Settings ***',
    `  Batch size: ${options.batchSize}`,
    `  Service Kind: Triton (${options.protocol === 'grpc' ? 'gRPC' : 'HTTP'} ${options.url}${options.streaming ? ', streaming' : ''})`,
    '  Using "time_windows" mode for stabilization',
    `  Measurement window: ${options.measurementIntervalMs} msec`,
  ];
  if (options.load.kind === 'request-rate') lines.push(`  Using ${options.load.distribution} distribution on request generation`);
  lines.push('  Using asynchronous calls for inference');
  if (sequenceModel) {
    lines.push(`  Sequence length: ${options.sequence.length ?? 'from the input data, else 20'} (±${options.sequence.lengthVariation}%)`);
  }
  lines.push(`  Stabilizing using ${options.percentile === undefined ? 'average' : `p${options.percentile}`} latency`);
  if (!serverStats.available) lines.push(`Server-side statistics: not available (${serverStats.message ?? 'unknown reason'})`);
  return `${lines.join('\n')}\n\n`;
}

export function formatLevel(options: PerfOptions, report: LevelReport, sequenceModel: boolean): string {
  const { result } = report;
  const lines = [
    options.load.kind === 'concurrency'
      ? `Request concurrency: ${report.level}`
      : `Request Rate: ${sig6(report.level)} inference requests per seconds`,
    '  Client: ',
    `    Request count: ${result.client.requestCount}`,
  ];
  if (result.client.errorCount > 0) {
    const [first] = result.client.errors.keys();
    lines.push(`    Failed request count: ${result.client.errorCount} (first: ${first ?? 'unknown error'})`);
  }
  if (result.client.delayedCount > 0) lines.push(`    Delayed Request Count: ${result.client.delayedCount}`);
  if (sequenceModel) lines.push(`    Sequence count: ${result.client.sequenceCount} (${sig6(result.sequencesPerSec)} seq/sec)`);
  lines.push(`    Throughput: ${sig6(result.inferPerSec)} infer/sec`);
  if (result.latency !== undefined) {
    if (options.percentile === undefined) {
      lines.push(`    Avg latency: ${usec(result.latency.avgNs)} usec (standard deviation ${usec(result.latency.stdNs)} usec)`);
    }
    for (const [p, ns] of result.latency.percentilesNs) lines.push(`    p${p} latency: ${usec(ns)} usec`);
  }
  const server = result.server;
  if (server !== undefined) {
    lines.push('  Server: ');
    if (server.successCount === 0) {
      lines.push(`    Request count: 0`);
    } else {
      lines.push(
        `    Inference count: ${server.inferenceCount}`,
        `    Execution count: ${server.executionCount}`,
        `    Successful request count: ${server.successCount}`,
        `    Avg request latency: ${usec(server.avgRequestNs)} usec (overhead ${usec(server.avgOverheadNs)} usec + queue ${usec(server.avgQueueNs)} usec + compute input ${usec(server.avgComputeInputNs)} usec + compute infer ${usec(server.avgComputeInferNs)} usec + compute output ${usec(server.avgComputeOutputNs)} usec)`,
      );
    }
  }
  return `${lines.join('\n')}\n\n`;
}

function formatLevelValue(options: PerfOptions, level: number): string {
  return options.load.kind === 'concurrency' ? String(level) : sig6(level);
}

function percentileList(options: PerfOptions): number[] {
  return reportedPercentiles(options.percentile);
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padStart(widths[i] ?? 0)).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** perf_analyzer's closing lines, then one table row per level (latencies in usec). */
export function formatSummary(report: RunReport): string {
  const { options } = report;
  const lines = [`Inferences/Second vs. Client ${latencyName(options)} Batch Latency`];
  for (const { level, result } of report.levels) {
    const latency = result.stabilizingLatencyNs === undefined ? 'n/a' : `${usec(result.stabilizingLatencyNs)} usec`;
    lines.push(`${levelLabel(options)}: ${formatLevelValue(options, level)}, throughput: ${sig6(result.inferPerSec)} infer/sec, latency ${latency}`);
  }
  const percentiles = percentileList(options);
  const header = [levelLabel(options), 'Inferences/Second', 'Avg latency', ...percentiles.map((p) => `p${p} latency`), 'Failed', 'Stable'];
  const rows = report.levels.map(({ level, result }) => [
    formatLevelValue(options, level),
    sig6(result.inferPerSec),
    result.latency === undefined ? '' : String(usec(result.latency.avgNs)),
    ...percentiles.map((p) => {
      const ns = result.latency?.percentilesNs.get(p);
      return ns === undefined ? '' : String(usec(ns));
    }),
    String(result.client.errorCount),
    result.stable ? 'yes' : 'no',
  ]);
  return `${lines.join('\n')}\n\n${table(header, rows)}\n(latencies in usec)\n`;
}

/**
 * perf_analyzer's CSV (-f): rows sorted by throughput ascending, times in
 * usec. Client Send and Client Recv are not measured by this client and
 * are left empty, as are the server columns when the server has no
 * statistics; Network+Server Send/Recv is then the whole client latency
 * less whatever the server accounts for.
 */
export function formatCsv(report: RunReport): string {
  const { options } = report;
  const percentiles = percentileList(options);
  const header = [
    levelLabel(options), 'Inferences/Second', 'Client Send', 'Network+Server Send/Recv', 'Server Queue',
    'Server Compute Input', 'Server Compute Infer', 'Server Compute Output', 'Client Recv',
    ...percentiles.map((p) => `p${p} latency`),
  ];
  const rows = [...report.levels]
    .sort((a, b) => a.result.inferPerSec - b.result.inferPerSec)
    .map(({ level, result }) => {
      const server = result.server;
      const avgNs = result.latency?.avgNs;
      const accountedNs = server === undefined
        ? 0
        : server.avgQueueNs + server.avgComputeInputNs + server.avgComputeInferNs + server.avgComputeOutputNs;
      const serverCells = server === undefined
        ? ['', '', '', '']
        : [server.avgQueueNs, server.avgComputeInputNs, server.avgComputeInferNs, server.avgComputeOutputNs].map((ns) => String(usec(ns)));
      return [
        formatLevelValue(options, level),
        sig6(result.inferPerSec),
        '',
        avgNs === undefined ? '' : String(usec(Math.max(0, avgNs - accountedNs))),
        ...serverCells,
        '',
        ...percentiles.map((p) => {
          const ns = result.latency?.percentilesNs.get(p);
          return ns === undefined ? '' : String(usec(ns));
        }),
      ];
    });
  return [header, ...rows].map((r) => r.join(',')).join('\n') + '\n';
}

function latencyJson(result: LevelResult): Record<string, number> | null {
  if (result.latency === undefined) return null;
  const out: Record<string, number> = { avg: usec(result.latency.avgNs), std: usec(result.latency.stdNs) };
  for (const [p, ns] of result.latency.percentilesNs) out[`p${p}`] = usec(ns);
  return out;
}

/** The --json report. Times are whole microseconds, as in the text report. */
export function buildJsonReport(report: RunReport): Record<string, unknown> {
  const { options } = report;
  return {
    model: options.model,
    modelVersion: options.modelVersion ?? null,
    url: options.url,
    protocol: options.protocol,
    streaming: options.streaming,
    batchSize: options.batchSize,
    mode: options.load.kind === 'concurrency' ? 'concurrency' : 'request_rate',
    ...(options.load.kind === 'request-rate' ? { requestDistribution: options.load.distribution } : {}),
    measurementIntervalMs: options.measurementIntervalMs,
    stabilityPercentage: options.stabilityPercentage,
    maxTrials: options.maxTrials,
    percentile: options.percentile ?? null,
    sequenceModel: report.sequenceModel,
    serverStatistics: { available: report.serverStats.available, message: report.serverStats.message ?? null },
    steps: report.levels.map(({ level, result }) => ({
      ...(options.load.kind === 'concurrency' ? { concurrency: level } : { requestRate: level }),
      stable: result.stable,
      trials: result.trials,
      client: {
        requestCount: result.client.requestCount,
        failedRequestCount: result.client.errorCount,
        errors: [...result.client.errors].map(([message, count]) => ({ message, count })),
        delayedRequestCount: result.client.delayedCount,
        sequenceCount: result.client.sequenceCount,
        durationMs: Math.round(result.client.durationNs / 1e6),
        inferPerSec: result.inferPerSec,
        sequencesPerSec: result.sequencesPerSec,
        latencyUs: latencyJson(result),
        stabilizingLatencyUs: result.stabilizingLatencyNs === undefined ? null : usec(result.stabilizingLatencyNs),
      },
      server: result.server === undefined
        ? null
        : {
            inferenceCount: result.server.inferenceCount,
            executionCount: result.server.executionCount,
            successCount: result.server.successCount,
            failCount: result.server.failCount,
            avgRequestUs: usec(result.server.avgRequestNs),
            avgQueueUs: usec(result.server.avgQueueNs),
            avgComputeInputUs: usec(result.server.avgComputeInputNs),
            avgComputeInferUs: usec(result.server.avgComputeInferNs),
            avgComputeOutputUs: usec(result.server.avgComputeOutputNs),
            avgOverheadUs: usec(result.server.avgOverheadNs),
          },
    })),
  };
}

/** perf_analyzer's -v line for one measurement window. */
export function formatPass(options: PerfOptions, progress: TrialProgress): string {
  const head = `  Pass [${progress.trial}] throughput: ${sig6(progress.inferPerSec)} infer/sec. `;
  if (progress.latency === undefined) return `${head}No valid requests recorded within time interval.\n`;
  if (options.percentile !== undefined) return `${head}p${options.percentile} latency: ${usec(progress.stabilizingLatencyNs ?? 0)} usec\n`;
  return `${head}Avg latency: ${usec(progress.latency.avgNs)} usec (std ${usec(progress.latency.stdNs)} usec)\n`;
}

function milliseconds(ns: number): string {
  const ms = ns / 1e6;
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

/** e.g. "concurrency 8 · trial 2/10 · 1234 infer/s · p95 2.10 ms" */
export function formatProgress(options: PerfOptions, level: number, progress: TrialProgress): string {
  const name = options.load.kind === 'concurrency' ? `concurrency ${level}` : `rate ${sig6(level)}/s`;
  const latency = progress.stabilizingLatencyNs === undefined
    ? 'no responses'
    : `${options.percentile === undefined ? 'avg' : `p${options.percentile}`} ${milliseconds(progress.stabilizingLatencyNs)} ms`;
  const failed = progress.errorCount > 0 ? ` · ${progress.errorCount} failed` : '';
  return `${name} · trial ${progress.trial}/${progress.maxTrials} · ${Math.round(progress.inferPerSec)} infer/s · ${latency}${failed}`;
}

export interface TextSink {
  write(chunk: string): unknown;
  readonly isTTY?: boolean;
}

/** The live line on stderr: rewritten in place on a terminal, one line per update elsewhere. */
export class Progress {
  readonly #sink: TextSink;
  #showing = false;

  constructor(sink: TextSink) {
    this.#sink = sink;
  }

  update(line: string): void {
    if (this.#sink.isTTY === true) {
      this.#sink.write(`\r\x1b[K${line}`);
      this.#showing = true;
    } else {
      this.#sink.write(`${line}\n`);
    }
  }

  /** Removes the in-place line before other output. */
  clear(): void {
    if (this.#showing) this.#sink.write('\r\x1b[K');
    this.#showing = false;
  }
}
