/**
 * Attacks through ctx.infer (issue 15, classes 6, 7 and 13d), on a real
 * HTTP server with real isolates:
 *
 * - a flood of un-awaited calls (20,000 at once, or a loop until the time
 *   limit) is cut at max_infer_calls_in_flight, the calls still queued at the
 *   callee leave its queue when the execute ends, and an unrelated client
 *   keeps its latency meanwhile;
 * - a client that goes away takes its script's nested calls with it;
 * - concurrent call chains through a model with 2 instances (self-recursion,
 *   M -> N -> M) all complete, since a batch waiting on ctx.infer lets its
 *   instance run the next one; runaway recursion fails fast, naming the limit;
 * - a model name from a script goes through the same check as one from a URL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InferenceRequest } from '../../../engine/inference-request.ts';
import { addSubModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';
import { int32x16, outputNamed, rejection, scriptConfig, stringsOf, valuesOf, within, writeScripts } from '../../helpers/script-fixtures.ts';
import { pollFor } from '../../helpers/wait.ts';

/** Spins `spin_ms` (default 100) per batch, then echoes X: a callee whose queue fills. */
const STALL_SCRIPT = `export default class {
  async execute(requests: any[]) {
    const until = Date.now() + Number(requests[0].parameters.spin_ms ?? 100);
    while (Date.now() < until) {}
    return requests.map((r) => ({ outputs: { Y: r.inputs.X } }));
  }
}`;

/** Fires `calls` un-awaited calls at stall (or, with `forever`, never stops), and reports how they were refused. */
const FLOOD_SCRIPT = `export default class {
  async execute(requests: any[], ctx: any) {
    const p = requests[0].parameters;
    const call = { model: 'stall', inputs: { X: requests[0].inputs.X } };
    const codes: Record<string, number> = {};
    let first = '';
    const note = (e: any) => {
      codes[e.code] = (codes[e.code] ?? 0) + 1;
      if (e.code === 'INFER_CALLS_IN_FLIGHT' && first === '') first = e.message;
    };
    if (p.forever === true) for (;;) ctx.infer(call).catch(note);
    for (let i = 0; i < Number(p.calls); i++) ctx.infer(call).catch(note);
    for (let i = 0; i < 10; i++) await null;
    return requests.map(() => ({ outputs: { RESULT: { datatype: 'BYTES', shape: [1, 1], data: [JSON.stringify({ codes, first })] } } }));
  }
}`;

/** Awaits one call to stall. */
const WAITER_SCRIPT = `export default class {
  async execute(requests: any[], ctx: any) {
    const answer = await ctx.infer({ model: 'stall', inputs: { X: requests[0].inputs.X }, parameters: { spin_ms: 0 } });
    return requests.map(() => ({ outputs: { Y: answer.outputs.Y } }));
  }
}`;

/** Y = X + depth: each level calls the model its config names in parameters.next (itself by default) with depth - 1. */
const RECURSIVE_SCRIPT = `export default class {
  async execute(requests: any[], ctx: any) {
    const next = ctx.config.parameters?.next?.string_value ?? ctx.name;
    return Promise.all(requests.map(async (r) => {
      const depth = Number(r.parameters.depth ?? 0);
      const x = r.inputs.X;
      if (depth === 0) return { outputs: { Y: x } };
      const answer = await ctx.infer({ model: next, inputs: { X: x }, parameters: { depth: depth - 1 } });
      return { outputs: { Y: { datatype: 'INT32', shape: x.shape, data: Int32Array.from(answer.outputs.Y.data, (v: number) => v + 1) } } };
    }));
  }
}`;

/** Calls the model its request names in parameters.target; RESULT is the error's code and message. */
const NAMER_SCRIPT = `export default class {
  async execute(requests: any[], ctx: any) {
    let result = { code: 'none', message: '' };
    try {
      await ctx.infer({ model: requests[0].parameters.target, inputs: { X: requests[0].inputs.X } });
    } catch (e: any) {
      result = { code: String(e.code), message: e.message };
    }
    return requests.map(() => ({ outputs: { RESULT: { datatype: 'BYTES', shape: [1, 1], data: [JSON.stringify(result)] } } }));
  }
}`;

