/**
 * Ensemble benchmark: a three-step pipeline of small FP32 MLPs
 * ([batch, 64] -> [batch, 64] each, no dynamic batching) under closed-loop
 * load of batch-1 requests, run five ways in one process tree:
 *
 *   (a)        the ensemble over HTTP: one binary-tensor POST per request,
 *              against a Switchyard server child
 *   (b)        the client chains the three members over HTTP: three POSTs per
 *              request, each carrying the previous answer's bytes, same child
 *   (a-engine) the ensemble in-process: one engine.infer per request
 *   (c)        the three members in-process: three engine.infer in sequence
 *   floor      three onnxruntime-node sessions back to back in this thread
 *
 * at each client concurrency (default 1 and 8). It prints the table, the
 * ratios with their targets (a/b throughput at c=1 >= 2; a-engine p50 within
 * 1.2x of (c)), and the tensor memory one ensemble request allocates
 * in-process with the buffer pool off and on.
 *
 *   npm run bench:ensemble
 *
 * Run plainly it is the orchestrator, load generator and in-process server;
 * with `--child switchyard` it is the HTTP server (see ../server-child.ts).
 *
 * Environment:
 *   BENCH_SECONDS          measured seconds per cell (default 5)
 *   BENCH_WARMUP           seconds of load before measuring each cell (default 1)
 *   BENCH_CONCURRENCY      client concurrencies, comma-separated (default 1,8; 'none' for no cells)
 *   BENCH_ALLOC_REQUESTS   ensemble requests per memory measurement, after as many again of warm-up (default 2000)
 *   BENCH_SWITCHYARD_NODE_ARGS  extra node flags for the server child
 *   BENCH_CONDITIONAL      0 skips the conditional case (router.ts), which otherwise runs last with its own defaults
 *
 * It never asserts: it prints tables and whether each target is met.
 */
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import type { FixedTensor, Tensor } from '../../engine/tensor.ts';
import type { InferenceResponse } from '../../engine/inference-response.ts';
import { markedIfOwned } from '../../engine/memory/buffer-lease.ts';
import type { LoadResult } from '../load-generator.ts';
import { nowMs } from '../latencies.ts';
import { envIntegers, envNodeArgs, envNumber, fmtMs, fmtRate, table } from '../report.ts';
import { childRole, serveAsChild, ServerChild, startSwitchyardHttp, type StartedServer } from '../server-child.ts';
import { runCallLoop } from '../call-loop.ts';
import { DirectChain } from './direct-chain.ts';
import { runRouterBench } from './router.ts';
import { InferConnection, requestHead, type InferAnswer } from './infer-connection.ts';
import {
  buildPipelineRepository, ENSEMBLE, ENSEMBLE_INPUT, ENSEMBLE_OUTPUT, HIDDEN, MAX_BATCH_SIZE, STEPS, WIDTH, type PipelineRepository,
} from './pipeline-repository.ts';

const TARGET_A_OVER_B = 2;
const TARGET_ENGINE_OVER_C_P50 = 1.2;
const SHAPE = [1, WIDTH] as const;
const TENSOR_BYTES = WIDTH * 4;

interface ChildInit {
  readonly repository: string;
}

type Child = ServerChild<ChildInit>;

// ---------------------------------------------------------------- child

async function startSwitchyard(init: ChildInit): Promise<StartedServer> {
  return startSwitchyardHttp(init.repository);
}

// ---------------------------------------------------------------- options

interface Options {
  readonly seconds: number;
  readonly warmup: number;
  readonly concurrencies: readonly number[];
  readonly allocRequests: number;
  readonly nodeArgs: readonly string[];
}

function readOptions(): Options {
  return {
    seconds: envNumber('BENCH_SECONDS', 5),
    warmup: envNumber('BENCH_WARMUP', 1),
    concurrencies: envIntegers('BENCH_CONCURRENCY', '1,8'),
    allocRequests: Math.round(envNumber('BENCH_ALLOC_REQUESTS', 2000)),
    nodeArgs: envNodeArgs('BENCH_SWITCHYARD_NODE_ARGS'),
  };
}

// ---------------------------------------------------------------- requests

/** The one request row every client sends; deterministic so runs compare. */
const REQUEST_ROW = Float32Array.from({ length: WIDTH }, (_, i) => Math.sin(i * 0.37) * 0.5);
const REQUEST_BYTES = new Uint8Array(REQUEST_ROW.buffer);

