/**
 * tritonserver's trace flags, read into the engine's TraceStartup:
 * `--trace-config [<mode>,]<setting>=<value>` (repeatable) and the
 * deprecated --trace-file, --trace-level, --trace-rate, --trace-count and
 * --trace-log-frequency, with tritonserver's precedence and its warnings.
 *
 * As in tritonserver: the global settings are rate, level, count and mode
 * (other global keys are ignored); only the active mode's
 * `<mode>,<key>=<value>` entries apply; the opentelemetry settings are
 * listed with their batch span processor defaults. An unusable combination
 * (a level with no file) still starts: it traces nothing. Pure: the caller
 * logs the warnings, so every rule is unit-tested.
 */
import { DEFAULT_TRACE_VALUES, type TraceLevelName, type TraceMode, type TraceStartup } from '../engine/observability/trace/trace-settings.ts';

/** The trace flags as given, each in command-line order. */
export interface TraceFlags {
  readonly config: readonly string[];
  readonly file?: string;
  readonly level: readonly string[];
  readonly rate?: string;
  readonly count?: string;
  readonly logFrequency?: string;
}

export interface TraceOptions {
  readonly startup: TraceStartup;
  /** To log once each at start: deprecated flags, overrides, what the opentelemetry mode does here. */
  readonly warnings: readonly string[];
}

/** A bad trace flag; the message names the flag and the value. */
export class TraceOptionError extends Error {
  override readonly name = 'TraceOptionError';
}

/** tritonserver's batch span processor defaults, in the order its settings list them. */
export const OPENTELEMETRY_BSP_DEFAULTS: ReadonlyArray<readonly [key: string, value: string]> = [
  ['bsp_max_export_batch_size', '512'], ['bsp_schedule_delay', '5000'], ['bsp_max_queue_size', '2048'],
];


const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;
const UINT32_MAX = 4_294_967_295;

/** tritonserver's deprecation texts, printed once per flag given. */
const DEPRECATED: Readonly<Record<'file' | 'level' | 'rate' | 'count' | 'logFrequency', readonly [flag: string, warning: string]>> = {
  file: ['--trace-file', "Warning: '--trace-file' has been deprecated and will be removed in future releases. Please use '--trace-config triton,file=<filepath> instead."],
  level: ['--trace-level', "Warning: '--trace-level' has been deprecated and will be removed in future releases. Please use '--trace-config level=<OFF|TIMESTAMPS|TENSORS> instead."],
  rate: ['--trace-rate', "Warning: '--trace-rate' has been deprecated and will be removed in future releases. Please use '--trace-config rate=<rate value> instead."],
  count: ['--trace-count', "Warning: '--trace-count' has been deprecated and will be removed in future releases. Please use '--trace-config count=<count value> instead."],
  logFrequency: ['--trace-log-frequency',
    "Warning: '--trace-log-frequency' has been deprecated and will be removed in future releases. Please use '--trace-config triton,log-frequency=<log frequency value> instead."],
};

/** One `--trace-config` entry: its mode ('' for a global setting), setting and value. */
interface ConfigEntry {
  readonly arg: string;
  readonly mode: TraceMode | '';
  readonly key: string;
  readonly value: string;
}

