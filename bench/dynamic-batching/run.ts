/**
 * Dynamic batching benchmark: a compute-heavy MLP (256 -> 2048 -> 2048 -> 16
 * FP32, 1 intra-op thread) under closed-loop load of batch-1 requests over
 * binary tensor HTTP, served three ways:
 *
 *   (a) Switchyard with dynamic_batching
 *   (b) Switchyard, same model, no dynamic_batching
 *   (c) the in-process limit: onnxruntime-node called directly in a worker
 *       thread, back to back, at its best batch size
 *
 * It prints a/b and a/c with p50/p99 latency, then a sweep of
 * max_queue_delay_microseconds with the average batch size and why batches
 * closed (from the statistics extension, "n/a" where the server lacks it).
 * With `--rss <seconds>` it instead runs (a) for that long and samples the
 * server's resident memory.
 *
 *   npm run bench:batching
 *   npm run bench:batching -- --rss 60
 *
 * Run plainly it is the orchestrator and load generator; with
 * `--child switchyard` it is the server (see ../server-child.ts), one child
 * per model config, so the server never shares an event loop with the load.
 *
 * Environment:
 *   BENCH_SECONDS          measured seconds per server cell (default 10)
 *   BENCH_WARMUP           seconds of load before measuring each cell (default 3; 5 with --rss)
 *   BENCH_CONCURRENCY      closed-loop clients (default 64)
 *   BENCH_MAX_BATCH_SIZE   the model's max_batch_size (default 32)
 *   BENCH_QUEUE_DELAY_US   max_queue_delay_microseconds of (a) (default 500)
 *   BENCH_DELAYS           the sweep, comma-separated microseconds (default 0,500,2000,10000; 'none' skips it)
 *   BENCH_SWEEP_CONCURRENCY clients for the sweep run a second time under light load (default 8; 0 skips it)
 *   BENCH_DIRECT_BATCHES   batch sizes for (c) (default 1,8,16,32,64)
 *   BENCH_DIRECT_SECONDS   measured seconds per batch size for (c) (default 3)
 *   BENCH_RSS_SECONDS      same as --rss
 *   BENCH_RSS_INTERVAL     seconds between RSS samples (default 5)
 *   BENCH_SWITCHYARD_NODE_ARGS  extra node flags for the server child
 *
 * It never asserts: it prints tables and whether each ratio meets its target.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { postOnce, runClosedLoop, type LoadResult } from '../load-generator.ts';
import { nowMs } from '../latencies.ts';
import { envIntegers, envNodeArgs, envNumber, fmtMs, fmtRate, table } from '../report.ts';
import { childRole, serveAsChild, ServerChild, startSwitchyardHttp, type StartedServer } from '../server-child.ts';
import { batchStatsBetween, readBatchStats, type BatchStatsReading, type BatchStatsWindow } from './batch-stats.ts';
import { measureDirectSession, type DirectSessionResult } from './direct-session.ts';
import {
  buildMlpRepository, INTRA_OP_THREADS, MLP_CLASSES, MLP_FEATURES, MLP_INPUT, MLP_OUTPUT, MLP_SIZES,
  type MlpRepository, type MlpServing,
} from './mlp-repository.ts';

const TARGET_A_OVER_B = 3;
const TARGET_A_OVER_C = 0.8;
const HEADER_LENGTH = 'inference-header-content-length';
const NO_BATCHING = 'mlp_no_batching';
const delayModel = (us: number): string => `mlp_delay_${us}us`;

interface ChildInit {
  readonly repository: string;
  readonly model: string;
}

type Child = ServerChild<ChildInit>;

// ---------------------------------------------------------------- child

async function startSwitchyard(init: ChildInit): Promise<StartedServer> {
  return startSwitchyardHttp(init.repository, [init.model]);
}

// ---------------------------------------------------------------- options

interface Options {
  readonly seconds: number;
  readonly warmup: number;
  readonly concurrency: number;
  readonly maxBatchSize: number;
  readonly delay: number;
  readonly sweep: readonly number[];
  /** Clients for the second, lighter sweep; 0 skips it. */
  readonly sweepConcurrency: number;
  readonly directBatches: readonly number[];
  readonly directSeconds: number;
  /** Set: the RSS mode, for this many measured seconds. */
  readonly rssSeconds: number | undefined;
  readonly rssInterval: number;
  readonly nodeArgs: readonly string[];
}

