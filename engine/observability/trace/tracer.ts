/**
 * Triton's trace extension, triton mode: decides which requests are traced
 * (the settings' rate and count, per model), and writes finished traces to
 * the trace file.
 *
 * Files, as Triton writes them:
 * - with `log_frequency` N > 0, every N traces a setting collected go to
 *   `<trace_file>.<index>`, each a complete JSON array, the index counting
 *   up per file name from 0;
 * - with `log_frequency` 0, traces stay in memory until their setting is
 *   replaced (a settings update) or the server stops, and are then
 *   appended to `<trace_file>` itself, which opens with `[` on its first
 *   write and gets its closing `]` at close();
 * - once a setting's `trace_count` has run out and its traces are in, they
 *   go to an indexed file at once.
 * Writes are appended in order on one promise chain; the event loop never
 * waits on the disk.
 *
 * In opentelemetry mode nothing is written: a sampled request is a tree of
 * spans (otel-trace.ts) exported over OTLP. A request carrying a client's
 * W3C trace context is always traced there, whatever the rate and count,
 * as Triton does; with rate 0 only those are.
 */
import { appendFile, writeFile } from 'node:fs/promises';
import type { Logger } from '../../logger.ts';
import { OtelExport, OtelTrace, remoteContext, type OtelExportSettings } from './otel-trace.ts';
import { FileTrace, type RequestTrace } from './request-trace.ts';
import { TraceSettings, type TraceLevelSetting, type TraceStartup } from './trace-settings.ts';

/** How long shutdown waits for the last spans to reach the OpenTelemetry collector. */
export const OTEL_SHUTDOWN_WAIT_MS = 1000;

/** The traces one setting collected and has not written yet. */
interface Collected {
  readonly groups: string[];
  /** Traces taken by the setting and not yet written (released or not). */
  inFlight: number;
}

export class Tracer {
  readonly settings: TraceSettings;
  private readonly collected = new WeakMap<TraceLevelSetting, Collected>();
  /** Next index of `<file>.<index>`, per file name. */
  private readonly indexes = new Map<string, number>();
  /** Whether `<file>` itself has been opened (its `[` written), per file name. */
  private readonly opened = new Set<string>();
  /** Settings a change replaced while some of their traces were still running: written once those are in. */
  private readonly retired = new Set<TraceLevelSetting>();
  private writes: Promise<void> = Promise.resolve();
  private closed = false;
  /** The exporter, in opentelemetry mode. */
  private readonly otel: OtelExport | undefined;

  constructor(startup: TraceStartup, private readonly logger: Logger) {
    this.settings = new TraceSettings(startup);
    if (startup.mode === 'opentelemetry') this.otel = OtelExport.create(otelSettings(startup));
    this.settings.onReplaced = (old) => {
      this.flush(old, false);
      if ((this.collected.get(old)?.inFlight ?? 0) > 0) this.retired.add(old);
    };
  }

  /** Whether sample() reads a client's W3C trace context (opentelemetry mode). */
  get readsTraceContext(): boolean {
    return this.otel !== undefined;
  }

  /**
   * The trace for a request to `model`, when the model's setting samples
   * this one; undefined otherwise (most requests), or after close().
   * `propagated` is the client's W3C trace context (opentelemetry mode).
   */
  sample(model: string, propagated?: { readonly traceparent?: string | undefined; readonly tracestate?: string | undefined }): RequestTrace | undefined {
    if (this.closed) return undefined;
    const setting = this.settings.settingFor(model);
    if (this.otel) {
      const remote = propagated?.traceparent !== undefined && setting.values.level.length > 0
        ? remoteContext(propagated.traceparent, propagated.tracestate) : undefined;
      const sampled = setting.sample('opentelemetry');
      return sampled || remote ? OtelTrace.start(this.otel.tracer, remote) : undefined;
    }
    if (!setting.sample('triton')) return undefined;
    const level = setting.values.level;
    const entry = this.entryOf(setting);
    entry.inFlight += 1;
    return FileTrace.start({ written: (group) => this.written(setting, group) }, level.includes('TIMESTAMPS'), level.includes('TENSORS'));
  }

