/**
 * The soak itself: start the real server, drive mixed traffic at a fixed
 * concurrency over HTTP (binary and JSON tensors) and gRPC for a while,
 * check every answer, sample the server's memory, stop the server, and
 * return the figures. run.ts prints them; the test asserts on them.
 *
 * Workers: worker i always sends kind i mod 5 (so each kind has about a
 * fifth of the concurrency) and rotates its transport every operation over
 * http (binary tensors), http-json and grpc, starting from floor(i / 5) mod 3.
 * A worker sends its next operation as soon as the last one settles (closed
 * loop); a sequence worker's operation is a whole sequence.
 *
 * Counting: a request's latency and its share of the throughput count only
 * when it starts after the warm-up and ends inside the measured window (as
 * bench/call-loop.ts counts). Errors count whenever they happen: the
 * preflight (one operation of every kind over every transport before the
 * load), the warm-up, the window and the drain.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InferenceClient, InferenceServerError } from '../../client/index.ts';
import { addSubModel } from '../../generator/models.ts';
import { LatencyRecorder, nowMs } from '../latencies.ts';
import { ATTACK_DEADLINE_MS, ATTACK_SERVER_ARGS, ATTACKS, attackTarget, writeAttackModels, type Attack } from './attacks.ts';
import { ServerProcess, type ServerLog } from './server-process.ts';
import { BATCHED_MODEL, batchedModelConfig, buildKinds, KIND_NAMES, type Kind, type KindName } from './workloads.ts';

export const PIPELINES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'pipelines');

export const TRANSPORTS = ['http', 'http-json', 'grpc'] as const;
export type Transport = (typeof TRANSPORTS)[number];

export interface SoakOptions {
  readonly concurrency: number;
  /** Measured seconds, after the warm-up. */
  readonly durationSeconds: number;
  /**
   * Seconds of load before the window opens; the start RSS is taken when it
   * ends. Under this load the server's RSS climbs for 10 to 30 s (heap and
   * arenas growing to their working size) before it levels off; with the
   * attack mix (large bodies, isolates disposed and restarted) it climbs for
   * about 90 s, hence 90.
   */
  readonly warmupSeconds: number;
  /** Seconds between RSS samples. */
  readonly rssEverySeconds: number;
  /** Requests per sequence, START and END included. */
  readonly sequenceSteps: number;
  /** Per-request deadline, ms: a request that takes longer fails with DEADLINE_EXCEEDED. */
  readonly requestTimeoutMs: number;
  /** How long the server may take to start. */
  readonly startTimeoutMs: number;
  /** How long the server may take to exit after SIGTERM before it is killed. */
  readonly shutdownGraceMs: number;
  /**
   * Workers sending hostile requests (attacks.ts) next to the ordinary
   * ones, each one attack at a time, every class in turn; 0 runs the plain
   * soak.
   */
  readonly attackers: number;
  /**
   * When set, the window closes as soon as every attack class has been sent
   * this many times (or at durationSeconds, whichever comes first). For the
   * short test run; the soak itself runs its whole window.
   */
  readonly attackRounds?: number;
  /** Progress lines (to stderr in run.ts); none when absent. */
  readonly progress?: (line: string) => void;
}

export const DEFAULT_OPTIONS: SoakOptions = {
  concurrency: 128,
  durationSeconds: 600,
  warmupSeconds: 90,
  rssEverySeconds: 5,
  sequenceSteps: 6,
  requestTimeoutMs: 30_000,
  startTimeoutMs: 60_000,
  shutdownGraceMs: 15_000,
  attackers: 2,
};

