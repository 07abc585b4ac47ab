/**
 * The built package stands on its own: `npm run build:client` emits
 * client/dist, a copy of the package (package.json + dist only) is installed
 * into a scratch node_modules, and plain `node` (no tsx, no TypeScript)
 * imports it by name and talks to a real server over HTTP and gRPC.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startClientFixture, type ClientFixture } from './client-fixture.ts';

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const clientDir = path.join(repoRoot, 'client');

/** What the child process runs: plain JavaScript importing the package by name. */
const CHILD = `
import { InferenceClient, tensor } from '@switchyard/client';
const [httpUrl, grpcUrl] = process.argv.slice(2);
const http = new InferenceClient({ url: httpUrl });
const grpc = new InferenceClient({ url: grpcUrl });
const ones = new Int32Array(16).fill(1);
const result = await grpc.infer('add_sub', [tensor('INPUT0', 'INT32', [1, 16], ones), tensor('INPUT1', 'INT32', [1, 16], ones)]);
console.log(JSON.stringify({
  httpLive: await http.isServerLive(),
  grpcReady: await grpc.isServerReady(),
  sum: result.output('OUTPUT0').numbers().slice(0, 3),
  configName: (await grpc.modelConfig('add_sub')).name,
}));
http.close();
grpc.close();
`;

let fixture: ClientFixture;
let scratch: string;

before(async () => {
  fixture = await startClientFixture();
  scratch = await mkdtemp(path.join(tmpdir(), 'switchyard-client-package-'));
});

after(async () => {
  await fixture?.cleanup();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

test('the built package works from plain node, with nothing from outside client/', async () => {
  await run(process.execPath, [path.join(clientDir, 'scripts', 'build.mjs')], { cwd: repoRoot, env: { ...process.env, NODE_OPTIONS: '' } });

  const installed = path.join(scratch, 'node_modules', '@switchyard', 'client');
  await mkdir(installed, { recursive: true });
  await cp(path.join(clientDir, 'package.json'), path.join(installed, 'package.json'));
  await cp(path.join(clientDir, 'dist'), path.join(installed, 'dist'), { recursive: true });
  // The package's own dependencies, as npm would install them beside it.
  for (const dependency of ['@grpc', 'protobufjs', 'long']) {
    await symlink(path.join(repoRoot, 'node_modules', dependency), path.join(scratch, 'node_modules', dependency));
  }
  await writeFile(path.join(scratch, 'child.mjs'), CHILD);

  const { stdout } = await run(process.execPath, ['child.mjs', fixture.httpUrl, fixture.grpcUrl], {
    cwd: scratch, env: { ...process.env, NODE_OPTIONS: '' }, timeout: 30_000,
  });
  assert.deepEqual(JSON.parse(stdout), { httpLive: true, grpcReady: true, sum: [2, 2, 2], configName: 'add_sub' });
});