/** Comma-separated non-negative integers (0 is a valid queue delay), or 'none'. */
function envDelays(name: string, fallback: string): number[] {
  const raw = (process.env[name] ?? fallback).trim();
  if (raw === 'none') return [];
  const values = raw.split(',').map((s) => Number(s.trim()));
  if (values.length === 0 || values.some((n) => !Number.isSafeInteger(n) || n < 0)) {
    throw new Error(`${name} must list non-negative integers (e.g. '${fallback}') or be 'none', got '${raw}'`);
  }
  return values;
}

function rssFlag(argv: readonly string[]): number | undefined {
  let raw: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--rss') raw = argv[++i] ?? '';
    else if (arg.startsWith('--rss=')) raw = arg.slice('--rss='.length);
    else throw new Error(`unknown argument '${arg}': the only flag is --rss <seconds>`);
  }
  if (raw === undefined) return undefined;
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`--rss takes a number of seconds, got '${raw}'`);
  return seconds;
}

function readOptions(): Options {
  const rssSeconds = rssFlag(process.argv.slice(2)) ?? (process.env['BENCH_RSS_SECONDS'] ? envNumber('BENCH_RSS_SECONDS', 60) : undefined);
  const [concurrency] = envIntegers('BENCH_CONCURRENCY', '64');
  const [maxBatchSize] = envIntegers('BENCH_MAX_BATCH_SIZE', '32');
  const [delay] = envDelays('BENCH_QUEUE_DELAY_US', '500');
  if (delay === undefined) throw new Error('BENCH_QUEUE_DELAY_US must be one number of microseconds');
  return {
    seconds: envNumber('BENCH_SECONDS', 10),
    warmup: envNumber('BENCH_WARMUP', rssSeconds === undefined ? 3 : 5),
    concurrency: concurrency!,
    maxBatchSize: maxBatchSize!,
    delay,
    sweep: envDelays('BENCH_DELAYS', '0,500,2000,10000'),
    sweepConcurrency: process.env['BENCH_SWEEP_CONCURRENCY']?.trim() === '0' ? 0 : envNumber('BENCH_SWEEP_CONCURRENCY', 8),
    directBatches: envIntegers('BENCH_DIRECT_BATCHES', '1,8,16,32,64'),
    directSeconds: envNumber('BENCH_DIRECT_SECONDS', 3),
    rssSeconds,
    rssInterval: envNumber('BENCH_RSS_INTERVAL', 5),
    nodeArgs: envNodeArgs('BENCH_SWITCHYARD_NODE_ARGS'),
  };
}

// ---------------------------------------------------------------- requests

/** The one request row every client sends; deterministic so runs compare. */
const REQUEST_ROW: readonly number[] = Array.from({ length: MLP_FEATURES }, (_, i) => Math.sin(i * 0.37) * 0.5);

