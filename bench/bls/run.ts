/**
 * BLS benchmark: what one ctx.infer from a TypeScript model costs, and how
 * long a TypeScript model takes from load to its first answer. In-process
 * only: the question is the isolate bridge, not HTTP.
 *
 * Latency: closed-loop load of batch-1 requests on one in-process
 * InferenceEngine, three modes (see bls-repository.ts):
 *
 *   direct       engine.infer to add_sub (small ONNX model, no batching)
 *   script-only  engine.infer to an echo script: no ctx.infer
 *   bls          engine.infer to a script whose execute() makes one
 *                ctx.infer to add_sub and returns its outputs
 *
 * so that bls - direct is what wrapping the model in a script costs, and
 * bls - script-only - direct is what the ctx.infer bridge adds on top of a
 * direct call (target: at most 100 us at p50). At c=1 the scripts have one
 * instance; above, each script runs in three variants (1 instance, N
 * instances, 1 instance with dynamic_batching) because one instance runs
 * one execute() at a time, and a script awaiting ctx.infer holds it.
 *
 * Cold start: see cold-start.ts (target: at most 50 ms from load to first
 * answer).
 *
 *   npm run bench:bls
 *
 * Environment:
 *   BENCH_SECONDS           measured seconds per cell (default 3)
 *   BENCH_WARMUP            seconds of load before measuring each cell (default 1)
 *   BENCH_CONCURRENCY       client concurrencies, comma-separated (default 1,32; 'none' for no latency cells)
 *   BENCH_SCRIPT_INSTANCES  instance_group count of the many-instance variant (default 8)
 *   BENCH_COLD_STARTS       repetitions of each cold-start measurement (default 40; 0 for none)
 *   BENCH_BUFFER_POOLING    0 runs the latency server with bufferPooling off (default on)
 *   BENCH_SETTLE            idle seconds after each script cell (default 0), see SETTLE_NOTE
 *   BENCH_INLINE_SLICE_MS   parameters.inline_slice_ms of the inline variants (default 50)
 *   BENCH_FLOOR             seconds per floor row (default 3; 0 for none): see floor.ts
 *
 * It never asserts: it prints tables and whether each target is met.
 */
import { cpus } from 'node:os';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import type { FixedTensor, Tensor } from '../../engine/tensor.ts';
import type { LoadResult } from '../load-generator.ts';
import { nowMs } from '../latencies.ts';
import { runCallLoop } from '../call-loop.ts';
import { envIntegers, envNumber, fmtMs, fmtRate, table } from '../report.ts';
import {
  blsModel, buildLatencyRepository, echoModel, INPUTS, MAX_BATCH_SIZE, OUTPUTS, scriptVariants, SIZE, TARGET, type ScriptVariant,
} from './bls-repository.ts';
import { measureColdStart, type ColdStartRow } from './cold-start.ts';
import { measureFloor, type FloorRow } from './floor.ts';
import { join } from 'node:path';

const TARGET_BRIDGE_US = 100;
const TARGET_COLD_START_MS = 50;

/**
 * Why the bench idles after a script cell. The sandbox passes isolated-vm a
 * `timeout` (execute_timeout_ms, 5 s by default) on every execute(), and
 * isolated-vm keeps each such timer armed until it is due, even when the
 * call ended long before; the expiring timers then cost CPU at the rate the
 * calls were made. Without a pause, a cell would pay for the timers of the
 * cell before it, and the figures would depend on the order of the cells.
 * With it, every cell starts clean and (as long as warm-up + measured stays
 * under 5 s) is measured before its own timers fall due; BENCH_WARMUP=6
 * measures the steady state of sustained load instead.
 */
const SETTLE_NOTE = 'idle after each script cell, so that each cell starts from a quiet process';

// ---------------------------------------------------------------- options

