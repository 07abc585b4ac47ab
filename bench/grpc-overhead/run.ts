/**
 * gRPC overhead benchmark: Switchyard's ModelInfer and ModelStreamInfer
 * against a bare grpc-js server that does the minimum any such server must
 * do (take the message, decode it with protobufjs, send back a reply of the
 * same bytes).
 *
 *   npm run bench:grpc
 *
 * One process plays three parts. Run plainly it is the orchestrator and
 * load generator; with `--child switchyard|bare` it is one of the two
 * servers (see ../server-child.ts), each in its own process. The Switchyard
 * child is the real `switchyard` command path: server/cli.ts's flag parser
 * and startServer, with gRPC on and HTTP off.
 *
 * Environment:
 *   BENCH_SECONDS       measured seconds per cell (default 5)
 *   BENCH_WARMUP        warmup seconds per cell before measuring (default 1)
 *   BENCH_CONCURRENCY   comma-separated unary client concurrencies (default 1,32)
 *   BENCH_STREAMS       comma-separated ModelStreamInfer stream counts (default 1,4)
 *   BENCH_STREAM_WINDOW messages in flight per stream (default 32)
 *   BENCH_DYNAMIC_BATCHING  set to 1 to give the model `dynamic_batching { }`
 *   BENCH_MODEL         `onnx` (default): add_sub on ONNX Runtime; `echo`: the same
 *                       signature on the in-memory echo backend of the tests
 *                       (OUTPUTn = INPUTn), so the figures are the frontend's and
 *                       the engine's own, without the ONNX worker round trip
 *   BENCH_SWITCHYARD_NODE_ARGS  extra node flags for the Switchyard child,
 *                       e.g. "--cpu-prof --cpu-prof-dir=.bench-out"
 *
 * It never asserts: it prints tables and whether each loaded row meets the
 * target ratio.
 */
import * as grpc from '@grpc/grpc-js';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { grpcType } from '../../server/grpc/grpc-schema.ts';
import { runGrpcStream, runGrpcUnary } from '../grpc-load-generator.ts';
import type { LoadResult } from '../load-generator.ts';
import { envIntegers, envNodeArgs, envNumber, fmtMs, fmtRate, table } from '../report.ts';
import { childRole, serveAsChild, ServerChild, type StartedServer } from '../server-child.ts';
import { buildAddSubRepository } from '../add-sub-repository.ts';

const TARGET_RATIO = 0.6;
const DYNAMIC_BATCHING = process.env['BENCH_DYNAMIC_BATCHING'] === '1';
const ECHO_MODEL = benchModel() === 'echo';

function benchModel(): 'onnx' | 'echo' {
  const value = process.env['BENCH_MODEL'] ?? 'onnx';
  if (value !== 'onnx' && value !== 'echo') throw new Error(`BENCH_MODEL must be 'onnx' or 'echo', not '${value}'`);
  return value;
}
const MODEL = 'add_sub';
const SIZE = 16;
const SERVICE = 'inference.GRPCInferenceService';
const UNARY_PATH = `/${SERVICE}/ModelInfer`;
const STREAM_PATH = `/${SERVICE}/ModelStreamInfer`;

/** Replies captured from Switchyard (base64 over IPC), replayed byte for byte by the bare server. */
interface CannedReplies {
  readonly unary: string;
  readonly stream: string;
}

interface ChildInit {
  readonly repository?: string;
  readonly echo?: boolean;
  readonly canned?: CannedReplies;
  /** The floor child: the model file it runs per message. */
  readonly modelPath?: string;
}

type Child = ServerChild<ChildInit>;

const identity = (bytes: Buffer): Buffer => bytes;

// ---------------------------------------------------------------- children

/** Switchyard as `switchyard --model-repository=... --grpc-port=0 --allow-http=false --metrics-port=0` starts it (metrics on, on a free port). */
async function startSwitchyard(repository: string, echo: boolean): Promise<StartedServer> {
  const { parseCliOptions } = await import('../../server/cli-options.ts');
  const { startServer } = await import('../../server/cli.ts');
  const { EchoBackend, withTestBackends } = await import('../../test/helpers/test-backends.ts');
  const running = await startServer(parseCliOptions([
    `--model-repository=${repository}`,
    '--grpc-address=127.0.0.1', '--grpc-port=0',
    '--allow-http=false',
    '--metrics-address=127.0.0.1', '--metrics-port=0',
  ]), echo ? withTestBackends(new EchoBackend()) : undefined);
  return { port: running.grpcPort!, close: () => running.close() };
}

