import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '../../../engine/logger.ts';
import { ModelLifecycle } from '../../../engine/repository/model-lifecycle.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { addSubModel, featureClassifierModel } from '../../../generator/models.ts';
import { OnnxGraphBuilder } from '../../../generator/onnx-builder.ts';
import { ADD_SUB_IO } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';


const addSub = addSubModel('INT32', 16);
/** A model whose first dim is fixed, so it cannot batch. */
const fixedShape = new OnnxGraphBuilder('fixed').input('X', 'FP32', [2, 16]).node('Relu', ['X'], ['Y']).output('Y', 'FP32', [2, 16]).toBytes();
const classifier = featureClassifierModel();

function reasonOf(engine: InferenceEngine, model: string, version = '1'): string {
  const entry = engine.repositoryIndex().find((e) => e.name === model && (e.version === version || e.version === ''));
  assert.ok(entry, `no index entry for ${model}`);
  assert.equal(entry.state, 'UNAVAILABLE', `${model} should have failed`);
  return entry.reason;
}

describe('model repository', () => {
  let root: string;
  let engine: InferenceEngine;

  before(async () => {
    root = await makeRepository({
      good: { config: `name: "good"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n${ADD_SUB_IO}`, versions: { 1: addSub } },
      no_config: { versions: { 1: classifier } },
      partial: { config: 'max_batch_size: 16\n', versions: { 1: classifier } },
      batch_dim_included: {
        config: `name: "batch_dim_included"\nmax_batch_size: 8\ninput [\n  { name: "INPUT0" data_type: TYPE_INT32 dims: [ -1, 16 ] }\n]\n`,
        versions: { 1: addSub },
      },
      wrong_dtype: {
        config: 'max_batch_size: 8\ninput [\n  { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] },\n  { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] }\n]\n',
        versions: { 1: addSub },
      },
      wrong_dim: { config: `max_batch_size: 8\n${ADD_SUB_IO.replace('dims: [ 16 ] },', 'dims: [ 8 ] },')}`, versions: { 1: addSub } },
      fixed_batching: { config: 'max_batch_size: 8\n', versions: { 1: fixedShape } },
      fixed_short: { config: 'input [ { name: "X" data_type: TYPE_FP32 dims: [ 16 ] } ]\n', versions: { 1: fixedShape } },
      fixed_full: { config: 'input [ { name: "X" data_type: TYPE_FP32 dims: [ 2, 16 ] } ]\n', versions: { 1: fixedShape } },
      zero_batch_promoted: { config: `max_batch_size: 0\n${ADD_SUB_IO}`, versions: { 1: addSub } },
      duplicate: {
        config: 'max_batch_size: 8\ninput [\n  { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] },\n  { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] }\n]\n',
        versions: { 1: addSub },
      },
      unknown_input: {
        config: 'max_batch_size: 8\ninput [ { name: "IMAGE" data_type: TYPE_INT32 dims: [ 16 ] } ]\n',
        versions: { 1: addSub },
      },
      missing_input: {
        config: 'max_batch_size: 8\ninput [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] } ]\noutput [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] } ]\n',
        versions: { 1: addSub },
      },
      name_mismatch: { config: 'name: "other"\n', versions: { 1: addSub } },
      empty_version: { config: 'max_batch_size: 8\n', versions: { 1: null } },
      no_versions: { config: 'max_batch_size: 8\n', versions: {} },
      multi_latest: { config: 'max_batch_size: 8\n', versions: { 1: addSub, 2: addSub, 3: addSub } },
      multi_latest_two: { config: 'max_batch_size: 8\nversion_policy: { latest: { num_versions: 2 } }\n', versions: { 1: addSub, 2: addSub, 3: addSub } },
      multi_all: { config: 'max_batch_size: 8\nversion_policy: { all: {} }\n', versions: { 1: addSub, 2: addSub, 3: addSub } },
      multi_specific: { config: 'max_batch_size: 8\nversion_policy: { specific: { versions: [ 1, 3 ] } }\n', versions: { 1: addSub, 2: addSub, 3: addSub } },
      specific_missing: { config: 'max_batch_size: 8\nversion_policy: { specific: { versions: [ 4 ] } }\n', versions: { 1: addSub } },
      gpu: { config: 'max_batch_size: 8\ninstance_group [ { count: 1, kind: KIND_GPU } ]\n', versions: { 1: addSub } },
      sequence: { config: 'max_batch_size: 8\nsequence_batching { }\n', versions: { 1: addSub } },
      yaml_config: { config: 'max_batch_size: 8\ninstance_group:\n  - count: 2\n    kind: KIND_CPU\n', configFile: 'config.yaml', versions: { 1: addSub } },
    });
    engine = await startEngine(root);
  });

  after(async () => {
    await engine.close();
    await removeRepository(root);
  });

  test('a good model is READY and serves while the broken ones stay UNAVAILABLE', async () => {
    assert.equal(engine.isModelReady('good'), true);
    const a = new Int32Array(16).fill(5);
    const b = new Int32Array(16).fill(3);
    const response = await engine.infer({
      modelName: 'good',
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], raw: new Uint8Array(a.buffer) },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], raw: new Uint8Array(b.buffer) },
      ],
    });
    const sum = response.outputs.find((o) => o.name === 'OUTPUT0')!;
    assert.equal(sum.datatype, 'INT32');
    assert.deepEqual([...new Int32Array(sum.datatype === 'INT32' ? sum.raw.slice().buffer : new ArrayBuffer(0))], new Array(16).fill(8));
    assert.equal(engine.isReady(), false, 'strict readiness: not every model is ready');
  });

  test('a model without config is completed from the ONNX file, as Triton does', () => {
    const config = engine.modelConfig('no_config');
    assert.equal(config['max_batch_size'], 4, 'batchable model without max_batch_size gets the default 4');
    assert.deepEqual(config['dynamic_batching'] && (config['dynamic_batching'] as Record<string, unknown>)['preferred_batch_size'], [4]);
    assert.deepEqual((config['input'] as Array<Record<string, unknown>>).map((i) => [i['name'], i['data_type'], i['dims']]), [['FEATURES', 'TYPE_FP32', [32]]]);
    assert.deepEqual((config['output'] as Array<Record<string, unknown>>).map((i) => [i['name'], i['data_type'], i['dims']]),
      [['PROBABILITIES', 'TYPE_FP32', [4]], ['CLASS', 'TYPE_INT64', [1]]]);
    assert.equal(config['backend'], 'onnxruntime');
    assert.equal(config['platform'], 'onnxruntime_onnx');
    const partial = engine.modelConfig('partial');
    assert.equal(partial['max_batch_size'], 16);
    assert.equal(partial['dynamic_batching'], undefined, 'an explicit max_batch_size leaves scheduling alone');
    assert.equal((partial['input'] as unknown[]).length, 1);
    // proto3 cannot tell 0 from unset, so like Triton a batchable model with dims that leave out dim 0 is promoted.
    assert.equal(engine.modelConfig('zero_batch_promoted')['max_batch_size'], 4);
  });

  test('dims that include the batch dimension get an explanation of the implicit batch dim', () => {
    const reason = reasonOf(engine, 'batch_dim_included');
    assert.match(reason, /batch_dim_included\/config\.pbtxt:4: input\[0\]\.dims:/);
    assert.match(reason, /batch dimension is implicit/);
    assert.match(reason, /Fix: set dims: \[16\]/);
  });

  test('data type, dims, duplicates and names are checked against the model file', () => {
    const dtype = reasonOf(engine, 'wrong_dtype');
    assert.match(dtype, /config\.pbtxt:3: input\[0\]\.data_type: is TYPE_FP32 but .*declares input 'INPUT0' as TYPE_INT32\. Fix: set data_type: TYPE_INT32/);
    assert.match(reasonOf(engine, 'wrong_dim'), /input\[0\]\.dims: \[8\] does not match .*'INPUT0' as \[-1,16\].*Fix: set dims: \[16\]/);
    assert.match(reasonOf(engine, 'fixed_batching'), /max_batch_size: is 8, but .* fixes the first dim of 'X' to 2, so the model cannot batch\. Fix: set max_batch_size: 0 and dims: \[2,16\]/);
    assert.match(reasonOf(engine, 'fixed_short'), /input\[0\]\.dims: \[16\] has one dim fewer .*With max_batch_size 0 the config must give the full shape/);
    assert.equal(engine.isModelReady('fixed_full'), true);
    assert.match(reasonOf(engine, 'duplicate'), /config\.pbtxt:4: input\[1\]\.name: 'INPUT0' appears twice/);
    assert.match(reasonOf(engine, 'unknown_input'), /'IMAGE' is not an input of .*use one of the model's inputs: 'INPUT0', 'INPUT1'/);
    assert.match(reasonOf(engine, 'missing_input'), /has inputs 'INPUT1' that the config does not list/);
    assert.match(reasonOf(engine, 'name_mismatch'), /name: is 'other' but the model's folder is 'name_mismatch'/);
  });

  test('missing or empty version folders are reported', () => {
    assert.match(reasonOf(engine, 'empty_version'), /version 1 has no model\.onnx/);
    assert.match(reasonOf(engine, 'no_versions'), /no version folders in .*no_versions/);
  });

  test('version policies choose which folders load', () => {
    const versionsOf = (model: string): string[] => engine.repositoryIndex().filter((e) => e.name === model).map((e) => `${e.version}:${e.state}`);
    assert.deepEqual(versionsOf('multi_latest'), ['3:READY']);
    assert.deepEqual(versionsOf('multi_latest_two'), ['3:READY', '2:READY']);
    assert.deepEqual(versionsOf('multi_all'), ['3:READY', '2:READY', '1:READY']);
    assert.deepEqual(versionsOf('multi_specific'), ['3:READY', '1:READY']);
    assert.deepEqual(versionsOf('specific_missing'), ['4:UNAVAILABLE']);
    assert.match(reasonOf(engine, 'specific_missing', '4'), /asks for version 4/);
    assert.deepEqual(engine.modelMetadata('multi_all').versions, ['3', '2', '1']);
    assert.equal(engine.isModelReady('multi_specific', '2'), false);
    assert.equal(engine.isModelReady('multi_specific', '1'), true);
  });

  test('KIND_GPU without the CUDA execution provider fails to load with the reason', () => {
    const reason = reasonOf(engine, 'gpu');
    assert.match(reason, /KIND_GPU/);
    assert.match(reason, /CUDA execution provider/);
    assert.match(reason, /KIND_CPU/);
  });

  test('sequence_batching without controls or state loads as a sequence model', () => {
    assert.equal(engine.isModelReady('sequence'), true);
    assert.equal(engine.modelConfig('sequence')['sequence_batching'] !== undefined, true);
  });

  test('YAML configs load, and instance_group count starts that many instances', () => {
    const config = engine.modelConfig('yaml_config');
    assert.deepEqual(config['instance_group'], [{ name: 'yaml_config', kind: 'KIND_CPU', count: 2, gpus: [], secondary_devices: [], profile: [], passive: false, host_policy: '' }]);
  });

  test('unknown models and versions give Triton\'s errors', async () => {
    await assert.rejects(engine.infer({ modelName: 'nope', inputs: [] }), { message: "Request for unknown model: 'nope' is not found", status: 'NOT_FOUND' });
    await assert.rejects(engine.infer({ modelName: 'good', modelVersion: '9', inputs: [] }), { message: "Request for unknown model: 'good' version 9 is not found" });
    await assert.rejects(engine.infer({ modelName: 'gpu', inputs: [] }), (err: Error & { status?: string }) => {
      assert.match(err.message, /^Request for unknown model: 'gpu' has no available versions \(version 1: .*KIND_GPU/);
      return true;
    });
    await assert.rejects(engine.infer({ modelName: 'multi_specific', modelVersion: '4', inputs: [] }), { status: 'NOT_FOUND' });
  });
});

test('strict readiness can be turned off, and closing unloads every version', async () => {
  const root = await makeRepository({
    good: { config: 'max_batch_size: 8\n', versions: { 1: addSub } },
    broken: { config: 'max_batch_sise: 8\n', versions: { 1: addSub } },
  });
  const engine = await startEngine(root, { strictReadiness: false });
  try {
    assert.equal(engine.isReady(), true);
    assert.match(engine.loadFailures()[0]!.reason, /broken\/config\.pbtxt:1: max_batch_sise: unknown field in ModelConfig\. Fix: did you mean 'max_batch_size'\?/);
  } finally {
    await engine.close();
  }
  assert.equal(engine.isLive(), false);
  assert.deepEqual(engine.repositoryIndex().find((e) => e.name === 'good'), { name: 'good', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' });
  await removeRepository(root);
});

test('the lifecycle refuses moves that skip a state', () => {
  const lifecycle = new ModelLifecycle();
  assert.equal(lifecycle.state, 'LOADING');
  assert.throws(() => lifecycle.moveTo('UNLOADING'), /cannot go from LOADING to UNLOADING/);
  lifecycle.moveTo('READY');
  assert.throws(() => lifecycle.moveTo('LOADING'));
  lifecycle.moveTo('UNLOADING');
  lifecycle.moveTo('UNAVAILABLE', 'unloaded');
  assert.equal(lifecycle.reason, 'unloaded');
  lifecycle.moveTo('LOADING');
});

test('a model asking for the response cache on a server without one loads, warmed up, with a warning naming the flag', async () => {
  const root = await makeRepository({
    warm: {
      config: 'max_batch_size: 8\nresponse_cache { enable: true }\nmodel_warmup [ { name: "w" batch_size: 1 inputs [\n' +
        '  { key: "INPUT0" value: { data_type: TYPE_INT32 dims: [ 16 ] zero_data: true } },\n' +
        '  { key: "INPUT1" value: { data_type: TYPE_INT32 dims: [ 16 ] random_data: true } } ] } ]\n',
      versions: { 1: addSub },
    },
  });
  const warnings: string[] = [];
  const logger = { ...silentLogger, warn: (message: string) => { warnings.push(message); } };
  const engine = await startEngine(root, { logger });
  try {
    assert.equal(engine.isModelReady('warm'), true);
    assert.deepEqual(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /model 'warm' sets response_cache \{ enable: true \}, but the server runs without a response cache.*--cache-config local,size=/);
  } finally {
    await engine.close();
    await removeRepository(root);
  }
});
