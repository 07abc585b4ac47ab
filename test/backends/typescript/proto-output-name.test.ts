/**
 * An output may have any name a config gives it, '__proto__' included: a
 * script's ctx.infer answer holds it as an own property, as every other.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { int32Tensor, valuesOf } from '../../helpers/ensemble-fixtures.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { scriptConfig, writeScript } from '../../helpers/script-fixtures.ts';

const CALLEE = `export default class { async execute(requests: any[]) {
  return requests.map((r: any) => { const outputs: any = {}; Object.defineProperty(outputs, '__proto__', { value: r.inputs.X, enumerable: true }); return { outputs }; });
} }`;
const CALLER = `export default class { async execute(requests: any[], ctx: any) {
  const out = [];
  for (const r of requests) {
    const answer = await ctx.infer({ model: 'callee', inputs: { X: r.inputs.X } });
    const own = Object.prototype.hasOwnProperty.call(answer.outputs, '__proto__');
    out.push({ outputs: { Y: own ? answer.outputs['__proto__'] : { datatype: 'INT32', shape: [1, 16], data: new Int32Array(16).fill(-1) } } });
  }
  return out;
} }`;

let root: string;
let engine: InferenceEngine;
before(async () => {
  root = await makeRepository({
    callee: { config: scriptConfig({ outputs: [['__proto__', 'TYPE_INT32', [16]]] }), versions: {} },
    caller: { config: scriptConfig(), versions: {} },
  });
  await writeScript(root, 'callee', 1, CALLEE);
  await writeScript(root, 'caller', 1, CALLER);
  engine = await startEngine(root);
});
after(async () => {
  await engine?.close();
  if (root) await removeRepository(root);
});

test("the callee answers '__proto__' to a client", async () => {
  const r = await engine.infer({ modelName: 'callee', inputs: [int32Tensor('X', Array.from({ length: 16 }, (_, i) => i))] });
  assert.deepEqual(r.outputs.map((t) => t.name), ['__proto__']);
});

test("a script's ctx.infer answer keeps an output named '__proto__' as its own property", async () => {
  const A = Array.from({ length: 16 }, (_, i) => i);
  const r = await engine.infer({ modelName: 'caller', inputs: [int32Tensor('X', A)] });
  assert.deepEqual(valuesOf(r.outputs[0]), A);
});
