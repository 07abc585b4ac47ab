/**
 * The rate limiter end to end, on a real HTTP server: two TypeScript models
 * (one stateless, one stateful, so both batchers are on the path) share a
 * global resource of count 1. Each execution reports when it started and
 * ended (Date.now() inside its isolate, the same clock as here); with
 * --rate-limit=execution_count no two executions overlap, with off they do.
 * Pools that cannot serve an instance fail its model's load with Triton's text.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RateLimiterOptions } from '../../engine/scheduling/rate-limiter.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../helpers/fixture-repository.ts';
import { scriptConfig, within, writeScripts } from '../helpers/script-fixtures.ts';

const SPIN_MS = 120;

/** Spins SPIN_MS per batch (the isolate's thread, not the event loop), then answers each request with [start, end]. */
const TIMED_SCRIPT = `export default class {
  execute(requests: any[]) {
    const start = Date.now();
    while (Date.now() < start + ${SPIN_MS}) {}
    const end = Date.now();
    return requests.map(() => ({ outputs: { T: { datatype: 'FP64', shape: [1, 2], data: [start, end] } } }));
  }
}`;

const GLOBAL_G = 'instance_group [ { count: 1 kind: KIND_CPU rate_limiter { resources [ { name: "G" global: true count: 1 } ] } } ]';
const OUTPUT: readonly [string, string, readonly number[]] = ['T', 'TYPE_FP64', [2]];

async function repository(): Promise<string> {
  const root = await makeRepository({
    plain: { config: scriptConfig({ outputs: [OUTPUT], extra: `dynamic_batching { }\n${GLOBAL_G}` }), versions: {} },
    stateful: { config: scriptConfig({ maxBatchSize: 1, outputs: [OUTPUT], extra: `sequence_batching { }\n${GLOBAL_G}` }), versions: {} },
  });
  await writeScripts(root, { plain: { 1: TIMED_SCRIPT }, stateful: { 1: TIMED_SCRIPT } });
  return root;
}

/** One inference over HTTP; resolves with the execution's [start, end]. */
async function timed(url: string, model: string, parameters: Record<string, unknown> = {}): Promise<[number, number]> {
  const response = await fetch(`${url}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'X', datatype: 'INT32', shape: [1, 16], data: new Array(16).fill(1) }], parameters }),
  });
  const body = await response.json() as { outputs?: Array<{ data: number[] }>; error?: string };
  assert.equal(response.status, 200, body.error);
  const [start, end] = body.outputs![0]!.data;
  return [start!, end!];
}

/** Two requests to each model at once (the stateful one as one sequence); every execution's interval, sorted by start. */
async function burst(url: string): Promise<Array<[number, number]>> {
  const intervals = await within(20_000, 'the burst', Promise.all([
    timed(url, 'plain'), timed(url, 'plain'),
    timed(url, 'stateful', { sequence_id: 5, sequence_start: true }).then(async (first) => [first, await timed(url, 'stateful', { sequence_id: 5, sequence_end: true })] as const),
  ]));
  return [intervals[0], intervals[1], ...intervals[2]].sort((a, b) => a[0] - b[0]);
}

const overlaps = (sorted: ReadonlyArray<[number, number]>): number => sorted.filter((iv, i) => i > 0 && iv[0] < sorted[i - 1]![1]).length;

async function serve(root: string, rateLimiter: RateLimiterOptions): Promise<HttpFixture> {
  return startHttp(root, { rateLimiter });
}

describe('rate limiter over HTTP', () => {
  let root: string;
  before(async () => {
    root = await repository();
  });
  after(async () => {
    await removeRepository(root);
  });

  test('--rate-limit=execution_count: two models sharing a global resource of 1 never execute at once', async () => {
    const fixture = await serve(root, { mode: 'execution_count' });
    try {
      const intervals = await burst(fixture.url);
      assert.equal(intervals.length, 4);
      assert.equal(overlaps(intervals), 0, `executions overlapped: ${JSON.stringify(intervals)}`);
    } finally {
      await fixture.close();
    }
  });

  test('--rate-limit=off: the same models execute at once, the config still accepted', async () => {
    const fixture = await serve(root, { mode: 'off' });
    try {
      const intervals = await burst(fixture.url);
      assert.ok(overlaps(intervals) > 0, `expected the two models to overlap: ${JSON.stringify(intervals)}`);
    } finally {
      await fixture.close();
    }
  });

  test('a --rate-limit-resource count below what an instance needs fails its model\'s load with Triton\'s error', async () => {
    const fixture = await serve(root, { mode: 'execution_count', resources: [{ name: 'G', count: 0 }] });
    try {
      const index = fixture.engine.repositoryIndex();
      for (const model of ['plain', 'stateful']) {
        const entry = index.find((e) => e.name === model)!;
        assert.equal(entry.state, 'UNAVAILABLE');
        assert.match(entry.reason, /Resource count for "G" is limited to 0 which will prevent scheduling of one or more model instances, the minimum required count is 1/);
      }
      const response = await fetch(`${fixture.url}/v2/models/plain/ready`);
      assert.equal(response.status, 400);
      assert.equal((await fetch(`${fixture.url}/v2/health/live`)).status, 200, 'the server keeps serving');
    } finally {
      await fixture.close();
    }
  });

  test('the same resource global in one model and per device in another: the second fails to load, the first serves', async () => {
    const mixed = await makeRepository({
      aglobal: { config: scriptConfig({ outputs: [OUTPUT], extra: GLOBAL_G }), versions: {} },
      bdevice: { config: scriptConfig({ outputs: [OUTPUT], extra: 'instance_group [ { count: 1 kind: KIND_CPU rate_limiter { resources [ { name: "G" count: 1 } ] } } ]' }), versions: {} },
    });
    await writeScripts(mixed, { aglobal: { 1: TIMED_SCRIPT }, bdevice: { 1: TIMED_SCRIPT } });
    const fixture = await serve(mixed, { mode: 'execution_count' });
    try {
      const states = new Map(fixture.engine.repositoryIndex().map((e) => [e.name, e]));
      const failed = [...states.values()].filter((e) => e.state === 'UNAVAILABLE');
      assert.equal(failed.length, 1, JSON.stringify([...states.values()]));
      assert.match(failed[0]!.reason, /Resource "G" is present as both global and device-specific resource in the model configuration\./);
      const serving = [...states.values()].find((e) => e.state === 'READY')!;
      const [start, end] = await timed(fixture.url, serving.name);
      assert.ok(end - start >= SPIN_MS - 1);
    } finally {
      await fixture.close();
      await removeRepository(mixed);
    }
  });
});
