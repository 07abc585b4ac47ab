/**
 * Triton's trace settings: one global setting and, on demand, one per model,
 * with Triton's layering. A model setting mirrors the global one field by
 * field until a request sets that field; `null` (HTTP) or an empty value list
 * (gRPC) hands a field back to the level above; a model with no field of its
 * own left goes back to the global setting. The global level's fallback is
 * what the command line gave. `trace_file` is fixed at start.
 *
 * The settings are shown as Triton shows them: every value a string, the
 * level a list, the keys in Triton's order, and the mode's own command-line
 * settings (`--trace-config <mode>,<key>=<value>`) after them.
 */
import { serverError } from '../../errors.ts';

/** What a trace records: timestamps, tensor summaries, or both. Empty means OFF. */
export type TraceLevelName = 'TIMESTAMPS' | 'TENSORS';
export type TraceMode = 'triton' | 'opentelemetry';

/** One level's values, all fields present. */
export interface TraceValues {
  readonly level: readonly TraceLevelName[];
  readonly rate: number;
  /** Traces still to take; -1 for no limit. */
  readonly count: number;
  readonly logFrequency: number;
  readonly file: string;
}

/** What the command line set: the global values, the mode, and the mode's own settings in the order given. */
export interface TraceStartup {
  readonly mode: TraceMode;
  readonly values: TraceValues;
  readonly modeSettings: readonly (readonly [key: string, value: string])[];
}

export const DEFAULT_TRACE_VALUES: TraceValues = { level: [], rate: 1000, count: -1, logFrequency: 0, file: '' };

/** The keys a request may change; `trace_file` is refused, any other key ignored, as Triton does. */
type SettableKey = 'trace_level' | 'trace_rate' | 'trace_count' | 'log_frequency';
const FIELD_OF: Readonly<Record<SettableKey, keyof Omit<TraceValues, 'file'>>> = {
  trace_level: 'level', trace_rate: 'rate', trace_count: 'count', log_frequency: 'logFrequency',
};
const SETTABLE = Object.keys(FIELD_OF) as SettableKey[];

/**
 * One change to one key, as the protocol decoded it: `null` clears it, else
 * its values as strings (one for every key but `trace_level`; the protocol
 * checks that, in its own words).
 */
export type TraceSettingChange = readonly string[] | null;

/** Settings as Triton answers them: each value a string, or a list for `trace_level`. */
export type TraceSettingsView = Readonly<Record<string, string | readonly string[]>>;

/** The values of one level, and which fields it set itself (the rest mirror the level above). */
export class TraceLevelSetting {
  /** Requests seen since this setting was made: every `rate`-th is traced. */
  private seen = 0;
  private remaining: number;

  constructor(readonly values: TraceValues, readonly own: ReadonlySet<keyof TraceValues>) {
    this.remaining = values.count;
  }

  /** Traces left to take now (`trace_count` counts down as they are taken). */
  get count(): number {
    return this.remaining;
  }

  /** Whether the setting can trace at all: a level, a rate, traces left, and a file in triton mode. */
  valid(mode: TraceMode): boolean {
    return invalidReason(this.values, mode) === undefined && this.remaining !== 0;
  }

  /** Counts one request; answers whether it is to be traced (the rate-th, 2·rate-th, ... while traces are left). */
  sample(mode: TraceMode): boolean {
    if (this.values.level.length === 0 || this.values.rate === 0) return false;
    if (!this.valid(mode)) return false;
    this.seen += 1;
    if (this.seen % this.values.rate !== 0) return false;
    if (this.remaining > 0) this.remaining -= 1;
    return true;
  }

  /** Whether every trace this setting may take has been taken. */
  get exhausted(): boolean {
    return this.remaining === 0;
  }
}

/** Why values cannot trace, in Triton's words, or undefined; OFF is never checked, as in Triton. */
function invalidReason(values: TraceValues, mode: TraceMode): string | undefined {
  if (values.level.length === 0) return undefined;
  if (values.rate === 0) return 'sample rate must be non-zero';
  if (mode === 'triton' && values.file === '') return 'trace file name is not given';
  if (values.count === 0) return '';
  return undefined;
}

/** Every setting of one server: the global one, and those of models that set something of their own. */
export class TraceSettings {
  private global: TraceLevelSetting;
  private readonly models = new Map<string, TraceLevelSetting>();
  /** Called with the setting a change replaced, so its collected traces can be written out. */
  onReplaced: (old: TraceLevelSetting) => void = () => {};

  constructor(readonly startup: TraceStartup) {
    this.global = new TraceLevelSetting(startup.values, new Set());
  }

  get mode(): TraceMode {
    return this.startup.mode;
  }

  /** The setting that applies to requests for `model` (its own, else the global one). */
  settingFor(model: string | undefined): TraceLevelSetting {
    return (model !== undefined ? this.models.get(model) : undefined) ?? this.global;
  }

  /** The settings as Triton shows them, global or for one model. */
  view(model?: string): TraceSettingsView {
    const setting = this.settingFor(model);
    const { values } = setting;
    const out: Record<string, string | readonly string[]> = {
      trace_level: values.level.length === 0 ? ['OFF'] : [...values.level],
      trace_rate: String(values.rate),
      trace_count: String(setting.count),
    };
    if (this.mode === 'triton') {
      out['log_frequency'] = String(values.logFrequency);
      out['trace_file'] = values.file;
    }
    out['trace_mode'] = this.mode;
    for (const [key, value] of this.startup.modeSettings) if (!(key in out)) out[key] = value;
    return out;
  }

