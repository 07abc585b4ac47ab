/**
 * Inline executes (parameters.inline_slice_ms): the script runs on the event
 * loop's thread in synchronous slices. bls.test.ts runs every ctx.infer case
 * both ways; here, what is particular to inline: a slice past the bound ends
 * the isolate with an error naming the parameter, the next request gets a
 * fresh isolate, and the whole execute() keeps its execute_timeout_ms.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { int32x16, rejection, scriptConfig, valuesOf, within, writeScripts } from '../../helpers/script-fixtures.ts';

/** Y = X, after a busy wait of `busy` ms (parameter), before or after a ctx.infer to `echo`; or an endless await, or endless calls. */
const BUSY_SCRIPT = `
const spin = (ms: number) => { const end = Date.now() + ms; while (Date.now() < end) { /* busy */ } };
export default class {
  async execute(requests: any[], ctx: any) {
    return Promise.all(requests.map(async (r) => {
      const busy = Number(r.parameters.busy ?? 0);
      const where = String(r.parameters.where ?? 'before');
      if (where === 'before') spin(busy);
      if (where === 'never') await new Promise(() => {});
      if (where === 'loop') for (;;) await ctx.infer({ model: 'echo', inputs: { X: r.inputs.X } });
      const answer = await ctx.infer({ model: 'echo', inputs: { X: r.inputs.X } });
      if (where === 'after') spin(busy);
      return { outputs: { Y: answer.outputs.Y } };
    }));
  }
}
`;
const ECHO = `export default class { async execute(requests: any[]) { return requests.map((r) => ({ outputs: { Y: r.inputs.X } })); } }`;

describe('inline executes (parameters.inline_slice_ms)', () => {
  let root: string;
  let engine: InferenceEngine;
  const request = (parameters: Record<string, string | number>) => ({ modelName: 'busy', inputs: [int32x16('X', 5)], parameters });

  before(async () => {
    root = await makeRepository({
      busy: { config: scriptConfig({ executeTimeoutMs: 400, parameters: { inline_slice_ms: 100 } }), versions: {} },
      // Inline too: a call and its answer then involve no thread at all.
      echo: { config: scriptConfig({ parameters: { inline_slice_ms: 100 } }), versions: {} },
    });
    await writeScripts(root, { busy: { 1: BUSY_SCRIPT }, echo: { 1: ECHO } });
    engine = await startEngine(root);
    assert.deepEqual(engine.loadFailures(), []);
  });
  after(async () => {
    await engine?.close();
    await removeRepository(root);
  });

  test('answers as a script on its own thread does', async () => {
    const response = await within(5000, 'busy', engine.infer(request({ busy: 5 })));
    assert.deepEqual(valuesOf(response.outputs[0]), valuesOf(int32x16('X', 5)));
  });

  for (const where of ['before', 'after'] as const) {
    test(`a slice past the bound (${where} ctx.infer) ends the isolate, naming the parameter; the next request gets a new one`, async () => {
      const err = await rejection(within(5000, 'busy', engine.infer(request({ busy: 300, where }))));
      assert.match(err.message, /held the event loop past parameters\.inline_slice_ms \(100 ms\).*a new one is starting/);
      const response = await within(5000, 'busy', engine.infer(request({ busy: 1 })));
      assert.deepEqual(valuesOf(response.outputs[0]), valuesOf(int32x16('X', 5)));
    });
  }

  test('execute_timeout_ms still bounds the whole execute(), awaits included', async () => {
    const err = await rejection(within(5000, 'busy', engine.infer(request({ where: 'never' }))));
    assert.match(err.message, /ran past its time limit of 400 ms in execute\(\) \(parameters\.execute_timeout_ms\)/);
    const response = await within(5000, 'busy', engine.infer(request({ busy: 1 })));
    assert.deepEqual(valuesOf(response.outputs[0]), valuesOf(int32x16('X', 5)));
  });

  test('endless calls between inline scripts still let the event loop turn: the watchdog ends them', async () => {
    let turns = 0;
    const ticker = setInterval(() => { turns++; }, 10);
    try {
      const err = await rejection(within(5000, 'busy', engine.infer(request({ where: 'loop' }))));
      assert.match(err.message, /ran past its time limit of 400 ms in execute\(\)/);
    } finally {
      clearInterval(ticker);
    }
    assert.ok(turns >= 5, `the event loop ran ${turns} timer turns in 400 ms`);
    const response = await within(5000, 'busy', engine.infer(request({ busy: 1 })));
    assert.deepEqual(valuesOf(response.outputs[0]), valuesOf(int32x16('X', 5)));
  });
});