const MAX_IN_FLIGHT = 64;
const FLOOD_TIMEOUT_MS = 5000;
const ENDLESS_TIMEOUT_MS = 1000;
const CHAIN_TIMEOUT_MS = 5000;
/** An unrelated client's request answers within this while the attacks run (generous: a loaded 2-core machine). */
const UNRELATED_LATENCY_BOUND_MS = 1500;
/** RSS may grow this much over an attack (generous: the isolates' heaps, the allocator keeping freed memory). */
const RSS_BOUND_BYTES = 256 * 1024 * 1024;

const RESULT: readonly [string, string, readonly number[]] = ['RESULT', 'TYPE_STRING', [1]];
const next = (model: string): string => `parameters { key: "next" value: { string_value: "${model}" } }`;

describe('ctx.infer attacks', () => {
  let root: string;
  let http: HttpFixture;

  before(async () => {
    const recursive = (extra: string): string => scriptConfig({ executeTimeoutMs: CHAIN_TIMEOUT_MS, extra: `instance_group [ { count: 2 } ]\n${extra}` });
    root = await makeRepository({
      add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } },
      stall: { config: scriptConfig({ executeTimeoutMs: 5000 }), versions: {} },
      flood: { config: scriptConfig({ outputs: [RESULT], executeTimeoutMs: FLOOD_TIMEOUT_MS, memoryLimitMb: 64 }), versions: {} },
      endless: { config: scriptConfig({ outputs: [RESULT], executeTimeoutMs: ENDLESS_TIMEOUT_MS, memoryLimitMb: 64 }), versions: {} },
      waiter: { config: scriptConfig({ executeTimeoutMs: 5000 }), versions: {} },
      self2: { config: recursive(''), versions: {} },
      ping_m: { config: recursive(next('ping_n')), versions: {} },
      ping_n: { config: recursive(next('ping_m')), versions: {} },
      namer: { config: scriptConfig({ outputs: [RESULT] }), versions: {} },
    });
    await writeScripts(root, {
      stall: { 1: STALL_SCRIPT }, flood: { 1: FLOOD_SCRIPT }, endless: { 1: FLOOD_SCRIPT }, waiter: { 1: WAITER_SCRIPT },
      self2: { 1: RECURSIVE_SCRIPT }, ping_m: { 1: RECURSIVE_SCRIPT }, ping_n: { 1: RECURSIVE_SCRIPT }, namer: { 1: NAMER_SCRIPT },
    });
    http = await startHttp(root);
    assert.deepEqual(http.engine.loadFailures(), []);
  });
  after(async () => {
    await http?.close();
    await removeRepository(root);
  });

  const x16 = Array.from({ length: 16 }, (_, i) => i);
  /** POST /v2/models/<model>/infer with X = 0..15 and `parameters`: the status and the parsed body. */
  const post = async (model: string, parameters: Record<string, unknown>): Promise<{ status: number; body: any }> => {
    const response = await fetch(`${http.url}/v2/models/${model}/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'X', datatype: 'INT32', shape: [1, 16], data: x16 }], parameters }),
    });
    return { status: response.status, body: await response.json() };
  };
  const addSubAnswers = async (): Promise<void> => {
    const response = await fetch(`${http.url}/v2/models/add_sub/infer`, {
      method: 'POST',
      body: JSON.stringify({ inputs: ['INPUT0', 'INPUT1'].map((name) => ({ name, datatype: 'INT32', shape: [1, 16], data: x16 })) }),
    });
    assert.equal(response.status, 200);
    const body = await response.json() as { outputs: { name: string; data: number[] }[] };
    assert.deepEqual(body.outputs.find((o) => o.name === 'OUTPUT0')!.data, x16.map((v) => 2 * v));
  };
  /** An unrelated client sending add_sub requests one after another until stopped: its slowest answer. */
  const unrelatedClient = (): { stop(): Promise<{ count: number; maxMs: number }> } => {
    let running = true;
    let count = 0;
    let maxMs = 0;
    const loop = (async () => {
      while (running) {
        const started = performance.now();
        await addSubAnswers();
        maxMs = Math.max(maxMs, performance.now() - started);
        count++;
      }
    })();
    const stopped = (): Promise<{ count: number; maxMs: number }> => {
      running = false;
      return loop.then(() => ({ count, maxMs }));
    };
    return { stop: stopped };
  };
  /** Waits (bounded) until `model` holds no queued or executing request. */
  const drained = async (model: string, ms = 3000): Promise<void> => {
    await pollFor(`'${model}' to drain`, ms, () => http.engine.pendingRequestCount(model) === 0, () => `${http.engine.pendingRequestCount(model)} request(s) pending`, 0);
  };
  const stallRuns = (): number => http.engine.modelStatistics('stall').model_stats[0]!.execution_count;

  describe('class 6: un-awaited ctx.infer floods', () => {
    test(`20,000 un-awaited calls: cut at ${MAX_IN_FLIGHT} in flight, the rest cancelled in the callee's queue, an unrelated client unharmed`, async (t) => {
      const runsBefore = stallRuns();
      const rssBefore = process.memoryUsage().rss;
      const client = unrelatedClient();
      t.after(() => client.stop());
      const started = performance.now();
      const { status, body } = await within(FLOOD_TIMEOUT_MS + 3000, 'the flood', post('flood', { calls: 20_000 }));
      const tookMs = performance.now() - started;
      const left = http.engine.pendingRequestCount('stall');
      assert.equal(status, 200, JSON.stringify(body));
      const report = JSON.parse(body.outputs[0].data[0]) as { codes: Record<string, number>; first: string };
      assert.deepEqual(report.codes, { INFER_CALLS_IN_FLIGHT: 20_000 - MAX_IN_FLIGHT }, 'every call past the limit was refused at once');
      assert.equal(report.first, `ctx.infer from model 'flood': this execute() already has ${MAX_IN_FLIGHT} calls in flight, its limit ` +
        '(parameters.max_infer_calls_in_flight); await some before making more');
      assert.ok(tookMs < FLOOD_TIMEOUT_MS, `the flood answered within its time limit (${tookMs.toFixed(0)} ms)`);
      // The calls it let through and that were still waiting were cancelled when execute() returned: at most the one spinning is left.
      assert.ok(left <= 1, `${left} call(s) still pending at stall once the flood answered`);
      await drained('stall');
      const runs = stallRuns() - runsBefore;
      assert.ok(runs < MAX_IN_FLIGHT, `stall ran ${runs} of the ${MAX_IN_FLIGHT} calls (those it reached while the flood ran); the rest left its queue`);
      const unrelated = await client.stop();
      assert.ok(unrelated.count > 0);
      assert.ok(unrelated.maxMs < UNRELATED_LATENCY_BOUND_MS, `the unrelated client's slowest answer took ${unrelated.maxMs.toFixed(0)} ms`);
      const grew = process.memoryUsage().rss - rssBefore;
      assert.ok(grew < RSS_BOUND_BYTES, `RSS grew ${(grew / 2 ** 20).toFixed(0)} MiB`);
      console.log(`# flood of 20000: answered in ${tookMs.toFixed(0)} ms, stall ran ${runs} call(s), unrelated client: ` +
        `${unrelated.count} requests, slowest ${unrelated.maxMs.toFixed(0)} ms, RSS +${(grew / 2 ** 20).toFixed(0)} MiB`);
      const again = await post('flood', { calls: 1 });
      assert.equal(again.status, 200);
      assert.deepEqual(JSON.parse(again.body.outputs[0].data[0]).codes, {});
      await drained('stall');
    });

    test('calls fired in a loop until the time limit: the request fails with the limit named, the callee drains, the server lives', async (t) => {
      const rssBefore = process.memoryUsage().rss;
      const client = unrelatedClient();
      t.after(() => client.stop());
      const started = performance.now();
      const { status, body } = await within(ENDLESS_TIMEOUT_MS + 5000, 'the endless flood', post('endless', { forever: true }));
      const tookMs = performance.now() - started;
      assert.equal(status, 500);
      assert.match(body.error, new RegExp(`script 'endless' \\(endless_0\\) ran past its (time limit of ${ENDLESS_TIMEOUT_MS} ms|memory limit of 64 MB) in execute\\(\\)`));
      assert.ok(body.error.length < 400);
      assert.ok(tookMs < ENDLESS_TIMEOUT_MS + 3000, `answered ${tookMs.toFixed(0)} ms after it was sent`);
      await drained('stall');
      const unrelated = await client.stop();
      assert.ok(unrelated.maxMs < UNRELATED_LATENCY_BOUND_MS, `the unrelated client's slowest answer took ${unrelated.maxMs.toFixed(0)} ms`);
      const grew = process.memoryUsage().rss - rssBefore;
      assert.ok(grew < RSS_BOUND_BYTES, `RSS grew ${(grew / 2 ** 20).toFixed(0)} MiB`);
      console.log(`# endless flood: failed after ${tookMs.toFixed(0)} ms, unrelated client: ${unrelated.count} requests, ` +
        `slowest ${unrelated.maxMs.toFixed(0)} ms, RSS +${(grew / 2 ** 20).toFixed(0)} MiB`);
      const again = await post('endless', { calls: 1 });
      assert.equal(again.status, 200, 'a fresh isolate answers');
      await addSubAnswers();
      await drained('stall');
    });

    test('a client that goes away takes the script\'s queued call with it', async () => {
      const engine = http.engine;
      const blocker = engine.infer({ modelName: 'stall', inputs: [int32x16()], parameters: { spin_ms: 1500 } });
      const controller = new AbortController();
      const waiting: InferenceRequest = { modelName: 'waiter', inputs: [int32x16()], signal: controller.signal };
      const waiter = engine.infer(waiting);
      await pollFor('the nested call to queue behind the blocker', 3000, () => engine.pendingRequestCount('stall') >= 2,
        () => `${engine.pendingRequestCount('stall')} request(s) pending`, 0);
      const runsBefore = stallRuns();
      controller.abort(new Error('the client went away'));
      const err = await rejection(waiter);
      assert.equal(err.code, 'CANCELLED');
      assert.equal(engine.pendingRequestCount('stall'), 1, 'the nested call left stall\'s queue at once; only the blocker runs');
      assert.deepEqual(valuesOf(outputNamed((await blocker).outputs, 'Y')), x16);
      await drained('stall');
      assert.equal(stallRuns(), runsBefore + 1, 'stall never computed the cancelled call');
      assert.deepEqual(valuesOf(outputNamed((await engine.infer({ modelName: 'waiter', inputs: [int32x16()] })).outputs, 'Y')), x16);
    });
  });

  describe('class 7: concurrent call chains through a model with 2 instances', () => {
    const chains = async (model: string, concurrent: number, depth: number): Promise<number> => {
      const started = performance.now();
      const answers = await within(CHAIN_TIMEOUT_MS, `${concurrent} x ${model} at depth ${depth}`, Promise.all(Array.from({ length: concurrent },
        (_, i) => http.engine.infer({ modelName: model, inputs: [int32x16('X', i)], parameters: { depth } }))));
      answers.forEach((answer, i) => assert.deepEqual(valuesOf(outputNamed(answer.outputs, 'Y')), x16.map((v) => v + i + depth)));
      return performance.now() - started;
    };

    for (const [model, what] of [['self2', 'self-recursion'], ['ping_m', 'M -> N -> M']] as const) {
      for (const concurrent of [2, 4, 8]) {
        const depth = concurrent === 8 ? 2 : 3;
        test(`${what}: ${concurrent} concurrent requests at depth ${depth} all complete, well within the time limit`, async () => {
          const tookMs = await chains(model, concurrent, depth);
          assert.ok(tookMs < CHAIN_TIMEOUT_MS / 2, `took ${tookMs.toFixed(0)} ms`);
          console.log(`# ${what}, ${concurrent} concurrent at depth ${depth}: ${tookMs.toFixed(0)} ms`);
          await addSubAnswers();
        });
      }
    }

    test('runaway recursion from 8 concurrent requests fails fast, naming the limit it hit', async () => {
      const started = performance.now();
      const failures = await within(CHAIN_TIMEOUT_MS, 'runaway recursion', Promise.all(Array.from({ length: 8 },
        () => rejection(http.engine.infer({ modelName: 'self2', inputs: [int32x16()], parameters: { depth: 1000 } })))));
      const tookMs = performance.now() - started;
      for (const err of failures) {
        assert.equal(err.code, 'INFERENCE_FAILED');
        assert.match(err.message, /call to model 'self2' is 32 calls deep, past the limit of 32|call cycle: the call 'self2' -> .* could wait forever: all 2 instance\(s\) of model 'self2' run their limit of 16/);
      }
      assert.ok(tookMs < CHAIN_TIMEOUT_MS / 2, `took ${tookMs.toFixed(0)} ms`);
      console.log(`# runaway recursion x8: failed in ${tookMs.toFixed(0)} ms`);
      await drained('self2');
      await chains('self2', 2, 3);
      await addSubAnswers();
    });
  });

  describe('class 13d: model names from scripts', () => {
    const names: readonly (readonly [string, RegExp])[] = [
      ['../x', /invalid model name "\.\.\/x" in a call from 'namer': it contains '\/', a path separator/],
      ['/etc/passwd', /invalid model name "\/etc\/passwd" in a call from 'namer': it is an absolute path/],
      ['a/b', /invalid model name "a\/b" in a call from 'namer': it contains '\/', a path separator/],
      ['x\0y', /invalid model name "x\\u0000y" in a call from 'namer': it contains a NUL character/],
    ];
    for (const [name, expected] of names) {
      test(`ctx.infer({ model: ${JSON.stringify(name)} }) is refused by the model-name check`, async () => {
        const response = await http.engine.infer({ modelName: 'namer', inputs: [int32x16()], parameters: { target: name } });
        const result = JSON.parse(stringsOf(outputNamed(response.outputs, 'RESULT'))[0]!) as { code: string; message: string };
        assert.equal(result.code, 'INVALID_MODEL_NAME');
        assert.match(result.message, expected);
        assert.ok(result.message.length < 300);
      });
    }

    test('ctx.infer({ model: \'\' }) is refused naming the field', async () => {
      const response = await http.engine.infer({ modelName: 'namer', inputs: [int32x16()], parameters: { target: '' } });
      const result = JSON.parse(stringsOf(outputNamed(response.outputs, 'RESULT'))[0]!) as { code: string; message: string };
      assert.equal(result.message, "ctx.infer: 'model' must name a model, got ''");
    });

    test('every entry of the facade checks the name, not only the frontends', async () => {
      const engine = http.engine;
      for (const name of ['../x', '/etc/passwd', 'a/b', 'x\0y']) {
        assert.equal((await rejection(engine.infer({ modelName: name, inputs: [] }))).code, 'INVALID_MODEL_NAME');
        assert.equal((await rejection(engine.inferStream({ modelName: name, inputs: [] }))).code, 'INVALID_MODEL_NAME');
        assert.throws(() => engine.modelMetadata(name), { code: 'INVALID_MODEL_NAME' });
        assert.throws(() => engine.modelStatistics(name), { code: 'INVALID_MODEL_NAME' });
        assert.equal(engine.isModelReady(name), false);
      }
      await addSubAnswers();
    });
  });
});
