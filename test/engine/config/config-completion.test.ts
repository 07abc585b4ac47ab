/**
 * Config completion from the model (Triton's auto-complete), and its two
 * switches: turned off (--disable-auto-complete-config), a model whose config
 * is not whole fails to load naming the field; and the max_batch_size given
 * to a model that batches (--backend-config=default-max-batch-size=N).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { addSubModel } from '../../../generator/models.ts';
import { DEFAULT_MAX_BATCH_SIZE, type ConfigCompletion } from '../../../engine/config/compile-model-config.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';

let root: string;
before(async () => {
  root = await makeRepository({
    // No config at all: everything comes from model.onnx, whose tensors are [batch, 16].
    bare: { versions: { 1: addSubModel() } },
    // A config that names nothing but the batch size.
    partial: { config: 'max_batch_size: 8\n', versions: { 1: addSubModel() } },
    whole: { config: addSubConfig('whole'), versions: { 1: addSubModel() } },
    // Every tensor named, one without its data_type.
    typeless: {
      config: `max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] }, { name: "INPUT1" dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] } ]
`,
      versions: { 1: addSubModel() },
    },
  });
});
after(() => removeRepository(root));

async function withServer(completion: ConfigCompletion | undefined, use: (engine: InferenceEngine) => void): Promise<void> {
  const engine = await startEngine(root, completion ? { configCompletion: completion } : {});
  try {
    return use(engine);
  } finally {
    await engine.close();
  }
}

type Tensors = Array<{ name: string; data_type: string; dims: number[] }>;
const tensors = (engine: InferenceEngine, model: string): Tensors => engine.modelConfig(model).input as unknown as Tensors;

const failures = (engine: InferenceEngine): Record<string, string> =>
  Object.fromEntries(engine.loadFailures().map((e) => [e.name, e.reason]));

test('by default a bare ONNX model is completed, batching with max_batch_size 4', async () => {
  await withServer(undefined, (engine) => {
    assert.deepEqual(failures(engine), {}, 'a partial config is completed too');
    const config = engine.modelConfig('bare');
    assert.equal(config.max_batch_size, DEFAULT_MAX_BATCH_SIZE);
    assert.deepEqual(tensors(engine, 'bare').map((t) => [t.name, t.data_type, t.dims]), [['INPUT0', 'TYPE_INT32', [16]], ['INPUT1', 'TYPE_INT32', [16]]]);
  });
});

test('default-max-batch-size sets the completed max_batch_size; 0 leaves the model unbatched, its batch dim in dims', async () => {
  await withServer({ enabled: true, defaultMaxBatchSize: 2 }, (engine) => {
    assert.equal(engine.modelConfig('bare').max_batch_size, 2);
    assert.equal(engine.modelConfig('whole').max_batch_size, 8, 'a written max_batch_size stays');
  });
  await withServer({ enabled: true, defaultMaxBatchSize: 0 }, (engine) => {
    const config = engine.modelConfig('bare');
    assert.equal(config.max_batch_size ?? 0, 0);
    assert.deepEqual(tensors(engine, 'bare')[0]!.dims, [-1, 16]);
  });
});

test('with auto-complete off, a model without a whole config fails to load naming what is missing; a whole one serves', async () => {
  await withServer({ enabled: false, defaultMaxBatchSize: DEFAULT_MAX_BATCH_SIZE }, (engine) => {
    const failed = failures(engine);
    assert.deepEqual(Object.keys(failed).sort(), ['bare', 'partial', 'typeless']);
    assert.match(failed['typeless']!, /typeless\/config\.pbtxt:2: input\[1\]\.data_type: is missing and auto-complete is off/);
    assert.match(failed['bare']!, /bare\/config\.pbtxt: model configuration: is missing and auto-complete is off/);
    assert.match(failed['partial']!, /partial\/config\.pbtxt: input: is empty and auto-complete is off/);
    assert.equal(engine.isModelReady('whole'), true);
    assert.equal(engine.modelConfig('whole').max_batch_size, 8);
  });
});