/** Throws unless `output` is the floor's answer, to a relative 1e-4. */
function checkAnswer(mode: string, output: Float32Array, reference: Float32Array): void {
  const worst = output.length !== reference.length ? Number.POSITIVE_INFINITY
    : output.reduce((m, v, i) => Math.max(m, Math.abs(v - reference[i]!) / Math.max(1, Math.abs(reference[i]!))), 0);
  if (!(worst < 1e-4)) throw new Error(`${mode} answered [${[...output].join(', ')}], but ONNX Runtime gives [${[...reference].join(', ')}]`);
}

/** The binary output of an HTTP answer, or why there is none. */
function binaryOutput(answer: InferAnswer): Uint8Array | string {
  if (answer.status !== 200) return `status ${answer.status}: ${answer.body.toString('utf8', 0, 200)}`;
  const bytes = answer.jsonLength === undefined ? 0 : answer.body.byteLength - answer.jsonLength;
  if (bytes !== TENSOR_BYTES) return `expected a binary [1,${WIDTH}] FP32 output, got ${bytes} bytes after the JSON header`;
  return answer.body.subarray(answer.jsonLength);
}

/** A copy: HTTP answers are Buffer views at any offset, and Buffer#slice would not copy. */
const asFloats = (bytes: Uint8Array): Float32Array => new Float32Array(new Uint8Array(bytes).buffer);

const fixedOutput = (outputs: readonly Tensor[]): FixedTensor => {
  const output = outputs[0];
  if (!output || output.datatype === 'BYTES') throw new Error('expected one FP32 output');
  return output;
};

// ---------------------------------------------------------------- modes

/**
 * One request of a mode: an error text, or undefined for a good answer.
 * `inspect`, when given, sees the final output before the mode lets go of it
 * (in-process modes give its memory back to the server's pool).
 */
type Request = (worker: number, inspect?: (output: Uint8Array) => void) => Promise<string | undefined>;

/** (a) and (b): one connection per worker, opened on first use. */
function httpModes(port: number): { ensemble: Request; chain: Request; close(): void } {
  const connections: Promise<InferConnection>[] = [];
  const connection = (worker: number): Promise<InferConnection> => (connections[worker] ??= InferConnection.open(port));
  const ensembleHead = requestHead({ port, model: ENSEMBLE, input: ENSEMBLE_INPUT, output: ENSEMBLE_OUTPUT, shape: SHAPE, tensorBytes: TENSOR_BYTES });
  const stepHeads = STEPS.map((s) => requestHead({ port, model: s.model, input: s.input, output: s.output, shape: SHAPE, tensorBytes: TENSOR_BYTES }));
  return {
    ensemble: async (worker, inspect) => {
      const output = binaryOutput(await (await connection(worker)).post(ensembleHead, REQUEST_BYTES));
      if (typeof output === 'string') return output;
      inspect?.(output);
      return undefined;
    },
    chain: async (worker, inspect) => {
      const conn = await connection(worker);
      let tensor: Uint8Array | string = REQUEST_BYTES;
      for (const head of stepHeads) {
        tensor = binaryOutput(await conn.post(head, tensor));
        if (typeof tensor === 'string') return tensor;
      }
      inspect?.(tensor);
      return undefined;
    },
    close: () => {
      for (const c of connections) void c.then((conn) => conn.close(), () => undefined);
    },
  };
}

/**
 * (a-engine) and (c) on an in-process server, both as a careful in-process
 * caller would be: they take ownership of pooled outputs, (c) passes each
 * step's output on to the next step as it is (so its memory moves, as inside
 * an ensemble), and the final output goes back to the pool once read, as
 * the HTTP frontend does after encoding.
 */
