/**
 * Hostile compressed infer bodies: decompression bombs stop at the body
 * limit with 413 and bounded memory, corrupt or truncated streams are 400,
 * unknown encodings get Triton's answer, and the server serves afterwards.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { addSubModel } from '../../../generator/models.ts';
import { inflatedBody } from '../../../server/http/request-decompression.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';
import { rawHttp } from '../../helpers/raw-http.ts';

const LIMIT = 1024 * 1024;
const GOOD = JSON.stringify({
  inputs: [
    { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: new Array(16).fill(1) },
    { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: new Array(16).fill(2) },
  ],
});

describe('compressed body attacks', () => {
  let root: string;
  let http: HttpFixture;

  before(async () => {
    root = await makeRepository({ add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel('INT32', 16) } } });
    http = await startHttp(root, { maxInputSize: LIMIT });
  });

  after(async () => {
    await http.close();
    await removeRepository(root);
  });

  const post = (body: Buffer | string, headers: Record<string, string>) =>
    rawHttp(http.url, '/v2/models/add_sub/infer', { method: 'POST', headers, body });

  async function assertServes(): Promise<void> {
    const res = await post(GOOD, {});
    assert.equal(res.status, 200, res.body);
  }

  test('a 10 KB gzip body that inflates past the limit is 413 with the usual message', async () => {
    const bomb = gzipSync(Buffer.alloc(10 * LIMIT));
    assert.ok(bomb.byteLength < 12 * 1024, `the bomb is ${bomb.byteLength} bytes`);
    const res = await post(bomb, { 'content-encoding': 'gzip' });
    assert.equal(res.status, 413);
    assert.equal(JSON.parse(res.body).error, `decompressed request size exceeds the maximum allowed input size of ${LIMIT} bytes. Use --http-max-input-size to increase the limit.`);
    await assertServes();
  });

  test('a 1 MB bomb of 1 GiB stops inflating at the limit: memory and time stay bounded', async () => {
    // 64 gzip members of 16 MiB of zeros each: one member compresses to about 16 KB.
    const member = gzipSync(Buffer.alloc(16 * 1024 * 1024));
    const bomb = Buffer.concat(new Array<Buffer>(64).fill(member));
    assert.ok(bomb.byteLength <= LIMIT, `the bomb itself fits the limit (${bomb.byteLength} bytes)`);
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    const started = performance.now();
    const res = await post(bomb, { 'content-encoding': 'gzip' });
    const elapsed = performance.now() - started;
    const grown = process.memoryUsage().rss - rssBefore;
    assert.equal(res.status, 413);
    assert.match(JSON.parse(res.body).error, /^decompressed request size exceeds the maximum allowed input size/);
    assert.ok(grown < 128 * 1024 * 1024, `RSS grew by ${grown} bytes`);
    // Inflating the whole gigabyte takes seconds; stopping at the limit takes milliseconds.
    assert.ok(elapsed < 2000, `answered in ${elapsed.toFixed(0)} ms`);
    console.log(`# 1 GiB bomb: 413 in ${elapsed.toFixed(0)} ms, RSS +${(grown / 1048576).toFixed(1)} MiB`);
    await assertServes();
  });

  test('a body that is not gzip is 400 naming the encoding', async () => {
    const res = await post(Buffer.from('this is not gzip at all'), { 'content-encoding': 'gzip' });
    assert.equal(res.status, 400);
    assert.match(JSON.parse(res.body).error, /^the request body could not be decompressed \(Content-Encoding: gzip\): incorrect header check$/);
    await assertServes();
  });

  test('a truncated gzip body is 400', async () => {
    const whole = gzipSync(GOOD);
    const res = await post(whole.subarray(0, whole.byteLength - 10), { 'content-encoding': 'gzip' });
    assert.equal(res.status, 400);
    assert.match(JSON.parse(res.body).error, /could not be decompressed.*unexpected end of file/);
    await assertServes();
  });

  test("an unknown Content-Encoding gets Triton's answer: 400 with Accept-Encoding: gzip, deflate", async () => {
    const res = await post(GOOD, { 'content-encoding': 'br' });
    assert.equal(res.status, 400);
    assert.equal(JSON.parse(res.body).error, 'Unsupported compression type');
    assert.equal(res.headers['accept-encoding'], 'gzip, deflate');
    await assertServes();
  });

  test('a compressed body sent chunked, without Content-Length, is bounded the same way', async () => {
    const bomb = gzipSync(Buffer.alloc(4 * LIMIT));
    const chunks = [bomb.subarray(0, 100), bomb.subarray(100)];
    const res = await rawHttp(http.url, '/v2/models/add_sub/infer', { method: 'POST', headers: { 'content-encoding': 'gzip' }, body: chunks });
    assert.equal(res.status, 413);
    await assertServes();
  });
});

describe('inflatedBody', () => {
  test('stops inflating at the limit: a 16 GiB bomb is drained, not inflated', async () => {
    const member = gzipSync(Buffer.alloc(16 * 1024 * 1024));
    const members = 1024;
    const source = Readable.from((function* () {
      for (let i = 0; i < members; i++) yield member;
    })(), { objectMode: false });
    const drained = once(source, 'end');
    const cpuBefore = process.cpuUsage();
    const body = inflatedBody(source, 'gzip', LIMIT);
    let inflated = 0;
    const failure = await new Promise<Error>((resolve) => {
      body.on('data', (chunk: Buffer) => { inflated += chunk.byteLength; });
      body.on('error', resolve);
    });
    assert.match(failure.message, /^decompressed request size exceeds the maximum allowed input size/);
    assert.ok(inflated <= LIMIT, `${inflated} bytes came out`);
    await drained;
    const cpu = process.cpuUsage(cpuBefore);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    // Inflating all of it takes about 30 s of CPU here; draining the compressed bytes takes a few ms.
    assert.ok(cpuMs < 1000, `${cpuMs.toFixed(0)} ms of CPU`);
    console.log(`# 16 GiB bomb (${member.byteLength * members} bytes compressed): stopped after ${inflated} bytes, ${cpuMs.toFixed(0)} ms CPU`);
  });
});
