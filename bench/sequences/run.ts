/**
 * Sequence batching benchmark. 256 concurrent sequences of 20 steps each on
 * a stateful ONNX model (implicit state: a running sum over FP32 [256],
 * plus an MLP 256 -> 2048 -> 2048 -> 16 over it; see
 * state-mlp-repository.ts), every step's answer checked, through
 * `engine.infer` in this process, served three ways:
 *
 *   (a) oldest: max_batch_size 32, oldest { max_candidate_sequences,
 *       preferred_batch_size [32], max_queue_delay_microseconds }
 *   (b) direct: max_batch_size 32, direct { } (32 slots per instance)
 *   (c) unbatched: max_batch_size 1 with the default strategy (direct, one
 *       slot): each execution runs one step of one sequence, and the
 *       sequences take the instance one after another
 *
 * It prints steps/s, p50 and p99 step latency, the rows per execution, the
 * instance's busy share, a floor (the model in an onnxruntime-node session
 * in this thread, at batch 1 and max_batch_size) and a/c and b/c. Then, in a child process with --expose-gc, the server memory
 * per idle sequence (idle-memory.ts).
 *
 *   npm run bench:sequences
 *
 * Environment:
 *   BENCH_SEQUENCES        concurrent sequences per round (default 256)
 *   BENCH_STEPS            steps per sequence (default 20)
 *   BENCH_SECONDS          measured rounds run until this many seconds have passed, per way (default 5)
 *   BENCH_WARMUP_ROUNDS    unmeasured rounds before each way (default 1)
 *   BENCH_MAX_BATCH_SIZE   max_batch_size of (a) and (b) (default 32)
 *   BENCH_CANDIDATES       max_candidate_sequences of (a) (default: BENCH_SEQUENCES)
 *   BENCH_QUEUE_DELAY_US   max_queue_delay_microseconds of (a) (default 500)
 *   BENCH_FLOOR_SECONDS    seconds per batch size of the session floor (default 2; 0 skips it)
 *   BENCH_WAYS             the ways to run, e.g. 'ac' (default 'abc')
 *   BENCH_IDLE_SEQUENCES   sequences opened for the memory measurement, twice over (default 10000; 'none' skips it)
 *
 * It never asserts: it prints tables and whether each target is met.
 */
import { fork } from 'node:child_process';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import type { ModelStatisticsJson } from '../../engine/observability/model-stats.ts';
import { envNumber, fmtMs, fmtRate, table } from '../report.ts';
import { measureIdleMemory, type IdleMemoryInit, type IdleMemoryResult, type MemoryDelta } from './idle-memory.ts';
import { runRounds, SequenceWorkload, type RoundsResult } from './sequence-workload.ts';
import { measureSessionFloor, type FloorResult } from './session-floor.ts';
import { buildSequenceRepository, FEATURES, HIDDEN, STATE_BYTES, STATE_WIDTH, type SequenceServing } from './state-mlp-repository.ts';

const TARGET_A_OVER_C = 3;
const TARGET_IDLE_BYTES = 10 * 1024;
const ROUND_IDLE_MICROSECONDS = 60_000_000;

interface Options {
  readonly sequences: number;
  readonly steps: number;
  readonly seconds: number;
  readonly warmupRounds: number;
  readonly maxBatchSize: number;
  readonly candidates: number;
  readonly queueDelay: number;
  readonly idleSequences: number;
  readonly floorSeconds: number;
  /** Letters of the ways to run. */
  readonly ways: string;
}

function readOptions(): Options {
  const sequences = Math.round(envNumber('BENCH_SEQUENCES', 256));
  const warmup = process.env['BENCH_WARMUP_ROUNDS'];
  const idle = process.env['BENCH_IDLE_SEQUENCES'];
  return {
    sequences,
    steps: Math.round(envNumber('BENCH_STEPS', 20)),
    seconds: envNumber('BENCH_SECONDS', 5),
    warmupRounds: warmup === '0' ? 0 : Math.round(envNumber('BENCH_WARMUP_ROUNDS', 1)),
    maxBatchSize: Math.round(envNumber('BENCH_MAX_BATCH_SIZE', 32)),
    candidates: Math.round(envNumber('BENCH_CANDIDATES', sequences)),
    queueDelay: process.env['BENCH_QUEUE_DELAY_US'] === '0' ? 0 : Math.round(envNumber('BENCH_QUEUE_DELAY_US', 500)),
    idleSequences: idle?.trim() === 'none' ? 0 : Math.round(envNumber('BENCH_IDLE_SEQUENCES', 10_000)),
    ways: process.env['BENCH_WAYS'] ?? 'abc',
    floorSeconds: process.env['BENCH_FLOOR_SECONDS'] === '0' ? 0 : envNumber('BENCH_FLOOR_SECONDS', 2),
  };
}

