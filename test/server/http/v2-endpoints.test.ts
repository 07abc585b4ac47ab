/**
 * The non-infer KServe v2 endpoints over real HTTP: health, server
 * metadata, model metadata, model readiness, model config, and unknown
 * routes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';

const ADD_SUB_CONFIG = addSubConfig('add_sub');

/** Only the batch size: inputs and outputs are completed from the model. */
const AUTO_CONFIG = `
platform: "onnxruntime_onnx"
max_batch_size: 2
`;

/** Same model, no batching: the metadata shape has no -1 batch dim. */
const NO_BATCH_CONFIG = `
name: "add_sub_nobatch"
backend: "onnxruntime"
max_batch_size: 0
input [
  { name: "INPUT0" data_type: TYPE_INT32 dims: [ 1, 16 ] },
  { name: "INPUT1" data_type: TYPE_INT32 dims: [ 1, 16 ] }
]
output [
  { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 1, 16 ] },
  { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 1, 16 ] }
]
`;

async function json(res: Response): Promise<unknown> {
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  return res.json();
}

describe('v2 endpoints', () => {
  let root: string;
  let http: HttpFixture;

  before(async () => {
    const model = addSubModel('INT32', 16);
    root = await makeRepository({
      add_sub: { config: ADD_SUB_CONFIG, versions: { 1: model } },
      add_sub_auto: { config: AUTO_CONFIG, versions: { 1: model } },
      add_sub_nobatch: { config: NO_BATCH_CONFIG, versions: { 1: model } },
    });
    http = await startHttp(root);
  });

  after(async () => {
    await http?.close();
    if (root) await removeRepository(root);
  });

  test('GET /v2/health/live is 200 with an empty body', async () => {
    const res = await fetch(`${http.url}/v2/health/live`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '');
  });

  test('GET /v2/health/ready is 200 with an empty body when every model is ready', async () => {
    const res = await fetch(`${http.url}/v2/health/ready`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '');
  });

  test('GET /v2 gives name, version and exactly the implemented extensions', async () => {
    const res = await fetch(`${http.url}/v2`);
    assert.equal(res.status, 200);
    const body = await json(res) as Record<string, unknown>;
    assert.equal(body['name'], 'switchyard');
    assert.equal(typeof body['version'], 'string');
    assert.match(body['version'] as string, /^\d+\.\d+\.\d+/);
    assert.deepEqual(body['extensions'], [
      'classification', 'sequence', 'model_repository', 'model_repository(unload_dependents)', 'schedule_policy', 'model_configuration',
      'system_shared_memory', 'binary_tensor_data', 'parameters', 'statistics', 'trace', 'logging',
    ]);
  });

  test('GET /v2/models/<model> gives metadata with a -1 batch dim when max_batch_size > 0', async () => {
    const res = await fetch(`${http.url}/v2/models/add_sub`);
    assert.equal(res.status, 200);
    assert.deepEqual(await json(res), {
      name: 'add_sub',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [-1, 16] },
        { name: 'INPUT1', datatype: 'INT32', shape: [-1, 16] },
      ],
      outputs: [
        { name: 'OUTPUT0', datatype: 'INT32', shape: [-1, 16] },
        { name: 'OUTPUT1', datatype: 'INT32', shape: [-1, 16] },
      ],
    });
  });

  test('GET /v2/models/<model>/versions/1 gives the same metadata for that version', async () => {
    const res = await fetch(`${http.url}/v2/models/add_sub/versions/1`);
    assert.equal(res.status, 200);
    const body = await json(res) as Record<string, unknown>;
    assert.equal(body['name'], 'add_sub');
    assert.deepEqual(body['versions'], ['1']);
    assert.deepEqual(body['inputs'], [
      { name: 'INPUT0', datatype: 'INT32', shape: [-1, 16] },
      { name: 'INPUT1', datatype: 'INT32', shape: [-1, 16] },
    ]);
  });

  test('metadata of a model with max_batch_size 0 has no batch dim', async () => {
    const res = await fetch(`${http.url}/v2/models/add_sub_nobatch`);
    assert.equal(res.status, 200);
    const body = await json(res) as Record<string, unknown>;
    assert.deepEqual(body['inputs'], [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16] },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] },
    ]);
  });

  test('metadata of an unknown model is 404 naming the model', async () => {
    const res = await fetch(`${http.url}/v2/models/nope`);
    assert.equal(res.status, 404);
    assert.deepEqual(await json(res), { error: "Request for unknown model: 'nope' is not found" });
  });

  test('metadata of an unknown version is 404 naming the version', async () => {
    const res = await fetch(`${http.url}/v2/models/add_sub/versions/3`);
    assert.equal(res.status, 404);
    assert.deepEqual(await json(res), { error: "Request for unknown model: 'add_sub' version 3 is not found" });
  });

  test('GET /v2/models/<model>/ready is 200 with an empty body', async () => {
    const res = await fetch(`${http.url}/v2/models/add_sub/ready`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '');
    const versioned = await fetch(`${http.url}/v2/models/add_sub/versions/1/ready`);
    assert.equal(versioned.status, 200);
    assert.equal(await versioned.text(), '');
  });

  test('GET /v2/models/<unknown>/ready is 400 "Model version not ready"', async () => {
    const res = await fetch(`${http.url}/v2/models/nope/ready`);
    assert.equal(res.status, 400);
    assert.deepEqual(await json(res), { error: 'Model version not ready' });
  });

  test('GET /v2/models/<model>/versions/<unknown>/ready is 400 "Model version not ready"', async () => {
    const res = await fetch(`${http.url}/v2/models/add_sub/versions/9/ready`);
    assert.equal(res.status, 400);
    assert.deepEqual(await json(res), { error: 'Model version not ready' });
  });

  test('GET /v2/models/<model>/config gives the completed config with snake_case keys', async () => {
    const res = await fetch(`${http.url}/v2/models/add_sub/config`);
    assert.equal(res.status, 200);
    const config = await json(res) as Record<string, unknown>;
    assert.equal(config['name'], 'add_sub');
    assert.equal(config['platform'], 'onnxruntime_onnx');
    assert.equal(config['backend'], 'onnxruntime');
    assert.equal(config['max_batch_size'], 8);
    assert.equal('maxBatchSize' in config, false);
    const inputs = config['input'] as Array<Record<string, unknown>>;
    assert.deepEqual(inputs.map((i) => i['name']), ['INPUT0', 'INPUT1']);
    for (const input of inputs) {
      assert.equal(input['data_type'], 'TYPE_INT32');
      assert.deepEqual(input['dims'], [16]);
      assert.equal(typeof (input['dims'] as unknown[])[0], 'number');
    }
    const outputs = config['output'] as Array<Record<string, unknown>>;
    assert.deepEqual(outputs.map((o) => [o['name'], o['data_type'], o['dims']]), [
      ['OUTPUT0', 'TYPE_INT32', [16]],
      ['OUTPUT1', 'TYPE_INT32', [16]],
    ]);
    assert.equal(config['default_model_filename'], 'model.onnx');
    assert.ok(Array.isArray(config['instance_group']));
    assert.deepEqual(config['version_policy'], { latest: { num_versions: 1 } });
  });

  test('GET .../versions/1/config works too', async () => {
    const res = await fetch(`${http.url}/v2/models/add_sub/versions/1/config`);
    assert.equal(res.status, 200);
    const config = await json(res) as Record<string, unknown>;
    assert.equal(config['name'], 'add_sub');
    assert.equal(config['max_batch_size'], 8);
  });

  test('config completes inputs and outputs the config file left out, and the name', async () => {
    const res = await fetch(`${http.url}/v2/models/add_sub_auto/config`);
    assert.equal(res.status, 200);
    const config = await json(res) as Record<string, unknown>;
    assert.equal(config['name'], 'add_sub_auto');
    assert.equal(config['max_batch_size'], 2);
    const inputs = config['input'] as Array<Record<string, unknown>>;
    assert.deepEqual(inputs.map((i) => [i['name'], i['data_type'], i['dims']]), [
      ['INPUT0', 'TYPE_INT32', [16]],
      ['INPUT1', 'TYPE_INT32', [16]],
    ]);
    const outputs = config['output'] as Array<Record<string, unknown>>;
    assert.deepEqual(outputs.map((o) => [o['name'], o['data_type'], o['dims']]), [
      ['OUTPUT0', 'TYPE_INT32', [16]],
      ['OUTPUT1', 'TYPE_INT32', [16]],
    ]);
    const meta = await (await fetch(`${http.url}/v2/models/add_sub_auto`)).json() as Record<string, unknown>;
    assert.deepEqual(meta['inputs'], [
      { name: 'INPUT0', datatype: 'INT32', shape: [-1, 16] },
      { name: 'INPUT1', datatype: 'INT32', shape: [-1, 16] },
    ]);
  });

  test('config of an unknown model is 404', async () => {
    const res = await fetch(`${http.url}/v2/models/nope/config`);
    assert.equal(res.status, 404);
    assert.deepEqual(await json(res), { error: "Request for unknown model: 'nope' is not found" });
  });

  test('a non-numeric version is 400 naming the version', async () => {
    const res = await fetch(`${http.url}/v2/models/add_sub/versions/latest/config`);
    assert.equal(res.status, 400);
    const body = await json(res) as { error: string };
    assert.match(body.error, /^failed to get model version from specified version string 'latest' .*version should be an integral value > 0 \(model 'add_sub'\)$/);
  });

  test('an unknown route is 404 with a JSON error', async () => {
    const res = await fetch(`${http.url}/v2/nothing/here`);
    assert.equal(res.status, 404);
    const body = await json(res) as { error: string };
    assert.equal(typeof body.error, 'string');
    assert.match(body.error, /GET \/v2\/nothing\/here/);
  });

  test('a known path with the wrong method is 405 with a JSON error, as Triton answers it', async () => {
    const res = await fetch(`${http.url}/v2/models/add_sub/infer`);
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'POST');
    const body = await json(res) as { error: string };
    assert.match(body.error, /^Method Not Allowed: GET \/v2\/models\/add_sub\/infer takes POST$/);
  });
});