interface Options {
  readonly seconds: number;
  readonly warmup: number;
  readonly concurrencies: readonly number[];
  readonly scriptInstances: number;
  readonly coldStarts: number;
  readonly bufferPooling: boolean;
  readonly settleSeconds: number;
  readonly inlineSliceMs: number;
  /** Seconds per floor row (0 for none). */
  readonly floorSeconds: number;
}

/** A number >= 0 from the environment, or the fallback when unset. */
function nonNegative(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number >= 0, got '${raw}'`);
  return value;
}

function readOptions(): Options {
  const coldStarts = nonNegative('BENCH_COLD_STARTS', 40);
  if (!Number.isSafeInteger(coldStarts)) throw new Error(`BENCH_COLD_STARTS must be a whole number (0 for none), got '${coldStarts}'`);
  return {
    seconds: envNumber('BENCH_SECONDS', 3),
    warmup: envNumber('BENCH_WARMUP', 1),
    concurrencies: envIntegers('BENCH_CONCURRENCY', '1,32'),
    scriptInstances: Math.round(envNumber('BENCH_SCRIPT_INSTANCES', 8)),
    coldStarts,
    bufferPooling: process.env['BENCH_BUFFER_POOLING'] !== '0',
    settleSeconds: nonNegative('BENCH_SETTLE', 0),
    inlineSliceMs: Math.round(envNumber('BENCH_INLINE_SLICE_MS', 50)),
    floorSeconds: nonNegative('BENCH_FLOOR', 3),
  };
}

// ---------------------------------------------------------------- requests

const A = Float32Array.from({ length: SIZE }, (_, i) => i * 0.5);
const B = Float32Array.from({ length: SIZE }, (_, i) => 1 - i * 0.25);
const RAW = [new Uint8Array(A.buffer), new Uint8Array(B.buffer)];

type Mode = 'direct' | 'script-only' | 'bls';

/** What each mode must answer: add_sub's sums and differences, or the inputs back. */
function expected(mode: Mode): readonly Float32Array[] {
  return mode === 'script-only' ? [A, B] : [A.map((a, i) => a + B[i]!), A.map((a, i) => a - B[i]!)];
}

const requestTo = (engine: InferenceEngine, model: string) => () => engine.infer({
  modelName: model,
  inputs: INPUTS.map((name, i): FixedTensor => ({ name, datatype: 'FP32', shape: [1, SIZE], raw: RAW[i]! })),
});

/** One request; the outputs go back to the pool as a careful in-process caller would give them. */
function call(engine: InferenceEngine, model: string): () => Promise<string | undefined> {
  const send = requestTo(engine, model);
  return async () => {
    const response = await send();
    response.lease?.release();
    return response.outputs.length === OUTPUTS.length ? undefined : `${model} answered ${response.outputs.length} outputs`;
  };
}

async function checkAnswer(engine: InferenceEngine, mode: Mode, model: string): Promise<void> {
  const response = await requestTo(engine, model)();
  const want = expected(mode);
  OUTPUTS.forEach((name, i) => {
    const output = response.outputs.find((t: Tensor) => t.name === name);
    if (!output || output.datatype !== 'FP32') throw new Error(`${model}: no FP32 output ${name}`);
    const got = new Float32Array(output.raw.slice().buffer);
    if (got.length !== SIZE || got.some((v, j) => v !== want[i]![j])) {
      throw new Error(`${model} (${mode}) answered ${name} = [${[...got].join(', ')}], expected [${[...want[i]!].join(', ')}]`);
    }
  });
  response.lease?.release();
}

// ---------------------------------------------------------------- cells

interface Cell {
  readonly mode: Mode;
  readonly model: string;
  /** undefined for direct. */
  readonly variant: ScriptVariant | undefined;
  readonly concurrency: number;
  readonly load: LoadResult;
  /** CPU of this process (all threads: loop, engine, ONNX Runtime worker, isolates) per request in the window, microseconds. */
  readonly cpuPerRequest: number;
  /** Tensor bytes the server's pool allocated (or saw allocated outside it) per call, warm-up included. */
  readonly allocatedPerCall: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const cpuMicros = (): number => {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
};

async function runCell(engine: InferenceEngine, mode: Mode, model: string, variant: ScriptVariant | undefined,
  concurrency: number, options: Options): Promise<Cell> {
  const warmupMs = options.warmup * 1000;
  const durationMs = options.seconds * 1000;
  const boundary = (): { wallMs: number; cpu: number } => ({ wallMs: nowMs(), cpu: cpuMicros() });
  // Taken as calls start, not on timers: a script that runs inline answers in microtasks only, and timers would wait.
  const windowStart = nowMs() + warmupMs;
  let start: { wallMs: number; cpu: number } | undefined;
  let end: { wallMs: number; cpu: number } | undefined;
  const one = call(engine, model);
  let calls = 0;
  const poolBefore = engine.bufferPoolStats();
  const load = await runCallLoop({ concurrency, warmupMs, durationMs }, () => {
    calls++;
    const now = nowMs();
    if (start === undefined && now >= windowStart) start = boundary();
    if (end === undefined && now >= windowStart + durationMs) end = boundary();
    return one();
  });
  const poolAfter = engine.bufferPoolStats();
  start ??= boundary();
  end ??= boundary();
  const allocated = poolAfter.allocatedBytes + poolAfter.foreignBytes - poolBefore.allocatedBytes - poolBefore.foreignBytes;
  const cell: Cell = {
    mode, model, variant, concurrency, load,
    cpuPerRequest: load.requests > 0 ? (end.cpu - start.cpu) / load.requests : Number.NaN,
    allocatedPerCall: calls > 0 ? allocated / calls : Number.NaN,
  };
  console.log(`  c=${concurrency} ${mode} (${model}): ${fmtRate(load.requestsPerSecond)} req/s, p50 ${fmtMs(load.p50)} ms, p99 ${fmtMs(load.p99)} ms`);
  return cell;
}

// ---------------------------------------------------------------- report

const fmtUs = (ms: number): string => (Number.isFinite(ms) ? `${Math.round(ms * 1000)}` : '-');
const fmtRatio = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '-');
const fmtCount = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '-');

const scheduling = (cell: Cell): string => (cell.variant ? cell.variant.label : '1 instance, no batching');

function printCells(cells: readonly Cell[]): void {
  console.log('\nThroughput and latency (latency in ms; CPU us/req: this process, all threads; '
    + 'alloc B/call: tensor bytes newly allocated per call, pool and ONNX Runtime)\n');
  console.log(table(['mode', 'scheduling', 'c', 'req/s', 'p50', 'p99', 'CPU us/req', 'alloc B/call'], cells.map((c) => [
    c.mode, scheduling(c), String(c.concurrency), fmtRate(c.load.requestsPerSecond), fmtMs(c.load.p50), fmtMs(c.load.p99),
    fmtCount(c.cpuPerRequest), fmtCount(c.allocatedPerCall),
  ])));
}

function printAdded(cells: readonly Cell[], concurrencies: readonly number[]): void {
  const rows: string[][] = [];
  for (const c of concurrencies) {
    const direct = cells.find((cell) => cell.mode === 'direct' && cell.concurrency === c);
    if (!direct) continue;
    const variants = [...new Set(cells.filter((cell) => cell.concurrency === c && cell.variant).map((cell) => cell.variant!))];
    for (const variant of variants) {
      const bls = cells.find((cell) => cell.mode === 'bls' && cell.concurrency === c && cell.variant === variant);
      const echo = cells.find((cell) => cell.mode === 'script-only' && cell.concurrency === c && cell.variant === variant);
      if (!bls || !echo) continue;
      const bridge = bls.load.p50 - echo.load.p50 - direct.load.p50;
      const primary = c === 1;
      rows.push([
        String(c), variant.label,
        fmtUs(bls.load.p50 - direct.load.p50),
        fmtUs(bls.load.p50 - echo.load.p50),
        fmtUs(bridge),
        fmtCount(bls.cpuPerRequest - echo.cpuPerRequest - direct.cpuPerRequest),
        fmtRatio(bls.load.requestsPerSecond / direct.load.requestsPerSecond),
        primary ? `<= ${TARGET_BRIDGE_US}` : '-',
        primary ? (bridge * 1000 <= TARGET_BRIDGE_US ? 'meets' : 'ABOVE') : '-',
      ]);
    }
  }
  if (rows.length === 0) return;
  console.log('\nWhat a ctx.infer adds, at p50 in us: wrap = bls - direct (the whole cost of putting the model behind a script); '
    + 'call = bls - script-only (ctx.infer as the script waits for it, model included); '
    + 'bridge = bls - script-only - direct (what the bridge adds over calling the model directly). '
    + 'bridge CPU: the same difference in CPU us per request. The target applies to bridge at c=1; '
    + 'under closed-loop load p50 follows throughput, so read req/s and CPU there.\n');
  console.log(table(['c', 'script scheduling', 'wrap us', 'call us', 'bridge us', 'bridge CPU us', 'bls/direct req/s', 'target', 'verdict'], rows));
}

function printColdStart(rows: readonly ColdStartRow[], reps: number): void {
  console.log(`\nCold start, ${reps} repetitions each, one after another in this process (ms; first: the first repetition, `
    + 'which pays one-off costs of the process and is in max too)\n');
  console.log(table(['stage', 'what', 'first', 'p50', 'p99', 'max'], rows.map((r) => [
    r.stage, r.what, fmtMs(r.first), fmtMs(r.summary.p50), fmtMs(r.summary.p99), fmtMs(r.summary.max),
  ])));
  const verdicts = rows.filter((r) => r.stage.startsWith('load + first answer')).flatMap((r) => [
    [r.stage, 'p50', fmtMs(r.summary.p50), `<= ${TARGET_COLD_START_MS}`, r.summary.p50 <= TARGET_COLD_START_MS ? 'meets' : 'ABOVE'],
    [r.stage, 'max', fmtMs(r.summary.max), `<= ${TARGET_COLD_START_MS}`, r.summary.max <= TARGET_COLD_START_MS ? 'meets' : 'ABOVE'],
  ]);
  console.log('\n' + table(['cold start', 'statistic', 'ms', 'target', 'verdict'], verdicts));
}

// ---------------------------------------------------------------- main

/** The floor rows beside Switchyard's c=1 inline ones. */
function printFloor(rows: readonly FloorRow[], cells: readonly Cell[]): void {
  const row = (mode: FloorRow['mode']): FloorRow => rows.find((r) => r.mode === mode)!;
  const bridge = row('floor bls').p50Us - row('floor echo').p50Us - row('floor direct').p50Us;
  const inline = (mode: Mode): Cell | undefined => cells.find((c) => c.concurrency === 1 && c.mode === mode && (mode === 'direct' || c.variant?.key === 'inline'));
  const [direct, echo, bls] = [inline('direct'), inline('script-only'), inline('bls')];
  console.log('\nThe floor: one isolated-vm isolate driven synchronously from this thread (as inline executes are), the model run with '
    + 'ONNX Runtime\'s native binding, no engine. floor bridge = bls - echo - direct at p50; a ctx.infer cannot add less.\n');
  console.log(table(['mode', 'req/s', 'p50 us', 'CPU us/req'], rows.map((r) => [r.mode, fmtCount(r.requestsPerSecond), r.p50Us.toFixed(1), r.cpuUsPerRequest.toFixed(1)])));
  console.log(`\nfloor bridge ${bridge.toFixed(0)} us`
    + (direct && echo && bls ? `; Switchyard's inline bridge ${((bls.load.p50 - echo.load.p50 - direct.load.p50) * 1000).toFixed(0)} us. `
      + `floor bls / floor direct req/s ${(row('floor bls').requestsPerSecond / row('floor direct').requestsPerSecond).toFixed(2)}, `
      + `Switchyard's inline bls / direct at c=1 ${(bls.load.requestsPerSecond / direct.load.requestsPerSecond).toFixed(2)}` : ''));
}