/**
 * The baseline: a grpc-js server with the same limits as Switchyard's,
 * serving the two methods at the same paths. Each request message is decoded
 * with protobufjs (as any real server must) and answered with the canned
 * reply; the stream answers every message it reads, in order.
 */
async function startBare(canned: CannedReplies): Promise<StartedServer> {
  const requestType = grpcType('inference.ModelInferRequest');
  return serveReplies(canned, (template, bytes) => {
    try {
      return (requestType.decode(bytes) as unknown as { model_name?: string }).model_name === MODEL ? template : undefined;
    } catch {
      return undefined;
    }
  });
}

/**
 * A grpc-js server for ModelInfer and ModelStreamInfer on raw bytes: each
 * request's reply is `answer(template, request)` with the canned unary or
 * stream reply as the template; undefined answers INVALID_ARGUMENT (unary)
 * or an empty reply (stream: the client counts it as an error, and its
 * window stays full). The stream answers every message it reads, in order.
 */
async function serveReplies(canned: CannedReplies, answer: (template: Buffer, request: Buffer) => Buffer | undefined): Promise<StartedServer> {
  const { DEFAULT_GRPC_MAX_MESSAGE_SIZE } = await import('../../server/grpc/grpc-server.ts');
  const unaryReply = Buffer.from(canned.unary, 'base64');
  const streamReply = Buffer.from(canned.stream, 'base64');
  const method = (path: string, streaming: boolean): grpc.MethodDefinition<Buffer, Buffer> => ({
    path, requestStream: streaming, responseStream: streaming,
    requestSerialize: identity, requestDeserialize: identity,
    responseSerialize: identity, responseDeserialize: identity,
  });
  const modelInfer: grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) => {
    const reply = answer(unaryReply, call.request);
    if (reply) callback(null, reply);
    else callback({ code: grpc.status.INVALID_ARGUMENT, details: 'not a ModelInferRequest for this model' }, null);
  };
  const modelStreamInfer: grpc.handleBidiStreamingCall<Buffer, Buffer> = (call) => {
    call.on('data', (bytes: Buffer) => call.write(answer(streamReply, bytes) ?? Buffer.alloc(0)));
    call.on('end', () => call.end());
  };
  const server = new grpc.Server({
    'grpc.max_receive_message_length': DEFAULT_GRPC_MAX_MESSAGE_SIZE,
    'grpc.max_send_message_length': -1,
  });
  server.addService(
    { ModelInfer: method(UNARY_PATH, false), ModelStreamInfer: method(STREAM_PATH, true) },
    { ModelInfer: modelInfer, ModelStreamInfer: modelStreamInfer },
  );
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
  });
  return { port, close: () => new Promise((resolve) => server.tryShutdown(() => resolve())) };
}

/**
 * The floor: the bare server plus the model itself. Each request is decoded
 * as the bare server decodes it, its two raw_input_contents copied into
 * tensors and run through add_sub with ONNX Runtime's native binding on this
 * thread (no promise, outputs written into preallocated tensors), and the
 * reply is the canned one with the computed outputs written over its last
 * bytes, where both replies carry raw_output_contents (checked at startup
 * against Switchyard's replies, byte for byte). No validation, no scheduler:
 * what any server serving this model over grpc-js must spend at least.
 */
