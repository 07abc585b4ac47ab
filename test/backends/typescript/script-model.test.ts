/**
 * TypeScript models through the engine: every datatype in and out of the
 * isolate with the documented typed arrays, the initialize / execute /
 * finalize lifecycle per instance, load failures with their reasons, the
 * checks on what execute() returns, dynamic batching, and one isolate per
 * instance.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { InferenceRequest, ParameterValue } from '../../../engine/inference-request.ts';
import type { InferenceResponse } from '../../../engine/inference-response.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { DATA_TYPES, type DataType, type Tensor } from '../../../engine/tensor.ts';
import { addSubModel } from '../../../generator/models.ts';
import { compiledScriptCount } from '../../../scripts-runtime/compile.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import {
  bytesTensor, capturingLogger, CONFIG_TYPE, ECHO_SCRIPT, fixedTensor, int32x16, outputNamed, rejection, scriptConfig,
  stringsOf, valuesOf, within, writeScripts, type IoSpec,
} from '../../helpers/script-fixtures.ts';

const request = (modelName: string, parameters?: Record<string, ParameterValue>, extra: Partial<InferenceRequest> = {}): InferenceRequest =>
  ({ modelName, inputs: [int32x16()], ...(parameters ? { parameters } : {}), ...extra });

describe('every datatype round-trips through a script', () => {
  const values: Readonly<Record<Exclude<DataType, 'BYTES'>, ArrayBufferView>> = {
    BOOL: Uint8Array.of(1, 0, 1),
    UINT8: Uint8Array.of(0, 255, 7),
    UINT16: Uint16Array.of(0, 65535, 1234),
    UINT32: Uint32Array.of(0, 4294967295, 7),
    UINT64: BigUint64Array.of(0n, 2n ** 64n - 1n, 2n ** 53n + 1n),
    INT8: Int8Array.of(-128, 127, 0),
    INT16: Int16Array.of(-32768, 32767, -1),
    INT32: Int32Array.of(-(2 ** 31), 2 ** 31 - 1, -5),
    INT64: BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n, -(2n ** 53n + 1n)),
    // Raw half-precision bits: 1.0, a NaN with a payload, -0.
    FP16: Uint16Array.of(0x3c00, 0x7e01, 0x8000),
    // Raw bfloat16 bits: 1.0, a negative NaN with a payload, the smallest subnormal.
    BF16: Uint16Array.of(0x3f80, 0xff81, 0x0001),
    FP32: Float32Array.of(-0, Number.NaN, 1e-45),
    FP64: Float64Array.of(Number.MIN_VALUE, Number.NEGATIVE_INFINITY, Math.PI),
  };
  const strings = ['héllo wörld', '日本語 🎉', ''];
  const classes: Readonly<Record<DataType, string>> = {
    BOOL: 'Uint8Array', UINT8: 'Uint8Array', UINT16: 'Uint16Array', UINT32: 'Uint32Array', UINT64: 'BigUint64Array',
    INT8: 'Int8Array', INT16: 'Int16Array', INT32: 'Int32Array', INT64: 'BigInt64Array',
    FP16: 'Uint16Array', BF16: 'Uint16Array', FP32: 'Float32Array', FP64: 'Float64Array', BYTES: 'Array',
  };
  const inputs: IoSpec[] = DATA_TYPES.map((dt) => [dt, CONFIG_TYPE[dt], [3]]);
  const outputs: IoSpec[] = DATA_TYPES.flatMap((dt): IoSpec[] => [[`${dt}_OUT`, CONFIG_TYPE[dt], [3]], [`${dt}_CLASS`, 'TYPE_STRING', [1]]]);
  let root: string;
  let engine: InferenceEngine;

  before(async () => {
    root = await makeRepository({ echo: { config: scriptConfig({ inputs, outputs }), versions: {} } });
    await writeScripts(root, { echo: { 1: ECHO_SCRIPT } });
    engine = await startEngine(root);
  });
  after(async () => {
    await engine?.close();
    await removeRepository(root);
  });

  const tensors = (batch: number): Tensor[] => DATA_TYPES.map((dt) => {
    if (dt === 'BYTES') return bytesTensor(dt, [batch, 3], Array.from({ length: batch }, () => strings).flat());
    const one = new Uint8Array(values[dt].buffer, values[dt].byteOffset, values[dt].byteLength);
    const raw = new Uint8Array(one.byteLength * batch);
    for (let b = 0; b < batch; b++) raw.set(one, b * one.byteLength);
    return { name: dt, datatype: dt, shape: [batch, 3], raw };
  });

  for (const batch of [1, 2]) {
    test(`batch ${batch}: bytes come back exactly, and the script saw the documented typed array`, async () => {
      const sent = tensors(batch);
      const response = await engine.infer({ modelName: 'echo', inputs: sent });
      for (const input of sent) {
        const echoed = outputNamed(response.outputs, `${input.name}_OUT`);
        assert.equal(echoed.datatype, input.datatype, input.name);
        assert.deepEqual(echoed.shape, [batch, 3], input.name);
        if (input.datatype === 'BYTES') {
          assert.deepEqual(stringsOf(echoed), stringsOf(input));
        } else {
          assert.ok(echoed.datatype !== 'BYTES');
          assert.deepEqual(Buffer.from(echoed.raw), Buffer.from(input.raw), `${input.name} raw bytes`);
        }
        assert.deepEqual(stringsOf(outputNamed(response.outputs, `${input.name}_CLASS`)), Array(batch).fill(classes[input.datatype]), input.name);
      }
    });
  }

  test('a script may answer with plain arrays: numbers, bigints and booleans become the declared type', async () => {
    const root2 = await makeRepository({
      plain: {
        config: scriptConfig({
          maxBatchSize: 0,
          inputs: [['X', 'TYPE_INT32', [1]]],
          outputs: [['B', 'TYPE_BOOL', [2]], ['I64', 'TYPE_INT64', [2]], ['F16', 'TYPE_FP16', [1]], ['S', 'TYPE_STRING', [2]], ['F', 'TYPE_FP32', [2]]],
        }),
        versions: {},
      },
    });
    await writeScripts(root2, {
      plain: {
        1: `export default class { async execute(requests: any[]) { return requests.map(() => ({ outputs: {
          B: { datatype: 'BOOL', shape: [2], data: [true, false] },
          I64: { shape: [2], data: [9007199254740993n, -1] },
          F16: { datatype: 'FP16', shape: [1], data: new Uint16Array([0x3c00]) },
          S: { datatype: 'BYTES', shape: [2], data: ['ä', new Uint8Array([0x68, 0x69])] },
          F: { shape: [2], data: [0.5, 2] },
        } })); } }`,
      },
    });
    const engine = await startEngine(root2);
    try {
      const response = await engine.infer({ modelName: 'plain', inputs: [fixedTensor('X', 'INT32', [1], Int32Array.of(1))] });
      assert.deepEqual(valuesOf(outputNamed(response.outputs, 'B')), [1, 0]);
      const i64 = outputNamed(response.outputs, 'I64');
      assert.ok(i64.datatype === 'INT64');
      assert.deepEqual([...new BigInt64Array(i64.raw.slice().buffer)], [9007199254740993n, -1n]);
      assert.deepEqual(valuesOf(outputNamed(response.outputs, 'F16')), [0x3c00]);
      assert.deepEqual(stringsOf(outputNamed(response.outputs, 'S')), ['ä', 'hi']);
      assert.deepEqual(valuesOf(outputNamed(response.outputs, 'F')), [0.5, 2]);
    } finally {
      await engine.close();
      await removeRepository(root2);
    }
  });
});

/** Reports which instance ran it and what that isolate's globals say; optionally waits at a gate that opens for two callers. */
const LIFECYCLE_SCRIPT = `
let initializeCalls = 0;
export default class Lifecycle {
  private ctx: any;
  private who = '';
  async initialize(ctx: any) {
    initializeCalls++;
    (globalThis as any).owner = ctx.instance;
    this.ctx = ctx;
    this.who = ctx.instance;
    ctx.log.info('initialize', { name: ctx.name, version: ctx.version, instance: ctx.instance, configName: ctx.config.name,
      backend: ctx.config.backend, maxBatchSize: ctx.config.max_batch_size, initializeCalls });
  }
  async execute(requests: any[], ctx: any) {
    if (requests.some((r) => r.parameters.gate)) {
      const x = { datatype: 'INT32', shape: [1, 16], data: new Int32Array(16) };
      await ctx.infer({ model: 'gate', inputs: { INPUT0: x, INPUT1: x } });
    }
    const report = JSON.stringify({ instance: ctx.instance, owner: (globalThis as any).owner, self: this.who, initializeCalls, same: ctx === this.ctx });
    return requests.map(() => ({ outputs: { WHO: { datatype: 'BYTES', shape: [1, 1], data: [report] } } }));
  }
  async finalize() {
    this.ctx.log.info('finalize', this.who);
  }
}
`;