function engineModes(engine: InferenceEngine): { ensemble: Request; chain: Request } {
  const input = (name: string): FixedTensor => ({ name, datatype: 'FP32', shape: SHAPE, raw: REQUEST_BYTES });
  const finish = (output: FixedTensor, response: InferenceResponse, inspect: ((output: Uint8Array) => void) | undefined): undefined => {
    inspect?.(output.raw);
    response.lease?.release();
    return undefined;
  };
  return {
    ensemble: async (_worker, inspect) => {
      const response = await engine.infer({ modelName: ENSEMBLE, inputs: [input(ENSEMBLE_INPUT)] });
      return finish(fixedOutput(response.outputs), response, inspect);
    },
    chain: async (_worker, inspect) => {
      let tensor: FixedTensor = input(STEPS[0]!.input);
      for (let i = 0; ; i++) {
        const response = await engine.infer({ modelName: STEPS[i]!.model, inputs: [tensor] });
        const output = fixedOutput(response.outputs);
        if (i + 1 === STEPS.length) return finish(output, response, inspect);
        // The lease's buffers go on with the tensor, marked pooled: the next step receives the memory and owns it.
        tensor = markedIfOwned({ ...output, name: STEPS[i + 1]!.input }, new Set(response.lease?.take() ?? [])) as FixedTensor;
      }
    },
  };
}

async function checkMode(mode: string, request: Request, reference: Float32Array): Promise<void> {
  let output: Float32Array | undefined;
  const error = await request(0, (bytes) => { output = asFloats(bytes); });
  if (error !== undefined) throw new Error(`${mode}: ${error}`);
  checkAnswer(mode, output!, reference);
}

// ---------------------------------------------------------------- cells

interface Cell {
  readonly mode: string;
  readonly path: string;
  readonly concurrency: number;
  readonly load: LoadResult;
  /** CPU of the process serving the requests (all its threads) per request in the window, microseconds. */
  readonly serverCpuPerRequest: number;
  /** The client's CPU over the window as a share of one core; undefined when client and server are one process. */
  readonly clientCpuShare: number | undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const selfCpuMicros = (): number => {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
};

interface CellSpec {
  readonly mode: string;
  readonly path: string;
  readonly concurrency: number;
  readonly request: Request;
  /** The server child for HTTP modes; undefined when this process serves. */
  readonly child: Child | undefined;
}

async function runCell(spec: CellSpec, options: Options): Promise<Cell> {
  const warmupMs = options.warmup * 1000;
  const durationMs = options.seconds * 1000;
  const boundary = async (): Promise<{ wallMs: number; self: number; server: number }> => {
    const wallMs = nowMs();
    const self = selfCpuMicros();
    return { wallMs, self, server: spec.child ? await spec.child.cpuMicros() : self };
  };
  const atStart = sleep(warmupMs).then(boundary);
  const atEnd = sleep(warmupMs + durationMs).then(boundary);
  const load = await runCallLoop({ concurrency: spec.concurrency, warmupMs, durationMs }, spec.request);
  const [start, end] = await Promise.all([atStart, atEnd]);
  const cell: Cell = {
    mode: spec.mode, path: spec.path, concurrency: spec.concurrency, load,
    serverCpuPerRequest: load.requests > 0 ? (end.server - start.server) / load.requests : Number.NaN,
    clientCpuShare: spec.child ? (end.self - start.self) / ((end.wallMs - start.wallMs) * 1000) : undefined,
  };
  console.log(`  c=${spec.concurrency} ${spec.mode}: ${fmtRate(load.requestsPerSecond)} req/s, p50 ${fmtMs(load.p50)} ms, p99 ${fmtMs(load.p99)} ms`);
  return cell;
}

// ---------------------------------------------------------------- tensor memory

interface AllocationRow {
  readonly mode: string;
  readonly pooling: boolean;
  /** Bytes of tensor memory newly allocated per request (pool allocations + ONNX Runtime's own). */
  readonly allocatedPerRequest: number;
  readonly copiedPerRequest: number;
  readonly reusedPerRequest: number;
}

/** Sequential requests after as many of warm-up; the server's buffer pool counters before and after. */
async function measureAllocation(engine: InferenceEngine, pooling: boolean, mode: string, request: Request, n: number): Promise<AllocationRow> {
  for (let i = 0; i < n; i++) await request(0);
  const before = engine.bufferPoolStats();
  for (let i = 0; i < n; i++) {
    const error = await request(0);
    if (error !== undefined) throw new Error(`${mode}: ${error}`);
  }
  const after = engine.bufferPoolStats();
  return {
    mode, pooling,
    allocatedPerRequest: (after.allocatedBytes + after.foreignBytes - before.allocatedBytes - before.foreignBytes) / n,
    copiedPerRequest: (after.copiedBytes - before.copiedBytes) / n,
    reusedPerRequest: (after.reusedBytes - before.reusedBytes) / n,
  };
}

// ---------------------------------------------------------------- report

const ratio = (a: number, b: number): number => (b > 0 ? a / b : Number.NaN);
const fmtRatio = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '-');
const fmtBytes = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '-');

