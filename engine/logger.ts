/**
 * The server's log, on pino. Every part of the engine logs through the
 * narrow `Logger` interface; the HTTP frontend hands the same pino instance
 * to fastify, so its lines land in the same place in the same format.
 *
 * Settings follow tritonserver's (--log-info, --log-warning, --log-error,
 * --log-verbose, --log-file, --log-format) and its logging extension's JSON
 * names, and all but the file can change while the server runs. Lines are
 * written synchronously, so none is lost when the process exits.
 *
 * Formats:
 *   default  Triton's layout: `I0722 11:01:02.123000 4242 switchyard] message`
 *            (severity letter and UTC month/day, UTC time, pid, source)
 *   ISO8601  Triton's other layout: `2024-07-22T11:01:02Z I 4242 switchyard] message`
 *   json     pino's structured lines: {"level":"info","time":<epoch ms>,"pid":..,"hostname":..,"msg":..}
 * Verbose lines are pino's `debug` level; like Triton, the text layouts mark
 * them with the `I` letter.
 */
import pino, { type DestinationStream, type Logger as PinoLogger } from 'pino';
import { didYouMean } from './config/did-you-mean.ts';
import { boundedMessage, serverError } from './errors.ts';

export interface Logger {
  error(message: string): void;
  warn(message: string): void;
  info(message: string): void;
  verbose(message: string): void;
  /** Whether verbose() writes anything; check it before building costly messages. */
  readonly verboseEnabled: boolean;
}

export type LogFormat = 'default' | 'ISO8601' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['default', 'ISO8601', 'json'];

/** The logging extension's settings, under Triton's JSON names. */
export interface LogSettings {
  /** '' when the log goes to stderr. */
  readonly log_file: string;
  readonly log_info: boolean;
  readonly log_warning: boolean;
  readonly log_error: boolean;
  /** 0 turns verbose lines off; any higher level turns them on. */
  readonly log_verbose_level: number;
  readonly log_format: LogFormat;
}

export interface LoggerOptions {
  /** --log-verbose. Default 0. */
  readonly verbose?: number;
  /** --log-info. Default true. */
  readonly info?: boolean;
  /** --log-warning. Default true. */
  readonly warning?: boolean;
  /** --log-error. Default true. */
  readonly error?: boolean;
  /** --log-format. Default 'default'. */
  readonly format?: LogFormat;
  /** --log-file: append to this file instead of writing to stderr. */
  readonly file?: string;
}

const MAX_VERBOSE_LEVEL = 4294967295;

/**
 * Longest message one log line carries, in UTF-8 bytes; longer ones are cut
 * and marked. Messages quote requests and scripts, so without a cap one
 * request could write megabytes per line.
 */
export const MAX_LOG_MESSAGE_BYTES = 16 * 1024;

/** pino's error serializer, with the message and stack cut to MAX_LOG_MESSAGE_BYTES. */
function boundedError(err: Error): Record<string, unknown> {
  const out = pino.stdSerializers.err(err) as unknown as Record<string, unknown>;
  for (const key of ['message', 'stack'] as const) {
    if (typeof out[key] === 'string') out[key] = boundedMessage(out[key], MAX_LOG_MESSAGE_BYTES);
  }
  return out;
}

/** pino's numeric levels. */
const WARN = 40;
const ERROR = 50;
const INFO = 30;

const two = (n: number): string => String(n).padStart(2, '0');

/** One line in a Triton text layout, from pino's metadata about the line it just serialised. */
function textLine(format: 'default' | 'ISO8601', level: number, epochMs: number, message: string): string {
  const letter = level >= ERROR ? 'E' : level >= WARN ? 'W' : 'I';
  const at = new Date(epochMs);
  const time = `${two(at.getUTCHours())}:${two(at.getUTCMinutes())}:${two(at.getUTCSeconds())}`;
  const date = `${two(at.getUTCMonth() + 1)}${two(at.getUTCDate())}`;
  if (format === 'ISO8601') {
    return `${at.getUTCFullYear()}-${date.slice(0, 2)}-${date.slice(2)}T${time}Z ${letter} ${process.pid} switchyard] ${message}\n`;
  }
  const micros = String(at.getUTCMilliseconds() * 1000).padStart(6, '0');
  return `${letter}${date} ${time}.${micros} ${process.pid} switchyard] ${message}\n`;
}

/**
 * Where pino's lines go. pino fills in the last line's level, time and
 * message (the metadata protocol) before each write, so the text layouts
 * need no JSON parsing; json passes pino's line through untouched.
 */
class LogDestination implements DestinationStream {
  readonly [pino.symbols.needsMetadataGsym] = true as const;
  lastLevel = 0;
  lastTime = '';
  /** undefined when the line was logged with an object only. */
  lastMsg: string | undefined = undefined;
  lastObj: object = {};
  lastLogger: PinoLogger | undefined;

  constructor(private readonly out: DestinationStream, private readonly format: () => LogFormat) {}

  write(line: string): void {
    const format = this.format();
    if (format === 'json') {
      this.out.write(line);
      return;
    }
    const err = (this.lastObj as { err?: { message?: unknown } }).err;
    const message = this.lastMsg ?? (typeof err?.message === 'string' ? err.message : '');
    this.out.write(textLine(format, this.lastLevel, Number(this.lastTime) || Date.now(), boundedMessage(message, MAX_LOG_MESSAGE_BYTES)));
  }
}

/** A settings value as the frontends received it: JSON, or the chosen member of a gRPC SettingValue. */
export type LogSettingValue = boolean | number | string | null;

