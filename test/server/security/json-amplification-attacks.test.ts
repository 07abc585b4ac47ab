/**
 * Class 1 of the hardening issue, on the JSON path: a v2 JSON body is one
 * JS value per element once parsed. A 64 MiB body of `0,` (32M elements)
 * used to block the event loop for seconds and cost hundreds of MiB of heap
 * each, and sixteen at once went for the heap limit. Now JSON bodies and
 * responses over --http-json-codec-min-bytes are decoded and encoded in a
 * JSON codec process with a capped heap (json-codec-pool.ts).
 *
 * The server runs as a child process (the real CLI) so that its RSS is its
 * own; the codec processes are its children and are counted with it. Each
 * attack shows: an answer or a clear 4xx/503 naming the limit;
 * /v2/health/live answering within HEALTH_BOUND_MS meanwhile; RSS growth
 * under its bound; and ordinary JSON requests answering exactly afterwards,
 * INT64 beyond 2^53 included, through the thread and through a process.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { identityModel } from '../../../generator/models.ts';
import { ServerProcess } from '../../../bench/soak/server-process.ts';
import { makeRepository, removeRepository } from '../../helpers/fixture-repository.ts';
import { whileWatchingHealth } from '../../helpers/health-watch.ts';
import { rawHttp, type RawResponse } from '../../helpers/raw-http.ts';

/** /v2/health/live must answer within this while an attack is served (before: 7.2 s and 1.6 s for the first two attacks). */
const HEALTH_BOUND_MS = 1000;
/** The server process's RSS may grow by at most this much over one 64 MiB attack. */
const RSS_BOUND_MIB = 1024;
/**
 * Six 60 MB bodies at once: the server holds the bodies it received
 * (360 MB) and the compact tensors decoded from them (8 bytes per 2-byte
 * INT64 element, 240 MB each) until they are collected.
 */
const CONCURRENT_RSS_BOUND_MIB = 3072;
/** Each codec process's RSS: its heap cap (--http-json-codec-heap-mb, 1024 by default) plus the body and the tensors it builds. */
const CODEC_PROCESS_RSS_BOUND_MIB = 1800;
/** Large tasks that may wait, given to the server so the concurrent attack is refused quickly. */
const QUEUE = 1;
const BODY_LIMIT = 64 * 1024 * 1024;

const config = (name: string, type: string, io: string) => `name: "${name}"
platform: "onnxruntime_onnx"
max_batch_size: 4
input [ { name: "IN_${io}" data_type: ${type} dims: [ -1 ] } ]
output [ { name: "OUT_${io}" data_type: ${type} dims: [ -1 ] } ]
`;

let root: string;
let server: ServerProcess;
let url: string;
let baselineKiB: number;

before(async () => {
  root = await makeRepository({
    int_echo: { config: config('int_echo', 'TYPE_INT32', 'INT32'), versions: { 1: identityModel(['INT32']) } },
    int64_echo: { config: config('int64_echo', 'TYPE_INT64', 'INT64'), versions: { 1: identityModel(['INT64']) } },
    text_echo: { config: config('text_echo', 'TYPE_STRING', 'BYTES'), versions: { 1: identityModel(['BYTES']) } },
  });
  server = await ServerProcess.start([root], 60_000, [`--http-json-codec-queue=${QUEUE}`]);
  url = `http://127.0.0.1:${server.httpPort}`;
  await ordinaryRequestsAnswer();
  baselineKiB = server.rssKiB()!;
});

after(async () => {
  await server?.stop(10_000);
  await removeRepository(root);
});

/** A v2 JSON body of `count` copies of `element` as one input, close to `bytes` long. */
function jsonBody(input: string, datatype: string, element: string, bytes: number): { body: Buffer; count: number } {
  const head = (n: number) => `{"inputs":[{"name":"${input}","datatype":"${datatype}","shape":[1,${n}],"data":[`;
  const count = Math.floor((bytes - head(99_999_999).length - 4) / (element.length + 1));
  const body = Buffer.concat([Buffer.from(head(count)), Buffer.alloc(count * (element.length + 1) - 1, `${element},`), Buffer.from(']}]}')]);
  return { body, count };
}

