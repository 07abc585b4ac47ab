/**
 * The gRPC frontend's connection limits (issue 15, class 10), seen from a
 * bare HTTP/2 client: the server announces --grpc-max-concurrent-streams in
 * its SETTINGS, and a connection left idle past --grpc-max-connection-idle
 * gets GOAWAY and closes, while new clients are served. With
 * --grpc-keepalive-time the server pings open connections.
 */
import assert from 'node:assert/strict';
import { connect, type ClientHttp2Session } from 'node:http2';
import { after, before, test } from 'node:test';
import { addSubModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository, startGrpc, type GrpcFixture } from '../../helpers/fixture-repository.ts';
import { RawGrpcClient } from '../../helpers/grpc-raw-client.ts';
import { within } from '../../helpers/script-fixtures.ts';
import { startServer } from '../../../server/cli.ts';
import { parseCliOptions } from '../../../server/cli-options.ts';

const IDLE_MS = 500;
const MAX_STREAMS = 8;

let root: string;
let fixture: GrpcFixture;

before(async () => {
  root = await makeRepository({ add_sub: { config: addSubConfig('add_sub'), versions: { 1: addSubModel('INT32', 16) } } });
  fixture = await startGrpc(root, { maxConnectionIdleMs: IDLE_MS, maxConcurrentStreams: MAX_STREAMS });
});
after(async () => {
  await fixture.close();
  await removeRepository(root);
});

async function session(): Promise<ClientHttp2Session> {
  const s = connect(`http://${fixture.address}`);
  s.on('error', () => {});
  await within(10_000, 'server SETTINGS', new Promise<void>((resolve) => s.once('remoteSettings', () => resolve())));
  return s;
}

test('the server announces --grpc-max-concurrent-streams', async () => {
  const s = await session();
  assert.equal(s.remoteSettings.maxConcurrentStreams, MAX_STREAMS);
  s.destroy();
});

test('idle connections get GOAWAY and close after --grpc-max-connection-idle; a new client is served', async () => {
  const sessions = await Promise.all(Array.from({ length: 20 }, () => session()));
  await within(IDLE_MS + 10_000, 'idle sessions closed', Promise.all(sessions.map((s) => new Promise<void>((resolve) => s.once('close', () => resolve())))));
  const client = new RawGrpcClient(fixture.address);
  try {
    assert.equal((await client.call('ServerLive', {}, { deadline: Date.now() + 10_000 })).response?.['live'], true);
  } finally {
    client.close();
  }
});

test('--grpc-keepalive-time: the server pings an open connection on that period, again after each answer', async () => {
  const running = await startServer(parseCliOptions([
    `--model-repository=${root}`, '--allow-http=false', '--allow-metrics=false', '--grpc-port=0', '--grpc-address=127.0.0.1',
    '--grpc-keepalive-time=100', '--grpc-keepalive-timeout=10000', '--log-info=false',
  ]));
  const s = connect(`http://127.0.0.1:${running.grpcPort}`);
  s.on('error', () => {});
  try {
    // Node answers each PING; the server's timer starts again on the answer, so a second ping follows.
    let pings = 0;
    await within(10_000, 'two keepalive pings from the server', new Promise<void>((resolve) => s.on('ping', () => {
      if (++pings === 2) resolve();
    })));
  } finally {
    s.destroy();
    await running.close();
  }
});
