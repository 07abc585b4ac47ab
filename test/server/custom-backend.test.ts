/**
 * A third-party backend is one object passed in: docs/examples/sum-backend.ts,
 * written against engine/backend.ts only, registered beside the default
 * backends and served over the real HTTP frontend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sumBackend } from '../../docs/examples/sum-backend.ts';
import { defaultBackends } from '../../backends/default-backends.ts';
import { BackendRegistry } from '../../engine/backend-registry.ts';
import { addSubModel } from '../../generator/models.ts';
import { addSubConfig } from '../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startEngine, startHttp, type HttpFixture } from '../helpers/fixture-repository.ts';

const SUM_CONFIG = 'name: "summer"\nbackend: "sum"\n';

async function postJson(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
}

describe('a custom backend registered with the default ones', () => {
  let root: string;
  let fixture: HttpFixture;
  before(async () => {
    root = await makeRepository({
      summer: { config: SUM_CONFIG, versions: { 1: null } },
      add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
    });
    fixture = await startHttp(root, { backends: BackendRegistry.of([...defaultBackends().list(), sumBackend]) });
  });
  after(async () => {
    await fixture?.close();
    await removeRepository(root);
  });

  test('serves an infer over HTTP: SUM is the total of INPUT', async () => {
    const res = await postJson(`${fixture.url}/v2/models/summer/infer`, {
      id: 'r1', inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [4], data: [1, 2, 3, 4.5] }],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body, {
      id: 'r1', model_name: 'summer', model_version: '1',
      outputs: [{ name: 'SUM', datatype: 'FP32', shape: [1], data: [10.5] }],
    });
  });

  test('its config is completed from its signature, and its bad inputs get the engine\'s errors', async () => {
    const config = await (await fetch(`${fixture.url}/v2/models/summer/config`)).json() as Record<string, unknown>;
    assert.equal(config['backend'], 'sum');
    assert.deepEqual((config['input'] as Array<Record<string, unknown>>).map((t) => [t['name'], t['data_type'], t['dims']]), [['INPUT', 'TYPE_FP32', [-1]]]);
    const wrongType = await postJson(`${fixture.url}/v2/models/summer/infer`, { inputs: [{ name: 'INPUT', datatype: 'INT32', shape: [1], data: [1] }] });
    assert.equal(wrongType.status, 400);
    assert.match(String(wrongType.body['error']), /INPUT/);
  });

  test('the default backends serve beside it', async () => {
    const res = await postJson(`${fixture.url}/v2/models/add_sub/infer`, {
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: Array.from({ length: 16 }, (_, i) => i) },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: Array.from({ length: 16 }, () => 1) },
      ],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const outputs = res.body['outputs'] as Array<{ name: string; data: number[] }>;
    assert.deepEqual(outputs.find((o) => o.name === 'OUTPUT0')!.data, Array.from({ length: 16 }, (_, i) => i + 1));
  });
});

test('without the custom backend, its model fails to load with the config error naming the field, and the server serves the rest', async () => {
  const root = await makeRepository({ summer: { config: SUM_CONFIG, versions: { 1: null } } });
  const engine = await startEngine(root);
  try {
    const [failure] = engine.loadFailures();
    assert.equal(failure?.name, 'summer');
    assert.match(failure!.reason, /backend: 'sum' is not a backend this server has/);
    assert.match(failure!.reason, /backend: "onnxruntime" \(or platform: "onnxruntime_onnx"\), backend: "typescript"/);
    assert.equal(engine.isLive(), true);
  } finally {
    await engine.close();
    await removeRepository(root);
  }
});