async function startFloor(canned: CannedReplies, modelPath: string): Promise<StartedServer> {
  const { openFloorSession } = await import('../native-session.ts');
  const session = openFloorSession(modelPath);
  const requestType = grpcType('inference.ModelInferRequest');
  const out0 = new Int32Array(SIZE);
  const out1 = new Int32Array(SIZE);
  const fetches = { OUTPUT0: new session.Tensor('int32', out0, [1, SIZE]), OUTPUT1: new session.Tensor('int32', out1, [1, SIZE]) };
  const tensorBytes = SIZE * 4;
  // The template with this request's outputs: OUTPUT1's bytes end the reply, OUTPUT0's end two bytes (tag, length) before them.
  return serveReplies(canned, (template, bytes) => {
    let message: { model_name?: string; raw_input_contents?: Uint8Array[] };
    try {
      message = requestType.decode(bytes) as unknown as typeof message;
    } catch {
      return undefined;
    }
    const raw = message.raw_input_contents ?? [];
    if (message.model_name !== MODEL || raw.length !== 2 || raw.some((r) => r.byteLength !== tensorBytes)) return undefined;
    const feeds: Record<string, unknown> = {};
    raw.forEach((r, i) => {
      const data = new Int32Array(SIZE);
      new Uint8Array(data.buffer).set(r);
      feeds[`INPUT${i}`] = new session.Tensor('int32', data, [1, SIZE]);
    });
    session.run(feeds, fetches);
    const reply = Buffer.allocUnsafe(template.byteLength);
    template.copy(reply);
    reply.set(new Uint8Array(out1.buffer), reply.byteLength - tensorBytes);
    reply.set(new Uint8Array(out0.buffer), reply.byteLength - 2 * tensorBytes - 2);
    return reply;
  });
}

// ----------------------------------------------------------- orchestrator

const INPUT0 = Int32Array.from({ length: SIZE }, (_, i) => i);
const INPUT1 = Int32Array.from({ length: SIZE }, () => 1);

/** The request both servers get: two INT32 [1,16] inputs in raw_input_contents, both outputs asked for. */
function encodedRequest(): Buffer {
  const type = grpcType('inference.ModelInferRequest');
  const bytes = (values: Int32Array): Buffer => Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  const message = type.fromObject({
    model_name: MODEL,
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, SIZE] },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, SIZE] },
    ],
    outputs: [{ name: 'OUTPUT0' }, { name: 'OUTPUT1' }],
    raw_input_contents: [bytes(INPUT0), bytes(INPUT1)],
  });
  return Buffer.from(type.encode(message).finish());
}

function connect(address: string): grpc.Client {
  return new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
}

function unaryOnce(address: string, body: Buffer): Promise<Buffer> {
  const client = connect(address);
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(UNARY_PATH, identity, identity, body, (err, reply) => (err ? reject(err) : resolve(reply!)));
  }).finally(() => client.close());
}

function streamOnce(address: string, body: Buffer): Promise<Buffer> {
  const client = connect(address);
  return new Promise<Buffer>((resolve, reject) => {
    const call = client.makeBidiStreamRequest(STREAM_PATH, identity, identity);
    const replies: Buffer[] = [];
    call.on('data', (reply: Buffer) => replies.push(reply));
    call.on('error', reject);
    call.on('status', () => (replies.length === 1 ? resolve(replies[0]!) : reject(new Error(`stream answered ${replies.length} messages to 1`))));
    call.write(body);
    call.end();
  }).finally(() => client.close());
}

/** Checks that a ModelInferResponse holds the right sums and differences, so the bare server replays a real answer. */
function checkInferResponse(response: Record<string, unknown>, where: string): void {
  const raw = response['raw_output_contents'] as Uint8Array[] | undefined;
  const outputs = response['outputs'] as Array<{ name: string }> | undefined;
  if (!raw || !outputs || raw.length !== 2) throw new Error(`${where}: expected two raw outputs, got ${JSON.stringify(response)}`);
  // Copy first: protobufjs hands out Buffers that are views into a larger pool.
  const int32 = (b: Uint8Array): number[] => Array.from(new Int32Array(new Uint8Array(b).buffer));
  const byName = new Map(outputs.map((o, i) => [o.name, int32(raw[i]!)]));
  const want0 = ECHO_MODEL ? Array.from(INPUT0) : Array.from(INPUT0, (v, i) => v + INPUT1[i]!);
  const want1 = ECHO_MODEL ? Array.from(INPUT1) : Array.from(INPUT0, (v, i) => v - INPUT1[i]!);
  if (JSON.stringify(byName.get('OUTPUT0')) !== JSON.stringify(want0) || JSON.stringify(byName.get('OUTPUT1')) !== JSON.stringify(want1)) {
    throw new Error(`${where}: wrong outputs ${JSON.stringify(Object.fromEntries(byName))}`);
  }
}

