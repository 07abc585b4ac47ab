import assert from 'node:assert/strict';
import { once } from 'node:events';
import { rename } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import type { Worker } from 'node:worker_threads';
import type { BackendModel, ExecuteRequest } from '../../engine/backend.ts';
import { OnnxBackend } from '../../backends/onnxruntime/onnx-backend.ts';
import type { OnnxInstance } from '../../backends/onnxruntime/onnx-instance.ts';
import { compileModelConfig, readModelSettings } from '../../engine/config/compile-model-config.ts';
import { parseModelConfig } from '../../engine/config/parse-model-config.ts';
import type { Logger } from '../../engine/logger.ts';
import type { Tensor } from '../../engine/tensor.ts';
import { lookupModel, mlpModel } from '../../generator/models.ts';
import { makeRepository, removeRepository } from '../helpers/fixture-repository.ts';
import { defaultBackends } from '../../backends/default-backends.ts';
import { ManualClock } from '../../engine/scheduling/clock.ts';

/** The backends `switchyard` serves with, which configs are read against. */
const BACKENDS = defaultBackends();

/** A logger that keeps its lines, to check what a crash and a restart say. */
function recordingLogger(): Logger & { readonly lines: string[] } {
  const lines: string[] = [];
  const keep = (level: string) => (m: string): void => { lines.push(`${level} ${m}`); };
  return { lines, error: keep('error'), warn: keep('warn'), info: keep('info'), verbose: keep('verbose'), verboseEnabled: false };
}

async function open(root: string, model: string, configText: string, logger?: Logger, clock?: ManualClock): Promise<{ model: BackendModel; instance: OnnxInstance }> {
  const dir = `${root}/${model}`;
  const parsed = parseModelConfig(`${dir}/config.pbtxt`, configText);
  const settings = readModelSettings(model, dir, parsed, BACKENDS);
  const backendModel = await new OnnxBackend({}, clock).loadModel({ modelName: model, version: 1, modelDir: dir, versionDir: `${dir}/1`, settings, logger });
  const config = compileModelConfig(model, dir, parsed, settings, backendModel.signature);
  const instance = await backendModel.createInstance(config, config.instanceGroups[0]!, 0);
  return { model: backendModel, instance: instance as OnnxInstance };
}

const lookup = (indices: readonly number[]): ExecuteRequest => ({
  inputs: [{ name: 'INDEX', datatype: 'INT64', shape: [indices.length, 1], raw: new Uint8Array(new BigInt64Array(indices.map(BigInt)).buffer) }],
  outputs: ['VALUE'],
  batchSize: indices.length,
});
const floats = (t: Tensor): number[] => (t.datatype === 'FP32' ? [...new Float32Array(t.raw.slice().buffer)] : []);
const rows = (count: number): ExecuteRequest => ({
  inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [count, 256], raw: new Uint8Array(new Float32Array(count * 256).fill(0.25).buffer) }],
  outputs: ['OUTPUT'],
  batchSize: count,
});