export interface KindResult {
  readonly kind: KindName;
  readonly models: string;
  /** Requests counted in the measured window, in all and per transport. */
  readonly requests: number;
  readonly perTransport: Readonly<Record<Transport, number>>;
  /** Whole sequences completed in the window (sequence kind only). */
  readonly sequences?: number;
  /** Failed or wrong requests over the whole run. */
  readonly errors: number;
  readonly firstErrors: readonly string[];
  /** Requests of any phase, so a kind with traffic only outside the window still shows it. */
  readonly requestsAllPhases: number;
  readonly requestsPerSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export interface AttackResult {
  readonly klass: number;
  readonly name: string;
  /** Attacks sent over the whole run. */
  readonly sent: number;
  /** Attacks the server did not handle as it should (see attacks.ts). */
  readonly problems: number;
  readonly firstProblems: readonly string[];
  /** Slowest answer, ms. */
  readonly maxMs: number;
}

export interface RssSample {
  /** Seconds since the load started. */
  readonly t: number;
  readonly kib: number;
}

export interface SoakResult {
  readonly options: Omit<SoakOptions, 'progress'>;
  readonly kinds: readonly KindResult[];
  /** One row per attack; empty when options.attackers is 0. */
  readonly attacks: readonly AttackResult[];
  readonly overall: {
    readonly requests: number;
    readonly errors: number;
    readonly requestsPerSecond: number;
    readonly p50: number;
    readonly p99: number;
    readonly max: number;
  };
  /** Whether the preflight passed (the load runs only then). */
  readonly preflightOk: boolean;
  readonly rss: {
    /** After startup, before any request. */
    readonly idleKiB: number | undefined;
    /** When the warm-up ended. */
    readonly startKiB: number | undefined;
    /** When the window closed. */
    readonly endKiB: number | undefined;
    /** Largest sample from the start sample to the end sample. */
    readonly maxKiB: number | undefined;
    /** (end - start) / start, percent. */
    readonly growthPercent: number | undefined;
    readonly samples: readonly RssSample[];
  };
  /** Server CPU over the window, in cores (1 = one core busy all the time). */
  readonly serverCpuCores: number | undefined;
  /** This process's CPU over the window, in cores. */
  readonly clientCpuCores: number;
  /** Rows per execution of the batched models over the run, from the server's statistics. */
  readonly rowsPerExecution: Readonly<Record<string, number>>;
  readonly serverLog: ServerLog;
  readonly shutdown: { readonly outcome: 'clean' | 'failed' | 'hung'; readonly detail: string };
  readonly windowSeconds: number;
}

class KindTally {
  readonly latencies = new LatencyRecorder();
  readonly perTransport: Record<Transport, number> = { 'http': 0, 'http-json': 0, 'grpc': 0 };
  requests = 0;
  requestsAllPhases = 0;
  /** Operations that succeeded and lay inside the window (reported for the sequence kind, where one is a whole sequence). */
  sequences = 0;
  errors = 0;
  readonly firstErrors: string[] = [];
}

const FIRST_ERRORS = 3;

function errorText(err: unknown): string {
  if (err instanceof InferenceServerError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

async function writeBatchedRepository(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'switchyard-soak-'));
  await mkdir(join(root, BATCHED_MODEL, '1'), { recursive: true });
  await writeFile(join(root, BATCHED_MODEL, 'config.pbtxt'), batchedModelConfig());
  await writeFile(join(root, BATCHED_MODEL, '1', 'model.onnx'), addSubModel('INT32', 16));
  return root;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function runSoak(given: Partial<SoakOptions> = {}): Promise<SoakResult> {
  const options: SoakOptions = { ...DEFAULT_OPTIONS, ...given };
  const progress = options.progress ?? ((): void => {});
  if (!(Number.isInteger(options.concurrency) && options.concurrency >= KIND_NAMES.length)) {
    throw new Error(`--concurrency must be an integer of at least ${KIND_NAMES.length} (one worker per kind), got ${options.concurrency}`);
  }
  if (!(options.durationSeconds > 0)) throw new Error(`--duration must be a positive number of seconds, got ${options.durationSeconds}`);

  const kinds = await buildKinds({ repository: PIPELINES, sequenceSteps: options.sequenceSteps });
  const extraRepository = await writeBatchedRepository();
  if (options.attackers > 0) await writeAttackModels(extraRepository);
  let server: ServerProcess | undefined;
  const clients: Partial<Record<Transport, InferenceClient>> = {};
  try {
    progress('starting the server');
    server = await ServerProcess.start([PIPELINES, extraRepository], options.startTimeoutMs, options.attackers > 0 ? ATTACK_SERVER_ARGS : []);
    progress(`server pid ${server.pid}: http 127.0.0.1:${server.httpPort}, grpc 127.0.0.1:${server.grpcPort}`);
    const timeoutMs = options.requestTimeoutMs;
    clients.http = new InferenceClient({ url: `127.0.0.1:${server.httpPort}`, timeoutMs });
    clients['http-json'] = new InferenceClient({ url: `127.0.0.1:${server.httpPort}`, binary: false, timeoutMs });
    clients.grpc = new InferenceClient({ url: `grpc://127.0.0.1:${server.grpcPort}`, timeoutMs });
    return await drive(options, kinds, server, clients as Record<Transport, InferenceClient>);
  } finally {
    for (const client of Object.values(clients)) client.close();
    // drive() stops the server and records how; this covers the paths that throw.
    if (server?.running) await server.stop(options.shutdownGraceMs);
    await rm(extraRepository, { recursive: true, force: true });
  }
}

async function drive(options: SoakOptions, kinds: readonly Kind[], server: ServerProcess, clients: Record<Transport, InferenceClient>): Promise<SoakResult> {
  const progress = options.progress ?? ((): void => {});
  const tallies = new Map<KindName, KindTally>(kinds.map((k) => [k.name, new KindTally()]));
  const attackTallies = new Map<Attack, { sent: number; problems: number; maxMs: number; firstProblems: string[] }>(
    ATTACKS.map((a) => [a, { sent: 0, problems: 0, maxMs: 0, firstProblems: [] }]));
  const overall = new LatencyRecorder();
  let windowStart = Infinity;
  let windowEnd = Infinity;

  const stepFor = (kind: Kind, transport: Transport): ((call: () => Promise<string | undefined>) => Promise<boolean>) => {
    const tally = tallies.get(kind.name)!;
    return async (call) => {
      const t0 = nowMs();
      const error = await call().catch(errorText);
      const t1 = nowMs();
      tally.requestsAllPhases++;
      if (error !== undefined) {
        tally.errors++;
        if (tally.firstErrors.length < FIRST_ERRORS) tally.firstErrors.push(`[${transport}] ${error}`.slice(0, 600));
        return false;
      }
      if (t0 >= windowStart && t1 <= windowEnd) {
        tally.requests++;
        tally.perTransport[transport]++;
        tally.latencies.record(t1 - t0);
        overall.record(t1 - t0);
      }
      return true;
    };
  };

  const idleKiB = server.rssKiB();
  let n = 0;

  // Preflight: every kind over every transport once, one at a time; a broken setup stops here instead of failing for ten minutes.
  progress('preflight: one operation of every kind over every transport');
  for (const kind of kinds) {
    for (const transport of TRANSPORTS) await kind.run(clients[transport], n++, stepFor(kind, transport));
  }
  const preflightErrors = [...tallies.values()].reduce((sum, t) => sum + t.errors, 0);
  const preflightOk = preflightErrors === 0;

  const samples: RssSample[] = [];
  let startKiB: number | undefined;
  let endKiB: number | undefined;
  let serverCpuCores: number | undefined;
  let clientCpuCores = 0;
  let windowSeconds = 0;

  if (preflightOk) {
    progress(`load: concurrency ${options.concurrency}, warm-up ${options.warmupSeconds} s, window ${options.durationSeconds} s`);
    const loadStart = nowMs();
    windowStart = loadStart + options.warmupSeconds * 1000;
    windowEnd = windowStart + options.durationSeconds * 1000;
    const base = n;
    let stopped = false;
    // Resolves when the attackers have sent their rounds (options.attackRounds): the window ends there.
    let closeWindow = (): void => {};
    const windowClosed = new Promise<void>((resolve) => { closeWindow = resolve; });
    const sample = (): number | undefined => {
      const kib = server.rssKiB();
      if (kib !== undefined) samples.push({ t: Math.round((nowMs() - loadStart)) / 1000, kib });
      return kib;
    };

    const worker = async (i: number): Promise<void> => {
      const kind = kinds[i % kinds.length]!;
      let t = Math.floor(i / kinds.length) % TRANSPORTS.length;
      for (let op = 0; !stopped && nowMs() < windowEnd; op++) {
        const transport = TRANSPORTS[t]!;
        const t0 = nowMs();
        const ok = await kind.run(clients[transport], base + op * options.concurrency + i, stepFor(kind, transport));
        if (ok && t0 >= windowStart && nowMs() <= windowEnd) tallies.get(kind.name)!.sequences++;
        t = (t + 1) % TRANSPORTS.length;
      }
    };

    // The sampler: one sample every rssEverySeconds from the start of the load (the warm-up's show how RSS ramps up),
    // the start sample when the warm-up ends and the end sample when the window closes.
    const sampler = (async (): Promise<void> => {
      const every = options.rssEverySeconds * 1000;
      const times = [windowStart, windowEnd];
      for (let at = loadStart; at < windowEnd; at += every) if (Math.abs(at - windowStart) > 1) times.push(at);
      times.sort((x, y) => x - y);
      let cpuStart: number | undefined;
      let clientCpuStart = process.cpuUsage();
      let sinceProgress = 0;
      const plannedEnd = windowEnd;
      let closedEarly = false;
      void windowClosed.then(() => { closedEarly = true; });
      // A sleep that the window's early close cuts short, timer and all.
      const untilClosedOr = (ms: number): Promise<void> => new Promise((resolve) => {
        const timer = setTimeout(resolve, ms);
        void windowClosed.then(() => { clearTimeout(timer); resolve(); });
      });
      for (const at of times) {
        if (!closedEarly) await untilClosedOr(Math.max(0, at - nowMs()));
        // Closed early, the samples planned inside the window are skipped and the end one is taken now.
        if (closedEarly && at > windowStart && at !== plannedEnd) continue;
        const kib = sample();
        if (at === windowStart) {
          startKiB = kib;
          cpuStart = server.cpuSeconds();
          clientCpuStart = process.cpuUsage();
        } else if (at === plannedEnd) {
          endKiB = kib;
        } else if (at > windowStart && options.durationSeconds >= 60 && (sinceProgress += every) >= 60_000) {
          sinceProgress = 0;
          progress(`${Math.round((nowMs() - windowStart) / 1000)} s into the window, ${Math.round((windowEnd - nowMs()) / 1000)} s left; `
            + `server RSS ${kib === undefined ? '-' : (kib / 1024).toFixed(1)} MiB`);
        }
      }
      const cpuEnd = server.cpuSeconds();
      const clientCpu = process.cpuUsage(clientCpuStart);
      windowSeconds = (nowMs() - windowStart) / 1000;
      serverCpuCores = cpuStart !== undefined && cpuEnd !== undefined ? (cpuEnd - cpuStart) / windowSeconds : undefined;
      clientCpuCores = (clientCpu.user + clientCpu.system) / 1e6 / windowSeconds;
    })();

    // Attackers: each sends one attack at a time, every attack in turn from its own offset, for the whole load.
    const target = options.attackers > 0 ? attackTarget(server.httpPort, server.grpcPort) : undefined;
    const attacker = async (i: number): Promise<void> => {
      const last = options.attackRounds === undefined ? Infinity : options.attackRounds * ATTACKS.length;
      for (let op = i; !stopped && nowMs() < windowEnd && op < last; op += options.attackers) {
        const attack = ATTACKS[op % ATTACKS.length]!;
        const tally = attackTallies.get(attack)!;
        const t0 = nowMs();
        const problem = await attack.run(target!, op).catch((err: unknown) => `${attack.name}: ${errorText(err)}`);
        const ms = nowMs() - t0;
        tally.sent++;
        tally.maxMs = Math.max(tally.maxMs, ms);
        const late = ms > ATTACK_DEADLINE_MS ? `${attack.name}: answered after ${Math.round(ms)} ms` : undefined;
        if (problem !== undefined || late !== undefined) {
          tally.problems++;
          if (tally.firstProblems.length < FIRST_ERRORS) tally.firstProblems.push((problem ?? late!).slice(0, 600));
        }
      }
    };

    const attackers = Promise.all(Array.from({ length: options.attackers }, (_, i) => attacker(i)));
    if (options.attackRounds !== undefined) {
      void attackers.then(() => {
        windowEnd = Math.min(windowEnd, nowMs());
        closeWindow();
      });
    }
    const workers = Promise.all([
      ...Array.from({ length: options.concurrency }, (_, i) => worker(i)),
      attackers,
    ]).finally(() => target?.close());
    await sampler;
    // Drain: every worker finishes its operation in flight (a sequence runs to its END); requests time out after requestTimeoutMs.
    const drainLimitMs = options.requestTimeoutMs * (options.sequenceSteps + 1) + 5_000;
    let drainTimer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      workers.then(() => true),
      new Promise<boolean>((resolve) => { drainTimer = setTimeout(() => resolve(false), drainLimitMs); }),
    ]);
    clearTimeout(drainTimer);
    stopped = true;
    if (!drained) throw new Error(`the requests in flight did not settle within ${drainLimitMs / 1000} s of the window's end`);
  } else {
    progress(`preflight failed with ${preflightErrors} error(s); no load`);
  }

