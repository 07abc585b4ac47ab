/**
 * `--model-control-mode=explicit` at start, through the real CLI process:
 * with --load-model it serves the named model, and the folders it was not
 * asked for are listed as not loaded, never as failures that stop start-up;
 * with no --load-model it starts with nothing loaded and loads on request.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { addSubModel } from '../../../generator/models.ts';
import { addSubConfig } from '../../helpers/fixture-configs.ts';
import { makeRepository, removeRepository } from '../../helpers/fixture-repository.ts';

const CLI = fileURLToPath(new URL('../../../server/cli.ts', import.meta.url));
/** Start-up of the CLI under a loaded 2-core machine: generous. */
const START_LIMIT_MS = 60_000;

interface Cli {
  readonly child: ChildProcess;
  readonly url: string;
  output(): string;
}

/** Spawns the CLI on free loopback ports; resolves once HTTP listens, rejects if it exits first or takes too long. */
function startCli(args: readonly string[]): Promise<Cli> {
  const child = spawn(process.execPath, ['--no-node-snapshot', '--import', 'tsx', CLI,
    '--http-port=0', '--http-address=127.0.0.1', '--allow-grpc=false', '--allow-metrics=false', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no HTTP listener after ${START_LIMIT_MS} ms:\n${output}`)), START_LIMIT_MS);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const port = /Started HTTPService at [^\s:]+:(\d+)/.exec(output)?.[1];
      if (port) {
        clearTimeout(timer);
        resolve({ child, url: `http://127.0.0.1:${port}`, output: () => output });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the CLI exited (${code}) before listening:\n${output}`));
    });
  });
}

async function stop(cli: Cli): Promise<void> {
  if (cli.child.exitCode !== null) return;
  const exited = once(cli.child, 'exit');
  cli.child.kill('SIGKILL');
  await exited;
}

const A = Array.from({ length: 16 }, (_, i) => i);
async function inferAddSub(url: string, model: string): Promise<{ status: number; sum?: number[] }> {
  const res = await fetch(`${url}/v2/models/${model}/infer`, {
    method: 'POST',
    body: JSON.stringify({ inputs: ['INPUT0', 'INPUT1'].map((name) => ({ name, datatype: 'INT32', shape: [1, 16], data: A })) }),
  });
  const body = await res.json() as { outputs?: Array<{ name: string; data: number[] }> };
  return { status: res.status, ...(res.ok ? { sum: body.outputs!.find((o) => o.name === 'OUTPUT0')!.data } : {}) };
}

let root: string;
before(async () => {
  root = await makeRepository({
    wanted: { config: addSubConfig('wanted'), versions: { 1: addSubModel() } },
    other: { config: addSubConfig('other'), versions: { 1: addSubModel() } },
    // Would fail to load if anything tried: explicit mode must not try.
    broken: { config: 'max_batch_size: 8\ndynamic_batching { preferred_batch_size: [ 16 ] }\n', versions: { 1: addSubModel() } },
  });
});
after(() => removeRepository(root));

test('explicit mode with --load-model=<one model> starts, serves it, and lists the others as not loaded', async () => {
  const cli = await startCli([`--model-repository=${root}`, '--model-control-mode=explicit', '--load-model=wanted']);
  try {
    assert.doesNotMatch(cli.output(), /failed to load all models/);
    assert.equal((await fetch(`${cli.url}/v2/health/ready`)).status, 200, 'ready: the one model asked for is READY');
    const answer = await inferAddSub(cli.url, 'wanted');
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.sum, A.map((a) => a + a));
    assert.equal((await fetch(`${cli.url}/v2/models/other/ready`)).status, 400, 'a model not asked for is not ready');
    const index = await (await fetch(`${cli.url}/v2/repository/index`, { method: 'POST', body: '{}' })).json() as Array<{ name: string; state: string; reason?: string }>;
    const byName = new Map(index.map((e) => [e.name, e]));
    assert.equal(byName.get('wanted')?.state, 'READY');
    for (const name of ['other', 'broken']) {
      assert.equal(byName.get(name)?.state, 'UNAVAILABLE', name);
      assert.doesNotMatch(byName.get(name)?.reason ?? '', /preferred_batch_size|failed/, `${name} was never loaded, so it has no failure`);
    }
    assert.equal(cli.child.exitCode, null, 'still running');
  } finally {
    await stop(cli);
  }
});

test('explicit mode with no --load-model starts with nothing loaded, is ready, and loads on request', async () => {
  const cli = await startCli([`--model-repository=${root}`, '--model-control-mode=explicit']);
  try {
    assert.equal((await fetch(`${cli.url}/v2/health/ready`)).status, 200);
    assert.equal((await inferAddSub(cli.url, 'wanted')).status, 404, 'nothing is loaded yet: the model is not found');
    assert.equal((await fetch(`${cli.url}/v2/repository/models/other/load`, { method: 'POST', body: '{}' })).status, 200);
    const answer = await inferAddSub(cli.url, 'other');
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.sum, A.map((a) => a + a));
  } finally {
    await stop(cli);
  }
});

test('a --load-model that fails still stops start-up (--exit-on-error)', async () => {
  await assert.rejects(startCli([`--model-repository=${root}`, '--model-control-mode=explicit', '--load-model=broken']),
    /exited \(1\) before listening:[\s\S]*failed to load all models/);
});
