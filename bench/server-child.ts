/**
 * Benchmark servers in their own processes. A bench script forks itself with
 * `--child <role>`; the child waits for its init message, starts its server,
 * reports the port, answers CPU-time queries, and stops when told to (or
 * when the parent goes away). Keeping each server out of the load
 * generator's process means neither shares an event loop with the other.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

type ToChild<Init> =
  | { kind: 'init'; init: Init }
  | { kind: 'cpu'; id: number }
  | { kind: 'thread-cpu'; id: number }
  | { kind: 'loopDelay'; id: number }
  | { kind: 'stop' };

/** The child's event-loop delay since the previous query, milliseconds (zeros for the first, which starts the sampler). */
export interface LoopDelay {
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

type FromChild =
  | { kind: 'ready'; port: number }
  | { kind: 'cpu'; id: number; micros: number }
  | { kind: 'loopDelay'; id: number; delay: LoopDelay }
  | { kind: 'failed'; message: string };

/**
 * CPU time of this process's main thread (the event loop) in microseconds,
 * from Linux's per-thread scheduler statistics; NaN where they cannot be
 * read. Node 20 has no per-thread CPU clock of its own.
 */
function mainThreadCpuMicros(): number {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1000;
  } catch {
    return Number.NaN;
  }
}

export interface StartedServer {
  readonly port: number;
  close(): Promise<void>;
}

/** The role this process was forked to play, or undefined when it is the orchestrator. */
/**
 * Switchyard's HTTP frontend on an ephemeral loopback port, serving the given
 * repository; a model that fails to load fails the start. Engine modules are
 * imported here, lazily, so a child of another role never loads them.
 */
export async function startSwitchyardHttp(repository: string, startupModels?: readonly string[]): Promise<StartedServer> {
  const { silentLogger } = await import('../engine/logger.ts');
  const { createEngine, startFrontends } = await import('../server/composition-root.ts');
  const engine = await createEngine({
    modelRepositories: [repository], logger: silentLogger, ...(startupModels ? { startupModels } : {}),
    ...(await benchTrace()),
  });
  const failures = engine.loadFailures();
  if (failures.length > 0) {
    await engine.close();
    throw new Error(`model failed to load: ${JSON.stringify(failures)}`);
  }
  const frontends = await startFrontends(engine, { http: { port: 0, host: '127.0.0.1' }, ...benchMetrics() }).catch(async (err: unknown) => {
    await engine.close();
    throw err;
  });
  return {
    port: frontends.httpPort!,
    async close() {
      await frontends.close();
      await engine.close();
    },
  };
}

/**
 * BENCH_TRACE_RATE=N: the server traces every N-th request (triton mode, TIMESTAMPS) into a file in a temporary
 * folder, for what tracing costs; unset, nothing is traced.
 */