interface Report { instance: string; owner: string; self: string; initializeCalls: number; same: boolean }

describe('lifecycle: initialize once per instance, one isolate each, finalize at unload and close', () => {
  let root: string;
  const lifecycleConfig = scriptConfig({ outputs: [['WHO', 'TYPE_STRING', [1]]], extra: 'instance_group [ { count: 2 kind: KIND_CPU } ]' });
  // The gate fires only once two requests wait in its queue (or after 3 s).
  const gateConfig = addSubConfig('gate', 'dynamic_batching { preferred_batch_size: [ 2 ] max_queue_delay_microseconds: 3000000 }');

  before(async () => {
    root = await makeRepository({
      lifecycle: { config: lifecycleConfig, versions: {} },
      gate: { config: gateConfig, versions: { 1: addSubModel() } },
    });
    await writeScripts(root, { lifecycle: { 3: LIFECYCLE_SCRIPT } });
  });
  after(() => removeRepository(root));

  const report = async (engine: InferenceEngine, parameters?: Record<string, ParameterValue>): Promise<Report> =>
    JSON.parse(stringsOf(outputNamed((await engine.infer(request('lifecycle', parameters))).outputs, 'WHO'))[0]!) as Report;

  test('initialize gets ctx.config, name, version and instance, once per instance; finalize runs at close', async () => {
    const logger = capturingLogger();
    const engine = await startEngine(root, { logger });
    try {
      const inits = logger.lines.filter((l) => l.includes(': initialize '));
      assert.equal(inits.length, 2, logger.lines.join('\n'));
      const seen = inits.map((line) => {
        const match = /^info 'lifecycle' \((\w+)\): initialize (\{.*\})$/.exec(line);
        assert.ok(match, line);
        const ctx = JSON.parse(match[2]!) as Record<string, unknown>;
        assert.equal(ctx['instance'], match[1], 'the log line is prefixed with the instance');
        return ctx;
      });
      assert.deepEqual(seen.map((c) => c['instance']).sort(), ['lifecycle_0', 'lifecycle_1']);
      for (const ctx of seen) {
        assert.equal(ctx['name'], 'lifecycle');
        assert.equal(ctx['version'], '3');
        assert.equal(ctx['configName'], 'lifecycle');
        assert.equal(ctx['backend'], 'typescript');
        assert.equal(Number(ctx['maxBatchSize']), 8);
        assert.equal(ctx['initializeCalls'], 1, 'each instance has its own module state');
      }

      for (let i = 0; i < 5; i++) {
        const r = await report(engine);
        assert.equal(r.owner, r.instance, 'the isolate globals belong to this instance alone');
        assert.equal(r.self, r.instance);
        assert.equal(r.initializeCalls, 1);
        assert.equal(r.same, false, 'each execute gets a ctx of its own: its ctx.infer calls count, and are cancelled, as that execute\'s');
      }
      assert.equal(logger.lines.filter((l) => l.includes(': initialize ')).length, 2, 'requests do not initialize again');
      assert.equal(logger.lines.filter((l) => l.includes('finalize')).length, 0);
    } finally {
      await engine.close();
    }
    const finals = logger.lines.filter((l) => l.includes(': finalize '));
    assert.deepEqual(finals.sort(), [`info 'lifecycle' (lifecycle_0): finalize lifecycle_0`, `info 'lifecycle' (lifecycle_1): finalize lifecycle_1`]);
  });

  test('instance_group count 2 runs two isolates at once: two requests meet at a gate that needs both', async () => {
    const engine = await startEngine(root);
    try {
      const started = performance.now();
      const both = await within(2500, 'two gated requests', Promise.all([report(engine, { gate: true }), report(engine, { gate: true })]));
      assert.ok(performance.now() - started < 2500);
      assert.deepEqual(both.map((r) => r.instance).sort(), ['lifecycle_0', 'lifecycle_1']);
      for (const r of both) assert.equal(r.owner, r.instance);
      const gate = engine.modelStatistics('gate').model_stats[0]!;
      assert.deepEqual(gate.batch_stats.map((b) => b.batch_size), [2], 'the gate ran one batch of the two calls');
    } finally {
      await engine.close();
    }
  });

  test('finalize runs when the model is unloaded', async () => {
    const logger = capturingLogger();
    const engine = await startEngine(root, { logger, modelControlMode: 'explicit' });
    try {
      await report(engine);
      await engine.unloadModel('lifecycle');
      assert.equal(logger.lines.filter((l) => l.includes(': finalize ')).length, 2, logger.lines.join('\n'));
      const err = await rejection(engine.infer(request('lifecycle')));
      assert.ok(['MODEL_NO_VERSIONS', 'MODEL_VERSION_UNAVAILABLE', 'MODEL_NOT_FOUND'].includes(err.code), err.message);
    } finally {
      await engine.close();
    }
  });
});

