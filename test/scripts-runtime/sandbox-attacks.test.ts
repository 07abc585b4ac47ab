/**
 * Hostile scripts against the sandbox's limits (issue 15, classes 2 to 5),
 * each through a real engine and real isolates:
 *   2. values that balloon when copied out of the isolate (one 1 MiB string
 *      referenced 1,536 times) in execute()'s answer, a ctx.infer request, a
 *      decoupled send() and a thrown error: refused before the host copies,
 *      naming max_transfer_mb;
 *   3. WebAssembly is gone unless a model allows it; ArrayBuffers count
 *      against memory_limit_mb;
 *   4. ctx.log floods: lines cut, lines per execute() capped, and a script
 *      that logs forever still meets its time limit;
 *   5. scripts that replace built-ins the bootstrap would use, plain and
 *      decoupled: every request answers or fails within its time limit, and
 *      the model keeps serving.
 * Each shows the clear error, bounded host memory (RSS measured around the
 * attack), and the next ordinary request answered.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ParameterValue } from '../../engine/inference-request.ts';
import type { StreamedResponse } from '../../engine/inference-response.ts';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import { addSubModel } from '../../generator/models.ts';
import { DECOUPLED_POLICY } from '../helpers/decoupled-fixtures.ts';
import { addSubConfig } from '../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine } from '../helpers/fixture-repository.ts';
import {
  bytesTensor, capturingLogger, int32x16, outputNamed, rejection, scriptConfig, stringsOf, within, writeScripts, type CapturingLogger,
} from '../helpers/script-fixtures.ts';
import { pollFor } from '../helpers/wait.ts';

const MEMORY_MB = 64;
const TIMEOUT_MS = 1500;
/** Host memory an attack may add; each one unbounded costs 1.5 GB or more. */
const RSS_BOUND = 400 * 1024 * 1024;
const MIB = 1 << 20;

/** Builds a 1 MiB string and hands out 1,536 references to it (1.5 GiB if copied per reference). */
const REPEAT = `
const big = 'x'.repeat(${MIB});
const repeated = (): string[] => { const list: string[] = []; for (let i = 0; i < 1536; i++) list.push(big); return list; };
`;

const TRANSFER_SCRIPT = `${REPEAT}
export default class {
  async execute(requests: any[], ctx: any) {
    const mode = requests[0].parameters.mode;
    if (mode === 'result') return [{ outputs: { REPORT: { datatype: 'BYTES', shape: [1, 1536], data: repeated() } } }];
    if (mode === 'infer') await ctx.infer({ model: 'add_sub', inputs: { INPUT0: { datatype: 'BYTES', shape: [1536], data: repeated() } } });
    if (mode === 'error') throw { message: 'with a payload', code: 'MINE', payload: repeated() };
    if (mode === 'long_message') throw new Error(big.repeat(8));
    if (mode === 'cycle') { const a: any = { outputs: {} }; a.outputs.REPORT = a; return [a]; }
    if (mode === 'sparse') { const data: string[] = []; data.length = 2 ** 31; return [{ outputs: { REPORT: { datatype: 'BYTES', shape: [1, 1], data } } }]; }
    if (mode === 'views') {
      const buffer = new ArrayBuffer(${8 * MIB});
      const data: Uint8Array[] = [];
      for (let i = 0; i < 64; i++) data.push(new Uint8Array(buffer, i, 1));
      return [{ outputs: { REPORT: { datatype: 'BYTES', shape: [1, 64], data } } }];
    }
    if (mode === 'array_buffer') new ArrayBuffer(1024 * ${MIB});
    return [{ outputs: { REPORT: { datatype: 'BYTES', shape: [1, 1], data: ['fine ' + typeof (globalThis as any).WebAssembly] } } }];
  }
}
`;

const TRANSFER_STREAM_SCRIPT = `${REPEAT}
export default class {
  async execute(requests: any[]) {
    const r = requests[0];
    if (r.parameters.mode === 'send') r.send({ outputs: { text_output: { shape: [1536], data: repeated() } } });
    r.send({ outputs: { text_output: { shape: [1], data: ['fine'] } } });
  }
}
`;