  /**
   * Applies the changes, global or for one model, all or nothing, and
   * answers the settings after them. Throws the catalogue error Triton gives
   * for the first bad value (`protocol` picks gRPC's spacing where the two
   * differ). The caller checks that the model exists.
   */
  update(model: string | undefined, changes: ReadonlyMap<string, TraceSettingChange>, protocol: 'http' | 'grpc'): TraceSettingsView {
    if (changes.has('trace_file')) throw serverError('TRACE_FILE_FIXED', {});
    const previous = model !== undefined ? this.models.get(model) : this.global;
    const above = model !== undefined ? this.global.values : this.startup.values;
    const own = new Set(previous?.own ?? []);
    const set: Partial<Record<keyof TraceValues, unknown>> = {};
    for (const key of SETTABLE) {
      if (!changes.has(key)) continue;
      const change = changes.get(key)!;
      const field = FIELD_OF[key];
      if (change === null) {
        own.delete(field);
        continue;
      }
      const parsed = parseField(key, change, protocol);
      if (parsed === undefined) continue;
      set[field] = parsed;
      own.add(field);
    }
    const values: TraceValues = {
      level: (set.level as TraceLevelName[] | undefined) ?? (own.has('level') && previous ? previous.values.level : above.level),
      rate: (set.rate as number | undefined) ?? (own.has('rate') && previous ? previous.values.rate : above.rate),
      count: (set.count as number | undefined) ?? (own.has('count') && previous ? previous.values.count : above.count),
      logFrequency: (set.logFrequency as number | undefined)
        ?? (own.has('logFrequency') && previous ? previous.values.logFrequency : above.logFrequency),
      file: this.startup.values.file,
    };
    const reason = invalidReason(values, this.mode);
    if (reason !== undefined) throw serverError('TRACE_SETTING_INVALID', { reason });
    const next = new TraceLevelSetting(values, own);
    if (model === undefined) {
      if (previous) this.onReplaced(previous);
      this.global = next;
      this.refreshModels();
    } else if (own.size === 0) {
      if (previous) this.onReplaced(previous);
      this.models.delete(model);
    } else {
      if (previous) this.onReplaced(previous);
      this.models.set(model, next);
    }
    return this.view(model);
  }

  /** Every setting now in use, for writing out what they collected. */
  all(): TraceLevelSetting[] {
    return [this.global, ...this.models.values()];
  }

  /** After a global change, the fields models mirror follow it. */
  private refreshModels(): void {
    for (const [model, setting] of this.models) {
      const g = this.global.values;
      const own = setting.own;
      const values: TraceValues = {
        level: own.has('level') ? setting.values.level : g.level,
        rate: own.has('rate') ? setting.values.rate : g.rate,
        count: own.has('count') ? setting.values.count : g.count,
        logFrequency: own.has('logFrequency') ? setting.values.logFrequency : g.logFrequency,
        file: g.file,
      };
      this.onReplaced(setting);
      this.models.set(model, new TraceLevelSetting(values, own));
    }
  }
}

const UINT32_MAX = 4294967295;
const INT32_MAX = 2147483647;
const INT32_MIN = -2147483648;

/** One field's value from its strings, in Triton's words when it is not one; undefined leaves the field as it is. */
function parseField(key: SettableKey, values: readonly string[], protocol: 'http' | 'grpc'): unknown {
  if (key === 'trace_level') return parseLevel(values);
  const text = values[0] ?? '';
  const parsed = leadingInteger(text);
  if (parsed === undefined) throw serverError('TRACE_SETTING_PARSE', { key, detail: `got: ${text}` });
  if (parsed < INT32_MIN || parsed > INT32_MAX) {
    const range = key === 'trace_count' ? '[ -1, 2147483647 ]' : `[ 0, ${UINT32_MAX} ]`;
    throw serverError('TRACE_SETTING_PARSE', { key, detail: `value is out of range ${range}, got: ${text}` });
  }
  if (key === 'trace_count') {
    if (parsed < -1) throw serverError('TRACE_COUNT_BELOW', { got: protocol === 'grpc' ? ` ${text}` : text });
    return parsed;
  }
  // As Triton's unsigned fields, a negative number wraps around.
  return parsed < 0 ? parsed + UINT32_MAX + 1 : parsed;
}

/**
 * The integer at the start of the text, as C++'s std::stoi reads it (leading
 * spaces, a sign, digits; the rest ignored), or undefined when there is none.
 */
function leadingInteger(text: string): number | undefined {
  const match = /^\s*([+-]?\d+)/.exec(text);
  return match ? Number(match[1]) : undefined;
}

/** trace_level's strings: OFF alone, or TIMESTAMPS and TENSORS together; unknown names are ignored, as Triton does. */
function parseLevel(values: readonly string[]): readonly TraceLevelName[] | undefined {
  if (values.includes('OFF')) {
    if (values.length > 1) throw serverError('TRACE_LEVEL_OFF_ALONE', {});
    return [];
  }
  const level: TraceLevelName[] = [];
  if (values.includes('TIMESTAMPS')) level.push('TIMESTAMPS');
  if (values.includes('TENSORS')) level.push('TENSORS');
  return level.length > 0 ? level : undefined;
}
