/**
 * ctx.infer, the business-logic-scripting call: a script reaches an ONNX
 * model, an ensemble, another script and a pinned version through the
 * server's own infer(); parameters pass through; calls run concurrently;
 * errors come back as rejections with the member's message and code; calls
 * back into a model run on its instances while their callers wait; and
 * runaway recursion ends with a clear error instead of a hang.
 *
 * Most cases drive one generic script, `caller`, with a JSON plan in its
 * `plan` parameter: the ctx.infer request to make (tensors written as
 * { datatype, shape, data, as: 'Int32Array' }, or '$X' for the caller's own
 * input), how many times in parallel, and it reports what came back in its
 * RESULT output.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { addSubModel } from '../../../generator/models.ts';
import { CHAIN_PIPELINE } from '../../helpers/ensemble-fixtures.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine, type FixtureModel } from '../../helpers/fixture-repository.ts';
import { int32x16, outputNamed, rejection, scriptConfig, stringsOf, within, writeScripts } from '../../helpers/script-fixtures.ts';
import { pollFor } from '../../helpers/wait.ts';

const CALLER_SCRIPT = `
const build = (spec: any, x: any): any => spec === '$X' ? x
  : spec && typeof spec === 'object' && typeof spec.as === 'string' ? { datatype: spec.datatype, shape: spec.shape, data: new (globalThis as any)[spec.as](spec.data) }
  : spec;
const describe = (answer: any) => ({
  keys: Object.keys(answer),
  parameters: answer.parameters,
  outputs: Object.fromEntries(Object.entries(answer.outputs).map(([name, t]: [string, any]) =>
    [name, { datatype: t.datatype, shape: t.shape, ctor: t.data.constructor.name, data: Array.from(t.data, String) }])),
});
export default class Caller {
  async execute(requests: any[], ctx: any) {
    return Promise.all(requests.map(async (r) => {
      const plan = JSON.parse(String(r.parameters.plan ?? '{}'));
      const x = r.inputs.X;
      const results: unknown[] = [];
      if (plan.call !== undefined) {
        const call = plan.call;
        const request = call && typeof call === 'object' && call.inputs && typeof call.inputs === 'object' && !Array.isArray(call.inputs)
          ? { ...call, inputs: Object.fromEntries(Object.entries(call.inputs).map(([k, v]) => [k, build(v, x)])) }
          : call;
        const settled = await Promise.allSettled(Array.from({ length: plan.parallel ?? 1 }, () => ctx.infer(request)));
        for (const s of settled) {
          results.push(s.status === 'fulfilled' ? describe(s.value)
            : { error: s.reason.message, code: s.reason.code, isError: s.reason instanceof Error });
        }
      }
      return { outputs: { RESULT: { datatype: 'BYTES', shape: [1, 1], data: [JSON.stringify({ instance: ctx.instance, results })] } } };
    }));
  }
}
`;

/** Y filled with the version number that ran. */
const TAGGED_SCRIPT = `export default class {
  async execute(requests: any[], ctx: any) {
    return requests.map(() => ({ outputs: { Y: { datatype: 'INT32', shape: [1, 16], data: new Int32Array(16).fill(Number(ctx.version)) } } }));
  }
}`;

/** PARAMS: the request's parameters as JSON (bigints as text). */
const ECHO_PARAMS_SCRIPT = `export default class {
  async execute(requests: any[]) {
    return requests.map((r) => ({ outputs: { PARAMS: { datatype: 'BYTES', shape: [1, 1],
      data: [JSON.stringify(r.parameters, (_k, v) => (typeof v === 'bigint' ? v.toString() + 'n' : v))] } } }));
  }
}`;

/** Calls itself, without end. */
const RECURSE_SCRIPT = `export default class {
  async execute(requests: any[], ctx: any) {
    await ctx.infer({ model: ctx.name, inputs: { X: requests[0].inputs.X } });
    return requests.map(() => ({ outputs: { RESULT: { datatype: 'BYTES', shape: [1, 1], data: ['unreachable'] } } }));
  }
}`;

/** Calls a model that does not exist, and does not catch. */
const STRICT_SCRIPT = `export default class {
  async execute(requests: any[], ctx: any) {
    await ctx.infer({ model: 'nope', inputs: { X: requests[0].inputs.X } });
    return [];
  }
}`;

