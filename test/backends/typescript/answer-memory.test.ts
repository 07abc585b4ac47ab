/**
 * A ctx.infer answer too large for the room left under the calling
 * script's memory_limit_mb is refused (the call rejects naming the limit)
 * instead of being copied in: isolated-vm aborts the whole process on a
 * copy that does not fit. The server keeps serving. Answers the script
 * drops do not count against later ones: a loop over many large answers,
 * each let go, runs to its end (the host collects garbage in the isolate
 * before it judges; the script itself cannot reach gc()). Smaller answers
 * that add up past the limit end the isolate, as the script's own
 * allocations would, never the process.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { fixedTensor, scriptConfig, writeScripts } from '../../helpers/script-fixtures.ts';

/** Answers 16 MB (4 Mi FP32 elements). */
const BIG = `export default class { execute(requests: any[]) {
  return requests.map(() => ({ outputs: { Y: { shape: [1, 4 * 1024 * 1024], data: new Float32Array(4 * 1024 * 1024) } } })); } }`;

/** Answers 1 MB less 4 bytes: under the size from which the host looks for room before handing an answer in. */
const SMALL = `export default class { execute(requests: any[]) {
  return requests.map(() => ({ outputs: { Y: { shape: [1, 262143], data: new Float32Array(262143) } } })); } }`;

/** Calls small 100 times (100 MB in all) and keeps every answer. */
const SMALL_HOARDER = `export default class { async execute(requests: any[], ctx: any) {
  const kept: unknown[] = [];
  for (let i = 0; i < 100; i++) kept.push((await ctx.infer({ model: 'small', inputs: { X: { datatype: 'FP32', shape: [1, 1], data: new Float32Array(1) } } })).outputs.Y);
  return requests.map(() => ({ outputs: { Y: { shape: [1, 1], data: new Float32Array([kept.length]) } } })); } }`;

/** Calls big 40 times (640 MB in all); keeps every answer when told to (X = 1), else only its length. */
const CALLER = `export default class { async execute(requests: any[], ctx: any) {
  const keep = requests[0].inputs.X.data[0] === 1;
  const kept: unknown[] = [];
  let seen = 0;
  for (let i = 0; i < 40; i++) {
    const y = (await ctx.infer({ model: 'big', inputs: { X: { datatype: 'FP32', shape: [1, 1], data: new Float32Array(1) } } })).outputs.Y;
    seen += y.data.length;
    if (keep) kept.push(y);
  }
  return requests.map(() => ({ outputs: { Y: { shape: [1, 1], data: new Float32Array([seen / (4 * 1024 * 1024)]) } } })); } }`;

/** Answers 1 when the script can reach V8's gc(), which the host keeps for itself. */
const GC_PROBE = `export default class { execute(requests: any[]) {
  const reachable = typeof (globalThis as any).gc === 'function' || typeof (globalThis as any).gc !== 'undefined';
  return requests.map(() => ({ outputs: { Y: { shape: [1, 1], data: new Float32Array([reachable ? 1 : 0]) } } })); } }`;

let root: string;
let engine: InferenceEngine;
before(async () => {
  const io = { inputs: [['X', 'TYPE_FP32', [1]]] as [string, string, number[]][], outputs: [['Y', 'TYPE_FP32', [-1]]] as [string, string, number[]][] };
  root = await makeRepository({
    big: { config: scriptConfig({ ...io, memoryLimitMb: 128 }), versions: {} },
    caller: { config: scriptConfig({ ...io, memoryLimitMb: 128, executeTimeoutMs: 60_000 }), versions: {} },
    gc_probe: { config: scriptConfig(io), versions: {} },
    small: { config: scriptConfig(io), versions: {} },
    small_hoarder: { config: scriptConfig({ ...io, memoryLimitMb: 64, executeTimeoutMs: 60_000 }), versions: {} },
    small_hoarder_inline: { config: scriptConfig({ ...io, memoryLimitMb: 64, executeTimeoutMs: 60_000, parameters: { inline_slice_ms: 50 } }), versions: {} },
    inline_caller: { config: scriptConfig({ ...io, memoryLimitMb: 128, executeTimeoutMs: 60_000, parameters: { inline_slice_ms: 50 } }), versions: {} },
  });
  await writeScripts(root, { big: { 1: BIG }, caller: { 1: CALLER }, inline_caller: { 1: CALLER }, gc_probe: { 1: GC_PROBE },
    small: { 1: SMALL }, small_hoarder: { 1: SMALL_HOARDER }, small_hoarder_inline: { 1: SMALL_HOARDER } });
  engine = await startEngine(root);
});
after(async () => {
  await engine?.close();
  await removeRepository(root);
});

const x = (v: number) => fixedTensor('X', 'FP32', [1, 1], new Float32Array([v]));
const answer = async (model: string, keep: number): Promise<number> =>
  new Float32Array((await engine.infer({ modelName: model, inputs: [x(keep)] })).outputs[0]!.raw.slice().buffer)[0]!;

for (const model of ['caller', 'inline_caller']) {
  test(`${model}: keeping every answer fails the request naming memory_limit_mb; the process and the model go on`, async () => {
    await assert.rejects(engine.infer({ modelName: model, inputs: [x(1)] }),
      /ctx\.infer's answer of 16\.0 MB does not fit in the script's isolate, which already holds [\d.]+ MB of its 128 MB \(parameters\.memory_limit_mb\)/);
    assert.equal(await answer(model, 0), 40, 'the same script, letting answers go, reads all 40');
  });
}

test('the script cannot reach gc(): the host keeps it', async () => {
  assert.equal(await answer('gc_probe', 0), 0);
});

for (const model of ['small_hoarder', 'small_hoarder_inline']) {
  test(`${model}: kept answers each under 1 MB, past memory_limit_mb, end the isolate for its memory; the process serves on`, async () => {
    // The answers are copied in by the script's own call, where a copy past the limit ends the isolate (a copy as the promise settled aborted the process).
    await assert.rejects(engine.infer({ modelName: model, inputs: [x(0)] }),
      /ran past its memory limit of 64 MB in execute\(\) \(parameters\.memory_limit_mb\); its isolate was disposed and a new one is starting/);
    assert.equal(await answer('caller', 0), 40, 'other models serve on');
  });
}
