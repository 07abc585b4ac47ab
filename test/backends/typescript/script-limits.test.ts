/**
 * The limits of a script isolate: a sync loop, a loop after an await, a
 * memory bomb and a thrown error each fail only the request that ran them,
 * with the limit and its parameter named; the host's event loop and the
 * other models keep going meanwhile; and the next request gets a fresh
 * isolate that ran initialize() again. A time limit that fires while a
 * ctx.infer call is in flight leaves the host unharmed when the call later
 * answers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ParameterValue } from '../../../engine/inference-request.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { addSubModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import {
  capturingLogger, int32x16, outputNamed, rejection, scriptConfig, stringsOf, valuesOf, within, writeScripts,
  type CapturingLogger,
} from '../../helpers/script-fixtures.ts';

const TIMEOUT_MS = 250;
const MEMORY_MB = 16;

const LIMITED_SCRIPT = `
let initializeCalls = 0;
export default class Limited {
  private id = '';
  async initialize(ctx: any) {
    initializeCalls++;
    this.id = Math.random().toString(36).slice(2);
    ctx.log.info('initialize ' + this.id);
  }
  async execute(requests: any[], ctx: any) {
    const mode = requests[0].parameters.mode;
    const x = requests[0].inputs.X;
    if (mode === 'loop') for (;;) {}
    if (mode === 'loop_after_await') {
      await ctx.infer({ model: 'add_sub', inputs: { INPUT0: x, INPUT1: x } });
      for (;;) {}
    }
    if (mode === 'bomb') {
      const keep: number[][] = [];
      for (;;) keep.push(new Array(100000).fill(keep.length));
    }
    if (mode === 'buffer_bomb') {
      const keep: Float64Array[] = [];
      for (;;) keep.push(new Float64Array(1 << 20));
    }
    if (mode === 'throw') throw new Error('kaboom');
    if (mode === 'slow_call') {
      ctx.log.info('calling slow');
      const answer = await ctx.infer({ model: 'slow', inputs: { INPUT0: x, INPUT1: x } });
      ctx.log.info('slow answered ' + answer.outputs.OUTPUT0.data[1]);
    }
    const report = JSON.stringify({ id: this.id, initializeCalls });
    return requests.map((r) => ({ outputs: {
      Y: { datatype: 'INT32', shape: r.inputs.X.shape, data: r.inputs.X.data.map((v: number) => v * 2) },
      ID: { datatype: 'BYTES', shape: [1, 1], data: [report] },
    } }));
  }
}
`;

/** Loops in initialize, or in finalize, by the instance's version. */
const STUCK_INITIALIZE = 'export default class { async initialize() { for (;;) {} } async execute(r: any[]) { return r; } }';
const STUCK_FINALIZE = `export default class {
  async execute(r: any[]) { return r.map((q) => ({ outputs: { Y: q.inputs.X, ID: { datatype: 'BYTES', shape: [1, 1], data: ['ok'] } } })); }
  async finalize() { await Promise.resolve(); for (;;) {} }
}`;

interface Report { id: string; initializeCalls: number }

