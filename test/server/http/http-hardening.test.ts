/**
 * Two small HTTP hardening classes of issue 15 against a real server:
 *  13a  the exact-integer mark of parseJsonExact cannot be forged: a string
 *       parameter or INT64 data string equal to the mark stays a string;
 *  13c  every error on every route, including the ones fastify or Node's
 *       parser answer before a route runs, has Triton's body {"error": "..."}
 *       with the right status.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { addSubModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';
import { rawHttp } from '../../helpers/raw-http.ts';

/** The mark the parser used for big integers before it was escaped: a client could send it as a string. */
const OLD_MARK = '\u0000switchyard-bigint:';
const BIG = '9007199254740993'; // 2^53 + 1: only exact as a bigint
const MAX_INPUT_SIZE = 64 * 1024;

let root: string;
let fixture: HttpFixture;

before(async () => {
  root = await makeRepository({
    add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel('INT32', 16) } },
    add_sub_64: { config: addSubConfig('add_sub_64', 'dynamic_batching { }').replaceAll('TYPE_INT32', 'TYPE_INT64'), versions: { 1: addSubModel('INT64', 16) } },
  });
  fixture = await startHttp(root, { maxInputSize: MAX_INPUT_SIZE });
});
after(async () => {
  await fixture.close();
  await removeRepository(root);
});

const zeros = Array.from({ length: 16 }, () => '0');
/** An add_sub_64 body written by hand, so that big integers stay literal. */
const int64Body = (input0: readonly string[], parameters = '') =>
  `{${parameters}"inputs":[{"name":"INPUT0","datatype":"INT64","shape":[1,16],"data":[${input0.join(',')}]},`
  + `{"name":"INPUT1","datatype":"INT64","shape":[1,16],"data":[${zeros.join(',')}]}]}`;
