/**
 * Conditional-pipeline benchmark: what a skipped branch costs. The bundled
 * text_router (pipelines/) sends a short text down its cheap branch
 * (text_length -> keyword_labels) and skips the full one (text_features ->
 * feature_classifier -> class_labels). It is measured in-process against
 * the cheap branch alone, a pipeline of the same two steps written to a
 * temporary folder, with the same short text; and, for scale, the router
 * with a long text (the full branch) and text_classifier (the full branch
 * alone). Closed-loop load of batch-1 engine.infer calls, at each client
 * concurrency (default 1 and 4), in rounds: each round runs every mode
 * once, in turn, so a slow spell of a shared machine falls on all of them;
 * the tables give each figure's median over the rounds.
 *
 *   npm run bench:router      (this case alone)
 *   npm run bench:ensemble    (the chain cases, then this one)
 *
 * It prints req/s, p50, p99 and the process's CPU per request, the ratio
 * router-short / cheap-alone (p50 and CPU; target <= 1.10: the skipped
 * steps cost nothing worth measuring), and how many requests the full
 * branch's members served during the short-text cells (0: a skipped step
 * never reaches its model).
 *
 * Environment:
 *   BENCH_SECONDS          measured seconds per cell and round (default 2)
 *   BENCH_WARMUP           seconds of load before measuring each cell (default 0.5)
 *   BENCH_ROUNDS           rounds (default 3)
 *   BENCH_CONCURRENCY      client concurrencies, comma-separated (default 1,4)
 *
 * It never asserts: it prints tables and whether the target is met.
 */
import { cpus } from 'node:os';
import { pathToFileURL } from 'node:url';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import type { InferenceResponse } from '../../engine/inference-response.ts';
import { bytesStrings, bytesTensor } from '../../engine/bytes-tensor.ts';
import { PIPELINES_DIR } from '../../pipelines/generate.ts';
import { runCallLoop } from '../call-loop.ts';
import type { LoadResult } from '../load-generator.ts';
import { envIntegers, envNumber, fmtMs, fmtRate, table } from '../report.ts';

const TARGET = 1.1;
const SHORT = 'refund my invoice';
const LONG = 'the app crashes every time I open the settings page after the update';
const CHEAP_ALONE = 'router_cheap_alone';
const FULL_MEMBERS = ['text_features', 'feature_classifier', 'class_labels'] as const;

/** text_router without its full branch: the same two steps, the same condition, the same outputs of the cheap path. */
const CHEAP_ALONE_PIPELINE = `max_batch_size: 16
inputs:
  TEXT: { datatype: BYTES, dims: [1] }
  MAX_WORDS: { datatype: INT32, dims: [1], optional: true }
outputs:
  LABEL: keywords.LABEL
  SCORE: keywords.SCORE
  WORDS: measure.WORDS
  KEYWORDS: keywords.KEYWORDS
steps:
  measure: { model: text_length, inputs: { TEXT: TEXT, MAX_WORDS: MAX_WORDS } }
  keywords: { model: keyword_labels, inputs: { TEXT: TEXT }, when: measure.SHORT }
`;

interface Mode {
  readonly mode: string;
  readonly model: string;
  readonly text: string;
  readonly steps: string;
}

const MODES: readonly Mode[] = [
  { mode: 'cheap alone', model: CHEAP_ALONE, text: SHORT, steps: '2 run' },
  { mode: 'router, short', model: 'text_router', text: SHORT, steps: '2 run, 3 skipped' },
  { mode: 'router, long', model: 'text_router', text: LONG, steps: '4 run, 1 skipped' },
  { mode: 'full alone', model: 'text_classifier', text: LONG, steps: '3 run' },
];

interface Cell {
  readonly mode: Mode;
  readonly concurrency: number;
  readonly load: LoadResult;
  readonly cpuPerRequest: number;
  /** Requests the full branch's members served during the cell, warm-up included. */
  readonly fullMemberRequests: number;
}