describe('ONNX Runtime instance faults', () => {
  let root: string;
  const logger = recordingLogger();
  /** The lookup model's instances read the restart interval from it, so the test moves time instead of waiting. */
  const clock = new ManualClock();
  let lookupModelOpen: { model: BackendModel; instance: OnnxInstance };
  let heavy: { model: BackendModel; instance: OnnxInstance };

  before(async () => {
    root = await makeRepository({
      lookup: { versions: { 1: lookupModel(4) } },
      heavy: { versions: { 1: mlpModel({ sizes: [256, 1024, 1024, 8], seed: 5 }) } },
    });
    lookupModelOpen = await open(root, 'lookup', 'max_batch_size: 8\n', logger, clock);
    heavy = await open(root, 'heavy', 'max_batch_size: 64\n', logger);
  });

  after(async () => {
    await lookupModelOpen.model.finalize();
    await heavy.model.finalize();
    await removeRepository(root);
  });

  test('a run ONNX Runtime refuses answers every request of the batch with its message; the next batch is fine', async () => {
    const { instance } = lookupModelOpen;
    const { results, timing } = await instance.execute([lookup([1]), lookup([9, 2]), lookup([3])]);
    assert.equal(results.length, 3);
    for (const result of results) {
      assert.ok(!result.ok);
      assert.equal(result.error.code, 'INFERENCE_FAILED');
      assert.equal(result.error.status, 'INTERNAL');
      assert.match(result.error.message, /inference failed in model 'lookup': .*indices element out of data bounds, idx=9/);
    }
    assert.ok(timing.inferNs > 0, 'the failed run still reports its time');
    // The first lone run also takes a buffer for its preallocated output; later ones reuse it.
    await instance.execute([lookup([-7])]);
    const allocated = instance.poolStats().allocated;
    for (let i = 0; i < 5; i++) await instance.execute([lookup([-7])]);
    assert.equal(instance.poolStats().allocated, allocated, 'a failed run gives its input and preallocated output buffers back too');
    const good = await instance.execute([lookup([0, 3]), lookup([2])]);
    assert.deepEqual(good.results.map((r) => (r.ok ? floats(r.outputs[0]!) : r.error.message)), [[0, 30], [20]]);
  });

  test('terminateWorker fails the runs in flight and a new worker serves the next ones', async () => {
    const { instance } = heavy;
    const old = (instance as unknown as { worker: Worker }).worker;
    const oldExit = once(old, 'exit');
    const inFlight = instance.execute([rows(32), rows(32)]);
    assert.equal(instance.runsInFlight, 1);
    await instance.terminateWorker();
    // The old worker left by itself (code 0) once its native run returned, not cut short by terminate() (code 1),
    // which can abort the whole process when ONNX Runtime returns into a dying thread.
    assert.deepEqual(await oldExit, [0]);
    const answered = await inFlight;
    for (const result of answered.results) {
      assert.ok(!result.ok);
      assert.equal(result.error.status, 'INTERNAL');
      assert.match(result.error.message,
        /inference failed in model 'heavy': instance heavy_0 stopped unexpectedly \(worker was terminated\); a new worker is starting/);
    }
    // Asked for while the replacement opens its session: they wait for it.
    const later = await Promise.all([instance.execute([rows(2)]), instance.execute([rows(3), rows(1)])]);
    assert.ok(later.every((o) => o.results.every((r) => r.ok)));
    assert.deepEqual(later[1]!.results.map((r) => (r.ok ? r.outputs[0]!.shape : [])), [[3, 8], [1, 8]]);
    assert.ok(logger.lines.some((l) => /^error 'heavy': instance heavy_0 stopped unexpectedly \(worker was terminated\); 1 run\(s\) failed/.test(l)));
    assert.ok(logger.lines.some((l) => /^info 'heavy': instance heavy_0 has a new worker/.test(l)));
  });

  test('a worker that exits on its own is replaced the same way', async () => {
    const { instance } = heavy;
    const worker = (instance as unknown as { worker: Worker }).worker;
    const inFlight = instance.execute([rows(16)]);
    await worker.terminate();
    const [result] = (await inFlight).results;
    assert.ok(result && !result.ok);
    assert.match(result.error.message, /instance heavy_0 stopped unexpectedly \(worker exited with code 1\); a new worker is starting/);
    const next = await instance.execute([rows(1)]);
    assert.ok(next.results[0]!.ok);
  });

  test('a replacement that cannot open the session fails calls clearly, and a later call tries again', async () => {
    const { instance } = lookupModelOpen;
    const modelFile = `${root}/lookup/1/model.onnx`;
    let failedMessage = '';
    await rename(modelFile, `${modelFile}.away`);
    try {
      await instance.terminateWorker();
      const first = await instance.execute([lookup([1])]);
      const failed = first.results[0]!;
      assert.ok(!failed.ok);
      assert.equal(failed.error.status, 'INTERNAL');
      failedMessage = failed.error.message;
      assert.match(failed.error.message, /instance lookup_0 has no running worker: a new one could not open the session \(.+\); the next request after 1 s tries again/);
    } finally {
      await rename(`${modelFile}.away`, modelFile);
    }
    // The file is back, so a new worker would now open it; within the 1 s interval none is tried: the same answer comes at once.
    const again = async (): Promise<unknown> => {
      const next = (await instance.execute([lookup([3])])).results[0]!;
      return next.ok ? floats(next.outputs[0]!) : next.error.message;
    };
    assert.equal(await again(), failedMessage, 'right after the failed start');
    clock.advance(999);
    assert.equal(await again(), failedMessage, '999 ms after the failed start');
    clock.advance(1);
    assert.deepEqual(await again(), [30], 'a fresh worker answers once the interval has passed');
    assert.ok(logger.lines.some((l) => /^error 'lookup': instance lookup_0 could not restart its worker/.test(l)));
  });

  test('finalize stops the worker without starting another', async () => {
    const root2 = await makeRepository({ lookup: { versions: { 1: lookupModel(4) } } });
    const local = recordingLogger();
    try {
      const { model, instance } = await open(root2, 'lookup', 'max_batch_size: 8\n', local);
      await model.finalize();
      const { results } = await instance.execute([lookup([1])]);
      assert.ok(!results[0]!.ok);
      assert.equal(results[0]!.error.code, 'SERVER_STOPPING');
      assert.deepEqual(local.lines, [], 'no crash, no restart');
    } finally {
      await removeRepository(root2);
    }
  });
});
