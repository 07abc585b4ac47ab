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
 * The opentelemetry mode is accepted (settings, command line) but exports
 * nothing yet: sample() answers undefined in it.
 */
import { appendFile, writeFile } from 'node:fs/promises';
import type { Logger } from '../../logger.ts';
import { RequestTrace } from './request-trace.ts';
import { TraceSettings, type TraceLevelSetting, type TraceStartup } from './trace-settings.ts';

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

  constructor(startup: TraceStartup, private readonly logger: Logger) {
    this.settings = new TraceSettings(startup);
    this.settings.onReplaced = (old) => {
      this.flush(old, false);
      if ((this.collected.get(old)?.inFlight ?? 0) > 0) this.retired.add(old);
    };
  }

  /**
   * The trace for a request to `model`, when the model's setting samples
   * this one; undefined otherwise (most requests), or after close().
   */
  sample(model: string): RequestTrace | undefined {
    if (this.closed || this.settings.mode !== 'triton') return undefined;
    const setting = this.settings.settingFor(model);
    if (!setting.sample('triton')) return undefined;
    const level = setting.values.level;
    const entry = this.entryOf(setting);
    entry.inFlight += 1;
    return RequestTrace.start({ written: (group) => this.written(setting, group) }, level.includes('TIMESTAMPS'), level.includes('TENSORS'));
  }

  /** Writes what every setting still holds and closes `<trace_file>`; later requests are not traced. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const setting of [...this.settings.all(), ...this.retired]) this.flush(setting, false);
    for (const file of this.opened) this.append(() => appendFile(file, ']'));
    await this.writes;
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
    const first = !this.opened.has(file);
    this.opened.add(file);
    this.append(() => (first ? writeFile(file, `[${text}`) : appendFile(file, `,${text}`)));
  }

  private append(write: () => Promise<void>): void {
    this.writes = this.writes.then(write).catch((err: unknown) => {
      this.logger.error(`trace file: ${err instanceof Error ? err.message : String(err)}; the traces of this write are lost`);
    });
  }
}