  const rowsPerExecution: Record<string, number> = {};
  for (const model of [BATCHED_MODEL, 'chatbot_lm', 'feature_normalizer', 'text_features']) {
    try {
      const stats = (await clients.http.modelStatistics(model)).model_stats[0];
      if (stats && stats.execution_count > 0) rowsPerExecution[model] = stats.inference_count / stats.execution_count;
    } catch {
      // Statistics are extra information; the soak does not depend on them.
    }
  }
  const serverLog = server.log();
  progress('stopping the server');
  const { outcome, detail } = await server.stop(options.shutdownGraceMs);

  const window = windowSeconds > 0 ? windowSeconds : options.durationSeconds;
  const kindResults: KindResult[] = kinds.map((kind) => {
    const tally = tallies.get(kind.name)!;
    const summary = tally.latencies.summary();
    return {
      kind: kind.name, models: kind.models,
      requests: tally.requests, perTransport: { ...tally.perTransport },
      ...(kind.name === 'sequence' ? { sequences: tally.sequences } : {}),
      errors: tally.errors, firstErrors: [...tally.firstErrors], requestsAllPhases: tally.requestsAllPhases,
      requestsPerSecond: tally.requests / window, p50: summary.p50, p99: summary.p99, max: summary.max,
    };
  });
  const all = overall.summary();
  const inWindow = samples.filter((s) => s.t >= options.warmupSeconds - 0.001);
  const maxKiB = inWindow.length > 0 ? Math.max(...inWindow.map((s) => s.kib)) : undefined;
  const { progress: _progress, ...plainOptions } = options;
  return {
    options: plainOptions,
    kinds: kindResults,
    attacks: options.attackers > 0
      ? ATTACKS.map((a) => ({ klass: a.klass, name: a.name, ...attackTallies.get(a)!, maxMs: Math.round(attackTallies.get(a)!.maxMs) }))
      : [],
    overall: {
      requests: all.count, errors: kindResults.reduce((sum, k) => sum + k.errors, 0),
      requestsPerSecond: all.count / window, p50: all.p50, p99: all.p99, max: all.max,
    },
    preflightOk,
    rss: {
      idleKiB, startKiB, endKiB, maxKiB,
      growthPercent: startKiB !== undefined && endKiB !== undefined ? ((endKiB - startKiB) / startKiB) * 100 : undefined,
      samples,
    },
    serverCpuCores, clientCpuCores, rowsPerExecution, serverLog,
    shutdown: { outcome, detail },
    windowSeconds: window,
  };
}
