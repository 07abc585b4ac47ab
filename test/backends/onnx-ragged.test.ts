import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { BackendModel, ExecuteRequest } from '../../engine/backend.ts';
import { OnnxBackend } from '../../backends/onnxruntime/onnx-backend.ts';
import { compileModelConfig, readModelSettings } from '../../engine/config/compile-model-config.ts';
import type { CompiledModelConfig } from '../../engine/config/compiled-model-config.ts';
import { parseModelConfig } from '../../engine/config/parse-model-config.ts';
import type { InferenceEngine } from '../../engine/inference-engine.ts';
import { batchInputTensor } from '../../engine/scheduling/batch-tensors.ts';
import type { Tensor } from '../../engine/tensor.ts';
import { addSubModel, raggedSumModel } from '../../generator/models.ts';
import { makeRepository, removeRepository, startEngine } from '../helpers/fixture-repository.ts';
import { defaultBackends } from '../../backends/default-backends.ts';

/** The backends `switchyard` serves with, which configs are read against. */
const BACKENDS = defaultBackends();

/** Triton's ragged batching example config: a ragged INPUT and the batch input INDEX the model needs. */
const RAGGED_CONFIG = `max_batch_size: 16
input [{ name: "INPUT" data_type: TYPE_FP32 dims: [-1] allow_ragged_batch: true }]
batch_input [{ kind: BATCH_ACCUMULATED_ELEMENT_COUNT target_name: "INDEX" data_type: TYPE_FP32 source_input: "INPUT" }]
output [{ name: "OUTPUT" data_type: TYPE_FP32 dims: [1] }]
`;

const fp32 = (name: string, values: readonly number[]): Tensor =>
  ({ name, datatype: 'FP32', shape: [1, values.length], raw: new Uint8Array(new Float32Array(values).buffer) });
const floats = (t: Tensor): number[] => (t.datatype === 'FP32' ? [...new Float32Array(t.raw.slice().buffer)] : []);
const ints = (t: Tensor): number[] => (t.datatype === 'INT32' ? [...new Int32Array(t.raw.slice().buffer)] : []);

describe('batch_input and allow_ragged_batch in the config', () => {
  let root: string;
  let ragged: BackendModel;
  let addSub: BackendModel;

  before(async () => {
    root = await makeRepository({ ragged: { versions: { 1: raggedSumModel() } }, add_sub: { versions: { 1: addSubModel() } } });
    const load = (model: string): Promise<BackendModel> => new OnnxBackend().loadModel({
      modelName: model, version: 1, modelDir: `${root}/${model}`, versionDir: `${root}/${model}/1`, settings: readModelSettings(model, `${root}/${model}`, undefined, BACKENDS),
    });
    ragged = await load('ragged');
    addSub = await load('add_sub');
  });

  after(async () => {
    await ragged.finalize();
    await addSub.finalize();
    await removeRepository(root);
  });

  const compile = (model: BackendModel, name: string, text: string): CompiledModelConfig => {
    const parsed = parseModelConfig(`/repo/${name}/config.pbtxt`, text);
    return compileModelConfig(name, `/repo/${name}`, parsed, readModelSettings(name, `/repo/${name}`, parsed, BACKENDS), model.signature);
  };

  test('a batch_input target is fed by the server: not a request input, not in metadata, kept in the config', () => {
    const config = compile(ragged, 'ragged', RAGGED_CONFIG);
    assert.deepEqual(config.inputs.map((s) => [s.name, s.dims, s.allowRaggedBatch]), [['INPUT', [-1], true]]);
    assert.equal(config.inputByName.has('INDEX'), false);
    assert.deepEqual(config.batchInputs, [{ kind: 'BATCH_ACCUMULATED_ELEMENT_COUNT', targetNames: ['INDEX'], datatype: 'FP32', sourceInput: 'INPUT' }]);
    assert.deepEqual((config.json as { batch_input?: unknown }).batch_input, [
      { kind: 'BATCH_ACCUMULATED_ELEMENT_COUNT', target_name: ['INDEX'], data_type: 'TYPE_FP32', source_input: ['INPUT'] },
    ]);
  });

  const refusals: Array<[string, string, RegExp]> = [
    ['a kind this build does not make',
      RAGGED_CONFIG.replace('BATCH_ACCUMULATED_ELEMENT_COUNT', 'BATCH_ITEM_SHAPE'),
      /batch_input\[0\]\.kind.*BATCH_ITEM_SHAPE is not supported by this Switchyard build/s],
    ['batch_output',
      `${RAGGED_CONFIG}batch_output [{ kind: BATCH_SCATTER_WITH_INPUT_SHAPE target_name: "OUTPUT" source_input: "INPUT" }]\n`,
      /batch_output.*is not supported by this Switchyard build/s],
    ['a target that requests would also send',
      RAGGED_CONFIG.replace('allow_ragged_batch: true }', 'allow_ragged_batch: true }, { name: "INDEX" data_type: TYPE_FP32 dims: [-1] }'),
      /input\[1\]\.name.*'INDEX' is the target of a batch_input/s],
    ['a data_type the model does not declare',
      RAGGED_CONFIG.replace('data_type: TYPE_FP32 source_input', 'data_type: TYPE_INT32 source_input'),
      /batch_input\[0\]\.data_type.*is TYPE_INT32 but .* declares input 'INDEX' as TYPE_FP32/s],
    ['an unknown source input',
      RAGGED_CONFIG.replace('source_input: "INPUT"', 'source_input: "TEXT"'),
      /batch_input\[0\]\.source_input.*'TEXT' is not an input of the model/s],
    ['a target the model does not have',
      RAGGED_CONFIG.replace('target_name: "INDEX"', 'target_name: "OFFSETS"'),
      /batch_input\[0\]\.target_name.*'OFFSETS' is not an input of/s],
    ['a model that does not batch',
      RAGGED_CONFIG.replace('max_batch_size: 16', 'max_batch_size: 0'),
      /batch_input\[0\].*max_batch_size is 0/s],
  ];
  for (const [what, text, expected] of refusals) {
    test(`refuses ${what}, naming the field`, () => {
      assert.throws(() => compile(ragged, 'ragged', text), expected);
    });
  }

  test('a ragged input must be 1-D in the model, which sees the whole batch flattened', () => {
    assert.throws(() => compile(addSub, 'add_sub', `max_batch_size: 8
input [{ name: "INPUT0" data_type: TYPE_INT32 dims: [16] allow_ragged_batch: true }, { name: "INPUT1" data_type: TYPE_INT32 dims: [16] }]
`), /input\[0\]\.allow_ragged_batch.*reaches the model as a 1-D tensor .* has it as \[-1,16\]/s);
  });
});

