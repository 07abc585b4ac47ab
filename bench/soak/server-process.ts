/**
 * The server under soak: the real `switchyard` command (server/cli.ts) in a
 * child process, HTTP and gRPC on ephemeral loopback ports, metrics off. Its
 * stderr is kept (a tail for failures, plus every ERROR and WARN line after
 * startup); its memory and CPU are read from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TAIL_BYTES = 16 * 1024;
const KEPT_LOG_LINES = 5;

/** Every server this module started and has not seen exit, so a watchdog can kill them all. */
const live = new Set<ChildProcess>();

/** SIGKILLs every server child still running (for a hard deadline or an exit). */
export function killServers(): void {
  for (const child of live) child.kill('SIGKILL');
}
process.on('exit', killServers);

/**
 * 'error' or 'warn' for such a log line: Triton's text format (a level
 * letter, then MMDD: "E1206 23:37:34.145000 3731 switchyard] ..."), or a
 * JSON line (pino levels 40+ or names).
 */
export function logLevel(line: string): 'error' | 'warn' | undefined {
  const letter = /^([EWF])\d{4} /.exec(line)?.[1];
  if (letter) return letter === 'W' ? 'warn' : 'error';
  const json = /"level"\s*:\s*("?)(\w+)\1/.exec(line)?.[2]?.toLowerCase();
  if (json === undefined) return undefined;
  if (json === 'warn' || json === '40') return 'warn';
  if (json === 'error' || json === 'fatal' || json === '50' || json === '60') return 'error';
  return undefined;
}

export interface ServerLog {
  /** ERROR / WARN lines written after the server was ready. */
  readonly errorLines: number;
  readonly warnLines: number;
  /** The first few of them. */
  readonly firstLines: readonly string[];
}

export class ServerProcess {
  private tail = '';
  private pending = '';
  private ready = false;
  private errorLines = 0;
  private warnLines = 0;
  private readonly firstLines: string[] = [];
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(private readonly child: ChildProcess, readonly httpPort: number, readonly grpcPort: number) {
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
      else child.once('exit', (code, signal) => resolve({ code, signal }));
    });
  }

  /**
   * Starts `server/cli.ts` with the given repositories (and `extra` flags)
   * and resolves once both frontends listen. `--allow-metrics=false` is passed; a build that refuses
   * the flag gets a second start without it.
   */
  static async start(repositories: readonly string[], timeoutMs: number, extra: readonly string[] = []): Promise<ServerProcess> {
    try {
      return await ServerProcess.startWith(repositories, ['--allow-metrics=false', ...extra], timeoutMs);
    } catch (err) {
      if (!(err instanceof Error) || !/allow-metrics/.test(err.message)) throw err;
      return ServerProcess.startWith(repositories, extra, timeoutMs);
    }
  }

  private static async startWith(repositories: readonly string[], extra: readonly string[], timeoutMs: number): Promise<ServerProcess> {
    const args = [
      '--no-node-snapshot', '--import', 'tsx', join(ROOT, 'server', 'cli.ts'),
      ...repositories.map((r) => `--model-repository=${r}`),
      '--http-address=127.0.0.1', '--http-port=0', '--grpc-address=127.0.0.1', '--grpc-port=0', ...extra,
    ];
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    child.once('exit', () => live.delete(child));
    let tail = '';
    let pending = '';
    let http: number | undefined;
    let grpc: number | undefined;
    let server: ServerProcess | undefined;
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString('utf8');
      if (server) {
        server.take(text);
        return;
      }
      tail = (tail + text).slice(-TAIL_BYTES);
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        // "Started HTTPService at 127.0.0.1:40123", as a plain log line or inside a JSON one.
        const match = /Started (HTTPService|GRPCInferenceService) at [^\s"]*:(\d+)/.exec(line);
        if (match?.[1] === 'HTTPService') http = Number(match[2]);
        else if (match) grpc = Number(match[2]);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the server did not start within ${timeoutMs / 1000} s`)), timeoutMs);
        const check = setInterval(() => {
          if (http !== undefined && grpc !== undefined) {
            clearTimeout(timer);
            clearInterval(check);
            resolve();
          }
        }, 20);
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          clearInterval(check);
          reject(new Error(`the server exited (${signal ?? `code ${code}`}) before it was ready:\n${tail.trimEnd()}`));
        });
      });
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
    child.removeAllListeners('exit');
    child.once('exit', () => live.delete(child));
    server = new ServerProcess(child, http!, grpc!);
    server.tail = tail;
    server.pending = pending;
    server.ready = true;
    return server;
  }

  /** Server output after it was ready: kept in the tail, ERROR and WARN lines counted. */
  private take(text: string): void {
    this.tail = (this.tail + text).slice(-TAIL_BYTES);
    if (!this.ready) return;
    this.pending += text;
    const lines = this.pending.split('\n');
    this.pending = lines.pop()!;
    for (const line of lines) {
      const level = logLevel(line);
      if (level === 'error') this.errorLines++;
      else if (level === 'warn') this.warnLines++;
      else continue;
      if (this.firstLines.length < KEPT_LOG_LINES) this.firstLines.push(line.slice(0, 500));
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last few KiB the server wrote. */
  logTail(): string {
    return this.tail;
  }

  log(): ServerLog {
    return { errorLines: this.errorLines, warnLines: this.warnLines, firstLines: [...this.firstLines] };
  }

  /** Resident set size (VmRSS) in KiB, or undefined when /proc has no answer (not Linux, or the process is gone). */
  rssKiB(): number | undefined {
    try {
      const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
      return match ? Number(match[1]) : undefined;
    } catch {
      return undefined;
    }
  }

  /** CPU time (user + system, all threads) so far, in seconds, from /proc/<pid>/stat; undefined where unavailable. */
  cpuSeconds(): number | undefined {
    try {
      const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8');
      // Fields after the command name, which is in parentheses and may hold spaces: state is field 3, utime 14, stime 15.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / 100;
    } catch {
      return undefined;
    }
  }

  /**
   * SIGTERM, then SIGKILL after `graceMs`. Resolves with how it went:
   * 'clean' (exit code 0 after SIGTERM), 'failed' (another exit), or 'hung'
   * (it had to be killed).
   */
  async stop(graceMs: number): Promise<{ outcome: 'clean' | 'failed' | 'hung'; detail: string; ms: number }> {
    const started = Date.now();
    if (!this.running) {
      const { code, signal } = await this.exited;
      return { outcome: 'failed', detail: `the server had already exited (${signal ?? `code ${code}`})`, ms: 0 };
    }
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const hung = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), graceMs); }),
    ]);
    clearTimeout(timer);
    if (hung) {
      this.child.kill('SIGKILL');
      await this.exited;
      return { outcome: 'hung', detail: `no exit within ${graceMs / 1000} s of SIGTERM; killed`, ms: Date.now() - started };
    }
    const { code, signal } = await this.exited;
    const ms = Date.now() - started;
    return code === 0 ? { outcome: 'clean', detail: `exit code 0 after ${ms} ms`, ms } : { outcome: 'failed', detail: `exited with ${signal ?? `code ${code}`}`, ms };
  }
}
