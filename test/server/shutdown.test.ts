/**
 * Graceful shutdown of the real `switchyard` process: on SIGTERM or SIGINT
 * readiness turns false while liveness stays, new requests are refused,
 * the requests already taken finish, and the process exits 0. With a short
 * --exit-timeout-secs it exits 0 without waiting for a request that would
 * take longer.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { addSubModel } from '../../generator/models.ts';
import { addSubConfig } from '../helpers/fixture-configs.ts';
import { makeRepository, removeRepository } from '../helpers/fixture-repository.ts';
import { scrape, valueOf } from '../helpers/prometheus-text.ts';
import { pollFor, tail } from '../helpers/wait.ts';

const CLI = fileURLToPath(new URL('../../server/cli.ts', import.meta.url));

interface Running {
  readonly child: ChildProcess;
  readonly url: string;
  readonly metricsUrl: string;
  readonly exited: Promise<{ code: number | null; ms: number; output: string }>;
  output(): string;
}

/** Start-up of the CLI under a loaded 2-core machine: generous. */
const START_LIMIT_MS = 60_000;
/** How long a step of the drain (a log line, a request counted as pending) may take before the test fails. */
const STEP_LIMIT_MS = 10_000;

/**
 * Starts the CLI on free loopback ports and resolves once HTTP and metrics listen; rejects, showing the
 * output so far, if it exits first or does not listen within START_LIMIT_MS (and then stops it).
 */
function start(root: string, extra: string[] = []): Promise<Running> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--no-node-snapshot', '--import', 'tsx', CLI,
      `--model-repository=${root}`, '--http-port=0', '--http-address=127.0.0.1', '--allow-grpc=false',
      '--metrics-port=0', '--metrics-address=127.0.0.1', ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let signalledAt = 0;
    let settled = false;
    const exited = new Promise<{ code: number | null; ms: number; output: string }>((done) => {
      child.on('exit', (code) => done({ code, ms: signalledAt ? performance.now() - signalledAt : 0, output }));
    });
    const originalKill = child.kill.bind(child);
    child.kill = (signal?: NodeJS.Signals | number): boolean => {
      signalledAt = performance.now();
      return originalKill(signal);
    };
    const timer = setTimeout(() => {
      settled = true;
      originalKill('SIGKILL');
      reject(new Error(`timed out after ${START_LIMIT_MS} ms waiting for the server to listen; output so far:\n${tail(output)}`));
    }, START_LIMIT_MS);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const port = /Started HTTPService at [^\s:]+:(\d+)/.exec(output)?.[1];
      const metricsPort = /Started Metrics Service at [^\s:]+:(\d+)/.exec(output)?.[1];
      if (port && metricsPort && !settled) {
        settled = true;
        clearTimeout(timer);
        resolve({ child, url: `http://127.0.0.1:${port}`, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, exited, output: () => output });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then(({ code }) => {
      clearTimeout(timer);
      if (!settled) reject(new Error(`the server exited (${code}) before listening:\n${tail(output)}`));
    });
  });
}

/** Resolves once the server counts `count` request(s) pending for `model` (queued or running). */
async function pending(server: Running, model: string, count: number): Promise<void> {
  await pollFor(`${count} pending request(s) for '${model}'`, STEP_LIMIT_MS,
    async () => valueOf(await scrape(server.metricsUrl), 'nv_inference_pending_request_count', { model }) === count, server.output, 20);
}

/** Resolves once the server's output contains `text`. */
async function printed(server: Running, text: string): Promise<void> {
  await pollFor(`the server to print '${text}'`, STEP_LIMIT_MS, () => server.output().includes(text), server.output, 10);
}

const A = Array.from({ length: 16 }, (_, i) => i);
const inferBody = JSON.stringify({
  inputs: [
    { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], data: A },
    { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], data: A },
  ],
});

function infer(url: string, model: string): Promise<{ status: number; body: string }> {
  return fetch(`${url}/v2/models/${model}/infer`, { method: 'POST', body: inferBody })
    .then(async (res) => ({ status: res.status, body: await res.text() }), (err: Error) => ({ status: 0, body: err.message }));
}

describe('graceful shutdown of the switchyard process', () => {
  let root: string;

  before(async () => {
    root = await makeRepository({
      // A lone request waits 1.5 s for a batch of 8 that never comes: it is in flight when the signal arrives.
      held: {
        config: addSubConfig('held', 'dynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 1500000 }\n'),
        versions: { 1: addSubModel() },
      },
      quick: { config: addSubConfig('quick'), versions: { 1: addSubModel() } },
    });
  });

  after(async () => removeRepository(root));

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal}: not ready, live, new requests refused, the in-flight request answers, then exit 0`, async () => {
      const server = await start(root);
      assert.equal((await fetch(`${server.url}/v2/health/ready`)).status, 200);
      const inflight = infer(server.url, 'held');
      await pending(server, 'held', 1);
      server.child.kill(signal);
      await printed(server, `${signal}: no longer ready, draining`);

      assert.equal((await fetch(`${server.url}/v2/health/ready`)).status, 400, 'readiness turns false at once');
      assert.equal((await fetch(`${server.url}/v2/health/live`)).status, 200, 'still live while draining');
      const refused = await infer(server.url, 'quick');
      assert.equal(refused.status, 503);
      assert.match(refused.body, /Server exiting/);

      const answered = await inflight;
      assert.equal(answered.status, 200, answered.body);
      const outputs = (JSON.parse(answered.body) as { outputs: Array<{ name: string; data: number[] }> }).outputs;
      assert.deepEqual(outputs.find((o) => o.name === 'OUTPUT0')!.data, A.map((a) => 2 * a));
      const { code, output } = await server.exited;
      assert.equal(code, 0, output);
      assert.match(output, new RegExp(`${signal}: no longer ready, draining`));
      assert.match(output, /every in-flight request has finished/);
    });
  }

  test('--exit-timeout-secs bounds the wait: the process exits 0 once it passes', async () => {
    const slowRoot = await makeRepository({
      stuck: {
        config: addSubConfig('stuck', 'dynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 20000000 }\n'),
        versions: { 1: addSubModel() },
      },
    });
    try {
      const server = await start(slowRoot, ['--exit-timeout-secs=1']);
      const inflight = infer(server.url, 'stuck');
      await pending(server, 'stuck', 1);
      server.child.kill('SIGTERM');
      const { code, ms, output } = await server.exited;
      assert.equal(code, 0, output);
      assert.ok(ms >= 900 && ms < 8000, `exited ${ms.toFixed(0)} ms after the signal`);
      assert.match(output, /exit timeout of 1 s passed with 1 request\(s\) still running/);
      const outcome = await inflight;
      assert.notEqual(outcome.status, 200, 'the request that outlived the timeout did not get an answer');
    } finally {
      await removeRepository(slowRoot);
    }
  });
});