/** d<n> calls d<n+1>; whoever gets an error reports where and what, and every level above passes that up. */
const DEPTH_SCRIPT = `export default class {
  async execute(requests: any[], ctx: any) {
    const n = Number(ctx.name.slice(1));
    let result: string;
    try {
      const answer = await ctx.infer({ model: 'd' + (n + 1), inputs: { X: requests[0].inputs.X } });
      result = answer.outputs.RESULT.data[0];
    } catch (e: any) {
      result = JSON.stringify({ at: ctx.name, code: e.code, error: e.message });
    }
    return requests.map(() => ({ outputs: { RESULT: { datatype: 'BYTES', shape: [1, 1], data: [result] } } }));
  }
}`;

/** The caller's input X, fed to a step that runs the caller: an ensemble that calls back into it. */
const VIA_ENSEMBLE_PIPELINE = `max_batch_size: 8
inputs: { X: {} }
outputs: { RESULT: s.RESULT }
steps:
  s: { model: caller, inputs: { X: X } }
`;

const DEPTH_MODELS = 33;

const TWO_EXECUTES = 'parameters { key: "max_concurrent_executes" value: { string_value: "2" } }';

interface CallResult {
  keys?: string[];
  parameters?: Record<string, unknown>;
  outputs?: Record<string, { datatype: string; shape: number[]; ctor: string; data: string[] }>;
  error?: string;
  code?: string;
  isError?: boolean;
}
interface CallerReport { instance: string; results: CallResult[] }

const int32 = (values: number[], shape = [1, values.length]) => ({ datatype: 'INT32', shape, data: values, as: 'Int32Array' });
const range16 = (f: (i: number) => number): number[] => Array.from({ length: 16 }, (_, i) => f(i));