const post = (model: string, body: string) =>
  rawHttp(fixture.url, `/v2/models/${model}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

async function assertServes(): Promise<void> {
  const res = await post('add_sub_64', int64Body([BIG, ...zeros.slice(1)]));
  assert.equal(res.status, 200, res.body);
  assert.ok(res.body.includes(`"data":[${BIG},`), 'the big integer comes back exact');
}

describe('the exact-integer mark cannot be forged (13a)', () => {
  test('an INT64 data string equal to the mark is a string, refused as INT64 data', async () => {
    const forged = JSON.stringify(`${OLD_MARK}5`);
    const res = await post('add_sub_64', int64Body([BIG, forged, ...zeros.slice(2)]));
    assert.equal(res.status, 400, res.body);
    assert.deepEqual(Object.keys(JSON.parse(res.body)), ['error']);
    assert.match(JSON.parse(res.body).error, /element 1 of input 'INPUT0' is "\\u0000switchyard-bigint:5", expected an integer in INT64 range/);
    await assertServes();
  });

  test('a string parameter equal to the mark stays a string', async () => {
    // "timeout" must be an integer: a forged bigint would pass, the string it really is does not.
    const res = await post('add_sub_64', int64Body([BIG, ...zeros.slice(1)], `"parameters":{"timeout":${JSON.stringify(`${OLD_MARK}5`)}},`));
    assert.equal(res.status, 400, res.body);
    assert.match(JSON.parse(res.body).error, /invalid value '\u0000switchyard-bigint:5' for the 'timeout' parameter/);
    await assertServes();
  });

  test('strings that start with NUL keep every character, next to real big integers', async () => {
    const { parseJsonExact } = await import('../../../server/http/exact-json.ts');
    const text = `{"a":"\\u0000","b":["\\u0000\\u0000x","${'\\u0000'}switchyard-bigint:7"],"\\u0000k":${BIG},"c":-${BIG}}`;
    assert.deepEqual(parseJsonExact(text), {
      a: '\u0000', b: ['\u0000\u0000x', `${OLD_MARK}7`], '\u0000k': BigInt(BIG), c: -BigInt(BIG),
    });
  });
});

/** Sends raw bytes on a fresh connection and resolves with everything received until the server closes it. */
function rawExchange(bytes: string): Promise<string> {
  const { hostname, port } = new URL(fixture.url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    let text = '';
    socket.on('data', (chunk: Buffer) => { text += chunk.toString('utf8'); });
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
    socket.write(bytes);
  });
}

/** Status and parsed body of a raw HTTP/1.1 response. */
function parseRaw(text: string): { status: number; body: unknown } {
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1]);
  return { status, body: JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) };
}

describe('every error body is {"error": "..."} (13c)', () => {
  const cases: ReadonlyArray<[what: string, method: string, path: string, body: string | undefined, status: number, mentions: RegExp]> = [
    ['unknown route', 'GET', '/v2/nothing/here', undefined, 404, /no route for GET \/v2\/nothing\/here/],
    ['bad method on a known route (Triton: 405)', 'DELETE', '/v2/health/live', undefined, 405, /^Method Not Allowed: DELETE \/v2\/health\/live takes GET$/],
    ['PUT on infer', 'PUT', '/v2/models/add_sub/infer', '{}', 405, /^Method Not Allowed: PUT \/v2\/models\/add_sub\/infer takes POST$/],
    ['GET on infer, with a query', 'GET', '/v2/models/add_sub/infer?x=1', undefined, 405, /takes POST$/],
    ['POST on a model\'s metadata', 'POST', '/v2/models/add_sub/versions/1', '{}', 405, /takes GET$/],
    ['a repository name on load (Triton refuses it)', 'POST', '/v2/repository/main/models/add_sub/load', '{}', 501, /^'repository_name' specification is not supported$/],
    ['a repository name on unload', 'POST', '/v2/repository/main/models/add_sub/unload', '{}', 501, /^'repository_name' specification is not supported$/],
    ['bad percent-encoding', 'GET', '/v2/models/%zz', undefined, 400, /bad request URL \/v2\/models\/%zz/],
    ['malformed JSON', 'POST', '/v2/models/add_sub/infer', '{"inputs": [', 400, /failed to parse the request JSON/],
    ['body too large', 'POST', '/v2/models/add_sub/infer', 'x'.repeat(MAX_INPUT_SIZE + 1), 413, /exceeds the maximum allowed input size of 65536 bytes/],
    ['unknown model', 'POST', '/v2/models/nope/infer', '{}', 404, /unknown model: 'nope'/],
  ];
  for (const [what, method, path, body, status, mentions] of cases) {
    test(`${what}: ${status}`, async () => {
      const res = await rawHttp(fixture.url, path, { method, ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }) });
      assert.equal(res.status, status, res.body);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      const parsed = JSON.parse(res.body) as Record<string, unknown>;
      assert.deepEqual(Object.keys(parsed), ['error'], res.body);
      assert.match(parsed['error'] as string, mentions);
    });
  }

  test('405 says which methods the path takes in an Allow header', async () => {
    const res = await rawHttp(fixture.url, '/v2/logging', { method: 'DELETE' });
    assert.equal(res.status, 405);
    assert.equal(res.headers['allow'], 'GET, POST');
  });

  test('the index ignores a repository name in its path, as Triton does', async () => {
    const named = await rawHttp(fixture.url, '/v2/repository/any-name/index', { method: 'POST', body: '{}' });
    const plain = await rawHttp(fixture.url, '/v2/repository/index', { method: 'POST', body: '{}' });
    assert.equal(named.status, 200, named.body);
    assert.deepEqual(JSON.parse(named.body), JSON.parse(plain.body));
  });

  test('any Content-Type is taken as Triton takes it (no 415)', async () => {
    const res = await rawHttp(fixture.url, '/v2/repository/index', { method: 'POST', headers: { 'content-type': 'text/x-anything' }, body: '{}' });
    assert.equal(res.status, 200, res.body);
  });

  test('a malformed request line is a 400 in Triton\'s shape, before any route', async () => {
    const { status, body } = parseRaw(await rawExchange('NOT AN HTTP REQUEST\r\n\r\n'));
    assert.equal(status, 400);
    assert.deepEqual(Object.keys(body as object), ['error']);
    assert.match((body as { error: string }).error, /malformed HTTP request/);
  });

  test('an oversized request head is a 431 in Triton\'s shape', async () => {
    const { status, body } = parseRaw(await rawExchange(`GET /v2 HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`));
    assert.equal(status, 431);
    assert.deepEqual(body, { error: 'request header fields too large' });
  });

  test('the server answers ordinary requests after all of them', async () => {
    await assertServes();
  });
});