const LOG_SCRIPT = `
const line = 'y'.repeat(${MIB});
export default class {
  async execute(requests: any[], ctx: any) {
    const mode = requests[0].parameters.mode;
    if (mode === 'flood') for (let i = 0; i < 3000; i++) ctx.log.info(line);
    if (mode === 'forever') for (;;) ctx.log.info(line);
    if (mode === 'objects') ctx.log.info(line, { big: line }, line);
    return [{ outputs: { REPORT: { datatype: 'BYTES', shape: [1, 1], data: ['fine'] } } }];
  }
}
`;

/**
 * Replaces one built-in by mode (for good: the isolate keeps it), then answers without using any of them.
 * Throwing replacements break whoever calls them; 'then' replacements that never call back would hang whoever awaits.
 */
const POISONS = `
const never = function () { return undefined; };
const boom = function () { throw new Error('poisoned'); };
const poison = (mode: string): void => {
  const g: any = globalThis;
  if (mode === 'array_map') g.Array.prototype.map = boom;
  if (mode === 'array_for_each') g.Array.prototype.forEach = boom;
  if (mode === 'array_push') g.Array.prototype.push = boom;
  if (mode === 'array_iterator') g.Array.prototype[Symbol.iterator] = boom;
  if (mode === 'object_freeze') g.Object.freeze = boom;
  if (mode === 'object_keys') g.Object.keys = boom;
  if (mode === 'define_property') { g.Object.defineProperty = boom; g.Reflect.defineProperty = boom; }
  if (mode === 'promise_then') g.Promise.prototype.then = never;
  if (mode === 'promise_constructor') Object.defineProperty(g.Promise.prototype, 'constructor', { get: boom, configurable: true });
  if (mode === 'object_then') g.Object.prototype.then = never;
  if (mode === 'object_setters') for (const key of ['ok', 'value', 'message', 'code', 'send', 'result', 'arguments', 'copy', 'promise', '0']) {
    Object.defineProperty(g.Object.prototype, key, { get: boom, set: boom, configurable: true });
  }
  if (mode === 'json_stringify') g.JSON.stringify = boom;
  if (mode === 'map_get_set') { g.Map.prototype.get = boom; g.Map.prototype.set = boom; }
  if (mode === 'function_apply_call') { g.Function.prototype.apply = boom; g.Function.prototype.call = boom; g.Function.prototype.bind = boom; }
  if (mode === 'string_slice') g.String.prototype.slice = boom;
  if (mode === 'error') g.Error = boom;
};
`;
const MODES = [
  'array_map', 'array_for_each', 'array_push', 'array_iterator', 'object_freeze', 'object_keys', 'define_property', 'promise_then',
  'promise_constructor', 'object_then', 'object_setters', 'json_stringify', 'map_get_set', 'function_apply_call', 'string_slice', 'error',
];

const POISON_SCRIPT = `${POISONS}
export default class {
  async execute(requests: any[], ctx: any) {
    poison(requests[0].parameters.mode);
    ctx.log.info('poisoned', { with: requests[0].parameters.mode });
    // A literal: an assignment would meet the setters the script put on Object.prototype.
    return [{ outputs: { REPORT: { datatype: 'BYTES', shape: [1, 1], data: ['fine'] } } }];
  }
}
`;

const POISON_STREAM_SCRIPT = `${POISONS}
export default class {
  async execute(requests: any[], ctx: any) {
    poison(requests[0].parameters.mode);
    ctx.log.info('poisoned', { with: requests[0].parameters.mode });
    requests[0].send({ outputs: { text_output: { shape: [1], data: ['one'] } } });
    requests[0].send({ outputs: { text_output: { shape: [1], data: ['two'] } } }, { final: true });
  }
}
`;

const REPORT: [string, string, number[]][] = [['REPORT', 'TYPE_STRING', [-1]]];
const TEXT = { maxBatchSize: 0, inputs: [['text_input', 'TYPE_STRING', [1]]], outputs: [['text_output', 'TYPE_STRING', [-1]]], extra: DECOUPLED_POLICY } as const;

let root: string;
let engine: InferenceEngine;
let logger: CapturingLogger;

