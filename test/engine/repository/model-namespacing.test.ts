/**
 * --model-namespacing: each repository folder is a namespace. A name in two
 * repositories is refused without it (Triton's "not unique across all model
 * repositories"); with it both load, an ensemble's steps run the model of
 * its own repository, and a request naming the shared name is refused as
 * ambiguous, as Triton refuses it, over HTTP too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import type { ModelVersion } from '../../../engine/repository/model-version.ts';
import { addSubModel } from '../../../generator/models.ts';
import { addSubMember, chainEnsemble, int32Tensor, outputsByName } from '../../helpers/ensemble-fixtures.ts';
import { makeRepository, removeRepository, startEngine, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';

const addSub = addSubModel('INT32', 16);
/** The same model as m in repository A, told apart by its max_batch_size. */
const memberOfB = addSubMember('m').replace('max_batch_size: 8', 'max_batch_size: 4');

const AMBIGUOUS = "There are 2 identifiers of model 'm' in global map, model namespace must be provided to resolve ambiguity.";

describe('model namespacing', () => {
  let repoA: string;
  let repoB: string;
  before(async () => {
    repoA = await makeRepository({
      m: { config: addSubMember('m'), versions: { 1: addSub } },
      ens_a: { config: chainEnsemble('m', 'm'), versions: {} },
    });
    repoB = await makeRepository({
      m: { config: memberOfB, versions: { 1: addSub } },
      ens_b: { config: chainEnsemble('m', 'm').replace('max_batch_size: 8', 'max_batch_size: 4'), versions: {} },
      only_b: { config: addSubMember('only_b'), versions: { 1: addSub } },
      ens_only: { config: chainEnsemble('only_b', 'only_b'), versions: {} },
    });
  });
  after(async () => {
    await removeRepository(repoA);
    await removeRepository(repoB);
  });

  const request = (modelName: string) => ({
    modelName, inputs: [int32Tensor('A', Array.from({ length: 16 }, (_, i) => i)), int32Tensor('B', Array.from({ length: 16 }, () => 1))],
  });

  test('without namespacing a name in two repositories fails, naming both, and the other models serve', async () => {
    const engine = await startEngine(repoA, { modelRepositories: [repoA, repoB] });
    try {
      const index = engine.repositoryIndex();
      const m = index.filter((e) => e.name === 'm');
      assert.equal(m.length, 1);
      assert.equal(m[0]!.state, 'UNAVAILABLE');
      assert.match(m[0]!.reason, /model 'm' is not unique across all model repositories: it appears in .* and .*model appears in two or more repositories; start with --model-namespacing=true/);
      assert.equal(index.find((e) => e.name === 'only_b')!.state, 'READY');
      assert.equal(index.find((e) => e.name === 'ens_a')!.state, 'UNAVAILABLE', 'its step has no model to call');
    } finally {
      await engine.close();
    }
  });

  describe('with namespacing', () => {
    let engine: InferenceEngine;
    let http: HttpFixture;
    const seen: ModelVersion[] = [];
    before(async () => {
      engine = await startEngine(repoA, { modelRepositories: [repoA, repoB], modelNamespacing: true, modelControlMode: 'explicit' });
      engine.watchVersions((version) => seen.push(version));
      http = await startHttp(repoA, { modelRepositories: [repoA, repoB], modelNamespacing: true });
    });
    after(async () => {
      await engine.close();
      await http.close();
    });

    test('both models of the same name load and are listed', () => {
      const m = engine.repositoryIndex().filter((e) => e.name === 'm');
      assert.deepEqual(m.map((e) => e.state), ['READY', 'READY']);
      assert.ok(engine.repositoryIndex().every((e) => e.state === 'READY'), JSON.stringify(engine.repositoryIndex()));
    });

    test("each ensemble's steps run the model of its own repository", async () => {
      for (const [ensemble, maxBatchSize] of [['ens_a', 8], ['ens_b', 4]] as const) {
        seen.length = 0;
        const response = await engine.infer(request(ensemble));
        const outputs = outputsByName(response.outputs);
        assert.deepEqual(outputs['TWICE_A'], Array.from({ length: 16 }, (_, i) => 2 * i));
        const members = seen.filter((v) => v.config!.name === 'm');
        assert.equal(members.length, 2, 'two steps');
        assert.deepEqual(members.map((v) => v.config!.maxBatchSize), [maxBatchSize, maxBatchSize], `${ensemble} ran its own m`);
      }
    });

    test('an ensemble whose step model is only in another repository finds it there', async () => {
      const response = await engine.infer(request('ens_only'));
      assert.deepEqual(outputsByName(response.outputs)['TWICE_B'], Array.from({ length: 16 }, () => 2));
    });

    test('a request naming the shared name is refused as ambiguous; unique names serve', async () => {
      await assert.rejects(engine.infer({ modelName: 'm', inputs: [] }), (err: Error & { code?: string; httpStatus?: number }) => {
        assert.equal(err.code, 'MODEL_AMBIGUOUS');
        assert.equal(err.httpStatus, 400);
        assert.equal(err.message, AMBIGUOUS);
        return true;
      });
      assert.throws(() => engine.modelConfig('m'), { message: AMBIGUOUS });
      const res = await fetch(`${http.url}/v2/models/m/infer`, {
        method: 'POST', body: JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: new Array(16).fill(1) }] }),
      });
      assert.equal(res.status, 400);
      assert.deepEqual(await res.json(), { error: AMBIGUOUS });
      const ready = await fetch(`${http.url}/v2/models/only_b/ready`);
      assert.equal(ready.status, 200);
    });

    test('an unload by the shared name unloads every model of that name', async () => {
      await engine.unloadModel('m');
      const m = engine.repositoryIndex().filter((e) => e.name === 'm');
      assert.equal(m.length, 2);
      assert.ok(m.every((e) => e.state === 'UNAVAILABLE'), JSON.stringify(m));
      await engine.loadModel('m');
      assert.deepEqual(engine.repositoryIndex().filter((e) => e.name === 'm').map((e) => e.state), ['READY', 'READY'], 'a load reaches both too');
    });
  });
});