interface Payload {
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

/** A batch-1 request in Triton's binary tensor extension, asking for the output in binary too. */
function binaryRequest(): Payload {
  const tensorBytes = Buffer.from(new Float32Array(REQUEST_ROW).buffer);
  const header = Buffer.from(JSON.stringify({
    inputs: [{ name: MLP_INPUT, shape: [1, MLP_FEATURES], datatype: 'FP32', parameters: { binary_data_size: tensorBytes.byteLength } }],
    outputs: [{ name: MLP_OUTPUT, parameters: { binary_data: true } }],
  }));
  return {
    headers: { 'content-type': 'application/octet-stream', [HEADER_LENGTH]: String(header.byteLength) },
    body: Buffer.concat([header, tensorBytes]),
  };
}


/** Sends one request, checks the answer against ONNX Runtime's own output, and returns the response's size in bytes. */
async function checkedResponseBytes(port: number, model: string, payload: Payload, reference: Float32Array): Promise<number> {
  const response = await postOnce(port, `/v2/models/${model}/infer`, payload);
  if (response.status !== 200) throw new Error(`${model} answered ${response.status}: ${response.body.toString()}`);
  const headerLength = Number(response.headers[HEADER_LENGTH]);
  const outputBytes = response.body.byteLength - headerLength;
  if (!Number.isInteger(headerLength) || outputBytes !== MLP_CLASSES * 4) {
    throw new Error(`${model} did not answer with a binary [1,${MLP_CLASSES}] FP32 output`);
  }
  const output = new Float32Array(response.body.buffer.slice(response.body.byteOffset + headerLength, response.body.byteOffset + response.body.byteLength));
  const worst = output.reduce((m, v, i) => Math.max(m, Math.abs(v - reference[i]!) / Math.max(1, Math.abs(reference[i]!))), 0);
  if (!(worst < 1e-3)) throw new Error(`${model} answered [${[...output].join(', ')}], but ONNX Runtime gives [${[...reference].join(', ')}]`);
  return response.body.byteLength;
}

// ---------------------------------------------------------------- cells

interface Boundary {
  readonly wallMs: number;
  readonly selfCpuMicros: number;
  readonly serverCpuMicros: number;
  readonly stats: BatchStatsReading;
}

interface Cell {
  readonly model: string;
  readonly load: LoadResult;
  /** Server CPU (all threads) per request in the measured window, microseconds. */
  readonly serverCpuPerRequest: number;
  /** Load generator CPU over the measured window, as a share of one core. */
  readonly loadgenCpuShare: number;
  /** The statistics extension over the measured window, or why it is not available. */
  readonly batching: BatchStatsWindow | string;
  readonly rss?: readonly RssSample[];
}

interface RssSample {
  /** Seconds since the load started. */
  readonly t: number;
  readonly rssKiB: number;
  readonly peakKiB: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function boundary(child: Child, model: string): Promise<Boundary> {
  const wallMs = nowMs();
  const self = process.cpuUsage();
  const [serverCpuMicros, stats] = await Promise.all([child.cpuMicros(), readBatchStats(child.port, model)]);
  return { wallMs, selfCpuMicros: self.user + self.system, serverCpuMicros, stats };
}

/** VmRSS and VmHWM of a process, from /proc (Linux). */
function readRss(pid: number, t: number): RssSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { t, rssKiB: field('VmRSS'), peakKiB: field('VmHWM') };
  } catch {
    return undefined;
  }
}

interface CellSpec {
  readonly model: string;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Sample the server's RSS before the load, then every this many ms from the start of the measured window. */
  readonly rssIntervalMs?: number;
  /** Clients for this cell; default options.concurrency. */
  readonly concurrency?: number;
}

async function runCell(spec: CellSpec, options: Options, repository: MlpRepository, reference: Float32Array): Promise<Cell> {
  const { model, warmupMs, durationMs } = spec;
  const payload = binaryRequest();
  const child: Child = await ServerChild.start<ChildInit>(fileURLToPath(import.meta.url), 'switchyard',
    { repository: repository.root, model }, options.nodeArgs);
  try {
    const expectBodyBytes = await checkedResponseBytes(child.port, model, payload, reference);
    const rss: RssSample[] = [];
    const timers: NodeJS.Timeout[] = [];
    const pid = child.pid;
    if (spec.rssIntervalMs !== undefined && pid !== undefined) {
      const before = readRss(pid, 0);
      if (before) rss.push(before);
      for (let at = warmupMs; at <= warmupMs + durationMs + 1; at += spec.rssIntervalMs) {
        timers.push(setTimeout(() => {
          const sample = readRss(pid, at / 1000);
          if (sample) rss.push(sample);
        }, at));
      }
    }
    const atStart = sleep(warmupMs).then(() => boundary(child, model));
    const atEnd = sleep(warmupMs + durationMs).then(() => boundary(child, model));
    const load = await runClosedLoop({
      host: '127.0.0.1', port: child.port, path: `/v2/models/${model}/infer`, headers: payload.headers, body: payload.body,
      concurrency: spec.concurrency ?? options.concurrency, warmupMs, durationMs, expectBodyBytes, client: 'raw',
    });
    const [start, end] = await Promise.all([atStart, atEnd]);
    for (const timer of timers) clearTimeout(timer);
    return {
      model,
      load,
      serverCpuPerRequest: load.requests > 0 ? (end.serverCpuMicros - start.serverCpuMicros) / load.requests : Number.NaN,
      loadgenCpuShare: (end.selfCpuMicros - start.selfCpuMicros) / ((end.wallMs - start.wallMs) * 1000),
      batching: batchStatsBetween(start.stats, end.stats),
      ...(spec.rssIntervalMs !== undefined ? { rss } : {}),
    };
  } finally {
    await child.stop();
  }
}