before(async () => {
  const limits = { memoryLimitMb: MEMORY_MB, executeTimeoutMs: TIMEOUT_MS };
  root = await makeRepository({
    transfer: { config: scriptConfig({ outputs: REPORT, ...limits }), versions: {} },
    wasm_allowed: { config: scriptConfig({ outputs: REPORT, ...limits, parameters: { allow_webassembly: 'true' } }), versions: {} },
    transfer_stream: { config: scriptConfig({ ...TEXT, ...limits }), versions: {} },
    logs: { config: scriptConfig({ outputs: REPORT, ...limits }), versions: {} },
    poison: { config: scriptConfig({ outputs: REPORT, ...limits }), versions: {} },
    poison_stream: { config: scriptConfig({ ...TEXT, ...limits }), versions: {} },
    add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } },
  });
  await writeScripts(root, {
    transfer: { 1: TRANSFER_SCRIPT }, wasm_allowed: { 1: TRANSFER_SCRIPT }, transfer_stream: { 1: TRANSFER_STREAM_SCRIPT },
    logs: { 1: LOG_SCRIPT }, poison: { 1: POISON_SCRIPT }, poison_stream: { 1: POISON_STREAM_SCRIPT },
  });
  logger = capturingLogger();
  engine = await startEngine(root, { logger });
  assert.deepEqual(engine.loadFailures(), []);
});
after(async () => {
  await engine?.close();
  await removeRepository(root);
});

const ask = (model: string, mode?: string): Promise<string[]> => within(TIMEOUT_MS + 10_000, `${model} ${mode}`, engine.infer({
  modelName: model, inputs: [int32x16()], ...(mode ? { parameters: { mode } } : {}),
})).then((r) => stringsOf(outputNamed(r.outputs, 'REPORT')));

async function stream(model: string, parameters: Record<string, ParameterValue>): Promise<string[]> {
  const items: StreamedResponse[] = [];
  const responses = await engine.inferStream({ modelName: model, inputs: [bytesTensor('text_input', [1], ['x'])], parameters });
  await within(TIMEOUT_MS + 10_000, `${model} stream`, (async () => { for await (const item of responses) items.push(item); })());
  return items.map((i) => (i.response ? stringsOf(i.response.outputs[0]).join() : i.error ? `error: ${i.error.message}` : 'final'));
}

/** Runs the attack and checks that host memory grew by less than RSS_BOUND meanwhile. */
async function bounded<T>(attack: () => Promise<T>): Promise<T> {
  const before = process.memoryUsage().rss;
  const result = await attack();
  const grown = process.memoryUsage().rss - before;
  assert.ok(grown < RSS_BOUND, `RSS grew by ${Math.round(grown / MIB)} MiB (bound ${RSS_BOUND / MIB} MiB)`);
  return result;
}