async function captureReplies(address: string, body: Buffer): Promise<{ canned: CannedReplies; unary: Buffer; stream: Buffer }> {
  const unary = await unaryOnce(address, body);
  checkInferResponse(grpcType('inference.ModelInferResponse').decode(unary) as unknown as Record<string, unknown>, 'ModelInfer');
  const stream = await streamOnce(address, body);
  const streamMessage = grpcType('inference.ModelStreamInferResponse').decode(stream) as unknown as Record<string, unknown>;
  if (streamMessage['error_message']) throw new Error(`ModelStreamInfer answered with an error: ${String(streamMessage['error_message'])}`);
  checkInferResponse(streamMessage['infer_response'] as Record<string, unknown>, 'ModelStreamInfer');
  return { canned: { unary: unary.toString('base64'), stream: stream.toString('base64') }, unary, stream };
}

interface Measured {
  readonly load: LoadResult;
  /** Server CPU per completed request or message, microseconds (all its threads). */
  readonly serverCpuPerRequest: number;
  /** Load generator CPU over the whole cell, as a share of one core. */
  readonly loadgenCpuShare: number;
  /** CPU the other, idle server used meanwhile, milliseconds. */
  readonly idleServerCpuMs: number;
}

async function measure(target: Child, idle: Child, run: (address: string) => Promise<LoadResult>): Promise<Measured> {
  const [server0, idle0] = await Promise.all([target.cpuMicros(), idle.cpuMicros()]);
  const self0 = process.cpuUsage();
  const wall0 = process.hrtime.bigint();
  const load = await run(`127.0.0.1:${target.port}`);
  const wallMicros = Number(process.hrtime.bigint() - wall0) / 1000;
  const self = process.cpuUsage(self0);
  const [server1, idle1] = await Promise.all([target.cpuMicros(), idle.cpuMicros()]);
  // Server CPU is over connect + warmup + window + drain; spread it over every request of the cell, estimated from the rate.
  const cellRequests = load.requestsPerSecond * (wallMicros / 1e6);
  return {
    load,
    serverCpuPerRequest: cellRequests > 0 ? (server1 - server0) / cellRequests : Number.NaN,
    loadgenCpuShare: (self.user + self.system) / wallMicros,
    idleServerCpuMs: (idle1 - idle0) / 1000,
  };
}

interface Cell {
  readonly kind: 'unary' | 'stream';
  /** c=32, or streams x window. */
  readonly label: string;
  /** Calls or messages in flight; the target applies when more than one. */
  readonly inFlight: number;
  readonly sy: Measured;
  readonly bare: Measured;
  /** The floor (bare + the model), with the ONNX model only. */
  readonly floor?: Measured;
}

const ratio = (cell: Cell): number => cell.sy.load.requestsPerSecond / cell.bare.load.requestsPerSecond;
const verdict = (cell: Cell): string => (cell.inFlight <= 1 ? '' : ratio(cell) >= TARGET_RATIO ? 'meets' : 'BELOW');

