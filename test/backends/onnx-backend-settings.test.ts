/**
 * --backend-config=onnxruntime,intra_op_thread_count / inter_op_thread_count:
 * the session thread counts of models whose config parameters leave them
 * out; a model's own parameters still win.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_ONNX_THREAD_COUNT, readOnnxBackendSettings } from '../../backends/onnxruntime/onnx-backend-settings.ts';
import type { OnnxInstance } from '../../backends/onnxruntime/onnx-instance.ts';
import { addSubModel } from '../../generator/models.ts';
import { ADD_SUB_IO } from '../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine } from '../helpers/fixture-repository.ts';

test('backend thread counts reach the sessions of models that do not set their own', async () => {
  const addSub = addSubModel('INT32', 16);
  const own = 'parameters { key: "intra_op_thread_count" value: { string_value: "2" } }\n';
  const root = await makeRepository({
    defaults: { config: `max_batch_size: 8\n${ADD_SUB_IO}`, versions: { 1: addSub } },
    own: { config: `max_batch_size: 8\n${ADD_SUB_IO}${own}`, versions: { 1: addSub } },
  });
  const tuned = await startEngine(root, { backendSettings: { onnxruntime: { intraOpThreadCount: 3, interOpThreadCount: 0 } } });
  const plain = await startEngine(root);
  try {
    const options = (engine: typeof tuned, model: string) => (engine.instancesOf(model)[0] as OnnxInstance).sessionOptions;
    assert.deepEqual([options(tuned, 'defaults').intraOpNumThreads, options(tuned, 'defaults').interOpNumThreads], [3, 0]);
    assert.deepEqual([options(tuned, 'own').intraOpNumThreads, options(tuned, 'own').interOpNumThreads], [2, 0], "the model's parameter wins");
    assert.deepEqual([options(plain, 'defaults').intraOpNumThreads, options(plain, 'defaults').interOpNumThreads], [1, 1], 'one thread each by default');
  } finally {
    await tuned.close();
    await plain.close();
    await removeRepository(root);
  }
});

test('onnxruntime backend settings: thread counts checked at their bounds, enable-global-threadpool without effect, others left over', () => {
  const read = readOnnxBackendSettings([
    ['intra_op_thread_count', '0'], ['inter_op_thread_count', String(MAX_ONNX_THREAD_COUNT)], ['enable-global-threadpool', '1'], ['shm-size', '7'],
  ]);
  assert.deepEqual(read.settings, { intraOpThreadCount: 0, interOpThreadCount: MAX_ONNX_THREAD_COUNT });
  assert.deepEqual(read.withoutEffect, ['enable-global-threadpool=1']);
  assert.deepEqual(read.unknown, ['shm-size=7']);
  for (const [setting, value, message] of [
    ['intra_op_thread_count', String(MAX_ONNX_THREAD_COUNT + 1), /intra_op_thread_count=1025: expected a thread count from 0 to 1024/],
    ['inter_op_thread_count', '-1', /inter_op_thread_count=-1: expected a thread count/],
    ['intra_op_thread_count', 'four', /expected a thread count/],
    ['enable-global-threadpool', 'maybe', /enable-global-threadpool=maybe: expected true or false/],
  ] as const) {
    assert.throws(() => readOnnxBackendSettings([[setting, value]]), message);
  }
});