const SETTING_NAMES = ['log_file', 'log_info', 'log_warning', 'log_error', 'log_verbose_level', 'log_format'] as const;

export class ServerLogger implements Logger {
  private readonly settingsNow: { -readonly [K in keyof LogSettings]: LogSettings[K] };

  private constructor(
    /** The pino instance; fastify logs through it (loggerInstance). */
    readonly pino: PinoLogger,
    /** stderr or the log file. */
    private readonly out: pino.DestinationStream & { flushSync?: () => void; end?: () => void },
    settings: LogSettings,
  ) {
    this.settingsNow = { ...settings };
  }

  /** Opens the destination (stderr, or the file, created if missing and appended to). */
  static create(options: LoggerOptions = {}): ServerLogger {
    const settings: LogSettings = {
      log_file: options.file ?? '',
      log_info: options.info ?? true,
      log_warning: options.warning ?? true,
      log_error: options.error ?? true,
      log_verbose_level: options.verbose ?? 0,
      log_format: options.format ?? 'default',
    };
    let out: pino.DestinationStream;
    try {
      out = pino.destination({ dest: options.file || 2, sync: true, ...(options.file ? { mkdir: true, append: true } : {}) });
    } catch (err) {
      throw new Error(`cannot open log file '${options.file}': ${(err as Error).message}`);
    }
    let self: ServerLogger | undefined;
    const destination = new LogDestination(out, () => self?.settingsNow.log_format ?? settings.log_format);
    const instance = pino({
      level: settings.log_verbose_level > 0 ? 'debug' : 'info',
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: boundedError },
      hooks: {
        // The per-severity switches (the verbose switch is pino's own level threshold), and the length cap on messages.
        logMethod(args, method, level) {
          if (!(self?.allows(level) ?? true)) return;
          const bounded = args.map((arg: unknown) => (typeof arg === 'string' ? boundedMessage(arg, MAX_LOG_MESSAGE_BYTES) : arg));
          method.apply(this, bounded as Parameters<typeof method>);
        },
      },
    }, destination);
    self = new ServerLogger(instance, out, settings);
    return self;
  }

  error(message: string): void {
    this.pino.error(message);
  }

  warn(message: string): void {
    this.pino.warn(message);
  }

  info(message: string): void {
    this.pino.info(message);
  }

  verbose(message: string): void {
    this.pino.debug(message);
  }

  get verboseEnabled(): boolean {
    return this.settingsNow.log_verbose_level > 0;
  }

  settings(): LogSettings {
    return { ...this.settingsNow };
  }

  /**
   * Applies a subset of the settings, as POST /v2/logging and the
   * LogSettings RPC send them; null leaves a setting as it is. Every entry is
   * checked before any is applied, so a bad request changes nothing. The file
   * is fixed at start (as in Triton: a network caller must not pick a file to
   * write); naming the current file again is allowed.
   */
  update(changes: Readonly<Record<string, LogSettingValue | undefined>>): LogSettings {
    const next = { ...this.settingsNow };
    for (const [name, value] of Object.entries(changes)) {
      if (value === null || value === undefined) continue;
      switch (name) {
        case 'log_file':
          if (typeof value !== 'string') throw badSetting(name, 'expected a string', value);
          if (value !== next.log_file) throw serverError('LOG_FILE_FIXED', {});
          break;
        case 'log_info':
        case 'log_warning':
        case 'log_error':
          if (typeof value !== 'boolean') throw badSetting(name, 'expected true or false', value);
          next[name] = value;
          break;
        case 'log_verbose_level':
          if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_VERBOSE_LEVEL) {
            throw badSetting(name, `expected an integer from 0 to ${MAX_VERBOSE_LEVEL}`, value);
          }
          next.log_verbose_level = value;
          break;
        case 'log_format':
          if (typeof value !== 'string' || !(LOG_FORMATS as readonly string[]).includes(value)) {
            throw badSetting(name, `expected one of ${LOG_FORMATS.map((f) => `"${f}"`).join(', ')}`, value);
          }
          next.log_format = value as LogFormat;
          break;
        default: {
          const guess = didYouMean(name, SETTING_NAMES);
          throw serverError('LOG_SETTING', {
            setting: name,
            detail: `unknown setting${guess ? `; did you mean '${guess}'?` : ''} (the settings are ${SETTING_NAMES.join(', ')})`,
          });
        }
      }
    }
    Object.assign(this.settingsNow, next);
    this.pino.level = next.log_verbose_level > 0 ? 'debug' : 'info';
    return this.settings();
  }

  /** Flushes and closes a log file; stderr stays open. */
  close(): void {
    if (!this.settingsNow.log_file) return;
    this.out.flushSync?.();
    this.out.end?.();
  }

  private allows(level: number): boolean {
    if (level >= ERROR) return this.settingsNow.log_error;
    if (level >= WARN) return this.settingsNow.log_warning;
    if (level >= INFO) return this.settingsNow.log_info;
    return true;
  }
}

function badSetting(setting: string, expected: string, got: LogSettingValue): Error {
  return serverError('LOG_SETTING', { setting, detail: `${expected}, got ${JSON.stringify(got)}` });
}

/** The server's logger: stderr, Triton's default layout, verbose off, unless the options say otherwise. */
export function createLogger(options: LoggerOptions = {}): ServerLogger {
  return ServerLogger.create(options);
}

export const silentLogger: Logger = { error: () => {}, warn: () => {}, info: () => {}, verbose: () => {}, verboseEnabled: false };
