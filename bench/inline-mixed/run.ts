/**
 * Light models inline, under mixed load: what running add_sub on the event
 * loop (execution_thread auto) gains over the worker hand-off
 * (execution_thread worker), and what it costs the event loop, while a
 * heavier MLP that auto mode keeps on its worker is loaded beside it.
 *
 *   npm run bench:inline
 *
 * Run plainly it is the orchestrator and load generator; with
 * `--child switchyard` it is the server (../server-child.ts), which samples
 * its own event-loop delay with perf_hooks.monitorEventLoopDelay.
 *
 * Environment:
 *   BENCH_SECONDS        measured seconds per cell (default 5)
 *   BENCH_WARMUP         seconds of load before measuring each cell (default 1)
 *   BENCH_LIGHT_CONCURRENCY  closed-loop clients on add_sub, comma-separated (default 1,16)
 *   BENCH_HEAVY_CONCURRENCY  closed-loop clients on the MLP in the mixed cells (default 2)
 *
 * It never asserts: it prints a table.
 */
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { runClosedLoop, type LoadResult } from '../load-generator.ts';
import { envIntegers, envNumber, fmtMs, fmtRate, table } from '../report.ts';
import { childRole, serveAsChild, ServerChild, startSwitchyardHttp, type LoopDelay } from '../server-child.ts';

const LIGHT = 'add_sub_fp32';
const HEAVY = 'mlp';
const SIZE = 16;
/** Compute per run well over auto mode's 150 µs threshold on any CPU, so it stays on its worker. */
const MLP_SIZES = [256, 1024, 1024, 16] as const;
type Thread = 'worker' | 'auto';

interface ChildInit {
  readonly repository: string;
}

async function buildRepository(thread: Thread): Promise<string> {
  const { makeRepository } = await import('../../test/helpers/fixture-repository.ts');
  const { addSubModel, mlpModel } = await import('../../generator/models.ts');
  const fp32 = (name: string, dims: number): string => `{ name: "${name}" data_type: TYPE_FP32 dims: [ ${dims} ] }`;
  const light = [
    `name: "${LIGHT}"`, 'platform: "onnxruntime_onnx"', 'max_batch_size: 8',
    `input [ ${fp32('INPUT0', SIZE)}, ${fp32('INPUT1', SIZE)} ]`,
    `output [ ${fp32('OUTPUT0', SIZE)}, ${fp32('OUTPUT1', SIZE)} ]`,
    'instance_group [ { count: 1, kind: KIND_CPU } ]',
    `parameters { key: "execution_thread" value: { string_value: "${thread}" } }`, '',
  ].join('\n');
  const heavy = [
    `name: "${HEAVY}"`, 'platform: "onnxruntime_onnx"', 'max_batch_size: 8',
    `input [ ${fp32('INPUT', MLP_SIZES[0])} ]`, `output [ ${fp32('OUTPUT', MLP_SIZES[3])} ]`,
    'instance_group [ { count: 1, kind: KIND_CPU } ]', '',
  ].join('\n');
  return makeRepository({
    [LIGHT]: { config: light, versions: { 1: addSubModel('FP32', SIZE) } },
    [HEAVY]: { config: heavy, versions: { 1: mlpModel({ sizes: MLP_SIZES, seed: 7, inputName: 'INPUT', outputName: 'OUTPUT' }) } },
  });
}

const jsonBody = (inputs: ReadonlyArray<{ name: string; data: number[] }>): Buffer => Buffer.from(JSON.stringify({
  inputs: inputs.map((i) => ({ name: i.name, shape: [1, i.data.length], datatype: 'FP32', data: i.data })),
}));
const LIGHT_BODY = jsonBody([
  { name: 'INPUT0', data: Array.from({ length: SIZE }, (_, i) => i + 0.5) },
  { name: 'INPUT1', data: Array.from({ length: SIZE }, (_, i) => 1 - i * 0.25) },
]);
const HEAVY_BODY = jsonBody([{ name: 'INPUT', data: Array.from({ length: MLP_SIZES[0] }, (_, i) => (i % 7) / 7) }]);

interface Cell {
  readonly thread: Thread;
  readonly lightC: number;
  readonly mixed: boolean;
  readonly light: LoadResult;
  readonly heavy: LoadResult | undefined;
  readonly cpuPerRequest: number;
  readonly delay: LoopDelay;
}