export function readTraceOptions(flags: TraceFlags): TraceOptions {
  const warnings: string[] = [];
  for (const field of ['file', 'level', 'rate', 'count', 'logFrequency'] as const) {
    const given = field === 'level' ? flags.level.length > 0 : flags[field] !== undefined;
    if (given) warnings.push(DEPRECATED[field][1]);
  }
  const entries = flags.config.map(splitConfig);
  const global = entries.filter((e) => e.mode === '');

  // Levels from both flags are ORed, as tritonserver does; an explicit off anywhere wins.
  const levels = new Set<TraceLevelName>();
  let off = false;
  const addLevel = (flag: string, text: string): void => {
    const level = parseLevel(text);
    if (level === undefined) throw new TraceOptionError(`${flag}: invalid value for trace level option: ${text.toLowerCase()}`);
    if (level === 'OFF') off = true;
    else levels.add(level);
  };
  for (const text of flags.level) addLevel(`--trace-level=${text}`, text);
  let rate = flags.rate !== undefined ? unsigned(`--trace-rate=${flags.rate}`, flags.rate, INT32_MAX) : DEFAULT_TRACE_VALUES.rate;
  let count = flags.count !== undefined ? int32(`--trace-count=${flags.count}`, flags.count) : DEFAULT_TRACE_VALUES.count;
  const deprecatedLogFrequency = flags.logFrequency !== undefined
    ? unsigned(`--trace-log-frequency=${flags.logFrequency}`, flags.logFrequency, INT32_MAX) : undefined;
  let mode: TraceMode = 'triton';
  const overridden = new Set<string>();
  const override = (field: 'file' | 'level' | 'rate' | 'count' | 'logFrequency', what: string): void => {
    const [flag] = DEPRECATED[field];
    if (overridden.has(flag)) return;
    overridden.add(flag);
    warnings.push(`Warning: Overriding deprecated '${flag}' in favor of provided ${what} in --trace-config!`);
  };
  for (const entry of global) {
    const flag = `--trace-config=${entry.arg}`;
    switch (entry.key) {
      case 'rate':
        if (flags.rate !== undefined) override('rate', 'rate value');
        rate = unsigned(flag, entry.value, INT32_MAX);
        break;
      case 'level':
        if (flags.level.length > 0) override('level', 'level');
        addLevel(flag, entry.value);
        break;
      case 'count':
        if (flags.count !== undefined) override('count', 'count');
        count = int32(flag, entry.value);
        break;
      case 'mode':
        mode = parseMode(flag, entry.value);
        break;
      default:
        // tritonserver ignores other global keys.
        break;
    }
  }

  let file = DEFAULT_TRACE_VALUES.file;
  let logFrequency = DEFAULT_TRACE_VALUES.logFrequency;
  const modeSettings: Array<readonly [string, string]> = [];
  const own = entries.filter((e) => e.mode === mode);
  if (mode === 'triton') {
    if (flags.file !== undefined) file = flags.file;
    if (deprecatedLogFrequency !== undefined) logFrequency = deprecatedLogFrequency;
    for (const entry of own) {
      if (entry.key === 'file') {
        if (flags.file !== undefined) override('file', 'file');
        file = entry.value;
      } else if (entry.key === 'log-frequency') {
        if (flags.logFrequency !== undefined) override('logFrequency', 'log-frequency');
        logFrequency = unsigned(`--trace-config=${entry.arg}`, entry.value, INT32_MAX);
      } else {
        modeSettings.push([entry.key, entry.value]);
      }
    }
  } else {
    if (flags.file !== undefined) warnings.push("Warning: '--trace-file' is deprecated and will be ignored with opentelemetry tracing mode.");
    if (flags.logFrequency !== undefined) {
      warnings.push("Warning: '--trace-log-frequency' is deprecated and will be ignored with opentelemetry tracing mode.");
    }
    const bsp = new Map(OPENTELEMETRY_BSP_DEFAULTS);
    for (const entry of own) {
      if (bsp.has(entry.key)) {
        modeSettings.push([entry.key, String(unsigned(`--trace-config=${entry.arg}`, entry.value, UINT32_MAX))]);
        bsp.delete(entry.key);
      } else {
        modeSettings.push([entry.key, entry.value]);
      }
    }
    modeSettings.push(...bsp);
  }

  const level: TraceLevelName[] = off ? [] : (['TIMESTAMPS', 'TENSORS'] as const).filter((l) => levels.has(l));
  return { startup: { mode, values: { level, rate, count, logFrequency, file }, modeSettings }, warnings };
}

/**
 * `[<mode>,]<setting>=<value>`, split as tritonserver does: the first ','
 * ends the mode, the first '=' after it ends the setting, so a value may
 * hold '=' (`opentelemetry,resource=service.name=x`).
 */
function splitConfig(arg: string): ConfigEntry {
  const comma = arg.indexOf(',');
  if (comma === 0) {
    throw new TraceOptionError(
      `No trace mode specified. --trace-config option format is <trace mode>,<setting>=<value> or <setting>=<value>. Got ${arg}`);
  }
  const mode = comma > 0 ? parseMode(`--trace-config=${arg}`, arg.slice(0, comma)) : '';
  const eq = arg.indexOf('=', comma + 1);
  const key = eq < 0 ? '' : arg.slice(comma + 1, eq);
  const value = eq < 0 ? '' : arg.slice(eq + 1);
  if (key === '' || value === '') throw new TraceOptionError(`--trace-config option format is '<trace mode>,<setting>=<value>'. Got ${arg}`);
  return { arg, mode, key, value };
}

function parseMode(flag: string, text: string): TraceMode {
  const mode = text.toLowerCase();
  if (mode === 'triton' || mode === 'opentelemetry') return mode;
  throw new TraceOptionError(`${flag}: invalid value for trace mode option: ${mode}. Available options are "triton" and "opentelemetry"`);
}

/** tritonserver's level words, in any case; undefined when not one. */
function parseLevel(text: string): TraceLevelName | 'OFF' | undefined {
  switch (text.toLowerCase()) {
    case 'off': case 'false': return 'OFF';
    case 'timestamps': case 'on': case 'true': case 'min': case 'max': return 'TIMESTAMPS';
    case 'tensors': return 'TENSORS';
    default: return undefined;
  }
}

/** A whole integer (spaces around allowed), or a TraceOptionError in tritonserver's words. */
function integer(flag: string, text: string): number {
  if (!/^\s*[+-]?\d+\s*$/.test(text)) throw new TraceOptionError(`${flag}: Invalid option value. Got ${text}`);
  return Number(text);
}

function outOfBound(flag: string, text: string): TraceOptionError {
  return new TraceOptionError(`${flag}: Provided option value is out of bound. Got ${text}`);
}

function int32(flag: string, text: string): number {
  const n = integer(flag, text);
  if (n < INT32_MIN || n > INT32_MAX) throw outOfBound(flag, text);
  return n;
}

/** An unsigned setting up to `max`: tritonserver wraps a negative one into a huge number; here it is refused. */
function unsigned(flag: string, text: string, max: number): number {
  const n = integer(flag, text);
  if (n < 0 || n > max) throw outOfBound(flag, text);
  return n;
}