// ---------------------------------------------------------------- report

const ratio = (a: number, b: number): string => (b > 0 ? (a / b).toFixed(2) : '-');
const verdict = (value: number, target: number): string => (value >= target ? 'meets' : 'BELOW');
const averageBatch = (cell: Cell): string => (typeof cell.batching === 'string' ? 'n/a' : cell.batching.averageBatchSize.toFixed(1));
/** Share of the measured window the model's instance spent in session.run. */
const modelBusy = (cell: Cell, durationMs: number): string =>
  (typeof cell.batching === 'string' ? 'n/a' : `${Math.round((cell.batching.computeMs / durationMs) * 100)}%`);
const closeReasons = (cell: Cell): string => {
  if (typeof cell.batching === 'string') return `n/a (${cell.batching})`;
  const entries = Object.entries(cell.batching.closeReasons);
  return entries.length === 0 ? '-' : entries.map(([reason, n]) => `${reason} ${n.toLocaleString('en-US')}`).join(', ');
};
const errorsOf = (label: string, cell: Cell): string =>
  (cell.load.errors > 0 ? `${label}: ${cell.load.errors} errors (${cell.load.firstError})` : '');

function header(options: Options, payload: Payload): void {
  console.log(`Switchyard dynamic batching benchmark: node ${process.version}, ${cpus().length} CPUs`);
  console.log(`model: MLP ${MLP_SIZES.join(' -> ')} FP32, intra_op_thread_count ${INTRA_OP_THREADS}, 1 CPU instance, `
    + `max_batch_size ${options.maxBatchSize}`);
  console.log(`load: ${options.concurrency} closed-loop clients over keep-alive HTTP, batch-1 binary tensor requests `
    + `(${payload.body.byteLength} B), ${options.warmup} s warm-up then `
    + `${options.rssSeconds ?? options.seconds} s measured per cell; server in its own process`);
}

function printDirect(direct: DirectSessionResult, options: Options): void {
  console.log(`\n(c) in-process limit: onnxruntime-node InferenceSession in a worker thread, intraOpNumThreads ${INTRA_OP_THREADS}, `
    + `session.run back to back on a pre-built input, ${options.directSeconds} s per batch size (run times in ms)\n`);
  console.log(table(['batch', 'best', 'infer/s', 'run p50', 'run p99'], direct.batches.map((b) => [
    String(b.batchSize), b === direct.best ? 'best' : '', fmtRate(b.inferencesPerSecond), fmtMs(b.runP50), fmtMs(b.runP99),
  ])));
}