const infer = (model: string, body: Buffer | string): Promise<RawResponse> =>
  rawHttp(url, `/v2/models/${model}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

/** RSS in KiB of a process, from /proc. */
function rssOf(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** The server's child processes: its JSON codec processes. */
function codecPids(): number[] {
  const text = readFileSync(`/proc/${server.pid}/task/${server.pid}/children`, 'utf8').trim();
  return text === '' ? [] : text.split(/\s+/).map(Number);
}

/** Samples the server's RSS and its codec processes' RSS every 20 ms while `work` runs; resolves with the peaks in MiB. */
async function peakRss<T>(work: Promise<T>): Promise<{ result: T; serverMiB: number; codecMiB: number }> {
  let serverPeak = 0;
  let codecPeak = 0;
  const sample = () => {
    serverPeak = Math.max(serverPeak, rssOf(server.pid));
    for (const pid of codecPids()) codecPeak = Math.max(codecPeak, rssOf(pid));
  };
  const timer = setInterval(sample, 20);
  try {
    const result = await work;
    sample();
    return { result, serverMiB: (serverPeak - baselineKiB) / 1024, codecMiB: codecPeak / 1024 };
  } finally {
    clearInterval(timer);
  }
}

/** INT64 values past 2^53 (and both ends of the range) echo exactly, from a small body (this thread) and a 2 MB one (a codec process). */
async function ordinaryRequestsAnswer(): Promise<void> {
  const values = ['9007199254740993', '-9223372036854775808', '9223372036854775807', '42'];
  for (const repeat of [1, 60_000]) {
    const data = Array.from({ length: repeat }, () => values).flat();
    const response = await infer('int64_echo', `{"inputs":[{"name":"IN_INT64","datatype":"INT64","shape":[1,${data.length}],"data":[${data.join(',')}]}]}`);
    assert.equal(response.status, 200, response.body.slice(0, 300));
    const text = /"data":\[([^\]]*)\]/.exec(response.body)?.[1];
    assert.equal(text, data.join(','), `INT64 values of ${data.length} elements came back changed`);
  }
  const strings = await infer('text_echo', '{"inputs":[{"name":"IN_BYTES","datatype":"BYTES","shape":[1,3],"data":["a","","déjà vu"]}]}');
  assert.equal(strings.status, 200, strings.body.slice(0, 300));
  assert.deepEqual(JSON.parse(strings.body).outputs[0].data, ['a', '', 'déjà vu']);
}

function assertAlive(when: string): void {
  assert.ok(server.running, `${when}: the server exited:\n${server.logTail().slice(-2000)}`);
}

describe('JSON element amplification', () => {
  test('a 64 MiB JSON body of 32M numbers is decoded, run and encoded off the event loop: 200, health answers meanwhile', async (t) => {
    const { body, count } = jsonBody('IN_INT32', 'INT32', '7', BODY_LIMIT);
    const { result: { result, slowestMs }, serverMiB, codecMiB } = await peakRss(whileWatchingHealth(url, infer('int_echo', body)));
    assert.equal(result.status, 200, result.body.slice(0, 300));
    const head = `{"model_name":"int_echo","model_version":"1","outputs":[{"name":"OUT_INT32","datatype":"INT32","shape":[1,${count}],"data":[`;
    assert.ok(result.body.startsWith(`${head}7,7,7,`) && result.body.endsWith(',7,7]}]}'));
    assert.equal(result.body.length, head.length + count * 2 - 1 + 4, 'the echoed data is as long as what was sent');
    t.diagnostic(`slowest health ${slowestMs.toFixed(0)} ms, server RSS +${serverMiB.toFixed(0)} MiB, codec process ${codecMiB.toFixed(0)} MiB`);
    assert.ok(slowestMs < HEALTH_BOUND_MS, `health took ${slowestMs.toFixed(0)} ms during the attack`);
    assertAlive('after 32M numbers');
    assert.ok(serverMiB < RSS_BOUND_MIB, `the server's RSS grew by ${serverMiB.toFixed(0)} MiB (bound ${RSS_BOUND_MIB})`);
    assert.ok(codecMiB < CODEC_PROCESS_RSS_BOUND_MIB, `a codec process reached ${codecMiB.toFixed(0)} MiB (bound ${CODEC_PROCESS_RSS_BOUND_MIB})`);
    await ordinaryRequestsAnswer();
  });

  test('a 64 MiB JSON body of 22M empty strings is refused with 400 naming the BYTES limit; health answers meanwhile', async (t) => {
    const { body, count } = jsonBody('IN_BYTES', 'BYTES', '""', BODY_LIMIT);
    const { result: { result, slowestMs }, serverMiB } = await peakRss(whileWatchingHealth(url, infer('text_echo', body)));
    assert.equal(result.status, 400, result.body.slice(0, 300));
    assert.equal(JSON.parse(result.body).error, `input 'IN_BYTES' has ${count} BYTES elements; the limit is 1048576 per tensor (--max-bytes-elements)`);
    t.diagnostic(`slowest health ${slowestMs.toFixed(0)} ms, server RSS +${serverMiB.toFixed(0)} MiB`);
    assert.ok(slowestMs < HEALTH_BOUND_MS, `health took ${slowestMs.toFixed(0)} ms during the attack`);
    assertAlive('after 22M empty strings');
    assert.ok(serverMiB < RSS_BOUND_MIB, `the server's RSS grew by ${serverMiB.toFixed(0)} MiB (bound ${RSS_BOUND_MIB})`);
    await ordinaryRequestsAnswer();
  });

  test('64 MiB generate and repository-load bodies are decoded off the event loop and refused naming their limits', async (t) => {
    const strings = Buffer.concat([Buffer.from('{"IN_BYTES":['), Buffer.alloc(3 * 20_000_000 - 1, '"",'), Buffer.from(']}')]);
    const { result: generate, slowestMs } = await whileWatchingHealth(url,
      rawHttp(url, '/v2/models/text_echo/generate', { method: 'POST', body: strings }));
    assert.equal(generate.status, 400, generate.body.slice(0, 300));
    assert.match(JSON.parse(generate.body).error, /input 'IN_BYTES' has 20000000 BYTES elements; the limit is 1048576 per tensor/);
    assert.ok(slowestMs < HEALTH_BOUND_MS, `health took ${slowestMs.toFixed(0)} ms during the generate attack`);
    const numbers = Buffer.concat([Buffer.from('{"parameters":{"config":['), Buffer.alloc(2 * 30_000_000 - 1, '0,'), Buffer.from(']}}')]);
    const { result: load, slowestMs: loadMs } = await whileWatchingHealth(url,
      rawHttp(url, '/v2/repository/models/int_echo/load', { method: 'POST', body: numbers }));
    assert.equal(load.status, 400, load.body.slice(0, 300));
    assert.equal(JSON.parse(load.body).error, 'failed to parse the request JSON buffer: the request body holds more than 100000 JSON values');
    assert.ok(loadMs < HEALTH_BOUND_MS, `health took ${loadMs.toFixed(0)} ms during the load attack`);
    t.diagnostic(`slowest health ${slowestMs.toFixed(0)} ms (generate), ${loadMs.toFixed(0)} ms (load)`);
    assertAlive('after the generate and load attacks');
    await ordinaryRequestsAnswer();
  });

  test('6 concurrent 60 MB JSON bodies: each answered or refused with 503 naming the queue; the server lives with bounded RSS', async (t) => {
    // INT64 data for an INT32 input: decoded in full (30M elements each), then refused by the model's datatype check.
    const { body } = jsonBody('IN_INT32', 'INT64', '5', 60_000_000);
    const { result, serverMiB, codecMiB } = await peakRss(Promise.all(Array.from({ length: 6 }, () => infer('int_echo', body))));
    const refusedBusy = result.filter((r) => r.status === 503);
    const decoded = result.filter((r) => r.status === 400);
    assert.equal(refusedBusy.length + decoded.length, 6, result.map((r) => `${r.status} ${r.body.slice(0, 120)}`).join('\n'));
    for (const r of refusedBusy) {
      assert.match(JSON.parse(r.body).error, new RegExp(`^${QUEUE} large JSON bodies are already waiting for a JSON codec process \\(the limit is ${QUEUE}, --http-json-codec-queue\\)`));
    }
    for (const r of decoded) assert.match(JSON.parse(r.body).error, /IN_INT32.*INT64|INT64.*IN_INT32/);
    assert.ok(decoded.length >= 1 + QUEUE, `${decoded.length} bodies were decoded`);
    t.diagnostic(`${decoded.length} decoded, ${refusedBusy.length} refused busy; server RSS +${serverMiB.toFixed(0)} MiB, codec process ${codecMiB.toFixed(0)} MiB`);
    assertAlive('after 6 concurrent bodies');
    assert.ok(serverMiB < CONCURRENT_RSS_BOUND_MIB, `the server's RSS grew by ${serverMiB.toFixed(0)} MiB (bound ${CONCURRENT_RSS_BOUND_MIB})`);
    assert.ok(codecMiB < CODEC_PROCESS_RSS_BOUND_MIB, `a codec process reached ${codecMiB.toFixed(0)} MiB (bound ${CODEC_PROCESS_RSS_BOUND_MIB})`);
    await ordinaryRequestsAnswer();
  });
});