function printCells(cells: readonly Cell[]): void {
  console.log('\nThroughput and latency (latency in ms; CPU us/req: the serving process, all threads, per request; '
    + 'client: the HTTP client\'s CPU, share of one core)\n');
  console.log(table(['mode', 'path', 'c', 'req/s', 'p50', 'p99', 'CPU us/req', 'client'], cells.map((c) => [
    c.mode, c.path, String(c.concurrency), fmtRate(c.load.requestsPerSecond), fmtMs(c.load.p50), fmtMs(c.load.p99),
    Number.isFinite(c.serverCpuPerRequest) ? c.serverCpuPerRequest.toFixed(0) : '-',
    c.clientCpuShare === undefined ? '-' : `${Math.round(c.clientCpuShare * 100)}%`,
  ])));
  console.log('\nIn-process rows count the load loop in their CPU; the floor runs in the bench\'s own thread.');
}

function printRatios(cells: readonly Cell[], concurrencies: readonly number[]): void {
  const find = (mode: string, c: number): Cell | undefined => cells.find((cell) => cell.mode === mode && cell.concurrency === c);
  const rows: string[][] = [];
  for (const c of concurrencies) {
    const a = find('(a)', c);
    const b = find('(b)', c);
    const engine = find('(a-engine)', c);
    const chain = find('(c)', c);
    const primary = c === 1;
    if (a && b) {
      const v = ratio(a.load.requestsPerSecond, b.load.requestsPerSecond);
      rows.push([`a/b req/s`, String(c), fmtRatio(v), primary ? `>= ${TARGET_A_OVER_B}` : '-',
        primary ? (v >= TARGET_A_OVER_B ? 'meets' : 'BELOW') : '-']);
    }
    if (engine && chain) {
      const v = ratio(engine.load.p50, chain.load.p50);
      rows.push([`a-engine/c p50`, String(c), fmtRatio(v), `<= ${TARGET_ENGINE_OVER_C_P50}`, v <= TARGET_ENGINE_OVER_C_P50 ? 'meets' : 'ABOVE']);
      rows.push([`a-engine/c req/s`, String(c), fmtRatio(ratio(engine.load.requestsPerSecond, chain.load.requestsPerSecond)), '-', '-']);
    }
    if (a && chain) {
      rows.push([`a-http/c p50`, String(c), fmtRatio(ratio(a.load.p50, chain.load.p50)), '-', '-']);
      rows.push([`a-http/c req/s`, String(c), fmtRatio(ratio(a.load.requestsPerSecond, chain.load.requestsPerSecond)), '-', '-']);
    }
  }
  console.log('\n' + table(['ratio', 'c', 'value', 'target', 'verdict'], rows));
}

function printAllocation(rows: readonly AllocationRow[], n: number): void {
  console.log(`\nTensor memory per request, in-process, ${n.toLocaleString('en-US')} sequential requests after as many of warm-up `
    + '(bytes; allocated = new pool buffers + buffers ONNX Runtime allocated itself; copied = tensor bytes copied between buffers)\n');
  console.log(table(['mode', 'buffer pooling', 'allocated B/req', 'copied B/req', 'reused B/req'], rows.map((r) => [
    r.mode, r.pooling ? 'on' : 'off', fmtBytes(r.allocatedPerRequest), fmtBytes(r.copiedPerRequest), fmtBytes(r.reusedPerRequest),
  ])));
}

// ---------------------------------------------------------------- main

async function startEngine(repository: PipelineRepository, bufferPooling: boolean): Promise<InferenceEngine> {
  const { silentLogger } = await import('../../engine/logger.ts');
  const { createEngine } = await import('../../server/composition-root.ts');
  const engine = await createEngine({ modelRepositories: [repository.root], logger: silentLogger, bufferPooling });
  const failures = engine.loadFailures();
  if (failures.length > 0) {
    await engine.close();
    throw new Error(`model failed to load in-process: ${JSON.stringify(failures)}`);
  }
  return engine;
}

