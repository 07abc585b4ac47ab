/**
 * HTTP overhead benchmark: Switchyard's real infer route against a bare
 * fastify route that does the minimum any such server must do (read the
 * body, JSON.parse the header, send a response of the same size).
 *
 *   npm run bench:http      (npm run bench runs this, then the gRPC benchmark)
 *
 * One process plays three parts. Run plainly it is the orchestrator and
 * load generator; with `--child switchyard|bare` it is one of the two
 * servers (see ../server-child.ts), each forked into its own process so that
 * it does not share an event loop with the load generator or with the other
 * server.
 *
 * Environment:
 *   BENCH_SECONDS       measured seconds per cell (default 5)
 *   BENCH_WARMUP        warmup seconds per cell before measuring (default 1)
 *   BENCH_CONCURRENCY   comma-separated client concurrencies (default 1,32)
 *   BENCH_MODES         comma-separated body modes, json and/or binary (default json,binary)
 *   BENCH_DYNAMIC_BATCHING  set to 1 to give the model `dynamic_batching { }`
 *                       (default: no batching, each request runs alone)
 *   BENCH_SWITCHYARD_NODE_ARGS  extra node flags for the Switchyard child,
 *                       e.g. "--cpu-prof --cpu-prof-dir=.bench-out"
 *   BENCH_BARE_NODE_ARGS        the same for the bare route's child
 *
 * It never asserts: it prints a table and whether each c=32 row meets the
 * target ratio.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { postOnce, runClosedLoop, type LoadResult, type OneResponse } from '../load-generator.ts';
import { envIntegers, envNodeArgs, envNumber, fmtMs, fmtRate, table } from '../report.ts';
import { childRole, serveAsChild, ServerChild, startSwitchyardHttp, type StartedServer } from '../server-child.ts';
import { buildAddSubRepository } from '../add-sub-repository.ts';

const TARGET_RATIO = 0.6;
const DYNAMIC_BATCHING = process.env['BENCH_DYNAMIC_BATCHING'] === '1';
const MODEL = 'add_sub_fp32';
const SIZE = 16;
const INFER_PATH = `/v2/models/${MODEL}/infer`;
const HEADER_LENGTH = 'inference-header-content-length';

type Mode = 'json' | 'binary';
const ALL_MODES: readonly Mode[] = ['json', 'binary'];

/** A response captured from Switchyard, replayed byte for byte by the bare route. */
interface CannedResponse {
  readonly contentType: string;
  readonly headerLength?: string;
  /** base64 over IPC. */
  readonly body: string;
}

interface ChildInit {
  readonly repository?: string;
  readonly canned?: Record<Mode, CannedResponse>;
  /** The floor child: the model file it runs per request. */
  readonly modelPath?: string;
}

type Child = ServerChild<ChildInit>;

// ---------------------------------------------------------------- children

async function startSwitchyard(repository: string): Promise<StartedServer> {
  return startSwitchyardHttp(repository);
}

/**
 * The baseline: the same fastify setup as Switchyard's frontend (every body
 * read as a Buffer, same body limit), one route that parses the JSON header
 * the way the real decoder does and answers with a canned response of the
 * same bytes. Everything Switchyard spends beyond this is its own overhead.
 */
async function startBare(canned: Record<Mode, CannedResponse>): Promise<StartedServer> {
  const replies = {
    json: toReply(canned.json),
    binary: toReply(canned.binary),
  };
  return serveInferRoute(async (body, req, reply) => {
    const lengthHeader = req.headers[HEADER_LENGTH];
    const jsonLength = typeof lengthHeader === 'string' ? Number(lengthHeader) : body.byteLength;
    const json: unknown = JSON.parse(body.toString('utf8', 0, jsonLength));
    if (typeof json !== 'object' || json === null) return reply.code(400).send('{"error":"not an object"}');
    const canned = lengthHeader === undefined ? replies.json : replies.binary;
    return reply.headers(canned.headers).send(canned.body);
  });
}

/**
 * A fastify app set up as Switchyard's frontend is (every body read as a
 * Buffer whatever its Content-Type, the same body limit, no logger) with
 * one route, POST /v2/models/:model/infer, answered by `handle`.
 */
async function serveInferRoute(
  handle: (body: Buffer, req: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>,
): Promise<StartedServer> {
  const { default: Fastify } = await import('fastify');
  const { DEFAULT_MAX_INPUT_SIZE } = await import('../../server/http/http-server.ts');
  const bodyLimit = DEFAULT_MAX_INPUT_SIZE;
  const app = Fastify({ bodyLimit, logger: false, forceCloseConnections: true });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));
  app.post('/v2/models/:model/infer', (req, reply) => handle(Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0), req, reply));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  return { port: typeof address === 'object' && address ? address.port : 0, close: () => app.close() };
}

