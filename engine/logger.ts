/** Minimal leveled logger writing one line per event to stderr; verbose lines only when --log-verbose > 0. */
export type LogLevel = 'error' | 'warn' | 'info' | 'verbose';

export interface Logger {
  error(message: string): void;
  warn(message: string): void;
  info(message: string): void;
  verbose(message: string): void;
  /** Whether verbose() writes anything; check it before building costly messages. */
  readonly verboseEnabled: boolean;
}

export function createLogger(options: { verbose?: number; quiet?: boolean } = {}): Logger {
  const write = (level: LogLevel, message: string): void => {
    if (options.quiet && level !== 'error') return;
    process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase().padEnd(7)} ${message}\n`);
  };
  return {
    error: (m) => write('error', m),
    warn: (m) => write('warn', m),
    info: (m) => write('info', m),
    verbose: (m) => { if ((options.verbose ?? 0) > 0) write('verbose', m); },
    verboseEnabled: (options.verbose ?? 0) > 0,
  };
}

export const silentLogger: Logger = { error: () => {}, warn: () => {}, info: () => {}, verbose: () => {}, verboseEnabled: false };
