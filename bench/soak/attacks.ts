/**
 * The soak's hostile share: one attack per class of issue 15 (the hardening
 * issue), each against the real server next to the ordinary traffic. An
 * attack passes when the server answers it in a bounded way: within its time
 * limit, and when it refuses, with Triton's `{"error": "..."}` body (or a
 * gRPC status) whose message stays short. Whether the attacks hurt anyone
 * else shows in the ordinary traffic's errors and the server's RSS, which
 * soak.ts measures.
 *
 * The hostile models (TypeScript scripts) are written into the soak's own
 * repository by writeAttackModels(); the server runs in explicit model
 * control mode with every model loaded, so that load requests with hostile
 * config overrides reach the loader.
 */
import * as grpc from '@grpc/grpc-js';
import { request as httpRequest, Agent } from 'node:http';
import { connect, type Socket } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { INFERENCE_SERVICE } from '../../server/grpc/grpc-schema.ts';
import { protoField as field, protoVarint as varint } from '../../test/helpers/grpc-raw-client.ts';

/** The longest error message an attack may get back: user text is quoted bounded, and the whole message is capped. */
export const MAX_ERROR_CHARS = 8 * 1024;
/** How long any one attack may take to be answered, ms (the slowest are the scripts' 2 s time limits and the 5 s body timeout). */
export const ATTACK_DEADLINE_MS = 30_000;

/** Server flags the attack mix needs: load requests allowed, and short enough timeouts for stalled uploads. */
export const ATTACK_SERVER_ARGS = [
  '--model-control-mode=explicit', '--load-model=*',
  '--http-request-timeout-secs=5', '--http-header-timeout-secs=5',
] as const;

export interface AttackTarget {
  readonly httpPort: number;
  readonly grpcPort: number;
  /** One keep-alive agent shared by the attacks that need a connection reused. */
  readonly agent: Agent;
  readonly grpc: grpc.Client;
}

export interface Attack {
  /** The class number in the hardening issue. */
  readonly klass: number;
  readonly name: string;
  /** Resolves with a problem, or undefined when the server handled it as it should. */
  run(target: AttackTarget, n: number): Promise<string | undefined>;
}

interface HttpAnswer {
  readonly status: number;
  readonly body: Buffer;
}

