/**
 * Model control over real HTTP, in explicit mode: the index lists models not
 * loaded yet, load takes the repository's files or the config and files the
 * request carries (Triton's parameters.config and file:<path>), a failed
 * reload keeps the loaded version serving, unload honours
 * unload_dependents, and a reload under traffic loses no request.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { after, before, describe, test } from 'node:test';
import { addSubModel, subAddModel } from '../../../generator/models.ts';
import { chainEnsemble } from '../../helpers/ensemble-fixtures.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';
import { pollFor } from '../../helpers/wait.ts';

/** add_sub's config as Triton's JSON, for parameters.config. */
function addSubJson(name: string, extra: Record<string, unknown> = {}): string {
  const io = (n: string) => ({ name: n, data_type: 'TYPE_INT32', dims: [16] });
  return JSON.stringify({
    name, platform: 'onnxruntime_onnx', max_batch_size: 8,
    input: [io('INPUT0'), io('INPUT1')], output: [io('OUTPUT0'), io('OUTPUT1')], ...extra,
  });
}

const A = Array.from({ length: 16 }, (_, i) => i + 10);
const B = Array.from({ length: 16 }, () => 3);
const SUM = A.map((a, i) => a + B[i]!);
const DIFF = A.map((a, i) => a - B[i]!);

interface IndexEntry { name: string; version: string; state: string; reason: string }