async function startEngine(root: string, bufferPooling: boolean): Promise<InferenceEngine> {
  const { silentLogger } = await import('../../engine/logger.ts');
  const { createEngine } = await import('../../server/composition-root.ts');
  const engine = await createEngine({ modelRepositories: [root], logger: silentLogger, bufferPooling });
  const failures = engine.loadFailures();
  if (failures.length > 0) {
    await engine.close();
    throw new Error(`models failed to load in-process: ${JSON.stringify(failures)}`);
  }
  return engine;
}

async function runLatency(options: Options): Promise<void> {
  const { removeRepository } = await import('../../test/helpers/fixture-repository.ts');
  const variants = scriptVariants(options.scriptInstances, options.inlineSliceMs);
  const root = await buildLatencyRepository(variants);
  try {
    const engine = await startEngine(root, options.bufferPooling);
    try {
      await checkAnswer(engine, 'direct', TARGET);
      for (const variant of variants) {
        await checkAnswer(engine, 'bls', blsModel(variant));
        await checkAnswer(engine, 'script-only', echoModel(variant));
      }
      const cells: Cell[] = [];
      const run = async (mode: Mode, model: string, variant: ScriptVariant | undefined, c: number): Promise<void> => {
        if (cells.at(-1)?.variant) await sleep(options.settleSeconds * 1000);
        cells.push(await runCell(engine, mode, model, variant, c, options));
      };
      for (const c of options.concurrencies) {
        await run('direct', TARGET, undefined, c);
        // One request at a time gives every variant the same schedule: only the first, and the first inline one, run at c=1.
        for (const variant of c === 1 ? variants.filter((v, i) => i === 0 || v.key === 'inline') : variants) {
          await run('script-only', echoModel(variant), variant, c);
          await run('bls', blsModel(variant), variant, c);
        }
      }
      printCells(cells);
      printAdded(cells, options.concurrencies);
      if (options.floorSeconds > 0) printFloor(await measureFloor(join(root, TARGET, '1', 'model.onnx'), SIZE, options.floorSeconds), cells);
      const errors = cells.filter((c) => c.load.errors > 0).map((c) => `c=${c.concurrency} ${c.model}: ${c.load.errors} errors (${c.load.firstError})`);
      if (errors.length > 0) console.log(`\nErrors (not counted in req/s):\n  ${errors.join('\n  ')}`);
    } finally {
      await engine.close();
    }
  } finally {
    await removeRepository(root);
  }
}