/**
 * The floor: the bare route plus the model itself. Each binary request's two
 * tensors are cut out of the body where the JSON header says they are, run
 * through add_sub with ONNX Runtime's native binding on this thread (the
 * cheapest call onnxruntime-node has: no promise, no setImmediate, outputs
 * written into preallocated tensors), and the answer is the canned reply
 * with the computed outputs written over its tensor bytes. No validation,
 * no scheduler, no pool: what any server serving this model over this HTTP
 * stack must spend at least. Switchyard's ratio to bare cannot pass this
 * one's on the same machine.
 */
async function startFloor(canned: Record<Mode, CannedResponse>, modelPath: string): Promise<StartedServer> {
  const { openFloorSession } = await import('../native-session.ts');
  const session = openFloorSession(modelPath);
  const reply = toReply(canned.binary);
  const template = reply.body as Buffer;
  const tensorBytes = SIZE * 4;
  const outputsAt = template.byteLength - 2 * tensorBytes;
  const out0 = new Float32Array(SIZE);
  const out1 = new Float32Array(SIZE);
  const fetches = { OUTPUT0: new session.Tensor('float32', out0, [1, SIZE]), OUTPUT1: new session.Tensor('float32', out1, [1, SIZE]) };
  return serveInferRoute(async (body, req, replyTo) => {
    const lengthHeader = req.headers[HEADER_LENGTH];
    if (typeof lengthHeader !== 'string') return replyTo.code(400).send('{"error":"the floor takes binary requests only"}');
    const jsonLength = Number(lengthHeader);
    const json = JSON.parse(body.toString('utf8', 0, jsonLength)) as { inputs?: Array<{ name: string; parameters?: { binary_data_size?: number } }> };
    const feeds: Record<string, unknown> = {};
    let at = jsonLength;
    for (const input of json.inputs ?? []) {
      const size = input.parameters?.binary_data_size ?? 0;
      // A copy, as a server that keeps no reference into the request body makes.
      const data = new Float32Array(size / 4);
      new Uint8Array(data.buffer).set(body.subarray(at, at + size));
      feeds[input.name] = new session.Tensor('float32', data, [1, size / 4]);
      at += size;
    }
    session.run(feeds, fetches);
    const answer = Buffer.allocUnsafe(template.byteLength);
    template.copy(answer, 0, 0, outputsAt);
    answer.set(new Uint8Array(out0.buffer), outputsAt);
    answer.set(new Uint8Array(out1.buffer), outputsAt + tensorBytes);
    return replyTo.headers(reply.headers).send(answer);
  });
}

function toReply(canned: CannedResponse): { headers: Record<string, string>; body: string | Buffer } {
  const bytes = Buffer.from(canned.body, 'base64');
  const headers: Record<string, string> = { 'content-type': canned.contentType };
  if (canned.headerLength !== undefined) headers[HEADER_LENGTH] = canned.headerLength;
  // Switchyard sends JSON responses as strings and binary ones as Buffers; do the same.
  return { headers, body: canned.headerLength === undefined ? bytes.toString('utf8') : bytes };
}

// ----------------------------------------------------------- orchestrator

