/**
 * HTTP-only bad requests whose error texts Triton's own tests match on
 * (qa/L0_http/http_test.py): JSON `data` nested past 100 levels, in the
 * server thread and in a JSON codec process; a repository index whose
 * `ready` is not a boolean, even nested 250000 levels deep; a load whose
 * `file:` parameter names a path component longer than NAME_MAX; and a
 * JSON body over --http-max-input-size. Each answer is checked for Triton's
 * words and our status, and the server is checked to keep serving.
 * (The cases both protocols share are in test/parity/http-grpc-parity.test.ts.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { addSubModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';

const MAX_INPUT_SIZE = 1 << 20;
const A = Array.from({ length: 16 }, (_, i) => i);

/** add_sub's infer body with INPUT0's 16 values wrapped in `depth` arrays in all (the outer `data` array included). */
function nestedBody(depth: number): string {
  const data = '['.repeat(depth - 1) + JSON.stringify(A) + ']'.repeat(depth - 1);
  return `{"inputs":[{"name":"INPUT0","datatype":"INT32","shape":[1,16],"data":${data}},`
    + `{"name":"INPUT1","datatype":"INT32","shape":[1,16],"data":${JSON.stringify(A)}}]}`;
}

async function post(url: string, body: string): Promise<{ status: number; error: string | undefined }> {
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  const json = await res.json() as { error?: string };
  return { status: res.status, error: json.error };
}

for (const [where, jsonCodec] of [['in the server thread', { minBytes: Number.MAX_SAFE_INTEGER }], ['in a JSON codec process', { minBytes: 0, processes: 1 }]] as const) {
  describe(`Triton's error texts over HTTP, bodies decoded ${where}`, () => {
    let root: string;
    let http: HttpFixture;

    before(async () => {
      root = await makeRepository({ add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel() } } });
      http = await startHttp(root, { maxInputSize: MAX_INPUT_SIZE, modelControlMode: 'explicit', startupModels: ['add_sub'], jsonCodec });
    });

    after(async () => {
      await http.close();
      await removeRepository(root);
    });

    test('JSON data nested 100 levels is read; 101 levels is 400 "JSON nesting depth exceeds maximum allowed limit (100)"', async () => {
      assert.equal((await post(`${http.url}/v2/models/add_sub/infer`, nestedBody(100))).status, 200);
      const refused = await post(`${http.url}/v2/models/add_sub/infer`, nestedBody(101));
      assert.equal(refused.status, 400);
      assert.equal(refused.error, "Unable to parse 'data': input 'INPUT0': JSON nesting depth exceeds maximum allowed limit (100)");
    });

    test('BYTES data nested 120 levels is refused the same way', async () => {
      const body = `{"inputs":[{"name":"X","datatype":"BYTES","shape":[1,1],"data":${'['.repeat(120)}"hello"${']'.repeat(120)}}]}`;
      const refused = await post(`${http.url}/v2/models/add_sub/infer`, body);
      assert.equal(refused.status, 400);
      assert.match(refused.error ?? '', /JSON nesting depth exceeds maximum allowed limit \(100\)/);
    });

    test('the repository index with a `ready` that is not a boolean is 400 in Triton\'s words; nested past 100 levels, 400 for the nesting', async () => {
      for (const ready of ['"yes"', '1', '[[true]]', `${'['.repeat(98)}true${']'.repeat(98)}`]) {
        const refused = await post(`${http.url}/v2/repository/index`, `{"ready":${ready}}`);
        assert.deepEqual(refused, { status: 400, error: "Invalid value for 'ready': expected a boolean" }, ready.slice(0, 10));
      }
      // Triton's own test nests 250000 levels and gets the 'ready' message; every control body here is bounded at 100 levels first.
      for (const depth of [100, 250_000]) {
        const deep = await post(`${http.url}/v2/repository/index`, `{"ready":${'['.repeat(depth)}true${']'.repeat(depth)}}`);
        assert.deepEqual(deep, { status: 400, error: 'JSON nesting depth exceeds maximum allowed limit (100) in the request body' }, String(depth));
      }
      assert.equal((await fetch(`${http.url}/v2/health/live`)).status, 200);
    });

    test('a load whose file: parameter has a 256-byte path component is refused before any file is written, and the model keeps serving', async () => {
      const name = `file:1/${'A'.repeat(256)}`;
      const res = await fetch(`${http.url}/v2/repository/models/add_sub/load`, {
        method: 'POST', body: JSON.stringify({ parameters: { [name]: 'YQ==', config: '{}' } }),
      });
      const error = (await res.json() as { error: string }).error;
      assert.equal(res.status, 400);
      assert.match(error, /failed to poll from model repository: the file name 'A{256}' is 256 bytes, past the 255-byte limit of one path component \(NAME_MAX\)$/);
      assert.equal((await fetch(`${http.url}/v2/models/add_sub/ready`)).status, 200);
      // 255 bytes is a valid name: the load goes on and fails later, for the empty config.
      const atLimit = await fetch(`${http.url}/v2/repository/models/add_sub/load`, {
        method: 'POST', body: JSON.stringify({ parameters: { [`file:1/${'A'.repeat(255)}`]: 'YQ==', config: '{}' } }),
      });
      assert.doesNotMatch((await atLimit.json() as { error: string }).error, /NAME_MAX/);
    });

    test('a JSON body over --http-max-input-size is 413 with Triton\'s words', async () => {
      const body = JSON.stringify({ inputs: [], pad: 'x'.repeat(MAX_INPUT_SIZE) });
      const refused = await post(`${http.url}/v2/models/add_sub/infer`, body);
      assert.deepEqual(refused, {
        status: 413,
        error: `request JSON size of ${Buffer.byteLength(body)} bytes exceeds the maximum allowed input size of ${MAX_INPUT_SIZE} bytes. Use --http-max-input-size to increase the limit.`,
      });
    });
  });
}