test('batch input tensors follow Triton\'s kinds', () => {
  const counts = [2, 5, 1];
  const make = (kind: Parameters<typeof batchInputTensor>[1]): Tensor => batchInputTensor('B', kind, 'INT32', counts);
  assert.deepEqual(ints(make('BATCH_ELEMENT_COUNT')), [2, 5, 1]);
  assert.deepEqual(ints(make('BATCH_ACCUMULATED_ELEMENT_COUNT')), [2, 7, 8]);
  assert.deepEqual(ints(make('BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO')), [0, 2, 7, 8]);
  assert.deepEqual(make('BATCH_MAX_ELEMENT_COUNT_AS_SHAPE').shape, [5]);
  assert.deepEqual(floats(batchInputTensor('B', 'BATCH_ACCUMULATED_ELEMENT_COUNT', 'FP32', counts)), [2, 7, 8]);
});

describe('ragged batching through an instance and the engine', () => {
  let root: string;

  before(async () => {
    root = await makeRepository({
      ragged_sum: { config: `${RAGGED_CONFIG}dynamic_batching { max_queue_delay_microseconds: 200000 }\n`, versions: { 1: raggedSumModel() } },
    });
  });

  after(async () => {
    await removeRepository(root);
  });

  test('the instance flattens the ragged input and makes INDEX for each batch', async () => {
    const dir = `${root}/ragged_sum`;
    const parsed = parseModelConfig(`${dir}/config.pbtxt`, RAGGED_CONFIG);
    const settings = readModelSettings('ragged_sum', dir, parsed, BACKENDS);
    const model = await new OnnxBackend().loadModel({ modelName: 'ragged_sum', version: 1, modelDir: dir, versionDir: `${dir}/1`, settings });
    try {
      const config = compileModelConfig('ragged_sum', dir, parsed, settings, model.signature);
      const instance = await model.createInstance(config, config.instanceGroups[0]!, 0);
      const request = (values: number[]): ExecuteRequest => ({ inputs: [fp32('INPUT', values)], outputs: ['OUTPUT'], batchSize: 1 });
      const batch = await instance.execute([request([1, 2]), request([10, 20, 30, 40]), request([7])]);
      assert.deepEqual(batch.results.map((r) => (r.ok ? [r.outputs[0]!.shape, floats(r.outputs[0]!)] : r.error.message)), [
        [[1, 1], [3]], [[1, 1], [100]], [[1, 1], [7]],
      ]);
      const alone = await instance.execute([request([4, 5, 6])]);
      assert.deepEqual(alone.results.map((r) => (r.ok ? floats(r.outputs[0]!) : r.error.message)), [[15]]);
    } finally {
      await model.finalize();
    }
  });

  test('requests of different lengths are batched together and each gets its own sum', async () => {
    let engine: InferenceEngine | undefined;
    try {
      engine = await startEngine(root);
      const lengths = [3, 1, 5, 2];
      const answers = await Promise.all(lengths.map((n, r) => engine!.infer({
        modelName: 'ragged_sum',
        inputs: [fp32('INPUT', Array.from({ length: n }, (_, i) => (r + 1) * (i + 1)))],
      })));
      const sums = answers.map((a) => floats(a.outputs.find((o) => o.name === 'OUTPUT')!));
      assert.deepEqual(sums, lengths.map((n, r) => [(r + 1) * (n * (n + 1)) / 2]));
      const [stats] = engine.modelStatistics('ragged_sum').model_stats;
      assert.deepEqual([stats!.inference_count, stats!.execution_count], [4, 1], 'the four requests ran as one batch');
      const metadata = engine.modelMetadata('ragged_sum');
      assert.deepEqual(metadata.inputs.map((i) => i.name), ['INPUT'], 'INDEX is the server\'s to make, so metadata leaves it out');
    } finally {
      await engine?.close();
    }
  });
});