interface Way {
  readonly label: string;
  readonly serving: SequenceServing;
  /** How the config schedules, for the table. */
  readonly scheduling: string;
}

function ways(options: Options): Way[] {
  const { maxBatchSize: mbs, candidates, queueDelay } = options;
  const idle = ROUND_IDLE_MICROSECONDS;
  return [
    {
      label: '(a) oldest',
      scheduling: `mbs ${mbs}, ${candidates} candidates, preferred ${mbs}, delay ${queueDelay} us`,
      serving: {
        name: 'seq_oldest', maxBatchSize: mbs, maxSequenceIdleMicroseconds: idle,
        strategy: `oldest { max_candidate_sequences: ${candidates} preferred_batch_size: [ ${mbs} ] max_queue_delay_microseconds: ${queueDelay} }`,
      },
    },
    {
      label: '(b) direct',
      scheduling: `mbs ${mbs}, ${mbs} slots, no delay`,
      serving: { name: 'seq_direct', maxBatchSize: mbs, maxSequenceIdleMicroseconds: idle, strategy: 'direct { }' },
    },
    {
      label: '(c) unbatched',
      scheduling: 'mbs 1, 1 slot (direct)',
      serving: { name: 'seq_unbatched', maxBatchSize: 1, maxSequenceIdleMicroseconds: idle, strategy: 'direct { }' },
    },
  ];
}

interface WayResult {
  readonly way: Way;
  readonly result: RoundsResult;
  /** Wrong or failed steps in the warm-up rounds (the measured ones are in result). */
  readonly warmupErrors: number;
  /** Over the measured rounds: requests and executions, the model's compute share of the time, why oldest batches closed. */
  readonly inferences: number;
  readonly executions: number;
  readonly busy: number;
  /** CPU time of this process (all threads) per measured step, in microseconds. */
  readonly cpuPerStep: number;
  readonly closeReasons: string;
}

function modelStats(engine: InferenceEngine, model: string): ModelStatisticsJson {
  return engine.modelStatistics(model).model_stats[0]!;
}

const computeNs = (stats: ModelStatisticsJson): number =>
  stats.batch_stats.reduce((sum, b) => sum + b.compute_input.ns + b.compute_infer.ns + b.compute_output.ns, 0);

async function runWay(engine: InferenceEngine, way: Way, workload: SequenceWorkload, options: Options): Promise<WayResult> {
  const model = way.serving.name;
  let warmupErrors = 0;
  let firstWarmupError: string | undefined;
  for (let round = 0; round < options.warmupRounds; round++) {
    const warm = await runRounds(engine, model, workload, { minSeconds: 0, idBase: round * workload.sequences });
    warmupErrors += warm.errors;
    firstWarmupError ??= warm.firstError;
  }
  const before = modelStats(engine, model);
  const cpuBefore = process.cpuUsage();
  const measured = await runRounds(engine, model, workload, { minSeconds: options.seconds, idBase: options.warmupRounds * workload.sequences });
  const cpu = process.cpuUsage(cpuBefore);
  const after = modelStats(engine, model);
  const result = measured.firstError === undefined && firstWarmupError !== undefined ? { ...measured, firstError: `(warm-up) ${firstWarmupError}` } : measured;
  const reasons = Object.entries(after.batch_close_reasons)
    .map(([reason, count]) => [reason, count - before.batch_close_reasons[reason as keyof typeof before.batch_close_reasons]] as const)
    .filter(([, count]) => count > 0)
    .map(([reason, count]) => `${reason} ${count.toLocaleString('en-US')}`);
  const cell: WayResult = {
    way, result, warmupErrors,
    inferences: after.inference_count - before.inference_count,
    executions: after.execution_count - before.execution_count,
    busy: (computeNs(after) - computeNs(before)) / 1e9 / result.seconds,
    cpuPerStep: (cpu.user + cpu.system) / Math.max(1, result.steps),
    closeReasons: reasons.join(', ') || '-',
  };
  console.log(`  ${way.label}: ${fmtRate(result.stepsPerSecond)} steps/s over ${result.rounds} round(s), `
    + `p50 ${fmtMs(result.latency.p50)} ms, p99 ${fmtMs(result.latency.p99)} ms, ${result.errors + warmupErrors} wrong or failed`);
  return cell;
}