describe('model control over HTTP (explicit mode)', () => {
  let root: string;
  let fixture: HttpFixture;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } },
      other: { config: addSubConfig('other'), versions: { 1: addSubModel() } },
      twice: { config: chainEnsemble('add_sub', 'add_sub'), versions: { 1: null } },
    });
    fixture = await startHttp(root, { modelControlMode: 'explicit', startupModels: ['add_sub'] });
  });

  after(async () => {
    await fixture.close();
    await removeRepository(root);
  });

  const post = (path: string, body?: unknown): Promise<Response> => fetch(`${fixture.url}${path}`, {
    method: 'POST', ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    headers: { 'content-type': 'application/json' },
  });
  const index = async (): Promise<IndexEntry[]> => await (await post('/v2/repository/index')).json() as IndexEntry[];
  const infer = async (model: string, a = A, b = B): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await post(`/v2/models/${model}/infer`, {
      inputs: [
        { name: model === 'twice' ? 'A' : 'INPUT0', datatype: 'INT32', shape: [1, 16], data: a },
        { name: model === 'twice' ? 'B' : 'INPUT1', datatype: 'INT32', shape: [1, 16], data: b },
      ],
    });
    return { status: res.status, body: await res.json() as Record<string, unknown> };
  };
  const first = (body: Record<string, unknown>): number[] => (body['outputs'] as Array<{ data: number[] }>)[0]!.data;
  const errorOf = async (res: Response): Promise<string> => ((await res.json()) as { error: string }).error;

  test('only --load-model models load; the index lists the others as not loaded, and readiness ignores them', async () => {
    assert.deepEqual(await index(), [
      { name: 'add_sub', version: '1', state: 'READY', reason: '' },
      { name: 'other', version: '', state: 'UNAVAILABLE', reason: 'not loaded' },
      { name: 'twice', version: '', state: 'UNAVAILABLE', reason: 'not loaded' },
    ]);
    assert.deepEqual(await (await post('/v2/repository/index', { ready: true })).json(), [{ name: 'add_sub', version: '1', state: 'READY', reason: '' }]);
    assert.equal((await fetch(`${fixture.url}/v2/health/ready`)).status, 200);
    assert.equal((await infer('other')).status, 404);
  });

  test('GET /v2 lists the model_repository extensions', async () => {
    const meta = await (await fetch(`${fixture.url}/v2`)).json() as { extensions: string[] };
    assert.ok(meta.extensions.includes('model_repository'));
    assert.ok(meta.extensions.includes('model_repository(unload_dependents)'));
  });

  test('load from the repository: the model serves, an ensemble loads with its members', async () => {
    assert.equal((await post('/v2/repository/models/other/load')).status, 200);
    assert.deepEqual(first((await infer('other')).body), SUM);
    assert.equal((await post('/v2/repository/models/twice/load', {})).status, 200);
    assert.deepEqual(first((await infer('twice')).body), A.map((a) => 2 * a));
  });

  test('parameters.config replaces the repository config: the new config serves', async () => {
    const res = await post('/v2/repository/models/other/load', { parameters: { config: addSubJson('other', { max_batch_size: 4 }) } });
    assert.equal(res.status, 200, await res.clone().text());
    const config = await (await fetch(`${fixture.url}/v2/models/other/config`)).json() as { max_batch_size: number };
    assert.equal(config.max_batch_size, 4);
    assert.deepEqual(first((await infer('other')).body), SUM);
  });

  test('file: overrides load a model the repository does not have, from the request alone', async () => {
    const res = await post('/v2/repository/models/uploaded/load', {
      parameters: { config: addSubJson('uploaded'), 'file:1/model.onnx': Buffer.from(subAddModel()).toString('base64') },
    });
    assert.equal(res.status, 200, await res.clone().text());
    assert.deepEqual(first((await infer('uploaded')).body), DIFF);
    const entry = (await index()).find((e) => e.name === 'uploaded');
    assert.deepEqual(entry, { name: 'uploaded', version: '1', state: 'READY', reason: '' });
  });

  test('a reload from files swaps the answers; the override folder of the old one is removed', async () => {
    const before = (await readdir(tmpdir())).filter((n) => n.startsWith('switchyard-uploaded-'));
    assert.equal(before.length, 1);
    const res = await post('/v2/repository/models/uploaded/load', {
      parameters: { config: addSubJson('uploaded'), 'file:1/model.onnx': Buffer.from(addSubModel()).toString('base64') },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(first((await infer('uploaded')).body), SUM);
    // The old version's folder goes once that version has closed, just after the swap: wait for it to go.
    let now: string[] = [];
    await pollFor('the old override folder to be removed', 10_000, async () => {
      now = (await readdir(tmpdir())).filter((n) => n.startsWith('switchyard-uploaded-'));
      return !now.includes(before[0]!);
    }, () => `override folders now: ${JSON.stringify(now)}`, 10);
    assert.equal(now.length, 1);
    assert.notEqual(now[0], before[0]);
  });

  test('a failed reload keeps the loaded version serving, and the index says why', async () => {
    const res = await post('/v2/repository/models/add_sub/load', { parameters: { config: addSubJson('add_sub', { max_batch_sise: 4 }) } });
    assert.equal(res.status, 400);
    assert.match(await errorOf(res), /^failed to load 'add_sub': parameters\.config of the load request for 'add_sub'.*max_batch_sise.*did you mean 'max_batch_size'/);
    assert.deepEqual(first((await infer('add_sub')).body), SUM);
    const entry = (await index()).find((e) => e.name === 'add_sub')!;
    assert.equal(entry.state, 'READY');
    assert.match(entry.reason, /^a new load failed and the previous one keeps serving: .*max_batch_sise/);
    // A good load clears the notice.
    assert.equal((await post('/v2/repository/models/add_sub/load')).status, 200);
    assert.equal((await index()).find((e) => e.name === 'add_sub')!.reason, '');
  });

  test('bad load requests get 400 naming the parameter, and nothing changes', async () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['uploaded', { parameters: { 'file:1/model.onnx': 'AAAA' } }, /file overrides need the model config too/],
      ['uploaded', { parameters: { config: addSubJson('uploaded'), 'file:1/model.onnx': 'not base64!' } }, /'parameters\.file:1\/model\.onnx'.*base64/],
      ['uploaded', { parameters: { config: addSubJson('uploaded'), 'file:../escape.onnx': 'AAAA' } }, /file:\.\.\/escape\.onnx' contains '\.\.'/],
      ['uploaded', { parameters: { config: addSubJson('uploaded'), 'file:/etc/x': 'AAAA' } }, /file:\/etc\/x.*relative/],
      ['uploaded', { parameters: { config: '{not json' } }, /parameters\.config of the load request for 'uploaded': not valid JSON/],
      ['uploaded', { parameters: { config: '[1]' } }, /must be a JSON object/],
      ['uploaded', { parameters: { config: 7 } }, /'parameters\.config'.*JSON string/],
      ['uploaded', { parameters: { cofnig: '{}' } }, /'parameters\.cofnig': not a load parameter/],
      ['uploaded', { parameters: 'x' }, /'parameters'/],
      ['uploaded', '{"parameters": ', /failed to parse the request JSON/],
      ['nope', undefined, /^failed to load 'nope': no folder named 'nope'/],
      ['other', { parameters: { config: addSubJson('someone_else') } }, /name.*'someone_else' but the model's folder is 'other'/],
    ];
    for (const [model, body, message] of cases) {
      const res = await post(`/v2/repository/models/${model}/load`, body);
      assert.equal(res.status, 400, `${JSON.stringify(body)}`);
      assert.match(await errorOf(res), message);
    }
    assert.deepEqual(first((await infer('uploaded')).body), SUM, 'the loaded model still serves');
    assert.equal((await index()).find((e) => e.name === 'nope'), undefined, 'a failed load of an unknown name leaves no entry behind');
  });

  test('model names that could leave the repository are refused', async () => {
    // fetch() resolves '..' and '%2e%2e' segments itself, so these encoded forms are what reaches a server.
    for (const name of ['a%2Fb', '..%2Fetc', '%2Fetc', 'a%5Cb', '..x']) {
      const res = await post(`/v2/repository/models/${name}/load`);
      assert.equal(res.status, 400, name);
      assert.match(await errorOf(res), /invalid model name/);
    }
  });

  test('unload without unload_dependents leaves the ensemble loaded; its step names the missing member', async () => {
    assert.equal((await post('/v2/repository/models/add_sub/unload')).status, 200);
    const rows = await index();
    assert.deepEqual(rows.find((e) => e.name === 'add_sub'), { name: 'add_sub', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' });
    assert.equal(rows.find((e) => e.name === 'twice')?.state, 'READY');
    const res = await infer('twice');
    assert.equal(res.status, 404);
    assert.match(String(res.body['error']), /^ensemble 'twice' step 1 \('add_sub'\) failed: .*'add_sub'/);
    assert.equal((await fetch(`${fixture.url}/v2/health/ready`)).status, 200, 'an unloaded model no longer counts for readiness');
  });

  test('unload with unload_dependents takes the ensembles along, naming the member', async () => {
    assert.equal((await post('/v2/repository/models/add_sub/load')).status, 200);
    assert.equal((await infer('twice')).status, 200);
    const res = await post('/v2/repository/models/add_sub/unload', { parameters: { unload_dependents: true } });
    assert.equal(res.status, 200);
    const twice = (await index()).find((e) => e.name === 'twice');
    assert.deepEqual(twice, { name: 'twice', version: '1', state: 'UNAVAILABLE', reason: "member model 'add_sub' was unloaded" });
    const bad = await post('/v2/repository/models/add_sub/unload', { parameters: { unload_dependents: 'yes' } });
    assert.equal(bad.status, 400);
    assert.match(await errorOf(bad), /'parameters\.unload_dependents': expected true or false/);
    const unknown = await post('/v2/repository/models/nope/unload');
    assert.equal(unknown.status, 404);
  });

  test('a reload under traffic loses no request: every answer is the old model\'s or the new one\'s', async () => {
    assert.equal((await post('/v2/repository/models/add_sub/load')).status, 200);
    let stop = false;
    const seen = { old: 0, new: 0, errors: [] as string[] };
    const client = async (): Promise<void> => {
      while (!stop) {
        const { status, body } = await infer('add_sub');
        if (status !== 200) seen.errors.push(`${status} ${JSON.stringify(body)}`);
        else if (JSON.stringify(first(body)) === JSON.stringify(SUM)) seen.old++;
        else if (JSON.stringify(first(body)) === JSON.stringify(DIFF)) seen.new++;
        else seen.errors.push(`unexpected answer ${JSON.stringify(body)}`);
      }
    };
    const clients = Array.from({ length: 16 }, client);
    const answered = (): number => seen.old + seen.new + seen.errors.length;
    // Traffic on each version in turn: wait for the clients to get 32 more answers before and after each load.
    const moreAnswers = async (what: string): Promise<void> => {
      const from = answered();
      await pollFor(`32 more answers ${what}`, 20_000, () => answered() >= from + 32, () => JSON.stringify(seen), 5);
    };
    await moreAnswers('before the first reload');
    const files = (model: Uint8Array) => ({ parameters: { config: addSubJson('add_sub'), 'file:1/model.onnx': Buffer.from(model).toString('base64') } });
    for (const model of [subAddModel(), addSubModel(), subAddModel()]) {
      const res = await post('/v2/repository/models/add_sub/load', files(model));
      assert.equal(res.status, 200);
      await moreAnswers('after a reload');
    }
    stop = true;
    await Promise.all(clients);
    assert.deepEqual(seen.errors, []);
    assert.ok(seen.old > 0 && seen.new > 0, JSON.stringify(seen));
    assert.deepEqual(first((await infer('add_sub')).body), DIFF, 'the last load serves');
  });
});

describe('model control refused outside explicit mode', () => {
  let root: string;
  before(async () => {
    root = await makeRepository({ add_sub: { config: addSubConfig(), versions: { 1: addSubModel() } } });
  });
  after(async () => removeRepository(root));

  for (const mode of ['none', 'poll'] as const) {
    test(`mode '${mode}': load and unload get 503 with Triton's wording, and the model keeps serving`, async () => {
      const fixture = await startHttp(root, { modelControlMode: mode, repositoryPollSecs: 0 });
      try {
        for (const action of ['load', 'unload']) {
          const res = await fetch(`${fixture.url}/v2/repository/models/add_sub/${action}`, { method: 'POST' });
          assert.equal(res.status, 503);
          const { error } = await res.json() as { error: string };
          assert.match(error, /^explicit model load \/ unload is not allowed if polling is enabled/);
          assert.ok(error.includes(`model control mode '${mode}'`));
        }
        assert.equal((await fetch(`${fixture.url}/v2/models/add_sub/ready`)).status, 200);
      } finally {
        await fixture.close();
      }
    });
  }
});