interface Payload {
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

function requestPayloads(): Record<Mode, Payload> {
  const a = Array.from({ length: SIZE }, (_, i) => i + 0.5);
  const b = Array.from({ length: SIZE }, (_, i) => 1 - i * 0.25);
  const outputs = [{ name: 'OUTPUT0' }, { name: 'OUTPUT1' }];
  const json = JSON.stringify({
    inputs: [
      { name: 'INPUT0', shape: [1, SIZE], datatype: 'FP32', data: a },
      { name: 'INPUT1', shape: [1, SIZE], datatype: 'FP32', data: b },
    ],
    outputs,
  });
  const binaryHeader = Buffer.from(JSON.stringify({
    inputs: [
      { name: 'INPUT0', shape: [1, SIZE], datatype: 'FP32', parameters: { binary_data_size: SIZE * 4 } },
      { name: 'INPUT1', shape: [1, SIZE], datatype: 'FP32', parameters: { binary_data_size: SIZE * 4 } },
    ],
    // Listed outputs follow their own binary_data, not binary_data_output (Triton's precedence).
    outputs: outputs.map((o) => ({ ...o, parameters: { binary_data: true } })),
  }));
  const tensorBytes = (values: number[]): Buffer => Buffer.from(new Float32Array(values).buffer);
  return {
    json: { headers: { 'content-type': 'application/json' }, body: Buffer.from(json) },
    binary: {
      headers: { 'content-type': 'application/octet-stream', [HEADER_LENGTH]: String(binaryHeader.byteLength) },
      body: Buffer.concat([binaryHeader, tensorBytes(a), tensorBytes(b)]),
    },
  };
}


/** Checks Switchyard's answer is a correct inference result and captures it for the bare route. */
function captureResponse(mode: Mode, response: OneResponse): CannedResponse {
  if (response.status !== 200) throw new Error(`Switchyard answered the ${mode} request with ${response.status}: ${response.body.toString()}`);
  const headerLength = response.headers[HEADER_LENGTH];
  const lengthValue = typeof headerLength === 'string' ? headerLength : undefined;
  if (mode === 'binary' && lengthValue === undefined) throw new Error('Switchyard returned no binary outputs for the binary request');
  const jsonText = response.body.toString('utf8', 0, lengthValue === undefined ? undefined : Number(lengthValue));
  const parsed = JSON.parse(jsonText) as { outputs: Array<{ name: string; data?: number[] }> };
  if (mode === 'json') {
    const out0 = parsed.outputs.find((o) => o.name === 'OUTPUT0')?.data;
    const expected = Array.from({ length: SIZE }, (_, i) => i + 0.5 + 1 - i * 0.25);
    if (!out0 || out0.some((v, i) => Math.abs(v - expected[i]!) > 1e-6)) throw new Error(`unexpected OUTPUT0: ${JSON.stringify(out0)}`);
  }
  return {
    contentType: String(response.headers['content-type'] ?? 'application/octet-stream'),
    ...(lengthValue !== undefined ? { headerLength: lengthValue } : {}),
    body: response.body.toString('base64'),
  };
}

interface Measured {
  readonly load: LoadResult;
  /** Server CPU per completed request, microseconds (all its threads). */
  readonly serverCpuPerRequest: number;
  /** The part of it on the server's main thread (the event loop: HTTP, codec, engine), microseconds. */
  readonly mainThreadCpuPerRequest: number;
  /** Load generator CPU over the whole cell, as a share of one core. */
  readonly loadgenCpuShare: number;
  /** CPU the other, idle server used meanwhile, milliseconds. */
  readonly idleServerCpuMs: number;
}

async function measure(target: Child, idle: Child, payload: Payload, expectBodyBytes: number,
  concurrency: number, warmupMs: number, durationMs: number): Promise<Measured> {
  const [server0, idle0, main0] = await Promise.all([target.cpuMicros(), idle.cpuMicros(), target.mainThreadCpuMicros()]);
  const self0 = process.cpuUsage();
  const wall0 = process.hrtime.bigint();
  const load = await runClosedLoop({
    host: '127.0.0.1', port: target.port, path: INFER_PATH, headers: payload.headers, body: payload.body,
    concurrency, warmupMs, durationMs, expectBodyBytes,
  });
  const wallMicros = Number(process.hrtime.bigint() - wall0) / 1000;
  const self = process.cpuUsage(self0);
  const [server1, idle1, main1] = await Promise.all([target.cpuMicros(), idle.cpuMicros(), target.mainThreadCpuMicros()]);
  // Server CPU is over warmup + window + drain; spread it over every request of the cell, estimated from the rate.
  const cellRequests = load.requestsPerSecond * (wallMicros / 1e6);
  return {
    load,
    serverCpuPerRequest: cellRequests > 0 ? (server1 - server0) / cellRequests : Number.NaN,
    mainThreadCpuPerRequest: cellRequests > 0 ? (main1 - main0) / cellRequests : Number.NaN,
    loadgenCpuShare: (self.user + self.system) / wallMicros,
    idleServerCpuMs: (idle1 - idle0) / 1000,
  };
}

/** BENCH_MODES: which body modes to measure (both are still captured for the bare route). */
function envModes(): Mode[] {
  const raw = process.env['BENCH_MODES'] ?? 'json,binary';
  const modes = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (modes.length === 0 || modes.some((m) => !ALL_MODES.includes(m as Mode))) {
    throw new Error(`BENCH_MODES must list json and/or binary, comma-separated, got '${raw}'`);
  }
  return [...new Set(modes)] as Mode[];
}

async function main(): Promise<void> {
  const seconds = envNumber('BENCH_SECONDS', 5);
  const warmup = envNumber('BENCH_WARMUP', 1);
  const concurrencies = envIntegers('BENCH_CONCURRENCY', '1,32');
  const switchyardArgs = envNodeArgs('BENCH_SWITCHYARD_NODE_ARGS');
  const bareArgs = envNodeArgs('BENCH_BARE_NODE_ARGS');
  const modes = envModes();

  const { removeRepository } = await import('../../test/helpers/fixture-repository.ts');
  const repository = await buildAddSubRepository(MODEL, 'FP32', SIZE, DYNAMIC_BATCHING);
  const children: Child[] = [];
  try {
    const script = fileURLToPath(import.meta.url);
    const switchyard: Child = await ServerChild.start<ChildInit>(script, 'switchyard', { repository }, switchyardArgs);
    children.push(switchyard);
    const payloads = requestPayloads();
    const canned = {} as Record<Mode, CannedResponse>;
    // The bare route answers both forms, whichever are measured.
    for (const mode of ALL_MODES) canned[mode] = captureResponse(mode, await postOnce(switchyard.port, INFER_PATH, payloads[mode]));
    const bare: Child = await ServerChild.start<ChildInit>(script, 'bare', { canned }, bareArgs);
    children.push(bare);
    const modelPath = join(repository, MODEL, '1', 'model.onnx');
    const floor: Child | undefined = modes.includes('binary')
      ? await ServerChild.start<ChildInit>(script, 'floor', { canned, modelPath }, bareArgs)
      : undefined;
    if (floor) children.push(floor);

    const expectBytes = {} as Record<Mode, number>;
    for (const mode of ALL_MODES) {
      const fromBare = await postOnce(bare.port, INFER_PATH, payloads[mode]);
      expectBytes[mode] = Buffer.from(canned[mode].body, 'base64').byteLength;
      if (fromBare.status !== 200 || fromBare.body.byteLength !== expectBytes[mode]) {
        throw new Error(`bare route answered ${mode} with ${fromBare.status}, ${fromBare.body.byteLength} bytes (want ${expectBytes[mode]})`);
      }
    }
    if (floor) {
      // The floor computes its outputs: they must be Switchyard's, byte for byte.
      const fromFloor = await postOnce(floor.port, INFER_PATH, payloads.binary);
      if (fromFloor.status !== 200 || !fromFloor.body.equals(Buffer.from(canned.binary.body, 'base64'))) {
        throw new Error(`the floor answered binary with ${fromFloor.status}, ${fromFloor.body.byteLength} bytes, not Switchyard's answer`);
      }
    }

    console.log(`Switchyard HTTP overhead benchmark: node ${process.version}, ${cpus().length} CPUs, `
      + `${warmup} s warmup + ${seconds} s measured per cell, closed loop over keep-alive http.Agent`);
    console.log(`model ${MODEL}: add/sub FP32 [1,${SIZE}], max_batch_size 8, ${DYNAMIC_BATCHING ? 'dynamic_batching { }' : 'no dynamic batching'}, 1 CPU instance`);
    for (const mode of modes) {
      console.log(`  ${mode.padEnd(6)} request ${payloads[mode].body.byteLength} B, response ${expectBytes[mode]} B`);
    }
    console.log('Each cell runs Switchyard, then the bare route, back to back; the idle server is not loaded meanwhile.');
    if (floor) console.log('Binary cells also run the floor: the bare route plus add_sub run on its own thread with ONNX Runtime\'s native binding.');
    console.log('');

    const results: Array<{ mode: Mode; concurrency: number; sy: Measured; bare: Measured; floor?: Measured }> = [];
    for (const mode of modes) {
      for (const concurrency of concurrencies) {
        const args = [payloads[mode], expectBytes[mode], concurrency, warmup * 1000, seconds * 1000] as const;
        const sy = await measure(switchyard, bare, ...args);
        const base = await measure(bare, switchyard, ...args);
        const least = floor && mode === 'binary' ? await measure(floor, switchyard, ...args) : undefined;
        results.push({ mode, concurrency, sy, bare: base, ...(least ? { floor: least } : {}) });
        const ratio = sy.load.requestsPerSecond / base.load.requestsPerSecond;
        console.log(`  ${mode} c=${concurrency}: switchyard ${fmtRate(sy.load.requestsPerSecond)} req/s, `
          + `bare ${fmtRate(base.load.requestsPerSecond)} req/s, ratio ${ratio.toFixed(2)}`
          + (least ? `; floor ${fmtRate(least.load.requestsPerSecond)} req/s, floor/bare ${(least.load.requestsPerSecond / base.load.requestsPerSecond).toFixed(2)}` : ''));
      }
    }

    const verdict = (r: (typeof results)[number]): string => {
      if (r.concurrency !== 32) return '';
      return r.sy.load.requestsPerSecond / r.bare.load.requestsPerSecond >= TARGET_RATIO ? 'meets' : 'BELOW';
    };
    console.log(`\nThroughput and latency (latency in ms; target at c=32: switchyard/bare >= ${TARGET_RATIO})\n`);
    console.log(table(
      ['mode', 'c', 'switchyard req/s', 'p50', 'p99', 'bare req/s', 'p50', 'p99', 'ratio', `>= ${TARGET_RATIO}`],
      results.map((r) => [
        r.mode, String(r.concurrency),
        fmtRate(r.sy.load.requestsPerSecond), fmtMs(r.sy.load.p50), fmtMs(r.sy.load.p99),
        fmtRate(r.bare.load.requestsPerSecond), fmtMs(r.bare.load.p50), fmtMs(r.bare.load.p99),
        (r.sy.load.requestsPerSecond / r.bare.load.requestsPerSecond).toFixed(2), verdict(r),
      ]),
    ));
    if (results.some((r) => r.floor)) {
      console.log('\nThe floor: bare route + the model run on its thread, no engine (binary only). Switchyard / floor is how much of the reachable rate Switchyard reaches.\n');
      console.log(table(
        ['mode', 'c', 'floor req/s', 'p50', 'p99', 'floor/bare', 'switchyard/floor', 'floor us/req', 'main'],
        results.filter((r) => r.floor).map((r) => [
          r.mode, String(r.concurrency),
          fmtRate(r.floor!.load.requestsPerSecond), fmtMs(r.floor!.load.p50), fmtMs(r.floor!.load.p99),
          (r.floor!.load.requestsPerSecond / r.bare.load.requestsPerSecond).toFixed(2),
          (r.sy.load.requestsPerSecond / r.floor!.load.requestsPerSecond).toFixed(2),
          r.floor!.serverCpuPerRequest.toFixed(0), r.floor!.mainThreadCpuPerRequest.toFixed(0),
        ]),
      ));
    }
    console.log('\nCPU per cell. us/req: server CPU (all threads) per request; main: the part on its main thread (the event loop).');
    console.log('loadgen: load generator CPU as a share of one core.');
    console.log('idle server ms: CPU the unloaded server used meanwhile (bare during the Switchyard cell / Switchyard during the bare cell).\n');
    console.log(table(
      ['mode', 'c', 'switchyard us/req', 'main', 'loadgen', 'bare us/req', 'main', 'loadgen', 'idle server ms'],
      results.map((r) => [
        r.mode, String(r.concurrency),
        r.sy.serverCpuPerRequest.toFixed(0), r.sy.mainThreadCpuPerRequest.toFixed(0), `${Math.round(r.sy.loadgenCpuShare * 100)}%`,
        r.bare.serverCpuPerRequest.toFixed(0), r.bare.mainThreadCpuPerRequest.toFixed(0), `${Math.round(r.bare.loadgenCpuShare * 100)}%`,
        `${r.sy.idleServerCpuMs.toFixed(0)} / ${r.bare.idleServerCpuMs.toFixed(0)}`,
      ]),
    ));
    const errors = results.flatMap((r) => [
      r.sy.load.errors > 0 ? `${r.mode} c=${r.concurrency} switchyard: ${r.sy.load.errors} errors (${r.sy.load.firstError})` : '',
      r.bare.load.errors > 0 ? `${r.mode} c=${r.concurrency} bare: ${r.bare.load.errors} errors (${r.bare.load.firstError})` : '',
      r.floor && r.floor.load.errors > 0 ? `${r.mode} c=${r.concurrency} floor: ${r.floor.load.errors} errors (${r.floor.load.firstError})` : '',
    ]).filter(Boolean);
    if (errors.length > 0) console.log(`\nErrors (not counted in req/s):\n  ${errors.join('\n  ')}`);
    const below = results.filter((r) => verdict(r) === 'BELOW');
    console.log(below.length === 0
      ? `\nEvery c=32 row meets the target (switchyard >= ${TARGET_RATIO} x bare).`
      : `\n${below.length} c=32 row(s) below the target: ${below.map((r) => r.mode).join(', ')}.`);
  } finally {
    for (const child of children.reverse()) await child.stop();
    await removeRepository(repository);
  }
}

const role = childRole();
if (role === 'switchyard') await serveAsChild<ChildInit>((init) => startSwitchyard(init.repository!));
else if (role === 'bare') await serveAsChild<ChildInit>((init) => startBare(init.canned!));
else if (role === 'floor') await serveAsChild<ChildInit>((init) => startFloor(init.canned!, init.modelPath!));
else if (role !== undefined) throw new Error(`unknown child role '${role}'`);
else await main();
