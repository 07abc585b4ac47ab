/**
 * Poll mode: the server follows the repository folders. An edited model
 * reloads, a new folder loads, a removed one unloads, and a broken edit
 * keeps the old version serving with the reason in the index. Most checks
 * call pollRepository() to look at once; one lets the timer find an edit.
 */
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { addSubModel, subAddModel } from '../../../generator/models.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { int32Tensor, outputsByName, range16 } from '../../helpers/ensemble-fixtures.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { pollFor } from '../../helpers/wait.ts';

const A = range16((i) => i + 10);
const B = range16(() => 3);
const SUM = A.map((a, i) => a + B[i]!);
const DIFF = A.map((a, i) => a - B[i]!);

async function answer(engine: InferenceEngine, model: string): Promise<number[]> {
  const response = await engine.infer({ modelName: model, inputs: [int32Tensor('INPUT0', A), int32Tensor('INPUT1', B)] });
  return outputsByName(response.outputs)['OUTPUT0']!;
}

/** Rewrites a file with a modification time that differs from the one polling saw, even on coarse clocks. */
async function rewrite(path: string, content: string | Uint8Array): Promise<void> {
  await writeFile(path, content);
  const { utimes } = await import('node:fs/promises');
  const later = new Date(Date.now() + 5000);
  await utimes(path, later, later);
}

describe('poll mode', () => {
  let root: string;
  let engine: InferenceEngine;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } },
      stable: { config: addSubConfig('stable'), versions: { 1: addSubModel() } },
    });
    engine = await startEngine(root, { modelControlMode: 'poll', repositoryPollSecs: 0 });
  });

  after(async () => {
    await engine.close();
    await removeRepository(root);
  });

  test('nothing changed: nothing reloads', async () => {
    assert.deepEqual([...(await engine.pollRepository()).keys()], []);
  });

  test('a new model file reloads the model; the other model is left alone', async () => {
    await rewrite(join(root, 'add_sub', '1', 'model.onnx'), subAddModel());
    const outcome = await engine.pollRepository();
    assert.deepEqual([...outcome.entries()], [['add_sub', undefined]]);
    assert.deepEqual(await answer(engine, 'add_sub'), DIFF);
    assert.deepEqual(await answer(engine, 'stable'), SUM);
  });

  test('a broken config edit keeps the loaded version serving, and the index says why', async () => {
    await rewrite(join(root, 'add_sub', 'config.pbtxt'), addSubConfig('add_sub', 'max_batch_sise: 4\n'));
    const outcome = await engine.pollRepository();
    assert.match(outcome.get('add_sub') ?? '', /config\.pbtxt:\d+: max_batch_sise: unknown field/);
    assert.deepEqual(await answer(engine, 'add_sub'), DIFF, 'the previous load still answers');
    const entry = engine.repositoryIndex().find((e) => e.name === 'add_sub')!;
    assert.equal(entry.state, 'READY');
    assert.match(entry.reason, /^a new load failed and the previous one keeps serving: .*max_batch_sise: unknown field.*did you mean 'max_batch_size'/);
    assert.equal(engine.isReady(), true);
    // Polling again without a fix does not retry the same broken files.
    assert.deepEqual([...(await engine.pollRepository()).keys()], []);
  });

  test('fixing the config reloads it and clears the reason', async () => {
    await rewrite(join(root, 'add_sub', 'config.pbtxt'), addSubConfig('add_sub', 'max_batch_size: 4\n').replace('max_batch_size: 8\n', ''));
    const outcome = await engine.pollRepository();
    assert.deepEqual([...outcome.entries()], [['add_sub', undefined]]);
    assert.equal(engine.modelConfig('add_sub').max_batch_size, 4);
    assert.equal(engine.repositoryIndex().find((e) => e.name === 'add_sub')!.reason, '');
  });

  test('a new version folder is picked up by the version policy (latest 1)', async () => {
    await mkdir(join(root, 'add_sub', '2'));
    await writeFile(join(root, 'add_sub', '2', 'model.onnx'), addSubModel());
    await engine.pollRepository();
    const versions = engine.repositoryIndex().filter((e) => e.name === 'add_sub').map((e) => `${e.version}:${e.state}`);
    assert.deepEqual(versions, ['2:READY']);
    assert.deepEqual(await answer(engine, 'add_sub'), SUM);
  });

  test('a new folder loads; a removed folder unloads and no longer counts for readiness', async () => {
    await mkdir(join(root, 'fresh', '1'), { recursive: true });
    await writeFile(join(root, 'fresh', 'config.pbtxt'), addSubConfig('fresh'));
    await writeFile(join(root, 'fresh', '1', 'model.onnx'), addSubModel());
    assert.deepEqual([...(await engine.pollRepository()).entries()], [['fresh', undefined]]);
    assert.deepEqual(await answer(engine, 'fresh'), SUM);

    await rm(join(root, 'stable'), { recursive: true });
    await engine.pollRepository();
    assert.deepEqual(engine.repositoryIndex().find((e) => e.name === 'stable'), { name: 'stable', version: '1', state: 'UNAVAILABLE', reason: 'removed from the model repository' });
    await assert.rejects(answer(engine, 'stable'), /'stable' version 1 is not at ready state|has no available versions/);
    assert.equal(engine.isReady(), true);
  });

  test('load and unload requests are refused in poll mode with Triton\'s wording', async () => {
    await assert.rejects(engine.loadModel('add_sub'), (err: Error & { code?: string }) =>
      err.code === 'MODEL_CONTROL_DISABLED' && /^explicit model load \/ unload is not allowed if polling is enabled/.test(err.message));
    await assert.rejects(engine.unloadModel('add_sub'), /not allowed if polling is enabled/);
  });
});

test('the poll timer finds an edit by itself (--repository-poll-secs=1)', async () => {
  const root = await makeRepository({ add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } } });
  const engine = await startEngine(root, { modelControlMode: 'poll', repositoryPollSecs: 1 });
  try {
    await rewrite(join(root, 'add_sub', '1', 'model.onnx'), subAddModel());
    // No event marks a poll pass: ask until the new model answers (the timer fires each second).
    let seen: number[] = [];
    await pollFor('the poll timer to load the edited model', 10_000, async () => {
      seen = await answer(engine, 'add_sub');
      return JSON.stringify(seen) === JSON.stringify(DIFF);
    }, () => `the model still answers ${JSON.stringify(seen)}`, 50);
    assert.deepEqual(seen, DIFF);
  } finally {
    await engine.close();
    await removeRepository(root);
  }
});
