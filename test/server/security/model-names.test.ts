/**
 * Model names that could reach outside the model repository are refused
 * with 400 / INVALID_ARGUMENT by every route and RPC that takes one, in
 * every spelling a client can send: raw, percent-encoded, with NUL, with
 * either slash, absolute. checkModelName itself is tested first.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { addSubModel } from '../../../generator/models.ts';
import { checkModelName } from '../../../engine/repository/model-name.ts';
import { isSwitchyardError } from '../../../engine/errors.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../../helpers/fixture-repository.ts';
import { RawGrpcClient } from '../../helpers/grpc-raw-client.ts';
import { rawHttp } from '../../helpers/raw-http.ts';

const BAD: ReadonlyArray<readonly [name: string, why: RegExp]> = [
  ['..', /contains '\.\.'/],
  ['../secret', /contains '\/'/],
  ['a/b', /contains '\/'/],
  ['a\\b', /contains '\\'/],
  ['..\\..\\windows', /contains '\\'/],
  ['/etc/passwd', /absolute path/],
  ['\\\\server\\share', /absolute path/],
  ['C:model', /absolute path/],
  ['add_sub\0', /NUL/],
  ['x..y', /contains '\.\.'/],
  ['.', /repository folder itself/],
];

describe('checkModelName', () => {
  test('plain names pass, including dots, dashes and the empty name (left to the lookup)', () => {
    for (const name of ['add_sub', 'model.v2', 'a-b_c', 'ünïcode', '.hidden', '']) assert.doesNotThrow(() => checkModelName(name), name);
  });

  test('each unsafe name is refused as INVALID_ARG, naming the source and the reason', () => {
    for (const [name, why] of BAD) {
      assert.throws(() => checkModelName(name, "field 'model_name'"), (err: unknown) => {
        assert.ok(isSwitchyardError(err));
        assert.equal(err.code, 'INVALID_MODEL_NAME');
        assert.equal(err.httpStatus, 400);
        assert.equal(err.grpcCode, 3);
        assert.match(err.message, new RegExp(`^invalid model name ${escape(JSON.stringify(name))} in field 'model_name': `));
        assert.match(err.message, why);
        assert.ok(!err.message.includes('\0'), 'a NUL is shown escaped');
        return true;
      }, name);
    }
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('model names over HTTP and gRPC', () => {
  let root: string;
  let fixture: DualFixture;
  let client: RawGrpcClient;

  before(async () => {
    root = await makeRepository({ add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel('INT32', 16) } } });
    fixture = await startBoth(root, { modelControlMode: 'explicit' });
    client = new RawGrpcClient(fixture.grpcAddress);
  });
  after(async () => {
    client.close();
    await fixture.close();
    await removeRepository(root);
  });

  /** How each bad name is spelt in a URL path segment, with the name the server decodes. */
  const SPELLINGS: ReadonlyArray<readonly [segment: string, decoded: string]> = [
    ['..', '..'],
    ['%2e%2e', '..'],
    ['%2E%2E', '..'],
    ['.%2e', '..'],
    ['..%2Fsecret', '../secret'],
    ['..%2fsecret', '../secret'],
    ['%2Fetc%2Fpasswd', '/etc/passwd'],
    ['a%5Cb', 'a\\b'],
    ['..%5C..%5Cwindows', '..\\..\\windows'],
    ['add_sub%00', 'add_sub\0'],
    ['x..y', 'x..y'],
    ['.', '.'],
  ];

  const ROUTES: ReadonlyArray<readonly [method: string, path: (model: string) => string]> = [
    ['GET', (m) => `/v2/models/${m}`],
    ['GET', (m) => `/v2/models/${m}/versions/1`],
    ['GET', (m) => `/v2/models/${m}/ready`],
    ['GET', (m) => `/v2/models/${m}/config`],
    ['GET', (m) => `/v2/models/${m}/versions/1/config`],
    ['GET', (m) => `/v2/models/${m}/stats`],
    ['POST', (m) => `/v2/models/${m}/infer`],
    ['POST', (m) => `/v2/models/${m}/versions/1/infer`],
    ['POST', (m) => `/v2/models/${m}/generate`],
    ['POST', (m) => `/v2/models/${m}/generate_stream`],
    ['POST', (m) => `/v2/repository/models/${m}/load`],
    ['POST', (m) => `/v2/repository/models/${m}/unload`],
  ];

  test('HTTP: every route refuses every spelling with 400, naming the URL path and the decoded name', async () => {
    for (const [method, path] of ROUTES) {
      for (const [segment, decoded] of SPELLINGS) {
        const res = await rawHttp(fixture.httpUrl, path(segment), { method, ...(method === 'POST' ? { body: '{}' } : {}) });
        const what = `${method} ${path(segment)}`;
        assert.equal(res.status, 400, `${what}: ${res.body}`);
        const { error } = JSON.parse(res.body) as { error: string };
        assert.ok(error.startsWith(`invalid model name ${JSON.stringify(decoded)} in the URL path: `), `${what}: ${error}`);
      }
    }
  });

  test('HTTP: nothing was loaded or unloaded, and good names still work', async () => {
    assert.equal((await rawHttp(fixture.httpUrl, '/v2/models/add_sub/ready')).status, 200);
    const index = JSON.parse((await rawHttp(fixture.httpUrl, '/v2/repository/index', { method: 'POST', body: '' })).body) as Array<{ name: string; state: string }>;
    assert.deepEqual(index.map((e) => [e.name, e.state]), [['add_sub', 'READY']]);
  });

  test('gRPC: every RPC taking a model name refuses each bad name with INVALID_ARGUMENT, naming the field', async () => {
    const rpcs: ReadonlyArray<readonly [rpc: string, field: 'name' | 'model_name']> = [
      ['ModelReady', 'name'], ['ModelMetadata', 'name'], ['ModelConfig', 'name'], ['ModelStatistics', 'name'],
      ['ModelInfer', 'model_name'], ['RepositoryModelLoad', 'model_name'], ['RepositoryModelUnload', 'model_name'],
    ];
    for (const [rpc, field] of rpcs) {
      for (const [name, why] of BAD) {
        const { error } = await client.call(rpc, { [field]: name });
        assert.equal(error?.code, grpc.status.INVALID_ARGUMENT, `${rpc} ${JSON.stringify(name)}`);
        assert.ok(error.details.startsWith(`invalid model name ${JSON.stringify(name)} in field '${field}': `), error.details);
        assert.match(error.details, why);
      }
    }
    assert.equal((await client.call('ModelReady', { name: 'add_sub' })).response!['ready'], true);
  });

  test('gRPC: ModelStreamInfer answers a bad name in the request\'s error_message and the stream goes on', async () => {
    const replies = await client.streamAll([{ model_name: '../add_sub', id: 'bad' }, { model_name: 'add_sub', id: 'good' }]);
    assert.equal(replies.length, 2);
    assert.equal(replies[0]!['infer_response']['id'], 'bad');
    assert.match(replies[0]!['error_message'], /^invalid model name "\.\.\/add_sub" in field 'model_name': it contains '\/'/);
    assert.equal(replies[1]!['infer_response']['id'], 'good');
    assert.doesNotMatch(replies[1]!['error_message'], /invalid model name/);
  });
});
