/**
 * The repository `npm start` serves: every model loads, and the example
 * ensembles (a pipeline.yaml and a Triton-format config) answer correctly.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PIPELINES_DIR } from '../../pipelines/generate.ts';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import type { FixedTensor, Tensor } from '../../engine/tensor.ts';
import { startEngine } from '../helpers/fixture-repository.ts';

let engine: InferenceEngine;
before(async () => { engine = await startEngine(PIPELINES_DIR); });
after(async () => { await engine.close(); });

const values = (t: Tensor | undefined): number[] => {
  const raw = (t as FixedTensor).raw;
  if (t!.datatype === 'INT64') return [...new BigInt64Array(raw.buffer, raw.byteOffset, raw.byteLength / 8)].map(Number);
  if (t!.datatype === 'INT32') return [...new Int32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4)];
  return [...new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4)];
};

test('every bundled model is ready, ensembles included', () => {
  assert.deepEqual(engine.loadFailures(), []);
  assert.ok(engine.isReady());
  for (const name of ['scored_features', 'add_sub_twice', 'text_classifier', 'text_router']) assert.equal(engine.modelMetadata(name).platform, 'ensemble');
});

test('scored_features: the pipeline matches its steps called one by one, and a subset skips the outlier step', async () => {
  const features = new Float32Array(32).map((_, i) => Math.sin(i) * 3);
  const input = (name: string): Tensor => ({ name, datatype: 'FP32', shape: [1, 32], raw: new Uint8Array(features.buffer.slice(0)) });
  const whole = await engine.infer({ modelName: 'scored_features', inputs: [input('FEATURES')] });
  const normalized = (await engine.infer({ modelName: 'feature_normalizer', inputs: [input('RAW')] })).outputs[0]!;
  const classified = await engine.infer({ modelName: 'feature_classifier', inputs: [{ ...normalized, name: 'FEATURES' }] });
  const outlier = await engine.infer({ modelName: 'feature_outlier', inputs: [{ ...normalized, name: 'NORMALIZED' }] });
  const byName = (r: { outputs: readonly Tensor[] }, n: string): Tensor | undefined => r.outputs.find((o) => o.name === n);
  assert.deepEqual(whole.outputs.map((o) => o.name), ['CLASS', 'PROBABILITIES', 'OUTLIER_SCORE']);
  assert.deepEqual(values(byName(whole, 'CLASS')), values(byName(classified, 'CLASS')));
  assert.deepEqual(values(byName(whole, 'PROBABILITIES')), values(byName(classified, 'PROBABILITIES')));
  assert.deepEqual(values(byName(whole, 'OUTLIER_SCORE')), values(byName(outlier, 'SCORE')));

  const before = engine.modelStatistics('scored_features').model_stats[0]!.step_stats.map((s) => s.success.count);
  const subset = await engine.infer({ modelName: 'scored_features', inputs: [input('FEATURES')], outputs: ['CLASS'] });
  assert.deepEqual(subset.outputs.map((o) => o.name), ['CLASS']);
  const afterwards = engine.modelStatistics('scored_features').model_stats[0]!.step_stats.map((s) => s.success.count);
  assert.deepEqual(afterwards.map((n, i) => n - before[i]!), [1, 1, 0], 'normalize and classify ran, outlier did not');
});

test('add_sub_twice: a Triton-format ensemble doubles both inputs', async () => {
  const a = Int32Array.from({ length: 16 }, (_, i) => i - 5);
  const b = Int32Array.from({ length: 16 }, (_, i) => 3 * i);
  const tensor = (name: string, data: Int32Array): Tensor => ({ name, datatype: 'INT32', shape: [1, 16], raw: new Uint8Array(data.buffer.slice(0)) });
  const r = await engine.infer({ modelName: 'add_sub_twice', inputs: [tensor('A', a), tensor('B', b)] });
  assert.deepEqual(r.outputs.map((o) => o.name), ['DOUBLE_A', 'DOUBLE_B']);
  assert.deepEqual(values(r.outputs[0]), [...a].map((x) => 2 * x));
  assert.deepEqual(values(r.outputs[1]), [...b].map((x) => 2 * x));
});