describe('v2 health with a model that failed to load', () => {
  let root: string;
  let http: HttpFixture;

  before(async () => {
    root = await makeRepository({
      add_sub: { config: ADD_SUB_CONFIG, versions: { 1: addSubModel('INT32', 16) } },
      // A config that names a backend this server does not have: the model fails to load.
      broken: { config: 'backend: "tensorflow"\nmax_batch_size: 1\n', versions: { 1: null } },
    });
    http = await startHttp(root, { strictReadiness: true });
  });

  after(async () => {
    await http?.close();
    if (root) await removeRepository(root);
  });

  test('live is still 200', async () => {
    const res = await fetch(`${http.url}/v2/health/live`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '');
  });

  test('ready is 400 with an empty body under strict readiness', async () => {
    const res = await fetch(`${http.url}/v2/health/ready`);
    assert.equal(res.status, 400);
    assert.equal(await res.text(), '');
  });

  test('the failed model is not ready but the good one is', async () => {
    const broken = await fetch(`${http.url}/v2/models/broken/ready`);
    assert.equal(broken.status, 400);
    assert.deepEqual(await broken.json(), { error: 'Model version not ready' });
    const good = await fetch(`${http.url}/v2/models/add_sub/ready`);
    assert.equal(good.status, 200);
  });

  test('metadata of the failed model is 404 with the load failure reason', async () => {
    const res = await fetch(`${http.url}/v2/models/broken`);
    assert.equal(res.status, 404);
    const body = await res.json() as { error: string };
    assert.match(body.error, /^Request for unknown model: 'broken' has no available versions/);
    assert.match(body.error, /tensorflow/);
  });
});

describe('v2 health without strict readiness', () => {
  let root: string;
  let http: HttpFixture;

  before(async () => {
    root = await makeRepository({
      broken: { config: 'backend: "tensorflow"\n', versions: { 1: null } },
    });
    http = await startHttp(root, { strictReadiness: false });
  });

  after(async () => {
    await http?.close();
    if (root) await removeRepository(root);
  });

  test('ready is 200 even though a model failed', async () => {
    const res = await fetch(`${http.url}/v2/health/ready`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '');
  });
});