const fmtRatio = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '-');
const fmtBytes = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '-');

function printWays(cells: readonly WayResult[], floor: readonly FloorResult[], options: Options): void {
  console.log(`\nSteps of ${options.sequences} concurrent sequences x ${options.steps} steps, measured rounds (latency in ms, one step from engine.infer `
    + 'to its checked answer, a START step\'s wait for a free slot included; p99 2-20: steps 2 to 20 only; rows/exec: requests per model execution, direct\'s filler rows not counted; busy: the instance\'s compute time '
    + '(input, infer, output) over the wall time; CPU: this process, all threads, per step; wrong: wrong or failed steps, warm-up included)\n');
  console.log(table(['way', 'scheduling', 'rounds', 'steps/s', 'p50', 'p99', 'p99 2-20', 'rows/exec', 'busy', 'CPU us/step', 'wrong', 'batch close reasons'], cells.map((c) => [
    c.way.label, c.way.scheduling, String(c.result.rounds), fmtRate(c.result.stepsPerSecond), fmtMs(c.result.latency.p50), fmtMs(c.result.latency.p99),
    fmtMs(c.result.continuingLatency.p99), c.executions > 0 ? (c.inferences / c.executions).toFixed(1) : '-', `${Math.round(c.busy * 100)}%`, fmtRate(c.cpuPerStep),
    String(c.result.errors + c.warmupErrors), c.closeReasons,
  ])));
  if (floor.length > 0) {
    console.log('\nFloor: the model in an onnxruntime-node session in this thread, 1 intra-op thread, back to back (no scheduler, no state, no worker)\n');
    console.log(table(['batch', 'what', 'rows/s', 'ms/run'], floor.map((f) => [
      String(f.batchSize), 'session.run', fmtRate(f.rowsPerSecond), fmtMs(f.msPerRun),
    ])));
  }
  const errors = cells.filter((c) => c.result.firstError).map((c) => `${c.way.label}: ${c.result.firstError}`);
  if (errors.length > 0) console.log(`\nFirst wrong or failed step per way:\n  ${errors.join('\n  ')}`);
  const [a, b, c] = cells;
  if (!a || !b || !c) return;
  const ac = a.result.stepsPerSecond / c.result.stepsPerSecond;
  const bc = b.result.stepsPerSecond / c.result.stepsPerSecond;
  console.log('\n' + table(['ratio', 'what', 'value', 'target', 'verdict'], [
    ['a/c', 'steps/s, oldest over unbatched', fmtRatio(ac), `>= ${TARGET_A_OVER_C}`, ac >= TARGET_A_OVER_C ? 'meets' : 'BELOW'],
    ['b/c', 'steps/s, direct over unbatched', fmtRatio(bc), '-', '-'],
  ]));
}

function printIdleMemory(m: IdleMemoryResult): void {
  const n = m.sequences.toLocaleString('en-US');
  const row = (what: string, how: string, d: MemoryDelta): string[] => {
    const excluding = d.heapUsed + d.arrayBuffers - m.stateBytes;
    return [what, how, fmtBytes(d.heapUsed), fmtBytes(d.arrayBuffers), fmtBytes(m.stateBytes), fmtBytes(excluding),
      `<= ${fmtBytes(TARGET_IDLE_BYTES)}`, excluding <= TARGET_IDLE_BYTES ? 'meets' : 'ABOVE'];
  };
  console.log(`\nServer memory per idle sequence (bytes per sequence; the main thread after a forced full GC; ${n} sequences opened with START `
    + `and left idle, then ${n} more; heapUsed ${fmtBytes(m.heapBefore / 2 ** 20)} -> ${fmtBytes(m.heapAfter / 2 ** 20)} MiB; `
    + `opening the first ${n} took ${m.openSeconds.toFixed(1)} s; afterwards ${m.stillOpen} of ${m.sampled} sampled sequences `
    + 'took a step without START, as open sequences do)\n');
  console.log(table(['idle sequences', 'measure', 'heapUsed', 'arrayBuffers', 'state', 'excl. state', 'target', 'verdict'], [
    row(`0 -> ${n}`, 'one-off growth included', m.first),
    row(`${n} -> ${(2 * m.sequences).toLocaleString('en-US')}`, 'marginal', m.second),
  ]));
  const actor = m.parts.find((p) => p.how.startsWith('in active.idle'));
  const stateMap = m.parts.find((p) => p.part === 'state Map');
  const rows = m.parts.map((p) => [p.part, p.how, fmtBytes(p.perItem.heapUsed), fmtBytes(p.perItem.arrayBuffers)]);
  if (actor && stateMap) {
    rows.push(['the rest', 'marginal minus the actor and the state Map', fmtBytes(m.second.heapUsed - actor.perItem.heapUsed - stateMap.perItem.heapUsed),
      fmtBytes(m.second.arrayBuffers - actor.perItem.arrayBuffers - stateMap.perItem.arrayBuffers)]);
  }
  console.log(`\nWhat the parts of an idle sequence hold, each built ${n} times alone (bytes per item)\n`);
  console.log(table(['part', 'built', 'heapUsed', 'arrayBuffers'], rows));
}