// Every case runs twice: with executes on the isolate's own thread, and inline on the event loop (parameters.inline_slice_ms).
for (const inlineSliceMs of [0, 1000]) describe(inlineSliceMs === 0 ? 'ctx.infer' : `ctx.infer, inline executes (inline_slice_ms ${inlineSliceMs})`, () => {
  let root: string;
  let engine: InferenceEngine;

  before(async () => {
    const parameters: Record<string, number> = inlineSliceMs === 0 ? {} : { inline_slice_ms: inlineSliceMs };
    const caller = scriptConfig({ outputs: [['RESULT', 'TYPE_STRING', [1]]], executeTimeoutMs: 3000, parameters });
    const models: Record<string, FixtureModel> = {
      add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } },
      ranked: { config: addSubConfig('ranked', 'dynamic_batching { priority_levels: 2 default_priority_level: 1 }'), versions: { 1: addSubModel() } },
      // Fires only once four requests wait together (or after 10 s).
      quad: { config: addSubConfig('quad', 'dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 10000000 }'), versions: { 1: addSubModel() } },
      twice: { config: CHAIN_PIPELINE, configFile: 'pipeline.yaml', versions: {} },
      via_ens: { config: VIA_ENSEMBLE_PIPELINE, configFile: 'pipeline.yaml', versions: {} },
      tagged: { config: scriptConfig({ extra: 'version_policy: { all: { } }', parameters }), versions: {} },
      echo_params: { config: scriptConfig({ outputs: [['PARAMS', 'TYPE_STRING', [1]]], parameters }), versions: {} },
      caller: { config: caller, versions: {} },
      caller2: { config: `${caller}\ninstance_group [ { count: 2 } ]`, versions: {} },
      recurse: { config: `${caller}\ninstance_group [ { count: 3 } ]`, versions: {} },
      // One instance that runs at most two batches at once: the third nested call into it could wait forever.
      tight: { config: `${caller}\n${TWO_EXECUTES}`, versions: {} },
      recurse_tight: { config: `${caller}\ninstance_group [ { count: 2 } ]\n${TWO_EXECUTES}`, versions: {} },
      caller3: { config: `${caller}\ninstance_group [ { count: 2 } ]`, versions: {} },
      // A lone request waits 400 ms here: it keeps a caller3 instance busy with work that is not a cycle.
      slow: { config: addSubConfig('slow', 'dynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 400000 }'), versions: { 1: addSubModel() } },
      strict: { config: caller, versions: {} },
    };
    for (let n = 0; n <= DEPTH_MODELS; n++) models[`d${n}`] = { config: caller, versions: {} };
    root = await makeRepository(models);
    await writeScripts(root, {
      tagged: { 1: TAGGED_SCRIPT, 2: TAGGED_SCRIPT },
      echo_params: { 1: ECHO_PARAMS_SCRIPT },
      caller: { 1: CALLER_SCRIPT },
      caller2: { 1: CALLER_SCRIPT },
      caller3: { 1: CALLER_SCRIPT },
      recurse: { 1: RECURSE_SCRIPT },
      tight: { 1: CALLER_SCRIPT },
      recurse_tight: { 1: RECURSE_SCRIPT },
      strict: { 1: STRICT_SCRIPT },
      ...Object.fromEntries(Array.from({ length: DEPTH_MODELS + 1 }, (_, n) => [`d${n}`, { 1: DEPTH_SCRIPT }])),
    });
    engine = await startEngine(root);
    const failed = engine.loadFailures();
    assert.deepEqual(failed, [], JSON.stringify(failed));
  });
  after(async () => {
    await engine?.close();
    await removeRepository(root);
  });

  /** Runs `caller` (or another model running the caller script) with a plan, bounded so a hang fails. */
  const run = async (plan: unknown, model = 'caller'): Promise<CallerReport> => {
    const response = await within(5000, `${model} with plan ${JSON.stringify(plan)}`,
      engine.infer({ modelName: model, inputs: [int32x16()], parameters: { plan: JSON.stringify(plan) } }));
    return JSON.parse(stringsOf(outputNamed(response.outputs, 'RESULT'))[0]!) as CallerReport;
  };
  const one = async (call: unknown): Promise<CallResult> => {
    const report = await run({ call });
    assert.equal(report.results.length, 1);
    return report.results[0]!;
  };
  const ok = (result: CallResult): NonNullable<CallResult['outputs']> => {
    assert.equal(result.error, undefined, `the call failed: ${result.error}`);
    return result.outputs!;
  };

  describe('reaches', () => {
    test('an ONNX model: outputs come back as typed arrays', async () => {
      const outputs = ok(await one({ model: 'add_sub', inputs: { INPUT0: '$X', INPUT1: int32(range16(() => 10)) } }));
      assert.deepEqual(Object.keys(outputs).sort(), ['OUTPUT0', 'OUTPUT1']);
      assert.deepEqual(outputs['OUTPUT0'], { datatype: 'INT32', shape: [1, 16], ctor: 'Int32Array', data: range16((i) => i + 10).map(String) });
      assert.deepEqual(outputs['OUTPUT1']!.data, range16((i) => i - 10).map(String));
    });

    test('only the outputs asked for', async () => {
      const outputs = ok(await one({ model: 'add_sub', inputs: { INPUT0: '$X', INPUT1: '$X' }, outputs: ['OUTPUT1'] }));
      assert.deepEqual(Object.keys(outputs), ['OUTPUT1']);
      assert.deepEqual(outputs['OUTPUT1']!.data, range16(() => 0).map(String));
    });

    test('an ensemble (pipeline.yaml of add_sub twice)', async () => {
      const outputs = ok(await one({ model: 'twice', inputs: { A: '$X', B: int32(range16(() => 1)) } }));
      assert.deepEqual(outputs['TWICE_A']!.data, range16((i) => 2 * i).map(String));
      assert.deepEqual(outputs['TWICE_B']!.data, range16(() => 2).map(String));
    });

    test('another script', async () => {
      const outputs = ok(await one({ model: 'echo_params', inputs: { X: '$X' }, parameters: { hello: 'world' } }));
      assert.deepEqual(JSON.parse(outputs['PARAMS']!.data[0]!), { hello: 'world' });
    });

    test('a specific version, as a number or text; the latest without one', async () => {
      const tag = async (version?: number | string): Promise<string> =>
        ok(await one({ model: 'tagged', ...(version !== undefined ? { version } : {}), inputs: { X: '$X' } }))['Y']!.data[0]!;
      assert.equal(await tag(1), '1');
      assert.equal(await tag('1'), '1');
      assert.equal(await tag(2), '2');
      assert.equal(await tag(), '2');
      const missing = await one({ model: 'tagged', version: 3, inputs: { X: '$X' } });
      assert.equal(missing.code, 'MODEL_NOT_FOUND');
      assert.equal(missing.error, `Request for unknown model: 'tagged' version 3 is not found`);
    });
  });

  describe('parameters pass through', () => {
    test('a priority the member accepts works; one it rejects surfaces as BAD_PRIORITY', async () => {
      ok(await one({ model: 'ranked', inputs: { INPUT0: '$X', INPUT1: '$X' }, parameters: { priority: 2 } }));
      const rejected = await one({ model: 'ranked', inputs: { INPUT0: '$X', INPUT1: '$X' }, parameters: { priority: 5 } });
      assert.equal(rejected.code, 'BAD_PRIORITY');
      assert.equal(rejected.isError, true);
      assert.match(rejected.error!, /invalid 'priority' parameter 5 for model 'ranked': the model has priority levels 1 \(highest\) to 2/);
    });

    test('sequence fields and custom parameters reach the called model\'s request as they were', async () => {
      const parameters = { sequence_id: 42, sequence_start: true, sequence_end: false, correlation: 'abc', weight: 0.5 };
      const outputs = ok(await one({ model: 'echo_params', inputs: { X: '$X' }, parameters }));
      assert.deepEqual(JSON.parse(outputs['PARAMS']!.data[0]!), parameters);
    });

    test('the called script sees no parameters of the caller\'s own request', async () => {
      const outputs = ok(await one({ model: 'echo_params', inputs: { X: '$X' } }));
      assert.deepEqual(JSON.parse(outputs['PARAMS']!.data[0]!), {});
    });
  });

  test('calls run in parallel: four concurrent calls meet at a member that fires only on a batch of four', async () => {
    const statsBefore = engine.modelStatistics('quad').model_stats[0]!.execution_count;
    const started = performance.now();
    const report = await run({ call: { model: 'quad', inputs: { INPUT0: '$X', INPUT1: '$X' } }, parallel: 4 });
    assert.ok(performance.now() - started < 3000);
    assert.equal(report.results.length, 4);
    for (const result of report.results) assert.deepEqual(ok(result)['OUTPUT0']!.data, range16((i) => 2 * i).map(String));
    const stats = engine.modelStatistics('quad').model_stats[0]!;
    assert.equal(stats.execution_count, statsBefore + 1, 'the four calls ran as one batch');
    assert.ok(stats.batch_stats.some((b) => b.batch_size === 4));
  });

  describe('errors', () => {
    test('an unknown model rejects with MODEL_NOT_FOUND and Triton\'s message', async () => {
      const result = await one({ model: 'nope', inputs: {} });
      assert.deepEqual(result, { error: `Request for unknown model: 'nope' is not found`, code: 'MODEL_NOT_FOUND', isError: true });
    });

    test('a wrong datatype rejects with the member\'s message', async () => {
      const result = await one({ model: 'add_sub', inputs: { INPUT0: { datatype: 'FP32', shape: [1, 16], data: range16(() => 0), as: 'Float32Array' }, INPUT1: '$X' } });
      assert.equal(result.code, 'INPUT_DATATYPE');
      assert.equal(result.error, `inference input 'INPUT0' data-type is 'FP32', but model 'add_sub' expects 'INT32'`);
    });

    test('a wrong shape rejects with the member\'s message', async () => {
      const result = await one({ model: 'add_sub', inputs: { INPUT0: int32([1, 2, 3, 4, 5, 6, 7, 8]), INPUT1: int32([1, 2, 3, 4, 5, 6, 7, 8]) } });
      assert.equal(result.code, 'INPUT_SHAPE');
      assert.match(result.error!, /^unexpected shape for input 'INPUT0' for model 'add_sub'\. Expected \[-1,16\], got \[1,8\]/);
    });

    test('a missing input rejects with the member\'s message', async () => {
      const result = await one({ model: 'add_sub', inputs: { INPUT0: '$X' } });
      assert.equal(result.code, 'MISSING_INPUTS');
      assert.match(result.error!, /missing required input\(s\) \['INPUT1'\]/);
    });

    const malformed: readonly (readonly [string, unknown, RegExp])[] = [
      ['not an object', 5, /^ctx\.infer takes a request object/],
      ['null', null, /^ctx\.infer takes a request object/],
      ['no model', { inputs: { X: '$X' } }, /^ctx\.infer: 'model' must name a model, got undefined$/],
      ['a model that is not a string', { model: 7, inputs: {} }, /'model' must name a model, got 7/],
      ['inputs not an object', { model: 'add_sub', inputs: 5 }, /^ctx\.infer to 'add_sub': 'inputs' must map input names to tensors$/],
      ['inputs an array', { model: 'add_sub', inputs: ['$X'] }, /'inputs' must map input names to tensors/],
      ['data of the wrong typed array', { model: 'add_sub', inputs: { INPUT0: { datatype: 'INT32', shape: [1, 16], data: range16(() => 0), as: 'Float64Array' }, INPUT1: '$X' } },
        /^ctx\.infer to 'add_sub': input 'INPUT0' is INT32, so its data is a Int32Array \(or an array\), not a Float64Array$/],
      ['too few elements for the shape', { model: 'add_sub', inputs: { INPUT0: int32([1, 2], [1, 16]), INPUT1: '$X' } },
        /input 'INPUT0' has 2 element\(s\) but shape \[1,16\] holds 16/],
      ['an unknown datatype', { model: 'add_sub', inputs: { INPUT0: { datatype: 'INT33', shape: [1], data: [1] }, INPUT1: '$X' } },
        /input 'INPUT0' has datatype 'INT33'/],
      ['a tensor that is not an object', { model: 'add_sub', inputs: { INPUT0: 'text', INPUT1: '$X' } },
        /input 'INPUT0' must be \{ datatype, shape, data \}/],
      ['a bad version', { model: 'add_sub', version: 1.5, inputs: {} }, /'version' must be a version number, got 1\.5/],
      ['outputs not a list of names', { model: 'add_sub', inputs: {}, outputs: 'OUTPUT0' }, /'outputs' must be an array of output names/],
      ['parameters not an object', { model: 'add_sub', inputs: {}, parameters: 'fast' }, /'parameters' must map names to values/],
      ['a parameter that is an object', { model: 'add_sub', inputs: {}, parameters: { nested: { a: 1 } } }, /parameter 'nested' is Object/],
    ];
    for (const [what, call, expected] of malformed) {
      test(`a malformed call (${what}) rejects naming the field`, async () => {
        const result = await one(call);
        assert.equal(result.isError, true);
        assert.match(result.error!, expected);
      });
    }

    test('an uncaught ctx.infer rejection fails the script\'s request with the member\'s message', async () => {
      const err = await rejection(within(5000, 'strict', engine.infer({ modelName: 'strict', inputs: [int32x16()] })));
      assert.equal(err.code, 'INFERENCE_FAILED');
      assert.equal(err.message, `inference failed in model 'strict': execute() threw: Request for unknown model: 'nope' is not found`);
    });
  });

  // Instances are re-entrant: while a batch waits on ctx.infer, its instance runs the next one (the call back, say).
  describe('call cycles', () => {
    test('A calls A with one instance: the call runs on that instance while the caller waits', async () => {
      const report = await run({ call: { model: 'caller', inputs: { X: '$X' }, parameters: { plan: JSON.stringify({}) } } });
      const inner = JSON.parse(ok(report.results[0]!)['RESULT']!.data[0]!) as CallerReport;
      assert.deepEqual(inner, { instance: 'caller_0', results: [] });
      assert.equal(report.instance, 'caller_0');
    });

    test('A -> ensemble -> A completes too', async () => {
      const outputs = ok(await one({ model: 'via_ens', inputs: { X: '$X' }, parameters: { plan: JSON.stringify({}) } }));
      assert.deepEqual(JSON.parse(outputs['RESULT']!.data[0]!), { instance: 'caller_0', results: [] });
    });

    test('A with two instances calling itself once works', async () => {
      const report = await run({ call: { model: 'caller2', inputs: { X: '$X' }, parameters: { plan: JSON.stringify({}) } } }, 'caller2');
      const inner = JSON.parse(ok(report.results[0]!)['RESULT']!.data[0]!) as CallerReport;
      assert.deepEqual(inner.results, []);
      assert.match(inner.instance, /^caller2_[01]$/);
    });

    test('an instance busy with other work is no cycle: the call back waits for it', async () => {
      const busy = run({ call: { model: 'slow', inputs: { INPUT0: '$X', INPUT1: '$X' } } }, 'caller3');
      await pollFor('caller3 to call slow', 5000, () => engine.pendingRequestCount('slow') >= 1, () => `${engine.pendingRequestCount('slow')} pending on slow`, 1);
      // caller3_x waits on slow, the other instance recurses: the inner call needs an instance, and one frees up.
      const report = await within(3000, 'the recursive call', run({ call: { model: 'caller3', inputs: { X: '$X' }, parameters: { plan: JSON.stringify({}) } } }, 'caller3'));
      const inner = JSON.parse(ok(report.results[0]!)['RESULT']!.data[0]!) as CallerReport;
      assert.deepEqual(inner.results, []);
      await busy;
    });

    test('A with two instances calling itself twice deep works', async () => {
      const leaf = JSON.stringify({});
      const middle = JSON.stringify({ call: { model: 'caller2', inputs: { X: '$X' }, parameters: { plan: leaf } } });
      const report = await run({ call: { model: 'caller2', inputs: { X: '$X' }, parameters: { plan: middle } } }, 'caller2');
      const inner = JSON.parse(ok(report.results[0]!)['RESULT']!.data[0]!) as CallerReport;
      const leafReport = JSON.parse(ok(inner.results[0]!)['RESULT']!.data[0]!) as CallerReport;
      assert.deepEqual(leafReport.results, []);
    });

    test('past max_concurrent_executes, with every batch waiting, the next call back is the cycle, at once', async () => {
      const leaf = JSON.stringify({});
      const middle = JSON.stringify({ call: { model: 'tight', inputs: { X: '$X' }, parameters: { plan: leaf } } });
      const started = performance.now();
      const report = await run({ call: { model: 'tight', inputs: { X: '$X' }, parameters: { plan: middle } } }, 'tight');
      assert.ok(performance.now() - started < 2000);
      const inner = JSON.parse(ok(report.results[0]!)['RESULT']!.data[0]!) as CallerReport;
      assert.equal(inner.results[0]!.code, 'CALL_CYCLE');
      assert.equal(inner.results[0]!.error, `call cycle: the call 'tight' -> 'tight' -> 'tight' could wait forever: all 1 instance(s) of model 'tight' ` +
        'run their limit of 2 execute() calls at once (parameters.max_concurrent_executes), every one waiting on calls into the server; ' +
        'make fewer nested calls at once, or raise max_concurrent_executes or the instance_group count');
    });

    test('runaway self-recursion ends at the depth limit', async () => {
      const err = await rejection(within(5000, 'recurse', engine.infer({ modelName: 'recurse', inputs: [int32x16()] })));
      assert.equal(err.code, 'INFERENCE_FAILED');
      assert.match(err.message, /call to model 'recurse' is 32 calls deep, past the limit of 32/);
    });

    test('runaway self-recursion ends, with the cycle named, once every instance runs its limit of batches', async () => {
      const err = await rejection(within(5000, 'recurse_tight', engine.infer({ modelName: 'recurse_tight', inputs: [int32x16()] })));
      assert.equal(err.code, 'INFERENCE_FAILED');
      assert.match(err.message, /call cycle: the call 'recurse_tight' -> 'recurse_tight' -> 'recurse_tight' -> 'recurse_tight' -> 'recurse_tight' could wait forever: all 2 instance\(s\)/);
    });

    test(`a chain of ${DEPTH_MODELS + 1} distinct models stops at the depth limit (CALL_DEPTH)`, async () => {
      const response = await within(5000, 'the depth chain', engine.infer({ modelName: 'd0', inputs: [int32x16()] }));
      const failure = JSON.parse(stringsOf(outputNamed(response.outputs, 'RESULT'))[0]!) as { at: string; code: string; error: string };
      assert.equal(failure.code, 'CALL_DEPTH');
      assert.equal(failure.at, 'd31');
      assert.equal(failure.error, `call to model 'd32' is 32 calls deep, past the limit of 32; a script or ensemble is probably recursing without end`);
    });

    test('the server keeps serving after the cycles', async () => {
      ok(await one({ model: 'add_sub', inputs: { INPUT0: '$X', INPUT1: '$X' } }));
      const again = await rejection(within(5000, 'recurse_tight', engine.infer({ modelName: 'recurse_tight', inputs: [int32x16()] })));
      assert.match(again.message, /call cycle: /);
    });
  });
});