describe('script limits', () => {
  let root: string;
  let engine: InferenceEngine;
  let logger: CapturingLogger;
  const problems: unknown[] = [];
  const onProblem = (err: unknown): void => { problems.push(err); };

  const io = { outputs: [['Y', 'TYPE_INT32', [16]], ['ID', 'TYPE_STRING', [1]]] as const };

  before(async () => {
    process.on('unhandledRejection', onProblem);
    process.on('uncaughtExceptionMonitor', onProblem);
    root = await makeRepository({
      limited: { config: scriptConfig({ ...io, executeTimeoutMs: TIMEOUT_MS, memoryLimitMb: MEMORY_MB }), versions: {} },
      add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } },
      // Answers a lone request after 700 ms: it waits for a preferred batch of 8 that never comes.
      slow: { config: addSubConfig('slow', 'dynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 700000 }'), versions: { 1: addSubModel() } },
      stuck_initialize: { config: scriptConfig({ ...io, executeTimeoutMs: TIMEOUT_MS }), versions: {} },
    });
    await writeScripts(root, { limited: { 1: LIMITED_SCRIPT }, stuck_initialize: { 1: STUCK_INITIALIZE } });
    logger = capturingLogger();
    engine = await startEngine(root, { logger });
  });
  after(async () => {
    await engine?.close();
    await removeRepository(root);
    process.off('unhandledRejection', onProblem);
    process.off('uncaughtExceptionMonitor', onProblem);
  });

  const call = (mode?: string) => engine.infer({
    modelName: 'limited', inputs: [int32x16()], ...(mode ? { parameters: { mode } as Record<string, ParameterValue> } : {}),
  });
  const report = async (): Promise<Report> => {
    const response = await call();
    assert.deepEqual(valuesOf(outputNamed(response.outputs, 'Y')), Array.from({ length: 16 }, (_, i) => 2 * i));
    return JSON.parse(stringsOf(outputNamed(response.outputs, 'ID'))[0]!) as Report;
  };
  const initializations = (): number => logger.lines.filter((l) => l.startsWith(`info 'limited' (limited_0): initialize `)).length;
  const addSub = async (): Promise<void> => {
    const response = await engine.infer({ modelName: 'add_sub', inputs: [int32x16('INPUT0'), int32x16('INPUT1', 1)] });
    assert.deepEqual(valuesOf(outputNamed(response.outputs, 'OUTPUT0')), Array.from({ length: 16 }, (_, i) => 2 * i + 1));
  };

  const limits: readonly (readonly [string, RegExp])[] = [
    ['loop', new RegExp(`ran past its time limit of ${TIMEOUT_MS} ms in execute\\(\\) \\(parameters\\.execute_timeout_ms\\)`)],
    ['loop_after_await', new RegExp(`ran past its time limit of ${TIMEOUT_MS} ms in execute\\(\\) \\(parameters\\.execute_timeout_ms\\)`)],
    ['bomb', new RegExp(`ran past its memory limit of ${MEMORY_MB} MB in execute\\(\\) \\(parameters\\.memory_limit_mb\\)`)],
    // isolated-vm refuses ArrayBuffer memory past the limit with a RangeError inside the isolate, which the script could catch:
    // the heap is not exhausted, so the isolate survives, like after any thrown error.
    ['buffer_bomb', /execute\(\) threw: Array buffer allocation failed/],
    ['throw', /execute\(\) threw: kaboom/],
  ];
  for (const [mode, expected] of limits) {
    test(`${mode}: that request fails with why, others keep serving meanwhile, and the next request is answered`, async () => {
      const before = await report();
      const initializedBefore = initializations();

      const started = performance.now();
      const failing = rejection(within(5000, mode, call(mode)));
      // While the isolate is stuck, the host's event loop and the other models keep going.
      await addSub();
      const addSubMs = performance.now() - started;
      const err = await failing;
      const failedMs = performance.now() - started;
      assert.equal(err.code, 'INFERENCE_FAILED');
      assert.match(err.message, /^inference failed in model 'limited': /);
      assert.match(err.message, expected);
      if (mode.startsWith('loop')) {
        assert.ok(addSubMs < TIMEOUT_MS, `add_sub answered in ${addSubMs.toFixed(0)} ms while the script looped`);
        assert.ok(failedMs >= TIMEOUT_MS - 5 && failedMs < TIMEOUT_MS + 1000, `the loop was stopped after ${failedMs.toFixed(0)} ms`);
      }
      await addSub();

      const next = await report();
      if (mode === 'throw' || mode === 'buffer_bomb') {
        assert.equal(next.id, before.id, 'a thrown error is the script\'s own: the isolate stays');
        assert.equal(initializations(), initializedBefore);
      } else {
        assert.notEqual(next.id, before.id, 'a new isolate');
        assert.equal(next.initializeCalls, 1, 'module state starts over in the new isolate');
        assert.equal(initializations(), initializedBefore + 1, 'initialize() ran again');
        assert.ok(logger.lines.some((l) => l.startsWith('error ') && expected.test(l)), 'the limit is logged');
      }
      assert.equal((await report()).id, next.id, 'and the new isolate stays');
    });
  }

  test('an ArrayBuffer bomb is reported naming memory_limit_mb', async () => {
    const err = await rejection(call('buffer_bomb'));
    assert.match(err.message, /memory_limit_mb/);
  });

  test('a time limit hit while ctx.infer is in flight: the call is cancelled in the member\'s queue, and the host lives', async () => {
    const before = engine.modelStatistics('slow').model_stats[0]!.inference_stats;
    const err = await rejection(call('slow_call'));
    assert.match(err.message, /time limit of 250 ms in execute\(\)/);
    assert.ok(logger.lines.some((l) => l.endsWith('calling slow')));
    // The abandoned call leaves the slow member's queue (it would have waited ~450 ms more) instead of running for nobody.
    assert.equal(engine.pendingRequestCount('slow'), 0);
    const stats = engine.modelStatistics('slow').model_stats[0]!.inference_stats;
    assert.equal(stats.success.count, before.success.count, 'the member never computed the abandoned call');
    assert.equal(stats.fail.count, before.fail.count + 1);
    assert.ok(!logger.lines.some((l) => l.includes('slow answered')), 'the old script never resumed');
    assert.deepEqual(problems, [], 'no unhandled rejection or uncaught exception in the host');
    await addSub();
    const after = await report();
    assert.equal(after.initializeCalls, 1);
  });

  test('no host-level errors surfaced during the limit tests', () => {
    assert.deepEqual(problems, []);
  });

  test('initialize() that never returns fails the load with the time limit named', () => {
    const entry = engine.repositoryIndex().find((e) => e.name === 'stuck_initialize')!;
    assert.equal(entry.state, 'UNAVAILABLE');
    assert.match(entry.reason, /ran past its time limit of 250 ms in initialize\(\) \(parameters\.execute_timeout_ms\)/);
  });
});

test('finalize() that never returns does not hold up close()', async () => {
  const root = await makeRepository({
    stuck_finalize: { config: scriptConfig({ outputs: [['Y', 'TYPE_INT32', [16]], ['ID', 'TYPE_STRING', [1]]], executeTimeoutMs: TIMEOUT_MS }), versions: {} },
  });
  await writeScripts(root, { stuck_finalize: { 1: STUCK_FINALIZE } });
  const engine = await startEngine(root);
  try {
    await engine.infer({ modelName: 'stuck_finalize', inputs: [int32x16()] });
    const started = performance.now();
    await within(3000, 'close()', engine.close());
    assert.ok(performance.now() - started < TIMEOUT_MS + 1000);
  } finally {
    await removeRepository(root);
  }
});