/** One mode at one concurrency over every round: the median of each figure, the sum of the member requests and errors. */
interface Summary {
  readonly mode: Mode;
  readonly concurrency: number;
  readonly requestsPerSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly cpuPerRequest: number;
  readonly fullMemberRequests: number;
  readonly errors: number;
  readonly firstError: string | undefined;
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

function summarize(cells: readonly Cell[]): Summary {
  const first = cells[0]!;
  return {
    mode: first.mode, concurrency: first.concurrency,
    requestsPerSecond: median(cells.map((c) => c.load.requestsPerSecond)),
    p50: median(cells.map((c) => c.load.p50)),
    p99: median(cells.map((c) => c.load.p99)),
    cpuPerRequest: median(cells.map((c) => c.cpuPerRequest)),
    fullMemberRequests: cells.reduce((n, c) => n + c.fullMemberRequests, 0),
    errors: cells.reduce((n, c) => n + c.load.errors, 0),
    firstError: cells.find((c) => c.load.firstError !== undefined)?.load.firstError,
  };
}

const labelOf = (response: InferenceResponse): string => {
  const label = response.outputs.find((o) => o.name === 'LABEL');
  if (!label || label.datatype !== 'BYTES') throw new Error('no LABEL in the answer');
  return bytesStrings(label)[0]!;
};

const cpuMicros = (): number => {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
};

function fullMemberRequests(engine: InferenceEngine): number {
  return FULL_MEMBERS.reduce((n, model) => n + engine.modelStatistics(model).model_stats[0]!.inference_count, 0);
}

async function runCell(engine: InferenceEngine, mode: Mode, concurrency: number, seconds: number, warmup: number): Promise<Cell> {
  const call = async (): Promise<string | undefined> => {
    const response = await engine.infer({ modelName: mode.model, inputs: [bytesTensor('TEXT', [1, 1], [mode.text])] });
    response.lease?.release();
    return undefined;
  };
  const membersBefore = fullMemberRequests(engine);
  let cpuStart = 0;
  let cpuEnd = 0;
  const atStart = new Promise<void>((resolve) => setTimeout(() => { cpuStart = cpuMicros(); resolve(); }, warmup * 1000));
  const atEnd = new Promise<void>((resolve) => setTimeout(() => { cpuEnd = cpuMicros(); resolve(); }, (warmup + seconds) * 1000));
  const load = await runCallLoop({ concurrency, warmupMs: warmup * 1000, durationMs: seconds * 1000 }, call);
  await Promise.all([atStart, atEnd]);
  const cell: Cell = {
    mode, concurrency, load,
    cpuPerRequest: load.requests > 0 ? (cpuEnd - cpuStart) / load.requests : Number.NaN,
    fullMemberRequests: fullMemberRequests(engine) - membersBefore,
  };
  console.log(`  c=${concurrency} ${mode.mode}: ${fmtRate(load.requestsPerSecond)} req/s, p50 ${fmtMs(load.p50)} ms, ${cell.cpuPerRequest.toFixed(0)} us CPU/req`);
  return cell;
}

/** Runs the conditional case and prints its tables; `npm run bench:ensemble` runs it after the chain cases. */
export async function runRouterBench(): Promise<void> {
  const seconds = envNumber('BENCH_SECONDS', 2);
  const warmup = envNumber('BENCH_WARMUP', 0.5);
  const rounds = Math.round(envNumber('BENCH_ROUNDS', 3));
  const concurrencies = envIntegers('BENCH_CONCURRENCY', '1,4');
  const { makeRepository, removeRepository } = await import('../../test/helpers/fixture-repository.ts');
  const { silentLogger } = await import('../../engine/logger.ts');
  const { createEngine } = await import('../../server/composition-root.ts');
  const extra = await makeRepository({ [CHEAP_ALONE]: { config: CHEAP_ALONE_PIPELINE, configFile: 'pipeline.yaml', versions: {} } });
  const engine = await createEngine({ modelRepositories: [PIPELINES_DIR, extra], logger: silentLogger });
  try {
    const failures = engine.loadFailures();
    if (failures.length > 0) throw new Error(`models failed to load: ${JSON.stringify(failures)}`);
    console.log(`Switchyard conditional-pipeline benchmark: node ${process.version}, ${cpus().length} CPUs`);
    console.log(`in-process engine.infer, batch-1 BYTES requests, closed loop, ${rounds} rounds of every mode in turn, `
      + `each cell ${warmup} s warm-up then ${seconds} s measured; `
      + `short text "${SHORT}", long text "${LONG}"`);

    // Both ways of the cheap path give the same answer, and the full branch that of text_classifier.
    const answer = async (model: string, text: string): Promise<string> =>
      labelOf(await engine.infer({ modelName: model, inputs: [bytesTensor('TEXT', [1, 1], [text])] }));
    const [cheap, routedShort, routedLong, full] = await Promise.all([
      answer(CHEAP_ALONE, SHORT), answer('text_router', SHORT), answer('text_router', LONG), answer('text_classifier', LONG),
    ]);
    if (cheap !== routedShort || routedLong !== full) throw new Error(`answers differ: ${cheap}/${routedShort}, ${routedLong}/${full}`);

    const summaries: Summary[] = [];
    for (const concurrency of concurrencies) {
      const cells = new Map<Mode, Cell[]>(MODES.map((mode) => [mode, []]));
      for (let round = 0; round < rounds; round++) {
        for (const mode of MODES) cells.get(mode)!.push(await runCell(engine, mode, concurrency, seconds, warmup));
      }
      for (const mode of MODES) summaries.push(summarize(cells.get(mode)!));
    }

    console.log(`\nMedians over ${rounds} rounds: throughput, latency (ms) and CPU per request `
      + '(this process, all threads, the load loop included); full-branch member requests: summed over the rounds, warm-up included\n');
    console.log(table(['mode', 'model, text', 'steps', 'c', 'req/s', 'p50', 'p99', 'CPU us/req', 'full-branch member requests'], summaries.map((c) => [
      c.mode.mode, `${c.mode.model}, ${c.mode.text === SHORT ? 'short' : 'long'}`, c.mode.steps, String(c.concurrency),
      fmtRate(c.requestsPerSecond), fmtMs(c.p50), fmtMs(c.p99), c.cpuPerRequest.toFixed(0),
      c.mode.text === SHORT ? String(c.fullMemberRequests) : '-',
    ])));

    const rows: string[][] = [];
    for (const concurrency of concurrencies) {
      const find = (name: string): Summary | undefined => summaries.find((c) => c.mode.mode === name && c.concurrency === concurrency);
      const routed = find('router, short');
      const alone = find('cheap alone');
      if (!routed || !alone) continue;
      for (const [what, value] of [
        ['router-short / cheap-alone p50', routed.p50 / alone.p50],
        ['router-short / cheap-alone CPU', routed.cpuPerRequest / alone.cpuPerRequest],
        ['router-short / cheap-alone req/s', routed.requestsPerSecond / alone.requestsPerSecond],
      ] as const) {
        const targeted = !what.endsWith('req/s');
        rows.push([what, String(concurrency), value.toFixed(2), targeted ? `<= ${TARGET}` : '-', targeted ? (value <= TARGET ? 'meets' : 'ABOVE') : '-']);
      }
    }
    console.log('\n' + table(['ratio', 'c', 'value', 'target', 'verdict'], rows));
    const errors = summaries.filter((c) => c.errors > 0).map((c) => `c=${c.concurrency} ${c.mode.mode}: ${c.errors} errors (${c.firstError})`);
    if (errors.length > 0) console.log(`\nErrors (not counted in req/s):\n  ${errors.join('\n  ')}`);
  } finally {
    await engine.close();
    await removeRepository(extra);
  }
}

// Run on its own (npm run bench:router), not when bench/ensemble/run.ts imports it.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await runRouterBench();