async function main(): Promise<void> {
  const options = readOptions();
  console.log(`Switchyard BLS benchmark: node ${process.version}, ${cpus().length} CPUs, in-process`);
  console.log(`target: ${TARGET} (addSubModel FP32 [${SIZE}], max_batch_size ${MAX_BATCH_SIZE}, 1 CPU instance, no dynamic_batching); `
    + `scripts: same signature, memory_limit_mb and execute_timeout_ms at their defaults`);
  console.log(`load: closed loop, batch-1 requests, ${options.warmup} s warm-up then ${options.seconds} s measured per cell; `
    + `buffer pooling ${options.bufferPooling ? 'on' : 'off'}; many-instance variant: ${options.scriptInstances} instances`);
  if (options.settleSeconds > 0) console.log(`settle: ${options.settleSeconds} s ${SETTLE_NOTE}`);
  // Cold start first, so its first repetition is the first script this process ever loads.
  let cold: ColdStartRow[] = [];
  if (options.coldStarts > 0) {
    console.log(`\ncold start: ${options.coldStarts} repetitions per measurement`);
    cold = await measureColdStart(options.coldStarts);
  }
  if (options.concurrencies.length > 0) {
    console.log('\nlatency cells:');
    await runLatency(options);
  }
  if (cold.length > 0) printColdStart(cold, options.coldStarts);
}

await main();