async function main(): Promise<void> {
  const seconds = envNumber('BENCH_SECONDS', 5);
  const warmup = envNumber('BENCH_WARMUP', 1);
  const concurrencies = envIntegers('BENCH_CONCURRENCY', '1,32');
  const streamCounts = envIntegers('BENCH_STREAMS', '1,4');
  const window = envNumber('BENCH_STREAM_WINDOW', 32);
  const switchyardArgs = envNodeArgs('BENCH_SWITCHYARD_NODE_ARGS');
  const timing = { warmupMs: warmup * 1000, durationMs: seconds * 1000 };

  const { removeRepository } = await import('../../test/helpers/fixture-repository.ts');
  const repository = await buildAddSubRepository(MODEL, 'INT32', SIZE, DYNAMIC_BATCHING, ECHO_MODEL ? 'test_echo' : undefined);
  const children: Child[] = [];
  try {
    const script = fileURLToPath(import.meta.url);
    const switchyard: Child = await ServerChild.start<ChildInit>(script, 'switchyard', { repository, echo: ECHO_MODEL }, switchyardArgs);
    children.push(switchyard);
    const request = encodedRequest();
    const captured = await captureReplies(`127.0.0.1:${switchyard.port}`, request);
    const bare: Child = await ServerChild.start<ChildInit>(script, 'bare', { canned: captured.canned });
    children.push(bare);
    const bareAddress = `127.0.0.1:${bare.port}`;
    const [bareUnary, bareStream] = [await unaryOnce(bareAddress, request), await streamOnce(bareAddress, request)];
    if (!bareUnary.equals(captured.unary) || !bareStream.equals(captured.stream)) throw new Error('the bare server does not replay Switchyard\'s replies');
    let floor: Child | undefined;
    if (!ECHO_MODEL) {
      floor = await ServerChild.start<ChildInit>(script, 'floor', { canned: captured.canned, modelPath: join(repository, MODEL, '1', 'model.onnx') });
      children.push(floor);
      // The floor computes its outputs: they must be Switchyard's, byte for byte.
      const floorAddress = `127.0.0.1:${floor.port}`;
      const [floorUnary, floorStream] = [await unaryOnce(floorAddress, request), await streamOnce(floorAddress, request)];
      if (!floorUnary.equals(captured.unary) || !floorStream.equals(captured.stream)) throw new Error('the floor server\'s replies are not Switchyard\'s');
    }

    console.log(`\nSwitchyard gRPC overhead benchmark: node ${process.version}, ${cpus().length} CPUs, `
      + `${warmup} s warmup + ${seconds} s measured per cell, grpc-js client on one channel`);
    console.log(`model ${MODEL}: ${ECHO_MODEL ? 'in-memory echo (BENCH_MODEL=echo)' : 'add/sub'} INT32 [1,${SIZE}], max_batch_size 8, ${DYNAMIC_BATCHING ? 'dynamic_batching { }' : 'no dynamic batching'}, 1 CPU instance`);
    console.log(`  ModelInferRequest ${request.byteLength} B (raw_input_contents), ModelInferResponse ${captured.unary.byteLength} B, `
      + `ModelStreamInferResponse ${captured.stream.byteLength} B`);
    console.log('Each cell runs Switchyard, then the bare server, back to back; the idle server is not loaded meanwhile.');
    if (floor) console.log('Each cell also runs the floor: the bare server plus add_sub run on its own thread with ONNX Runtime\'s native binding.');
    console.log('');

    const cells: Cell[] = [];
    const runCell = async (kind: Cell['kind'], label: string, inFlight: number, run: (address: string) => Promise<LoadResult>): Promise<void> => {
      const sy = await measure(switchyard, bare, run);
      const base = await measure(bare, switchyard, run);
      const least = floor ? await measure(floor, switchyard, run) : undefined;
      const cell: Cell = { kind, label, inFlight, sy, bare: base, ...(least ? { floor: least } : {}) };
      cells.push(cell);
      console.log(`  ${kind} ${label}: switchyard ${fmtRate(sy.load.requestsPerSecond)}/s, bare ${fmtRate(base.load.requestsPerSecond)}/s, ratio ${ratio(cell).toFixed(2)}`
        + (least ? `; floor ${fmtRate(least.load.requestsPerSecond)}/s, floor/bare ${(least.load.requestsPerSecond / base.load.requestsPerSecond).toFixed(2)}` : ''));
    };
    for (const concurrency of concurrencies) {
      await runCell('unary', `c=${concurrency}`, concurrency, (address) => runGrpcUnary({
        address, path: UNARY_PATH, body: request, expectBodyBytes: captured.unary.byteLength, concurrency, ...timing,
      }));
    }
    for (const streams of streamCounts) {
      await runCell('stream', `${streams}x${window}`, streams * window, (address) => runGrpcStream({
        address, path: STREAM_PATH, body: request, expectBodyBytes: captured.stream.byteLength, streams, window, ...timing,
      }));
    }

    const row = (cell: Cell): string[] => [
      cell.kind, cell.label,
      fmtRate(cell.sy.load.requestsPerSecond), fmtMs(cell.sy.load.p50), fmtMs(cell.sy.load.p99),
      fmtRate(cell.bare.load.requestsPerSecond), fmtMs(cell.bare.load.p50), fmtMs(cell.bare.load.p99),
      ratio(cell).toFixed(2), verdict(cell),
    ];
    console.log(`\nThroughput and latency (latency in ms; target where more than one is in flight: switchyard/bare >= ${TARGET_RATIO})`);
    console.log('unary: ModelInfer calls/s at c concurrent callers. stream: ModelStreamInfer messages/s, streams x messages in flight per stream.\n');
    console.log(table(
      ['rpc', 'load', 'switchyard /s', 'p50', 'p99', 'bare /s', 'p50', 'p99', 'ratio', `>= ${TARGET_RATIO}`],
      cells.map(row),
    ));
    if (floor) {
      console.log('\nThe floor: the bare server + the model run on its thread, no engine. Switchyard / floor is how much of the reachable rate Switchyard reaches.\n');
      console.log(table(
        ['rpc', 'load', 'floor /s', 'p50', 'p99', 'floor/bare', 'switchyard/floor', 'floor us/req'],
        cells.filter((c) => c.floor).map((c) => [
          c.kind, c.label, fmtRate(c.floor!.load.requestsPerSecond), fmtMs(c.floor!.load.p50), fmtMs(c.floor!.load.p99),
          (c.floor!.load.requestsPerSecond / c.bare.load.requestsPerSecond).toFixed(2),
          (c.sy.load.requestsPerSecond / c.floor!.load.requestsPerSecond).toFixed(2), c.floor!.serverCpuPerRequest.toFixed(0),
        ]),
      ));
    }
    console.log('\nCPU per cell. us/req: server CPU (all threads) per call or message. loadgen: load generator CPU as a share of one core.');
    console.log('idle server ms: CPU the unloaded server used meanwhile (bare during the Switchyard cell / Switchyard during the bare cell).\n');
    console.log(table(
      ['rpc', 'load', 'switchyard us/req', 'loadgen', 'bare us/req', 'loadgen', 'idle server ms'],
      cells.map((c) => [
        c.kind, c.label,
        c.sy.serverCpuPerRequest.toFixed(0), `${Math.round(c.sy.loadgenCpuShare * 100)}%`,
        c.bare.serverCpuPerRequest.toFixed(0), `${Math.round(c.bare.loadgenCpuShare * 100)}%`,
        `${c.sy.idleServerCpuMs.toFixed(0)} / ${c.bare.idleServerCpuMs.toFixed(0)}`,
      ]),
    ));
    const errors = cells.flatMap((c) => [
      c.sy.load.errors > 0 ? `${c.kind} ${c.label} switchyard: ${c.sy.load.errors} errors (${c.sy.load.firstError})` : '',
      c.bare.load.errors > 0 ? `${c.kind} ${c.label} bare: ${c.bare.load.errors} errors (${c.bare.load.firstError})` : '',
      c.floor && c.floor.load.errors > 0 ? `${c.kind} ${c.label} floor: ${c.floor.load.errors} errors (${c.floor.load.firstError})` : '',
    ]).filter(Boolean);
    if (errors.length > 0) console.log(`\nErrors (not counted in the rates):\n  ${errors.join('\n  ')}`);
    const below = cells.filter((c) => verdict(c) === 'BELOW');
    console.log(below.length === 0
      ? `\nEvery loaded row meets the target (switchyard >= ${TARGET_RATIO} x bare).`
      : `\n${below.length} loaded row(s) below the target: ${below.map((c) => `${c.kind} ${c.label}`).join(', ')}.`);
  } finally {
    for (const child of children.reverse()) await child.stop();
    await removeRepository(repository);
  }
}

const role = childRole();
if (role === 'switchyard') await serveAsChild<ChildInit>((init) => startSwitchyard(init.repository!, init.echo === true));
else if (role === 'bare') await serveAsChild<ChildInit>((init) => startBare(init.canned!));
else if (role === 'floor') await serveAsChild<ChildInit>((init) => startFloor(init.canned!, init.modelPath!));
else if (role !== undefined) throw new Error(`unknown child role '${role}'`);
else await main();