async function mainRss(options: Options, repository: MlpRepository, reference: Float32Array): Promise<void> {
  const rssSeconds = options.rssSeconds!;
  const model = delayModel(options.delay);
  console.log(`RSS mode: (a) ${model} for ${rssSeconds} s, the server's VmRSS from /proc/<pid>/status every ${options.rssInterval} s\n`);
  const cell = await runCell({
    model, warmupMs: options.warmup * 1000, durationMs: rssSeconds * 1000, rssIntervalMs: options.rssInterval * 1000,
  }, options, repository, reference);
  const mib = (kib: number): string => (kib / 1024).toFixed(1);
  const samples = cell.rss ?? [];
  console.log(table(['t (s)', 'phase', 'RSS MiB', 'peak MiB'], samples.map((s, i) => [
    s.t.toFixed(0), i === 0 ? 'before load' : s.t < options.warmup ? 'warm-up' : 'measured', mib(s.rssKiB), mib(s.peakKiB),
  ])));
  const measured = samples.slice(1);
  const first = measured[0];
  const last = measured[measured.length - 1];
  if (!first || !last) {
    console.log('\nNo RSS samples: /proc/<pid>/status could not be read (Linux only).');
  } else {
    const growth = last.rssKiB - first.rssKiB;
    console.log(`\nRSS growth over the measured ${(last.t - first.t).toFixed(0)} s (t=${first.t.toFixed(0)} -> t=${last.t.toFixed(0)}): `
      + `${growth >= 0 ? '+' : ''}${mib(growth)} MiB (${((growth / first.rssKiB) * 100).toFixed(1)}%), `
      + `from ${mib(first.rssKiB)} to ${mib(last.rssKiB)} MiB; peak ${mib(last.peakKiB)} MiB`);
  }
  console.log(`throughput ${fmtRate(cell.load.requestsPerSecond)} infer/s, p50 ${fmtMs(cell.load.p50)} ms, p99 ${fmtMs(cell.load.p99)} ms, `
    + `average batch ${averageBatch(cell)}, ${cell.load.requests.toLocaleString('en-US')} requests measured`);
  const errors = errorsOf(model, cell);
  if (errors) console.log(`Errors (not counted): ${errors}`);
}