describe('load failures name the reason', () => {
  let root: string;
  let engine: InferenceEngine;
  const ok = 'export default class { async execute(r: any[]) { return r.map(() => ({ outputs: {} })); } }';

  before(async () => {
    root = await makeRepository({
      syntax: { config: scriptConfig(), versions: {} },
      no_default: { config: scriptConfig(), versions: {} },
      default_not_class: { config: scriptConfig(), versions: {} },
      no_execute: { config: scriptConfig(), versions: {} },
      init_throws: { config: scriptConfig(), versions: {} },
      missing_file: { config: scriptConfig(), versions: { 1: null } },
      no_datatype: { config: 'backend: "typescript"\nmax_batch_size: 8\ninput [ { name: "X" dims: [ 16 ] } ]\noutput [ { name: "Y" data_type: TYPE_INT32 dims: [ 16 ] } ]\n', versions: {} },
      no_dims: { config: 'backend: "typescript"\nmax_batch_size: 8\ninput [ { name: "X" data_type: TYPE_INT32 dims: [ 16 ] } ]\noutput [ { name: "Y" data_type: TYPE_INT32 } ]\n', versions: {} },
      gpu: { config: scriptConfig({ extra: 'instance_group [ { count: 1 kind: KIND_GPU } ]' }), versions: {} },
      tiny_heap: { config: scriptConfig({ memoryLimitMb: 4 }), versions: {} },
      bad_timeout: { config: scriptConfig({ extra: 'parameters { key: "execute_timeout_ms" value: { string_value: "soon" } }' }), versions: {} },
      bad_inline: { config: scriptConfig({ parameters: { inline_slice_ms: 'fast' } }), versions: {} },
      long_inline: { config: scriptConfig({ parameters: { inline_slice_ms: 5000 } }), versions: {} },
      decoupled_inline: { config: scriptConfig({ parameters: { inline_slice_ms: 20 }, extra: 'model_transaction_policy { decoupled: true }' }), versions: {} },
      healthy: { config: scriptConfig(), versions: {} },
    });
    await writeScripts(root, {
      syntax: { 1: 'export default class {\n  async execute(requests) {\n    return requests.map((r) => ({ outputs: { Y: r.inputs.X } );\n  }\n}\n' },
      no_default: { 1: 'export class Model { async execute(r: any[]) { return r; } }' },
      default_not_class: { 1: 'export default 42;' },
      no_execute: { 1: 'export default class { async run(r: any[]) { return r; } }' },
      init_throws: { 1: `${ok.replace('export default class {', 'export default class { async initialize() { throw new Error("cannot reach the feature store"); }')}` },
      no_datatype: { 1: ok }, no_dims: { 1: ok }, gpu: { 1: ok }, tiny_heap: { 1: ok }, bad_timeout: { 1: ok }, healthy: { 1: ok },
      bad_inline: { 1: ok }, long_inline: { 1: ok }, decoupled_inline: { 1: ok },
    });
    engine = await startEngine(root);
  });
  after(async () => {
    await engine?.close();
    await removeRepository(root);
  });

  const reasonOf = (model: string): string => {
    const entries = engine.repositoryIndex().filter((e) => e.name === model);
    assert.equal(entries.length, 1, `${model}: ${JSON.stringify(entries)}`);
    assert.equal(entries[0]!.state, 'UNAVAILABLE', `${model} should not load`);
    return entries[0]!.reason;
  };

  const cases: readonly (readonly [string, RegExp])[] = [
    ['syntax', /syntax\/1\/model\.ts:3:\d+: Expected "\}" but found "\)"/],
    ['no_default', /model\.ts must export a class as its default export/],
    ['default_not_class', /model\.ts must export a class as its default export/],
    ['no_execute', /has no execute\(requests, ctx\) method/],
    ['init_throws', /cannot reach the feature store/],
    ['missing_file', /version 1 has no model\.ts: expected the script at .*missing_file\/1\/model\.ts/],
    ['no_datatype', /data_type/],
    ['no_dims', /dims/],
    ['gpu', /KIND_GPU, but TypeScript models run in CPU isolates/],
    ['tiny_heap', /memory_limit_mb.*'4'.*at least 8/],
    ['bad_timeout', /execute_timeout_ms.*'soon'/],
    ['bad_inline', /inline_slice_ms.*'fast'/],
    ['long_inline', /inline_slice_ms.*'5000'.*at most 1000/],
    ['decoupled_inline', /inline_slice_ms.*does not apply to a decoupled model/],
  ];
  for (const [model, reason] of cases) {
    test(`${model}: ${reason.source}`, () => {
      assert.match(reasonOf(model), reason);
    });
  }

  test('the other models keep serving, and a failed model answers with its reason', async () => {
    assert.equal(engine.repositoryIndex().find((e) => e.name === 'healthy')?.state, 'READY');
    const err = await rejection(engine.infer(request('init_throws')));
    assert.match(err.message, /cannot reach the feature store/);
  });
});