/** Runs idle-memory.ts in a child with --expose-gc, so the numbers are not this process's. */
function idleMemoryInChild(init: IdleMemoryInit): Promise<IdleMemoryResult> {
  const child = fork(fileURLToPath(import.meta.url), ['--child', 'idle-memory'], {
    execArgv: [...process.execArgv, '--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    let answered = false;
    child.on('message', (m: { result?: IdleMemoryResult; error?: string }) => {
      answered = true;
      if (m.result) resolve(m.result);
      else reject(new Error(`idle memory child failed: ${m.error}`));
    });
    child.once('exit', (code) => { if (!answered) reject(new Error(`idle memory child exited with code ${code}`)); });
    child.send(init);
  });
}

async function childMain(): Promise<void> {
  const init = await new Promise<IdleMemoryInit>((resolve) => process.once('message', (m: IdleMemoryInit) => resolve(m)));
  try {
    const result = await measureIdleMemory(init);
    process.send!({ result }, () => process.exit(0));
  } catch (err) {
    process.send!({ error: err instanceof Error ? err.stack ?? err.message : String(err) }, () => process.exit(1));
  }
}

/** Every selected way on one in-process server, then the session floor. */
async function measureWays(selected: readonly Way[], options: Options): Promise<[WayResult[], FloorResult[]]> {
  const { removeRepository } = await import('../../test/helpers/fixture-repository.ts');
  const { silentLogger } = await import('../../engine/logger.ts');
  const { createEngine } = await import('../../server/composition-root.ts');
  const repository = await buildSequenceRepository(selected.map((w) => w.serving));
  try {
    const workload = await SequenceWorkload.create(options.sequences, options.steps, repository.modelPath);
    const cells: WayResult[] = [];
    const engine = await createEngine({ modelRepositories: [repository.root], logger: silentLogger });
    try {
      if (engine.loadFailures().length > 0) throw new Error(`models failed to load: ${JSON.stringify(engine.loadFailures())}`);
      console.log('\nways:');
      for (const way of selected) cells.push(await runWay(engine, way, workload, options));
    } finally {
      await engine.close();
    }
    const floor = options.floorSeconds > 0 ? await measureSessionFloor(repository.modelPath, [1, options.maxBatchSize], options.floorSeconds) : [];
    return [cells, floor];
  } finally {
    await removeRepository(repository.root);
  }
}

async function main(): Promise<void> {
  const options = readOptions();
  console.log(`Switchyard sequence batching benchmark: node ${process.version}, ${cpus().length} CPUs, in-process engine.infer`);
  console.log(`model: state MLP, running sum over FP32 [${STATE_WIDTH}] in implicit state (${STATE_BYTES} B per sequence), `
    + `MLP ${[STATE_WIDTH, ...HIDDEN, FEATURES].join(' -> ')} over it; 1 CPU instance, 1 intra-op thread`);
  console.log(`load: ${options.sequences} concurrent sequences x ${options.steps} steps per round, START on the first, END on the last, `
    + `every answer checked; ${options.warmupRounds} warm-up round(s), then rounds until ${options.seconds} s have passed, per way`);

  const selected = ways(options).filter((w) => options.ways.includes(w.label.slice(1, 2)));
  if (selected.length > 0) printWays(...await measureWays(selected, options), options);

  if (options.idleSequences > 0) {
    console.log(`\nidle memory: opening ${options.idleSequences.toLocaleString('en-US')} sequences twice, in a child with --expose-gc`);
    printIdleMemory(await idleMemoryInChild({ sequences: options.idleSequences, maxBatchSize: options.maxBatchSize, wave: 256 }));
  }
}

if (process.argv[2] === '--child' && process.argv[3] === 'idle-memory') await childMain();
else await main();