async function measureCell(server: ServerChild<ChildInit>, thread: Thread, mixed: boolean, lightC: number, heavyC: number,
  warmupMs: number, durationMs: number): Promise<Cell> {
  const load = (model: string, body: Buffer, concurrency: number): Promise<LoadResult> => runClosedLoop({
    host: '127.0.0.1', port: server.port, path: `/v2/models/${model}/infer`, headers: { 'content-type': 'application/json' },
    body, concurrency, warmupMs, durationMs,
  });
  const cpu0 = await server.cpuMicros();
  const wall0 = performance.now();
  // The delay window opens after the warmup, as the load generator's does.
  const window = new Promise<void>((resolve) => setTimeout(() => void server.loopDelay().then(() => resolve()), warmupMs));
  const [light, heavy] = await Promise.all([load(LIGHT, LIGHT_BODY, lightC), mixed ? load(HEAVY, HEAVY_BODY, heavyC) : undefined]);
  await window;
  const delay = await server.loopDelay();
  const cpu = (await server.cpuMicros()) - cpu0;
  const seconds = (performance.now() - wall0) / 1000;
  const requests = (light.requestsPerSecond + (heavy?.requestsPerSecond ?? 0)) * seconds;
  for (const r of [light, heavy]) if (r && r.errors > 0) throw new Error(`${r.errors} errors, first: ${r.firstError}`);
  return { thread, lightC, mixed, light, heavy, cpuPerRequest: cpu / requests, delay };
}

async function main(): Promise<void> {
  const seconds = envNumber('BENCH_SECONDS', 5);
  const warmup = envNumber('BENCH_WARMUP', 1);
  const lightCs = envIntegers('BENCH_LIGHT_CONCURRENCY', '1,16');
  const heavyC = Math.round(envNumber('BENCH_HEAVY_CONCURRENCY', 2));
  const { removeRepository } = await import('../../test/helpers/fixture-repository.ts');
  console.log(`Light models inline under mixed load: node ${process.version}, ${cpus().length} CPUs, ${warmup} s warmup + ${seconds} s measured per cell`);
  console.log(`light: ${LIGHT} (add/sub FP32 [1,${SIZE}], JSON), c=${lightCs.join(' and ')}; heavy: ${HEAVY} (MLP ${MLP_SIZES.join(' -> ')} FP32, JSON, `
    + `execution_thread auto, stays on its worker), c=${heavyC} in the mixed cells; each model 1 CPU instance, no batching`);
  console.log('event-loop delay: perf_hooks.monitorEventLoopDelay (resolution 1 ms) in the server process, over the measured window\n');
  const cells: Cell[] = [];
  for (const thread of ['worker', 'auto'] as const) {
    const repository = await buildRepository(thread);
    const server = await ServerChild.start<ChildInit>(fileURLToPath(import.meta.url), 'switchyard', { repository });
    try {
      for (const lightC of lightCs) {
        for (const mixed of [false, true]) {
          const cell = await measureCell(server, thread, mixed, lightC, heavyC, warmup * 1000, seconds * 1000);
          cells.push(cell);
          console.log(`  add_sub c=${lightC} ${thread}${mixed ? ' + mlp' : ''}: ${fmtRate(cell.light.requestsPerSecond)} req/s, `
            + `loop delay p99 ${cell.delay.p99Ms.toFixed(2)} ms`);
        }
      }
    } finally {
      await server.stop();
      await removeRepository(repository);
    }
  }
  console.log();
  console.log(table(
    ['add_sub runs on', 'load', 'c', 'add_sub req/s', 'p50', 'p99', 'mlp req/s', 'p99', 'server us/req', 'loop delay p50', 'p99', 'max'],
    cells.map((c) => [
      c.thread === 'auto' ? 'inline (auto)' : 'worker', c.mixed ? 'add_sub + mlp' : 'add_sub alone', String(c.lightC),
      fmtRate(c.light.requestsPerSecond), fmtMs(c.light.p50), fmtMs(c.light.p99),
      c.heavy ? fmtRate(c.heavy.requestsPerSecond) : '-', c.heavy ? fmtMs(c.heavy.p99) : '-',
      c.cpuPerRequest.toFixed(0), fmtMs(c.delay.p50Ms), fmtMs(c.delay.p99Ms), fmtMs(c.delay.maxMs),
    ]),
  ));
  console.log('\nserver us/req: server CPU (all threads) over every request of the cell, both models. Latency and delay in ms.');
}

if (childRole() === 'switchyard') {
  await serveAsChild<ChildInit>((init) => startSwitchyardHttp(init.repository));
} else {
  await main();
}