/** Answers according to each request's `mode` parameter; Y holds how many requests the call got. */
const RESPONDER_SCRIPT = `
export default class Responder {
  async execute(requests: any[]) {
    const first = requests[0].parameters.mode;
    const answer = (r: any) => {
      const Y = { datatype: 'INT32', shape: [1, 16], data: new Int32Array(16).fill(requests.length) };
      const Z = { datatype: 'FP32', shape: [1, 2], data: new Float32Array([0.5, 1.5]) };
      switch (r.parameters.mode) {
        case 'missing': return { outputs: { Z } };
        case 'extra': return { outputs: { Y, Z, W: Y } };
        case 'dtype': return { outputs: { Y: { ...Y, datatype: 'FP32', data: new Float32Array(16) }, Z } };
        case 'typed_array': return { outputs: { Y: { ...Y, data: new Float32Array(16) }, Z } };
        case 'elements': return { outputs: { Y: { ...Y, data: new Int32Array(15) }, Z } };
        case 'shape': return { outputs: { Y: { ...Y, shape: [2, 8] }, Z } };
        case 'error': return { error: 'x marks the spot' };
        case 'null': return null;
        case 'no_outputs': return { result: 1 };
        default: return { outputs: { Y, Z } };
      }
    };
    if (first === 'too_many') return [...requests.map(answer), answer(requests[0])];
    if (first === 'too_few') return [];
    if (first === 'not_array') return { outputs: {} };
    if (first === 'throw') throw new Error('thrown on purpose');
    return requests.map(answer);
  }
}
`;

