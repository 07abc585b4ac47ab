/**
 * Faults that hit a whole batch, over real HTTP: a run ONNX Runtime refuses
 * fails every request batched with the bad one, and an instance whose
 * worker is killed under load fails only what it held, then serves again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { OnnxInstance } from '../../../backends/onnxruntime/onnx-instance.ts';
import { lookupModel, mlpModel } from '../../../generator/models.ts';
import { makeRepository, removeRepository, startHttp, type HttpFixture } from '../../helpers/fixture-repository.ts';

const LOOKUP_CONFIG = `
max_batch_size: 8
dynamic_batching { max_queue_delay_microseconds: 200000 }
`;

const HEAVY_CONFIG = `
max_batch_size: 64
dynamic_batching { }
`;

interface Answer {
  readonly status: number;
  readonly body: { error?: string; outputs?: Array<{ name: string; data: number[] }> };
}

async function infer(url: string, model: string, input: object): Promise<Answer> {
  const res = await fetch(`${url}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: [input] }),
  });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

const lookup = (url: string, index: number): Promise<Answer> =>
  infer(url, 'lookup', { name: 'INDEX', datatype: 'INT64', shape: [1, 1], data: [index] });

const heavy = (url: string, rows: number): Promise<Answer> =>
  infer(url, 'heavy', { name: 'INPUT', datatype: 'FP32', shape: [rows, 256], data: new Array<number>(rows * 256).fill(0.5) });

/** Resolves once the condition holds, checking between event-loop turns; fails after `ms`. */
async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

describe('batch faults over HTTP', () => {
  let root: string;
  let http: HttpFixture;

  before(async () => {
    root = await makeRepository({
      lookup: { config: LOOKUP_CONFIG, versions: { 1: lookupModel(4) } },
      heavy: { config: HEAVY_CONFIG, versions: { 1: mlpModel({ sizes: [256, 1024, 1024, 8], seed: 11 }) } },
    });
    http = await startHttp(root);
  });

  after(async () => {
    await http?.close();
    if (root) await removeRepository(root);
  });

  test('one bad request fails its whole batch with ONNX Runtime\'s message; a later good request succeeds', async () => {
    const answers = await Promise.all([lookup(http.url, 1), lookup(http.url, 2), lookup(http.url, 9), lookup(http.url, 3)]);
    for (const answer of answers) {
      assert.equal(answer.status, 500);
      assert.match(answer.body.error ?? '', /inference failed in model 'lookup': .*indices element out of data bounds, idx=9/);
    }
    const later = await lookup(http.url, 3);
    assert.equal(later.status, 200, later.body.error);
    assert.deepEqual(later.body.outputs?.map((o) => [o.name, o.data]), [['VALUE', [30]]]);
  });

  test('killing the worker under load fails the requests it held; the rest and later ones succeed', async () => {
    const instance = http.engine.instancesOf('heavy')[0] as OnnxInstance;
    const load = Array.from({ length: 24 }, () => heavy(http.url, 16));
    await until(() => instance.runsInFlight > 0, 30_000, 'a run to reach the worker');
    await instance.terminateWorker();
    const answers = await Promise.all(load);
    const failed = answers.filter((a) => a.status !== 200);
    assert.ok(failed.length > 0, 'the requests in the killed run were answered with an error');
    for (const answer of failed) {
      assert.equal(answer.status, 500);
      assert.match(answer.body.error ?? '', /inference failed in model 'heavy': instance heavy_0 stopped unexpectedly \(worker was terminated\); a new worker is starting/);
    }
    for (const answer of answers.filter((a) => a.status === 200)) assert.equal(answer.body.outputs?.[0]?.data.length, 16 * 8);
    const later = await Promise.all([heavy(http.url, 1), heavy(http.url, 4), heavy(http.url, 2)]);
    assert.deepEqual(later.map((a) => a.status), [200, 200, 200], later.map((a) => a.body.error).join('; '));
  });
});
