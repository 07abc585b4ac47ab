/**
 * Slow and idle clients (issue 15, class 10) against a real HTTP server on
 * loopback, over raw sockets: uploads that declare 64 MiB and stall are
 * dropped at the request timeout with their partial buffers released, idle
 * connections close at the header and keep-alive timeouts, connections past
 * --http-max-connections are closed as they arrive, and ordinary requests
 * keep answering throughout. Timeouts are short here (options), the
 * defaults are in http-server.ts and docs/security.md.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { addSubModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';
import { rawHttp } from '../../helpers/raw-http.ts';
import { within } from '../../helpers/script-fixtures.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const MiB = 1024 * 1024;
const REQUEST_TIMEOUT_MS = 1500;
const HEADER_TIMEOUT_MS = 1000;
const KEEPALIVE_TIMEOUT_MS = 1000;
const MAX_CONNECTIONS = 40;

/** A raw connection to the server, with everything it receives and a promise for its close. */
interface RawConnection {
  readonly socket: Socket;
  readonly received: () => string;
  readonly closed: Promise<void>;
}

function open(url: string): Promise<RawConnection> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    let text = '';
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1'); });
    socket.on('error', () => {});
    socket.once('connect', () => resolve({ socket, received: () => text, closed }));
    socket.once('error', reject);
  });
}

const inferBody = JSON.stringify({
  inputs: [
    { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: Array.from({ length: 16 }, (_, i) => i) },
    { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: Array.from({ length: 16 }, () => 1) },
  ],
});

async function assertServes(url: string): Promise<void> {
  const res = await rawHttp(url, '/v2/models/add_sub/infer', { method: 'POST', headers: { 'content-type': 'application/json' }, body: inferBody });
  assert.equal(res.status, 200, res.body);
  assert.deepEqual(JSON.parse(res.body).outputs[0].data, Array.from({ length: 16 }, (_, i) => i + 1));
}

describe('slow and idle HTTP clients', () => {
  let root: string;
  let fixture: HttpFixture;

  before(async () => {
    root = await makeRepository({ add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel('INT32', 16) } } });
    fixture = await startHttp(root, {
      requestTimeoutMs: REQUEST_TIMEOUT_MS, headerTimeoutMs: HEADER_TIMEOUT_MS, keepAliveTimeoutMs: KEEPALIVE_TIMEOUT_MS, maxConnections: MAX_CONNECTIONS,
    });
  });
  after(async () => {
    await fixture.close();
    await removeRepository(root);
  });

  test('16 uploads that declare 64 MiB, send 1 MiB and stall are closed with 408 and their buffers released', async () => {
    gc();
    const before = process.memoryUsage();
    const connections = await Promise.all(Array.from({ length: 16 }, () => open(fixture.url)));
    const started = Date.now();
    for (const { socket } of connections) {
      socket.write(`POST /v2/models/add_sub/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${64 * MiB}\r\n\r\n`);
      socket.write(Buffer.alloc(MiB, 0x20));
    }
    // Meanwhile the server answers others.
    await assertServes(fixture.url);
    const during = process.memoryUsage().arrayBuffers;
    await within(REQUEST_TIMEOUT_MS + 10_000, 'stalled uploads closed', Promise.all(connections.map((c) => c.closed)));
    const heldMs = Date.now() - started;
    assert.ok(heldMs >= REQUEST_TIMEOUT_MS - 200, `closed after ${heldMs} ms, not before the request timeout`);
    for (const c of connections) {
      assert.match(c.received(), /^HTTP\/1\.1 408 /, 'each gets 408');
      assert.match(c.received(), /\{"error":"request timeout: [^"]*--http-request-timeout-secs/);
    }
    // The server drops a closed request's chunks when it handles the close, which may come a little after the client sees it.
    let afterClose = process.memoryUsage();
    for (const deadline = Date.now() + 5_000; Date.now() < deadline;) {
      gc();
      afterClose = process.memoryUsage();
      if ((afterClose.arrayBuffers - before.arrayBuffers) / MiB < 8) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const grown = (afterClose.arrayBuffers - before.arrayBuffers) / MiB;
    console.log(`held ${heldMs} ms; arrayBuffers ${(before.arrayBuffers / MiB).toFixed(1)} -> ${(during / MiB).toFixed(1)} while stalled -> ${(afterClose.arrayBuffers / MiB).toFixed(1)} MiB; rss ${(before.rss / MiB).toFixed(0)} -> ${(afterClose.rss / MiB).toFixed(0)} MiB`);
    // 16 MiB arrived; once the connections are gone, at most 8 MiB of buffers may remain (pool slack).
    assert.ok(grown < 8, `array buffers grew by ${grown.toFixed(1)} MiB after the stalled uploads closed`);
    await assertServes(fixture.url);
  });

  test('idle connections that never send a request close at the header timeout', async () => {
    const connections = await Promise.all(Array.from({ length: 20 }, () => open(fixture.url)));
    await within(HEADER_TIMEOUT_MS + 10_000, 'idle connections closed', Promise.all(connections.map((c) => c.closed)));
    await assertServes(fixture.url);
  });

  test('a keep-alive connection idle after its request closes at the keep-alive timeout', async () => {
    const c = await open(fixture.url);
    c.socket.write('GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n');
    await within(KEEPALIVE_TIMEOUT_MS + 10_000, 'keep-alive connection closed', c.closed);
    assert.match(c.received(), /^HTTP\/1\.1 200 /);
  });

  test('connections beyond --http-max-connections are closed as they arrive; the next request answers', async () => {
    const held = await Promise.all(Array.from({ length: MAX_CONNECTIONS }, () => open(fixture.url)));
    const extra = await Promise.all(Array.from({ length: 20 }, () => open(fixture.url)));
    await within(10_000, 'connections over the cap closed', Promise.all(extra.map((c) => c.closed)));
    for (const c of extra) assert.equal(c.received(), '', 'closed without an answer');
    for (const c of held) c.socket.destroy();
    await Promise.all(held.map((c) => c.closed));
    await assertServes(fixture.url);
  });
});