describe('what execute() returns is checked', () => {
  let root: string;
  let engine: InferenceEngine;
  const outputs: IoSpec[] = [['Y', 'TYPE_INT32', [16]], ['Z', 'TYPE_FP32', [2]]];

  before(async () => {
    root = await makeRepository({
      responder: { config: scriptConfig({ outputs }), versions: {} },
      responder_batched: { config: scriptConfig({ outputs, extra: 'dynamic_batching { preferred_batch_size: [ 3 ] max_queue_delay_microseconds: 3000000 }' }), versions: {} },
      batcher: { config: scriptConfig({ outputs, extra: 'dynamic_batching { max_queue_delay_microseconds: 20000 }' }), versions: {} },
    });
    await writeScripts(root, { responder: { 1: RESPONDER_SCRIPT }, responder_batched: { 1: RESPONDER_SCRIPT }, batcher: { 1: RESPONDER_SCRIPT } });
    engine = await startEngine(root);
  });
  after(async () => {
    await engine?.close();
    await removeRepository(root);
  });

  const failure = async (mode: string, extra: Partial<InferenceRequest> = {}): Promise<string> => {
    const err = await rejection(engine.infer(request('responder', { mode }, extra)));
    assert.equal(err.code, 'INFERENCE_FAILED', err.message);
    assert.ok(err.message.startsWith(`inference failed in model 'responder': `), err.message);
    return err.message;
  };

  test('a good answer passes', async () => {
    const response = await engine.infer(request('responder'));
    assert.deepEqual(valuesOf(outputNamed(response.outputs, 'Y')), Array(16).fill(1));
    assert.deepEqual(valuesOf(outputNamed(response.outputs, 'Z')), [0.5, 1.5]);
  });

  const cases: readonly (readonly [string, RegExp])[] = [
    ['too_many', /execute\(\) returned 2 response\(s\) for 1 request\(s\); return one per request, in order/],
    ['too_few', /execute\(\) returned 0 response\(s\) for 1 request\(s\)/],
    ['not_array', /execute\(\) must return an array with one response per request, got object/],
    ['throw', /execute\(\) threw: thrown on purpose/],
    ['missing', /the response has no output 'Y'/],
    ['extra', /the response has output 'W', which the model config does not declare \(outputs: Y, Z\)/],
    ['dtype', /output 'Y' is FP32 but the model config declares it INT32/],
    ['typed_array', /output 'Y' is INT32, so its data is a Int32Array \(or an array\), not a Float32Array/],
    ['elements', /output 'Y' has 15 element\(s\) but shape \[1,16\] holds 16/],
    ['shape', /output 'Y' has shape \[2,8\], but the model config gives \[1,16\] \(the first dim is this request's batch size, 1\)/],
    ['error', /^inference failed in model 'responder': x marks the spot$/],
    ['null', /execute\(\) returned null as a response/],
    ['no_outputs', /the response has no outputs object/],
  ];
  for (const [mode, expected] of cases) {
    test(`${mode}: ${expected.source}`, async () => {
      assert.match(await failure(mode), expected);
    });
  }

  test('only requested outputs must be there: asking for Z alone passes when Y is missing', async () => {
    const response = await engine.infer(request('responder', { mode: 'missing' }, { outputs: ['Z'] }));
    assert.deepEqual(response.outputs.map((t) => t.name), ['Z']);
  });

  test('{ error } fails that request alone; the others in the same execute() call succeed', async () => {
    const modes = ['ok', 'error', 'ok'];
    const settled = await within(2500, 'a batch of three', Promise.allSettled(modes.map((mode) => engine.infer(request('responder_batched', { mode })))));
    assert.equal(settled[0]!.status, 'fulfilled');
    assert.equal(settled[2]!.status, 'fulfilled');
    assert.equal(settled[1]!.status, 'rejected');
    const err = (settled[1] as PromiseRejectedResult).reason as Error & { code: string };
    assert.equal(err.code, 'INFERENCE_FAILED');
    assert.equal(err.message, `inference failed in model 'responder_batched': x marks the spot`);
    for (const index of [0, 2]) {
      const y = outputNamed((settled[index] as PromiseFulfilledResult<InferenceResponse>).value.outputs, 'Y');
      assert.deepEqual(valuesOf(y), Array(16).fill(3), 'the three requests went to one execute() call');
    }
  });

  test('a bad response in a batch names which request it was', async () => {
    const settled = await within(2500, 'a batch of three', Promise.allSettled(['ok', 'shape', 'ok'].map((mode) => engine.infer(request('responder_batched', { mode })))));
    assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.match(((settled[1] as PromiseRejectedResult).reason as Error).message, /output 'Y' \(request 2 of 3\) has shape \[2,8\]/);
  });

  test('dynamic batching: concurrent requests reach execute() together, and statistics show batches > 1', async () => {
    const count = 8;
    const responses = await Promise.all(Array.from({ length: count }, () => engine.infer(request('batcher'))));
    const sizes = responses.map((r) => valuesOf(outputNamed(r.outputs, 'Y'))[0]!);
    assert.ok(Math.max(...sizes) > 1, `execute() call sizes seen: ${sizes.join(',')}`);
    const stats = engine.modelStatistics('batcher').model_stats[0]!;
    assert.equal(stats.inference_count, count);
    assert.ok(stats.execution_count < count, `execution_count ${stats.execution_count}`);
    assert.ok(stats.batch_stats.some((b) => b.batch_size > 1), JSON.stringify(stats.batch_stats));
    assert.equal(stats.batch_stats.reduce((n, b) => n + b.batch_size * b.compute_infer.count, 0), count);
  });
});

test('models and instances with the same source compile it once', async () => {
  const source = `// ${randomUUID()}\n${RESPONDER_SCRIPT}`;
  const root = await makeRepository({
    first: { config: scriptConfig({ outputs: [['Y', 'TYPE_INT32', [16]], ['Z', 'TYPE_FP32', [2]]], extra: 'instance_group [ { count: 3 } ]' }), versions: {} },
    second: { config: scriptConfig({ outputs: [['Y', 'TYPE_INT32', [16]], ['Z', 'TYPE_FP32', [2]]] }), versions: {} },
  });
  await writeScripts(root, { first: { 1: source, 2: source }, second: { 1: source } });
  const before = compiledScriptCount();
  const engine = await startEngine(root);
  try {
    assert.equal(compiledScriptCount(), before + 1);
    assert.equal(engine.instancesOf('first').length, 3);
    await engine.infer(request('second'));
  } finally {
    await engine.close();
    await removeRepository(root);
  }
});