async function main(): Promise<void> {
  const options = readOptions();
  const { removeRepository } = await import('../../test/helpers/fixture-repository.ts');
  const repository = await buildPipelineRepository();
  const cleanups: (() => Promise<void>)[] = [() => removeRepository(repository.root)];
  try {
    console.log(`Switchyard ensemble benchmark: node ${process.version}, ${cpus().length} CPUs`);
    console.log(`pipeline: ${STEPS.map((s) => `${s.model} (${s.input} -> ${s.output})`).join(' -> ')}; `
      + `each an MLP ${WIDTH} -> ${HIDDEN} -> ${WIDTH} FP32, 1 CPU instance, 1 intra-op thread, max_batch_size ${MAX_BATCH_SIZE}, no dynamic_batching`);
    console.log(`load: closed loop, batch-1 requests, ${options.warmup} s warm-up then ${options.seconds} s measured per cell; `
      + 'HTTP with the binary tensor extension against a server child, one keep-alive connection per client');

    const floor = await DirectChain.create(STEPS, repository.modelPath);
    cleanups.push(() => floor.release());
    const reference = await floor.run(REQUEST_ROW, SHAPE);
    const floorRequest: Request = async (_worker, inspect) => {
      const output = await floor.run(REQUEST_ROW, SHAPE);
      inspect?.(new Uint8Array(output.buffer, output.byteOffset, output.byteLength));
      return undefined;
    };

    const child: Child = await ServerChild.start<ChildInit>(fileURLToPath(import.meta.url), 'switchyard',
      { repository: repository.root }, options.nodeArgs);
    cleanups.push(() => child.stop());
    const http = httpModes(child.port);
    cleanups.push(async () => http.close());
    await checkMode('(a) ensemble over HTTP', http.ensemble, reference);
    await checkMode('(b) client chain over HTTP', http.chain, reference);

    const engine = await startEngine(repository, true);
    cleanups.push(() => engine.close());
    const inProcess = engineModes(engine);
    await checkMode('(a-engine) ensemble in-process', inProcess.ensemble, reference);
    await checkMode('(c) three calls in-process', inProcess.chain, reference);

    const modes: readonly (Omit<CellSpec, 'concurrency'>)[] = [
      { mode: '(a)', path: `1 POST ${ENSEMBLE}`, request: http.ensemble, child },
      { mode: '(b)', path: '3 POSTs, client chains', request: http.chain, child },
      { mode: '(a-engine)', path: `1 engine.infer ${ENSEMBLE}`, request: inProcess.ensemble, child: undefined },
      { mode: '(c)', path: '3 engine.infer in sequence', request: inProcess.chain, child: undefined },
      { mode: 'floor', path: '3 session.run, this thread', request: floorRequest, child: undefined },
    ];
    const cells: Cell[] = [];
    for (const concurrency of options.concurrencies) {
      for (const mode of modes) cells.push(await runCell({ ...mode, concurrency }, options));
    }
    if (cells.length > 0) {
      printCells(cells);
      printRatios(cells, options.concurrencies);
    }

    const n = options.allocRequests;
    const pooled = [
      await measureAllocation(engine, true, '(a-engine) ensemble', inProcess.ensemble, n),
      await measureAllocation(engine, true, '(c) three calls', inProcess.chain, n),
    ];
    const unpooledEngine = await startEngine(repository, false);
    let unpooled: AllocationRow[];
    try {
      const modesOff = engineModes(unpooledEngine);
      unpooled = [
        await measureAllocation(unpooledEngine, false, '(a-engine) ensemble', modesOff.ensemble, n),
        await measureAllocation(unpooledEngine, false, '(c) three calls', modesOff.chain, n),
      ];
    } finally {
      await unpooledEngine.close();
    }
    printAllocation([unpooled[0]!, pooled[0]!, unpooled[1]!, pooled[1]!], n);

    const errors = cells.filter((c) => c.load.errors > 0).map((c) => `c=${c.concurrency} ${c.mode}: ${c.load.errors} errors (${c.load.firstError})`);
    if (errors.length > 0) console.log(`\nErrors (not counted in req/s):\n  ${errors.join('\n  ')}`);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
  if (process.env['BENCH_CONDITIONAL'] !== '0') {
    console.log('\n---------------------------------------------------------------- conditional case (bench:router)\n');
    await runRouterBench();
  }
}

const role = childRole();
if (role === 'switchyard') await serveAsChild<ChildInit>(startSwitchyard);
else if (role !== undefined) throw new Error(`unknown child role '${role}'`);
else await main();