async function benchTrace(): Promise<{ trace?: import('../engine/observability/trace/trace-settings.ts').TraceStartup }> {
  const rate = Number(process.env['BENCH_TRACE_RATE'] ?? 0);
  if (!(rate > 0)) return {};
  const { mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const file = join(await mkdtemp(join(tmpdir(), 'switchyard-bench-trace-')), 'trace.json');
  return { trace: { mode: 'triton', values: { level: ['TIMESTAMPS'], rate, count: -1, logFrequency: 100, file }, modeSettings: [] } };
}

/**
 * BENCH_METRICS_HISTOGRAMS=1 or 0: the server also serves its metrics endpoint (loopback, an ephemeral port), with
 * --metrics-config histogram_latencies on or off, for what the latency histograms cost; unset, no endpoint.
 */
function benchMetrics(): { metrics?: import('../server/metrics/metrics-server.ts').MetricsServerOptions } {
  const setting = process.env['BENCH_METRICS_HISTOGRAMS'];
  if (setting === undefined || setting === '') return {};
  if (setting !== '0' && setting !== '1') throw new Error(`BENCH_METRICS_HISTOGRAMS=${setting}: expected 1 (histograms on) or 0 (off)`);
  return { metrics: { port: 0, address: '127.0.0.1', histogramLatencies: setting === '1' } };
}

export function childRole(): string | undefined {
  return process.argv[2] === '--child' ? process.argv[3] : undefined;
}

/** The child side: start the server from the init message and serve the parent's queries until told to stop. */
export async function serveAsChild<Init>(start: (init: Init) => Promise<StartedServer>): Promise<void> {
  const send = (message: FromChild): void => { process.send!(message); };
  const init = await new Promise<Init>((resolve) => {
    process.once('message', (m: ToChild<Init>) => { if (m.kind === 'init') resolve(m.init); });
  });
  let server: StartedServer;
  try {
    server = await start(init);
  } catch (err) {
    send({ kind: 'failed', message: err instanceof Error ? err.stack ?? err.message : String(err) });
    process.exit(1);
  }
  // perf_hooks' own sampler (how late a 1 ms timer fires on the event loop), started by the first
  // loopDelay query: it wakes the loop every millisecond, which a server nobody asks should not pay.
  let delay: ReturnType<typeof monitorEventLoopDelay> | undefined;
  process.on('message', (m: ToChild<Init>) => {
    if (m.kind === 'cpu') {
      const usage = process.cpuUsage();
      send({ kind: 'cpu', id: m.id, micros: usage.user + usage.system });
    } else if (m.kind === 'thread-cpu') {
      send({ kind: 'cpu', id: m.id, micros: mainThreadCpuMicros() });
    } else if (m.kind === 'loopDelay') {
      if (!delay) {
        delay = monitorEventLoopDelay({ resolution: 1 });
        delay.enable();
        send({ kind: 'loopDelay', id: m.id, delay: { p50Ms: 0, p99Ms: 0, maxMs: 0 } });
        return;
      }
      send({ kind: 'loopDelay', id: m.id, delay: { p50Ms: delay.percentile(50) / 1e6, p99Ms: delay.percentile(99) / 1e6, maxMs: delay.max / 1e6 } });
      delay.reset();
    } else if (m.kind === 'stop') {
      void server.close().finally(() => process.exit(0));
    }
  });
  // The orchestrator went away without saying stop: do not linger.
  process.on('disconnect', () => process.exit(0));
  send({ kind: 'ready', port: server.port });
}

/** The parent side: one forked server. */
export class ServerChild<Init> {
  private nextId = 1;
  private readonly waiting = new Map<number, (answer: number | LoopDelay) => void>();

  private constructor(readonly role: string, private readonly process: ChildProcess, readonly port: number) {
    process.on('message', (m: FromChild) => {
      if (m.kind !== 'cpu' && m.kind !== 'loopDelay') return;
      this.waiting.get(m.id)?.(m.kind === 'cpu' ? m.micros : m.delay);
      this.waiting.delete(m.id);
    });
  }

  /** Forks `script --child role`, sends it `init`, and resolves once its server listens. */
  static async start<Init>(script: string, role: string, init: Init, extraNodeArgs: readonly string[] = []): Promise<ServerChild<Init>> {
    const child = fork(script, ['--child', role], {
      execArgv: [...process.execArgv, ...extraNodeArgs],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const port = await new Promise<number>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`${role} server exited with code ${code} before it was ready`)));
      child.on('message', (m: FromChild) => {
        if (m.kind === 'ready') resolve(m.port);
        else if (m.kind === 'failed') reject(new Error(`${role} server failed to start: ${m.message}`));
      });
      child.send({ kind: 'init', init } satisfies ToChild<Init>);
    });
    child.removeAllListeners('exit');
    child.removeAllListeners('message');
    return new ServerChild<Init>(role, child, port);
  }

  /** The child's process id, e.g. to read its memory from /proc. */
  get pid(): number | undefined {
    return this.process.pid;
  }

  /** CPU time (user + system, all threads) the child has used so far, in microseconds. */
  cpuMicros(): Promise<number> {
    return this.ask('cpu');
  }

  /** CPU time of the child's main thread (its event loop) so far, in microseconds; NaN off Linux. */
  mainThreadCpuMicros(): Promise<number> {
    return this.ask('thread-cpu');
  }

  private ask(kind: 'cpu' | 'thread-cpu'): Promise<number> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, (answer) => resolve(answer as number));
      this.process.send({ kind, id } satisfies ToChild<never>);
    });
  }

  /**
   * The child's event-loop delay since the previous call; starts the next
   * window. The first call only starts the sampler and answers zeros.
   */
  loopDelay(): Promise<LoopDelay> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, (answer) => resolve(answer as LoopDelay));
      this.process.send({ kind: 'loopDelay', id } satisfies ToChild<never>);
    });
  }

  async stop(): Promise<void> {
    if (this.process.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.process.once('exit', () => resolve()));
    this.process.send({ kind: 'stop' } satisfies ToChild<never>);
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
