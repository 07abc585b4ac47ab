/**
 * The repository and statistics routes over real HTTP: the index (all or
 * ready only), statistics, and load and unload, which model control mode
 * 'none' refuses with Triton's wording. Bad bodies get 400. The statistics
 * themselves are tested in test/server/statistics.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';

describe('HTTP repository and statistics routes', () => {
  let root: string;
  let fixture: HttpFixture;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } },
      broken: { config: 'name: "broken"\nplatform: "onnxruntime_onnx"\n', versions: { 1: new Uint8Array([7]) } },
    });
    fixture = await startHttp(root, { strictReadiness: false });
  });

  after(async () => {
    await fixture.close();
    await removeRepository(root);
  });

  const post = (path: string, body?: string): Promise<Response> =>
    fetch(`${fixture.url}${path}`, { method: 'POST', ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }) });

  test('POST /v2/repository/index lists every model version with state and reason', async () => {
    const res = await post('/v2/repository/index');
    assert.equal(res.status, 200);
    const index = await res.json() as { name: string; version: string; state: string; reason: string }[];
    const byName = new Map(index.map((e) => [e.name, e]));
    assert.deepEqual(byName.get('add_sub'), { name: 'add_sub', version: '1', state: 'READY', reason: '' });
    assert.equal(byName.get('broken')?.state, 'UNAVAILABLE');
    assert.ok(byName.get('broken')!.reason.length > 0);
  });

  test('{"ready": true} keeps only ready versions', async () => {
    const index = await (await post('/v2/repository/index', '{"ready":true}')).json() as { name: string }[];
    assert.deepEqual(index.map((e) => e.name), ['add_sub']);
  });

  test('bad index bodies get 400 naming the problem, and the server keeps serving', async () => {
    const malformed = await post('/v2/repository/index', '{"ready":');
    assert.equal(malformed.status, 400);
    assert.match((await malformed.json() as { error: string }).error, /failed to parse the request JSON buffer/);
    const wrongType = await post('/v2/repository/index', '{"ready":"yes"}');
    assert.equal(wrongType.status, 400);
    assert.equal((await wrongType.json() as { error: string }).error, "Invalid value for 'ready': expected a boolean");
    const notObject = await post('/v2/repository/index', '[1]');
    assert.equal(notObject.status, 400);
    assert.equal((await post('/v2/repository/index')).status, 200);
  });

  test('load and unload are refused (503, Triton\'s wording) in model control mode none; a bad parameters field is 400 first', async () => {
    for (const action of ['load', 'unload']) {
      const res = await post(`/v2/repository/models/add_sub/${action}`);
      assert.equal(res.status, 503, action);
      assert.match((await res.json() as { error: string }).error, /^explicit model load \/ unload is not allowed.*--model-control-mode=explicit/);
      const bad = await post(`/v2/repository/models/add_sub/${action}`, '{"parameters": 3}');
      assert.equal(bad.status, 400);
      assert.equal((await bad.json() as { error: string }).error, "Unable to parse 'parameters': expected an object");
    }
  });

  test('statistics routes answer 200 with model_stats; a model that failed to load is left out, and asked for by name is 400 in Triton\'s words', async () => {
    const all = await fetch(`${fixture.url}/v2/models/stats`);
    assert.equal(all.status, 200);
    assert.match(all.headers.get('content-type') ?? '', /^application\/json/);
    const listed = (await all.json() as { model_stats: { name: string; version: string }[] }).model_stats;
    assert.deepEqual(listed.map((e) => [e.name, e.version]), [['add_sub', '1']]);
    for (const path of ['/v2/models/add_sub/stats', '/v2/models/add_sub/versions/1/stats']) {
      const res = await fetch(`${fixture.url}${path}`);
      assert.equal(res.status, 200, path);
      assert.deepEqual((await res.json() as { model_stats: { name: string }[] }).model_stats.map((e) => e.name), ['add_sub'], path);
    }
    const broken = await fetch(`${fixture.url}/v2/models/broken/stats`);
    assert.equal(broken.status, 400);
    assert.deepEqual(await broken.json(), { error: "requested model 'broken' is not available" });
  });
});

// Load, reload and unload in explicit mode (parameters, unload_dependents) are tested in model-control.test.ts.