async function main(): Promise<void> {
  const options = readOptions();
  const delays = [...new Set(options.rssSeconds === undefined ? [...options.sweep, options.delay] : [options.delay])];
  const servings: MlpServing[] = [
    ...(options.rssSeconds === undefined ? [{ name: NO_BATCHING, queueDelayMicroseconds: undefined }] : []),
    ...delays.map((us) => ({ name: delayModel(us), queueDelayMicroseconds: us })),
  ];
  const { removeRepository } = await import('../../test/helpers/fixture-repository.ts');
  const repository = await buildMlpRepository(servings, options.maxBatchSize);
  try {
    header(options, binaryRequest());
    // The RSS mode needs only the reference output, so it measures (c) for a moment at batch 1.
    const direct = await measureDirectSession({
      modelPath: repository.modelPath(servings[0]!.name), inputName: MLP_INPUT, outputName: MLP_OUTPUT, row: REQUEST_ROW,
      intraOpThreads: INTRA_OP_THREADS,
      ...(options.rssSeconds === undefined
        ? { batchSizes: options.directBatches, warmupMs: 500, durationMs: options.directSeconds * 1000 }
        : { batchSizes: [1], warmupMs: 0, durationMs: 100 }),
    });
    if (options.rssSeconds !== undefined) {
      await mainRss(options, repository, direct.reference);
      return;
    }
    printDirect(direct, options);

    const warmupMs = options.warmup * 1000;
    const durationMs = options.seconds * 1000;
    const cells = new Map<string, Cell>();
    for (const serving of servings) {
      const cell = await runCell({ model: serving.name, warmupMs, durationMs }, options, repository, direct.reference);
      cells.set(serving.name, cell);
      console.log(`  ${serving.name}: ${fmtRate(cell.load.requestsPerSecond)} infer/s, p50 ${fmtMs(cell.load.p50)} ms, `
        + `p99 ${fmtMs(cell.load.p99)} ms, average batch ${averageBatch(cell)}, model busy ${modelBusy(cell, durationMs)} of the window`);
    }

    const a = cells.get(delayModel(options.delay))!;
    const b = cells.get(NO_BATCHING)!;
    const aRate = a.load.requestsPerSecond;
    console.log('\nThroughput and latency (latency in ms; us/req: server CPU, all threads, per request; loadgen: client CPU, share of one core)\n');
    console.log(table(['mode', 'config', 'infer/s', 'p50', 'p99', 'avg batch', 'us/req', 'loadgen'], [
      ['(a) switchyard, dynamic batching', `max_queue_delay ${options.delay} us`, fmtRate(aRate), fmtMs(a.load.p50), fmtMs(a.load.p99),
        averageBatch(a), a.serverCpuPerRequest.toFixed(0), `${Math.round(a.loadgenCpuShare * 100)}%`],
      ['(b) switchyard, no batching', 'no dynamic_batching', fmtRate(b.load.requestsPerSecond), fmtMs(b.load.p50), fmtMs(b.load.p99),
        averageBatch(b), b.serverCpuPerRequest.toFixed(0), `${Math.round(b.loadgenCpuShare * 100)}%`],
      ['(c) in-process limit', `batch ${direct.best.batchSize}, per run`, fmtRate(direct.best.inferencesPerSecond),
        fmtMs(direct.best.runP50), fmtMs(direct.best.runP99), String(direct.best.batchSize), '-', '-'],
    ]));
    console.log('\n(c) latencies are the time of one session.run at that batch size, not of a request.\n');
    const ab = aRate / b.load.requestsPerSecond;
    const ac = aRate / direct.best.inferencesPerSecond;
    console.log(table(['ratio', 'value', 'target', 'verdict'], [
      ['a/b', ratio(aRate, b.load.requestsPerSecond), `>= ${TARGET_A_OVER_B}`, verdict(ab, TARGET_A_OVER_B)],
      ['a/c', ratio(aRate, direct.best.inferencesPerSecond), `>= ${TARGET_A_OVER_C}`, verdict(ac, TARGET_A_OVER_C)],
    ]));

    if (options.sweep.length > 0) {
      console.log(`\nmax_queue_delay_microseconds sweep (dynamic batching, max_batch_size ${options.maxBatchSize}; latency in ms; `
        + 'avg batch = inference_count / execution_count over the measured window)\n');
      console.log(table(['delay us', 'batch close reasons', 'infer/s', 'p50', 'p99', 'avg batch'], options.sweep.map((us) => {
        const cell = cells.get(delayModel(us))!;
        return [String(us), closeReasons(cell), fmtRate(cell.load.requestsPerSecond), fmtMs(cell.load.p50), fmtMs(cell.load.p99), averageBatch(cell)];
      })));
    }
    // At full load the queue is never short, so the delay changes little; with fewer clients it trades latency for batch size.
    const light = options.sweepConcurrency;
    if (options.sweep.length > 0 && light > 0 && light !== options.concurrency) {
      const lightCells = new Map<number, Cell>();
      for (const us of options.sweep) {
        const cell = await runCell({ model: delayModel(us), warmupMs, durationMs, concurrency: light }, options, repository, direct.reference);
        lightCells.set(us, cell);
        cells.set(`${delayModel(us)} at ${light} clients`, cell);
      }
      console.log(`\nThe same sweep at ${light} clients (latency in ms)\n`);
      console.log(table(['delay us', 'batch close reasons', 'infer/s', 'p50', 'p99', 'avg batch'], options.sweep.map((us) => {
        const cell = lightCells.get(us)!;
        return [String(us), closeReasons(cell), fmtRate(cell.load.requestsPerSecond), fmtMs(cell.load.p50), fmtMs(cell.load.p99), averageBatch(cell)];
      })));
    }
    const errors = [...cells.entries()].map(([model, cell]) => errorsOf(model, cell)).filter(Boolean);
    if (errors.length > 0) console.log(`\nErrors (not counted in infer/s):\n  ${errors.join('\n  ')}`);
  } finally {
    await removeRepository(repository.root);
  }
}

const role = childRole();
if (role === 'switchyard') await serveAsChild<ChildInit>(startSwitchyard);
else if (role !== undefined) throw new Error(`unknown child role '${role}'`);
else await main();
