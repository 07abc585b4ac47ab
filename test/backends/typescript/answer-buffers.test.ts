/**
 * What a script holds after ctx.infer: each output's data is a typed array
 * over a buffer of its own, exactly as long as the tensor. The server runs
 * models into pooled buffers larger than a small tensor; a view of one
 * handed in as it is would bring the whole pooled buffer into the isolate
 * (isolated-vm copies a view's entire buffer), counting against the
 * script's memory and showing it bytes past the tensor through
 * `data.buffer`. Checked on both execute paths: the isolate's own thread,
 * and inline slices (parameters.inline_slice_ms).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { addSubModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { fixedTensor, scriptConfig, writeScripts } from '../../helpers/script-fixtures.ts';

/** Answers, for add_sub's OUTPUT0: its length, its offset in its buffer, and its buffer's length, in bytes. */
const PROBE = `export default class { async execute(requests: any[], ctx: any) {
  const out = [];
  for (const r of requests) {
    const x = r.inputs.X;
    const answer = await ctx.infer({ model: 'add_sub', inputs: { INPUT0: x, INPUT1: x } });
    const y = answer.outputs.OUTPUT0.data;
    out.push({ outputs: { Y: { shape: [1, 4], data: new Int32Array([y.byteLength, y.byteOffset, y.buffer.byteLength, y[3]]) } } });
  }
  return out;
} }`;

let root: string;
let engine: InferenceEngine;
before(async () => {
  const io = { inputs: [['X', 'TYPE_INT32', [16]]] as [string, string, number[]][], outputs: [['Y', 'TYPE_INT32', [4]]] as [string, string, number[]][] };
  root = await makeRepository({
    add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
    probe: { config: scriptConfig({ ...io, maxBatchSize: 8 }), versions: {} },
    probe_inline: { config: scriptConfig({ ...io, maxBatchSize: 8, parameters: { inline_slice_ms: 50 } }), versions: {} },
  });
  await writeScripts(root, { probe: { 1: PROBE }, probe_inline: { 1: PROBE } });
  engine = await startEngine(root);
});
after(async () => {
  await engine?.close();
  await removeRepository(root);
});

for (const model of ['probe', 'probe_inline']) {
  test(`${model}: a small answer's data has a buffer of its own, exactly the tensor's 64 bytes`, async () => {
    const x = fixedTensor('X', 'INT32', [1, 16], Int32Array.from({ length: 16 }, (_, i) => i));
    for (let i = 0; i < 3; i++) {
      const response = await engine.infer({ modelName: model, inputs: [x] });
      const [byteLength, byteOffset, bufferLength, y3] = new Int32Array(response.outputs[0]!.raw.slice().buffer);
      response.lease?.release();
      assert.deepEqual({ byteLength, byteOffset, bufferLength }, { byteLength: 64, byteOffset: 0, bufferLength: 64 });
      assert.equal(y3, 6, 'and holds the answer (3 + 3)');
    }
  });
}