describe('class 2: values copied out of the isolate are bounded by max_transfer_mb', () => {
  const cases: readonly (readonly [string, RegExp])[] = [
    ['result', /execute\(\)'s answer holds more than the transfer limit of 64 MB \(parameters\.max_transfer_mb\)/],
    ['infer', /the ctx\.infer request holds more than the transfer limit of 64 MB \(parameters\.max_transfer_mb\)/],
    ['cycle', /nested deeper than 64 levels at \[0\]\.outputs\.REPORT\.outputs\.REPORT/],
    ['sparse', /transfer limit of 64 MB/],
    // 64 one-byte views of one 8 MiB buffer: the host would copy the buffer with each, so each counts in full.
    ['views', /transfer limit of 64 MB/],
  ];
  for (const [mode, expected] of cases) {
    test(`${mode}: refused before the host copies, naming the limit`, async () => {
      const err = await bounded(() => rejection(ask('transfer', mode)));
      assert.equal(err.code, 'INFERENCE_FAILED');
      assert.match(err.message, expected);
      assert.ok(err.message.length < 1000, `message of ${err.message.length} characters`);
      assert.deepEqual(await ask('transfer'), ['fine undefined'], 'the next request is answered');
    });
  }

  test('a thrown object crosses as its message and code only, never its payload', async () => {
    const err = await bounded(() => rejection(ask('transfer', 'error')));
    assert.equal(err.message, "inference failed in model 'transfer': execute() threw: with a payload");
  });

  test('a thrown message of 8 MiB is cut to 4096 characters at the boundary, then to the catalogue\'s bound', async () => {
    const err = await bounded(() => rejection(ask('transfer', 'long_message')));
    // The isolate sends 4096 characters plus its cut mark (4146 in all); the error catalogue then quotes at most 2048 of them.
    assert.match(err.message, /execute\(\) threw: x{1000,}… \(4146 characters, cut to 2048\)$/);
    assert.ok(err.message.length < 4300);
  });

  test('a decoupled send() of the same is refused: send() throws, naming the limit', async () => {
    const items = await bounded(() => stream('transfer_stream', { mode: 'send' }));
    assert.equal(items.length, 1);
    assert.match(items[0]!, /^error: .*execute\(\) threw: send\(\): the response cannot leave the isolate \(the response holds more than the transfer limit of 64 MB \(parameters\.max_transfer_mb\)/);
    assert.deepEqual(await stream('transfer_stream', {}), ['fine', 'final']);
  });
});

describe('class 3: WebAssembly and ArrayBuffers', () => {
  test('WebAssembly is not there unless the config sets allow_webassembly', async () => {
    assert.deepEqual(await ask('transfer'), ['fine undefined']);
    assert.deepEqual(await ask('wasm_allowed'), ['fine object']);
  });

  test('a 1 GiB ArrayBuffer under a 64 MB limit is refused, naming memory_limit_mb', async () => {
    const err = await bounded(() => rejection(ask('transfer', 'array_buffer')));
    assert.match(err.message, /Array buffer allocation failed.*parameters\.memory_limit_mb is 64/);
    assert.deepEqual(await ask('transfer'), ['fine undefined']);
  });
});

describe('class 4: ctx.log is bounded per line and per execute(), and the time limit holds', () => {
  test('3,000 lines of 1 MiB: 1,000 lines of at most 4,096 characters, then one line counting the rest', async () => {
    const before = logger.lines.length;
    assert.deepEqual(await bounded(() => ask('logs', 'flood')), ['fine']);
    const lines = await pollFor('the dropped-lines line', 10_000, () => {
      const got = logger.lines.slice(before);
      return got.some((l) => l.includes('dropped')) && got;
    }, () => logger.lines.slice(before).join('\n'));
    const written = lines.filter((l) => l.includes('yyyy'));
    assert.equal(written.length, 1000);
    for (const line of written) assert.ok(line.length < 4096 + 200, `a line of ${line.length} characters`);
    assert.match(written[0]!, /y{4096}\.\.\. \[cut: ctx\.log keeps 4096 characters of a line \(parameters\.log_line_max_chars\)\]$/);
    assert.ok(lines.some((l) => /^warn .*2000 more log line\(s\) dropped: ctx\.log keeps at most 1000 lines per execute\(\) \(parameters\.log_lines_per_execute\)/.test(l)));
  });

  test('values logged with a line are cut too', async () => {
    const before = logger.lines.length;
    assert.deepEqual(await ask('logs', 'objects'), ['fine']);
    const line = logger.lines.slice(before).find((l) => l.includes('yyyy'));
    assert.ok(line && line.length < 4096 + 200);
  });

  test('logging forever meets the time limit', async () => {
    const started = performance.now();
    const err = await bounded(() => rejection(ask('logs', 'forever')));
    assert.match(err.message, /time limit of 1500 ms in execute\(\) \(parameters\.execute_timeout_ms\)/);
    assert.ok(performance.now() - started < TIMEOUT_MS + 8000);
    assert.deepEqual(await ask('logs'), ['fine']);
  });
});

describe('class 5: built-ins replaced by the script do not reach the bootstrap', () => {
  for (const mode of MODES) {
    test(`${mode}: plain and decoupled models answer or fail within the time limit, then keep serving`, async () => {
      const outcome = await ask('poison', mode).then((r) => r.join(), (err: Error) => err.message);
      assert.ok(outcome === 'fine' || /time limit of 1500 ms/.test(outcome) || /execute\(\) threw/.test(outcome), outcome);
      assert.deepEqual(await ask('poison', 'none'), ['fine'], 'the model keeps serving');
      const items = await stream('poison_stream', { mode });
      assert.ok(items.join() === 'one,two' || /time limit of 1500 ms|execute\(\) threw/.test(items.join()), items.join());
      assert.deepEqual(await stream('poison_stream', { mode: 'none' }), ['one', 'two'], 'the decoupled model keeps serving');
    });
  }
});