  /** Writes what every setting still holds and closes `<trace_file>`; later requests are not traced. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const setting of [...this.settings.all(), ...this.retired]) this.flush(setting, false);
    // The files the writes above open are known only once they ran: closed after them.
    this.append(async () => {
      for (const file of this.opened) await appendFile(file, ']');
    });
    await this.writes;
    if (this.otel) {
      // An unreachable collector is retried by the exporter for seconds; shutdown waits for it at most this long.
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), OTEL_SHUTDOWN_WAIT_MS); });
      const outcome = await Promise.race([this.otel.close().then(() => 'sent' as const), timedOut]).catch((err: unknown) => {
        this.logger.warn(`OpenTelemetry export at shutdown: ${err instanceof Error ? err.message : String(err)}`);
        return 'failed' as const;
      });
      clearTimeout(timer);
      if (outcome === 'timeout') {
        this.logger.warn(`OpenTelemetry export at shutdown: the collector did not take the last spans within ${OTEL_SHUTDOWN_WAIT_MS} ms; they are dropped`);
      }
    }
  }

  private entryOf(setting: TraceLevelSetting): Collected {
    let entry = this.collected.get(setting);
    if (!entry) {
      entry = { groups: [], inFlight: 0 };
      this.collected.set(setting, entry);
    }
    return entry;
  }

  private written(setting: TraceLevelSetting, group: string): void {
    const entry = this.entryOf(setting);
    entry.inFlight -= 1;
    entry.groups.push(group);
    const frequency = setting.values.logFrequency;
    if (frequency > 0 && entry.groups.length >= frequency) this.flush(setting, true);
    else if (setting.exhausted && entry.inFlight === 0) this.flush(setting, true);
    else if (this.retired.has(setting) && entry.inFlight === 0) {
      this.retired.delete(setting);
      this.flush(setting, false);
    }
  }

  /** Writes a setting's collected traces: to the next indexed file, or appended to the trace file itself. */
  private flush(setting: TraceLevelSetting, indexed: boolean): void {
    const entry = this.collected.get(setting);
    if (!entry || entry.groups.length === 0) return;
    const file = setting.values.file;
    if (file === '') return;
    const text = entry.groups.join(',');
    entry.groups.length = 0;
    if (indexed || setting.values.logFrequency > 0) {
      const index = this.indexes.get(file) ?? 0;
      this.indexes.set(file, index + 1);
      this.append(() => writeFile(`${file}.${index}`, `[${text}]`));
      return;
    }
    // Opened only once its first write succeeded: after a failed one the next write starts the array again.
    this.append(async () => {
      if (this.opened.has(file)) {
        await appendFile(file, `,${text}`);
        return;
      }
      await writeFile(file, `[${text}`);
      this.opened.add(file);
    });
  }

  private append(write: () => Promise<void>): void {
    this.writes = this.writes.then(write).catch((err: unknown) => {
      this.logger.error(`trace file: ${err instanceof Error ? err.message : String(err)}; the traces of this write are lost`);
    });
  }
}

/** The exporter's settings from the mode's own command-line settings (--trace-config opentelemetry,<key>=<value>). */
function otelSettings(startup: TraceStartup): OtelExportSettings {
  const get = (key: string): string | undefined => startup.modeSettings.find(([k]) => k === key)?.[1];
  const number = (key: string, fallback: number): number => {
    const value = Number(get(key));
    return Number.isFinite(value) && value >= 0 ? value : fallback;
  };
  return {
    url: get('url'),
    resource: startup.modeSettings.filter(([k]) => k === 'resource').map(([, v]) => v),
    maxQueueSize: Math.max(1, number('bsp_max_queue_size', 2048)),
    scheduledDelayMillis: number('bsp_schedule_delay', 5000),
    maxExportBatchSize: Math.max(1, number('bsp_max_export_batch_size', 512)),
  };
}