function http(target: AttackTarget, method: string, path: string, body?: Buffer | string, headers: Record<string, string | number> = {},
  agent: Agent | false = target.agent): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: target.httpPort, method, path, agent, headers: {
      ...(body !== undefined ? { 'content-length': Buffer.byteLength(body) } : {}), ...headers,
    } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(ATTACK_DEADLINE_MS, () => req.destroy(new Error(`no answer within ${ATTACK_DEADLINE_MS} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** undefined when the answer is a success, or a refusal in Triton's shape with a bounded message. */
function bounded(answer: HttpAnswer, what: string): string | undefined {
  if (answer.status < 400) return undefined;
  let error: unknown;
  try {
    error = (JSON.parse(answer.body.toString('utf8')) as { error?: unknown }).error;
  } catch {
    return `${what}: HTTP ${answer.status} with a body that is not JSON (${answer.body.length} bytes)`;
  }
  if (typeof error !== 'string') return `${what}: HTTP ${answer.status} without an 'error' string`;
  if (error.length > MAX_ERROR_CHARS) return `${what}: HTTP ${answer.status} with a ${error.length}-character error`;
  return undefined;
}

const refused = (answer: HttpAnswer, what: string): string | undefined =>
  answer.status >= 400 && answer.status < 500 ? bounded(answer, what) : `${what}: expected a 4xx refusal, got HTTP ${answer.status}`;

const json = (value: unknown): string => JSON.stringify(value);

const inferBody = (input: string, datatype: string, shape: number[], data: unknown[], parameters?: Record<string, unknown>): string =>
  json({ ...(parameters ? { parameters } : {}), inputs: [{ name: input, datatype, shape, data }] });

/** A binary-extension body: a JSON header naming each input's byte size, then the bytes. */
function binaryBody(header: object, data: Buffer): { body: Buffer; headers: Record<string, string | number> } {
  const head = Buffer.from(json(header));
  return { body: Buffer.concat([head, data]), headers: { 'inference-header-content-length': head.length, 'content-type': 'application/octet-stream' } };
}

function scriptCall(model: string): (t: AttackTarget) => Promise<string | undefined> {
  return async (t) => bounded(await http(t, 'POST', `/v2/models/${model}/infer`, inferBody('X', 'INT32', [1, 16], new Array(16).fill(1))), model);
}


/** A ModelInferRequest for add_sub whose INPUT0 is INT32 [1, 16] with `count` packed int_contents of one wire byte each. */
function intFloodMessage(count: number): Buffer {
  const packed = Buffer.alloc(count, 1);
  const shape = Buffer.concat([varint(1), varint(16)]);
  const input = Buffer.concat([field(1, Buffer.from('INPUT0')), field(2, Buffer.from('INT32')), field(3, shape), field(5, field(2, packed))]);
  return Buffer.concat([field(1, Buffer.from('add_sub')), field(5, input)]);
}

/** A ModelInferRequest for add_sub whose INPUT0 is BYTES [1, count] of empty elements in bytes_contents (2 wire bytes each). */
function bytesFloodMessage(count: number): Buffer {
  const contents = Buffer.alloc(count * 2);
  for (let i = 0; i < count; i++) contents[i * 2] = (8 << 3) | 2;
  const shape = Buffer.concat([varint(1), varint(count)]);
  const input = Buffer.concat([field(1, Buffer.from('INPUT0')), field(2, Buffer.from('BYTES')), field(3, shape), field(5, contents)]);
  return Buffer.concat([field(1, Buffer.from('add_sub')), field(5, input)]);
}

function grpcCall(target: AttackTarget, method: string, message: Buffer): Promise<{ code: number; details: string }> {
  return new Promise((resolve) => {
    target.grpc.makeUnaryRequest(`/${INFERENCE_SERVICE}/${method}`, (b: Buffer) => b, (b: Buffer) => b, message, new grpc.Metadata(),
      { deadline: Date.now() + ATTACK_DEADLINE_MS }, (error) => resolve({ code: error?.code ?? 0, details: error?.details ?? '' }));
  });
}

function grpcBounded(outcome: { code: number; details: string }, what: string): string | undefined {
  if (outcome.code === grpc.status.DEADLINE_EXCEEDED) return `${what}: no answer within ${ATTACK_DEADLINE_MS} ms`;
  if (outcome.details.length > MAX_ERROR_CHARS) return `${what}: a ${outcome.details.length}-character gRPC error`;
  return undefined;
}

/** A raw socket: write `head` (and `body`), then keep the connection until the server closes it or `holdMs` passes. */
function holdSocket(target: AttackTarget, head: string, body: Buffer | undefined, holdMs: number, pause: boolean): Promise<'closed' | 'held'> {
  return new Promise((resolve) => {
    const socket: Socket = connect(target.httpPort, '127.0.0.1', () => {
      socket.write(head);
      if (body) socket.write(body);
      if (pause) socket.pause();
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('held');
    }, holdMs);
    const done = (): void => {
      clearTimeout(timer);
      resolve('closed');
    };
    if (!pause) socket.resume();
    socket.on('close', done);
    socket.on('error', () => {});
  });
}

const SCRIPT_PARAMS = (timeoutMs: number, memoryMb: number, extra = ''): string => `
parameters { key: "execute_timeout_ms" value: { string_value: "${timeoutMs}" } }
parameters { key: "memory_limit_mb" value: { string_value: "${memoryMb}" } }
${extra}`;

const INT_IO = `
input [ { name: "X" data_type: TYPE_INT32 dims: [ 16 ] } ]
output [ { name: "Y" data_type: TYPE_INT32 dims: [ 16 ] } ]`;

const echo = (requests: string): string => `${requests}.map((r: any) => ({ outputs: { Y: { datatype: 'INT32', shape: r.inputs.X.shape, data: r.inputs.X.data } } }))`;

/** The hostile models: name -> [config.pbtxt, model.ts]. */
const ATTACK_MODELS: Readonly<Record<string, readonly [string, string]>> = {
  attack_bls: [`backend: "typescript"\nmax_batch_size: 8${INT_IO}${SCRIPT_PARAMS(10_000, 64)}`, `
export default class {
  async execute(requests: any[], ctx: any) {
    const out = [];
    for (const r of requests) {
      const x = r.inputs.X;
      const answer = await ctx.infer({ model: 'add_sub', inputs: { INPUT0: x, INPUT1: x } });
      out.push({ outputs: { Y: { datatype: 'INT32', shape: x.shape, data: answer.outputs.OUTPUT0.data } } });
    }
    return out;
  }
}`],
  attack_copy_bomb: [`backend: "typescript"\nmax_batch_size: 0
input [ { name: "X" data_type: TYPE_INT32 dims: [ 1, 16 ] } ]
output [ { name: "Y" data_type: TYPE_STRING dims: [ -1 ] } ]${SCRIPT_PARAMS(5_000, 64)}`, `
export default class {
  async execute(requests: any[]) {
    const big = 'x'.repeat(1 << 20);
    return requests.map(() => ({ outputs: { Y: { datatype: 'BYTES', shape: [1536], data: new Array(1536).fill(big) } } }));
  }
}`],
  attack_wasm: [`backend: "typescript"\nmax_batch_size: 8${INT_IO}${SCRIPT_PARAMS(5_000, 64)}`, `
export default class {
  kept: unknown[] = [];
  async execute(requests: any[]) {
    this.kept.push(new (globalThis as any).WebAssembly.Memory({ initial: 16384 }));
    return ${echo('requests')};
  }
}`],
  attack_log_flood: [`backend: "typescript"\nmax_batch_size: 8${INT_IO}${SCRIPT_PARAMS(2_000, 64)}`, `
export default class {
  async execute(requests: any[], ctx: any) {
    const line = 'y'.repeat(1 << 20);
    for (;;) ctx.log.info(line);
  }
}`],
  attack_poison: [`backend: "typescript"\nmax_batch_size: 8${INT_IO}${SCRIPT_PARAMS(2_000, 64)}
model_transaction_policy { decoupled: true }`, `
export default class {
  async execute(requests: any[]) {
    (Array.prototype as any).map = function () { throw new Error('poisoned'); };
    (Array.prototype as any).forEach = function () { for (;;) {} };
    (Promise.prototype as any).then = function () { return this; };
    for (let i = 0; i < requests.length; i++) requests[i].send({ outputs: { Y: { datatype: 'INT32', shape: [1, 16], data: new Int32Array(16) } } }, { final: true });
  }
}`],
  attack_infer_flood: [`backend: "typescript"\nmax_batch_size: 8${INT_IO}${SCRIPT_PARAMS(3_000, 128)}`, `
export default class {
  async execute(requests: any[], ctx: any) {
    const x = { datatype: 'INT32', shape: [1, 16], data: new Int32Array(16) };
    for (let i = 0; i < 20000; i++) ctx.infer({ model: 'add_sub', inputs: { INPUT0: x, INPUT1: x } }).catch(() => {});
    return ${echo('requests')};
  }
}`],
  attack_recursive: [`backend: "typescript"\nmax_batch_size: 0
input [ { name: "X" data_type: TYPE_INT32 dims: [ 1, 16 ] } ]
output [ { name: "Y" data_type: TYPE_INT32 dims: [ 1, 16 ] } ]
instance_group [ { count: 2, kind: KIND_CPU } ]${SCRIPT_PARAMS(10_000, 64)}`, `
export default class {
  async execute(requests: any[], ctx: any) {
    const out = [];
    for (const r of requests) {
      const x = r.inputs.X;
      const depth = x.data[0];
      if (depth <= 0) { out.push({ outputs: { Y: x } }); continue; }
      const next = Int32Array.from(x.data);
      next[0] = depth - 1;
      const answer = await ctx.infer({ model: 'attack_recursive', inputs: { X: { datatype: 'INT32', shape: x.shape, data: next } } });
      out.push({ outputs: { Y: answer.outputs.Y } });
    }
    return out;
  }
}`],
  attack_stream: [`backend: "typescript"\nmax_batch_size: 0
input [ { name: "X" data_type: TYPE_INT32 dims: [ 1, 16 ] } ]
output [ { name: "Y" data_type: TYPE_UINT8 dims: [ -1 ] } ]
model_transaction_policy { decoupled: true }${SCRIPT_PARAMS(20_000, 64)}`, `
export default class {
  async execute(requests: any[]) {
    const chunk = new Uint8Array(64 * 1024);
    for (const r of requests) {
      for (let i = 0; i < 5000; i++) if (!(await r.send({ outputs: { Y: { datatype: 'UINT8', shape: [chunk.length], data: chunk } } }))) break;
    }
  }
}`],
  // The folder the hostile load requests name, so that their configs reach the loader (a failed reload keeps this one serving).
  attack_target: [`backend: "typescript"\nmax_batch_size: 8${INT_IO}${SCRIPT_PARAMS(5_000, 64)}`, `
export default class {
  async execute(requests: any[]) {
    return ${echo('requests')};
  }
}`],
  attack_traversal: [`backend: "typescript"\nmax_batch_size: 8${INT_IO}${SCRIPT_PARAMS(5_000, 64)}`, `
export default class {
  async execute(requests: any[], ctx: any) {
    await ctx.infer({ model: '../add_sub', inputs: {} });
    return [];
  }
}`],
};

export async function writeAttackModels(root: string): Promise<void> {
  for (const [name, [config, source]] of Object.entries(ATTACK_MODELS)) {
    await mkdir(join(root, name, '1'), { recursive: true });
    await writeFile(join(root, name, 'config.pbtxt'), `name: "${name}"\n${config}\n`);
    await writeFile(join(root, name, '1', 'model.ts'), source);
  }
}

/** After hostile load requests: the model they named still serves its old version. */
async function targetServes(t: AttackTarget): Promise<string | undefined> {
  const x = Array.from({ length: 16 }, (_, i) => i - 8);
  const answer = await http(t, 'POST', '/v2/models/attack_target/infer', inferBody('X', 'INT32', [1, 16], x));
  if (answer.status !== 200) return `attack_target after the hostile loads: HTTP ${answer.status}: ${answer.body.toString('utf8').slice(0, 200)}`;
  const y = (JSON.parse(answer.body.toString('utf8')) as { outputs: { data: number[] }[] }).outputs[0]!.data;
  return y.every((v, i) => v === x[i]) ? undefined : `attack_target after the hostile loads: wrong answer ${json(y.slice(0, 4))}`;
}

const loadBody = (config: object, files: Record<string, string> = {}): string =>
  json({ parameters: { config: json(config), ...files } });

const TYPESCRIPT_CONFIG = {
  backend: 'typescript', max_batch_size: 0,
  input: [{ name: 'X', data_type: 'TYPE_INT32', dims: [1, 16] }], output: [{ name: 'Y', data_type: 'TYPE_INT32', dims: [1, 16] }],
};

export const ATTACKS: readonly Attack[] = [
  { klass: 0, name: 'binary request to a script calling ctx.infer, twice on one connection', run: async (t, n) => {
    for (let round = 0; round < 2; round++) {
      const x = Int32Array.from({ length: 16 }, (_, i) => n + i);
      const { body, headers } = binaryBody({
        inputs: [{ name: 'X', datatype: 'INT32', shape: [1, 16], parameters: { binary_data_size: 64 } }],
        outputs: [{ name: 'Y', parameters: { binary_data: false } }],
      }, Buffer.from(x.buffer));
      const answer = await http(t, 'POST', '/v2/models/attack_bls/infer', body, headers);
      if (answer.status !== 200) return `attack_bls: HTTP ${answer.status}: ${answer.body.toString('utf8').slice(0, 200)}`;
      const y = (JSON.parse(answer.body.toString('utf8')) as { outputs: { data: number[] }[] }).outputs[0]!.data;
      if (!y.every((v, i) => v === 2 * x[i]!)) return `attack_bls: wrong answer ${json(y.slice(0, 4))}`;
    }
    return undefined;
  } },
  { klass: 1, name: 'HTTP binary BYTES [1, 4M] of empty elements', run: async (t) => {
    const count = 4 << 20;
    const { body, headers } = binaryBody({
      inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [1, count], parameters: { binary_data_size: count * 4 } }],
    }, Buffer.alloc(count * 4));
    return refused(await http(t, 'POST', '/v2/models/add_sub/infer', body, headers, false), 'BYTES flood');
  } },
  { klass: 1, name: 'gRPC bytes_contents of 1M empty elements', run: async (t) =>
    grpcBounded(await grpcCall(t, 'ModelInfer', bytesFloodMessage(1 << 20)), 'gRPC BYTES flood') },
  { klass: 1, name: 'gRPC packed int_contents of 32M values', run: async (t) =>
    grpcBounded(await grpcCall(t, 'ModelInfer', intFloodMessage(32 << 20)), 'gRPC int_contents flood') },
  { klass: 1, name: 'an HTTP JSON body of 8M numbers', run: async (t) => {
    const count = 8 << 20;
    const body = `{"inputs":[{"name":"INPUT0","datatype":"INT32","shape":[1,${count}],"data":[${'0,'.repeat(count - 1)}0]}]}`;
    return refused(await http(t, 'POST', '/v2/models/add_sub/infer', body, { 'content-type': 'application/json' }, false), 'JSON flood');
  } },
  { klass: 2, name: 'a 1 MiB string returned 1,536 times', run: (t) => scriptCall('attack_copy_bomb')(t) },
  { klass: 3, name: 'a 1 GiB WebAssembly.Memory', run: (t) => scriptCall('attack_wasm')(t) },
  { klass: 4, name: 'an endless ctx.log of 1 MiB lines', run: (t) => scriptCall('attack_log_flood')(t) },
  { klass: 5, name: 'a decoupled script poisoning Array and Promise intrinsics', run: async (t) =>
    bounded(await http(t, 'POST', '/v2/models/attack_poison/generate', json({ X: new Array(16).fill(1) })), 'attack_poison') },
  { klass: 6, name: '20,000 un-awaited ctx.infer calls', run: (t) => scriptCall('attack_infer_flood')(t) },
  { klass: 7, name: '4 concurrent self-recursive calls on a 2-instance script', run: async (t, n) => {
    const calls = Array.from({ length: 4 }, () =>
      http(t, 'POST', '/v2/models/attack_recursive/infer', inferBody('X', 'INT32', [1, 16], [2, ...new Array(15).fill(n % 1000)]), {}, false));
    for (const answer of await Promise.all(calls)) {
      const problem = bounded(answer, 'attack_recursive');
      if (problem) return problem;
    }
    return undefined;
  } },
  { klass: 8, name: 'load overrides naming /etc/passwd as a model file, a warm-up file and a file override', run: async (t) => {
    const overrides = [
      loadBody({ ...TYPESCRIPT_CONFIG, default_model_filename: '../../../../../../etc/passwd' }),
      loadBody({ ...TYPESCRIPT_CONFIG, model_warmup: [{
        name: 'w', batch_size: 1, inputs: { X: { data_type: 'TYPE_INT32', dims: [1, 16], input_data_file: '/etc/passwd' } },
      }] }),
      loadBody(TYPESCRIPT_CONFIG, { 'file:../../escape/1/model.ts': Buffer.from('export default class {}').toString('base64') }),
    ];
    for (const body of overrides) {
      const answer = await http(t, 'POST', '/v2/repository/models/attack_target/load', body, { 'content-type': 'application/json' });
      if (answer.body.includes('root:')) return 'a load error echoed /etc/passwd';
      const problem = refused(answer, 'path escape');
      if (problem) return problem;
      // Refused for the path itself, not for something else in the config.
      if (!/absolute path|leaves the folder/.test(answer.body.toString('utf8'))) return `path escape refused for another reason: ${answer.body.toString('utf8').slice(0, 300)}`;
    }
    return targetServes(t);
  } },
  { klass: 9, name: 'a 300 KB model name over gRPC, then a call on the same channel', run: async (t) => {
    const name = Buffer.alloc(300 * 1024, 'm');
    const problem = grpcBounded(await grpcCall(t, 'ModelReady', field(1, name)), 'long name');
    if (problem) return problem;
    const live = await grpcCall(t, 'ServerLive', Buffer.alloc(0));
    return live.code === 0 ? undefined : `ServerLive after a long name: code ${live.code} ${live.details.slice(0, 200)}`;
  } },
  { klass: 9, name: 'a 300 KB input name over HTTP', run: async (t) =>
    refused(await http(t, 'POST', '/v2/models/add_sub/infer', inferBody('I'.repeat(300 * 1024), 'INT32', [1, 16], new Array(16).fill(0))), 'long input name') },
  { klass: 10, name: 'an upload declaring 64 MB that stalls after 1 MB', run: async (t) => {
    const head = 'POST /v2/models/add_sub/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 67108864\r\n\r\n';
    const outcome = await holdSocket(t, head, Buffer.alloc(1 << 20, 0x20), 20_000, false);
    return outcome === 'closed' ? undefined : 'a stalled upload was held for 20 s';
  } },
  { klass: 10, name: '200 idle connections', run: async (t) => {
    await Promise.all(Array.from({ length: 200 }, () => holdSocket(t, '', undefined, 2_000, false)));
    return undefined;
  } },
  { klass: 11, name: 'a stream of 5,000 responses of 64 KiB that nobody reads', run: async (t) => {
    const body = json({ X: new Array(16).fill(1) });
    const head = `POST /v2/models/attack_stream/generate_stream HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
    await holdSocket(t, head, undefined, 3_000, true);
    return undefined;
  } },
  { klass: 12, name: 'load overrides with max_batch_size "abc", null and 1e10', run: async (t) => {
    for (const bad of ['abc', null, 1e10]) {
      const answer = await http(t, 'POST', '/v2/repository/models/attack_target/load', loadBody({ ...TYPESCRIPT_CONFIG, max_batch_size: bad }),
        { 'content-type': 'application/json' });
      const problem = refused(answer, `max_batch_size ${json(bad)}`);
      if (problem) return problem;
    }
    return targetServes(t);
  } },
  { klass: 13, name: 'a forged exact-integer parameter, an unknown route, ctx.infer to ../add_sub', run: async (t) => {
    const forged = await http(t, 'POST', '/v2/models/add_sub/infer',
      inferBody('INPUT0', 'INT64', [1, 16], new Array(16).fill('\u0000switchyard-bigint:99999999999999999999'), { sequence_id: '\u0000switchyard-bigint:18446744073709551615', note: '\u0000switchyard-bigint:1' }));
    const problem = bounded(forged, 'forged marker');
    if (problem) return problem;
    const route = await http(t, 'GET', '/v2/no/such/route');
    if (route.status !== 404) return `unknown route: HTTP ${route.status}`;
    return bounded(route, 'unknown route') ?? bounded(await http(t, 'POST', '/v2/models/attack_traversal/infer',
      inferBody('X', 'INT32', [1, 16], new Array(16).fill(1))), 'ctx.infer traversal');
  } },
];

export function attackTarget(httpPort: number, grpcPort: number): AttackTarget & { close(): void } {
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const client = new grpc.Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': 64 << 20, 'grpc.max_receive_message_length': 64 << 20,
  });
  return { httpPort, grpcPort, agent, grpc: client, close: () => { agent.destroy(); client.close(); } };
}
