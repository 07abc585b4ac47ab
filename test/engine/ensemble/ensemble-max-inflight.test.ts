/**
 * Decoupled ensembles and ensemble_scheduling.max_inflight_requests, on real
 * TypeScript members: a decoupled producer sends COUNT responses, each of
 * which runs a slow consumer (three round trips through the server). The
 * consumer counts how many of its requests run at once, and answers the
 * highest count it has seen (PEAK), so the bound is observed by the member
 * itself. Also: the config field's errors, in protobuf's words as Triton
 * prints them, and a step fed by the ensemble input and a decoupled output loading.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { StreamedResponse } from '../../../engine/inference-response.ts';
import type { InferenceEngine } from '../../../engine/inference-engine.ts';
import { DECOUPLED_POLICY, TICK_SCRIPT } from '../../helpers/decoupled-fixtures.ts';
import { makeRepository, removeRepository, startEngine } from '../../helpers/fixture-repository.ts';
import { fixedTensor, scriptConfig, valuesOf, within, writeScripts } from '../../helpers/script-fixtures.ts';

/** Sends COUNT responses VALUE = 0..COUNT-1, then returns (the host closes the request). */
const PRODUCER_SCRIPT = `export default class {
  execute(requests: any[]) {
    for (const r of requests) {
      const count = r.inputs.COUNT.data[0];
      for (let i = 0; i < count; i++) {
        if (!r.send({ outputs: { VALUE: { shape: [1], data: [i] } } })) return;
      }
    }
  }
}
`;

/** Y = X after three calls to tick; PEAK = the most requests it has run at once so far. */
const CONSUMER_SCRIPT = `let active = 0;
let peak = 0;
export default class {
  async execute(requests: any[], ctx: any) {
    active += requests.length;
    peak = Math.max(peak, active);
    try {
      for (let k = 0; k < 3; k++) await ctx.infer({ model: 'tick', inputs: { X: { datatype: 'INT32', shape: [1], data: [k] } } });
      return requests.map((r: any) => ({ outputs: { Y: { shape: [1], data: r.inputs.X.data }, PEAK: { shape: [1], data: [peak] } } }));
    } finally {
      active -= requests.length;
    }
  }
}
`;

const I32 = (name: string): readonly [string, string, number[]] => [name, 'TYPE_INT32', [1]];

function ensembleConfig(consumer: string, limit: string | undefined): string {
  return `platform: "ensemble"
max_batch_size: 0
input [ { name: "COUNT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "Y" data_type: TYPE_INT32 dims: [ 1 ] }, { name: "PEAK" data_type: TYPE_INT32 dims: [ 1 ] } ]
ensemble_scheduling {
  ${limit === undefined ? '' : `max_inflight_requests: ${limit}`}
  step [
    { model_name: "producer" model_version: -1 input_map { key: "COUNT" value: "COUNT" } output_map { key: "VALUE" value: "value" } },
    { model_name: "${consumer}" model_version: -1 input_map { key: "X" value: "value" }
      output_map { key: "Y" value: "Y" } output_map { key: "PEAK" value: "PEAK" } }
  ]
}
`;
}

/** Every item of the ensemble's stream, within a time limit. */
async function collect(engine: InferenceEngine, model: string, count: number): Promise<StreamedResponse[]> {
  const stream = await engine.inferStream({ modelName: model, inputs: [fixedTensor('COUNT', 'INT32', [1], Int32Array.of(count))] });
  return within(20_000, `the responses of ${model}`, (async () => {
    const items: StreamedResponse[] = [];
    for await (const item of stream) items.push(item);
    return items;
  })());
}

function outputs(items: readonly StreamedResponse[], name: string): number[] {
  return items.flatMap((item) => (item.response ? valuesOf(item.response.outputs.find((t) => t.name === name)) : []));
}

describe('decoupled ensemble under max_inflight_requests', () => {
  let root: string;
  let engine: InferenceEngine;
  const consumerConfig = scriptConfig({ maxBatchSize: 0, inputs: [I32('X')], outputs: [I32('Y'), I32('PEAK')] });

  before(async () => {
    root = await makeRepository({
      producer: { config: scriptConfig({ maxBatchSize: 0, inputs: [I32('COUNT')], outputs: [I32('VALUE')], extra: DECOUPLED_POLICY }), versions: {} },
      tick: { config: scriptConfig({ maxBatchSize: 0, inputs: [I32('X')], outputs: [I32('Y')] }), versions: {} },
      consumer_limited: { config: consumerConfig, versions: {} },
      consumer_shared: { config: consumerConfig, versions: {} },
      consumer_free: { config: consumerConfig, versions: {} },
      limited: { config: ensembleConfig('consumer_limited', '2'), versions: { 1: null } },
      shared: { config: ensembleConfig('consumer_shared', '2'), versions: { 1: null } },
      free: { config: ensembleConfig('consumer_free', '0'), versions: { 1: null } },
    });
    await writeScripts(root, {
      producer: { 1: PRODUCER_SCRIPT }, tick: { 1: TICK_SCRIPT },
      consumer_limited: { 1: CONSUMER_SCRIPT }, consumer_shared: { 1: CONSUMER_SCRIPT }, consumer_free: { 1: CONSUMER_SCRIPT },
    });
    engine = await startEngine(root);
  });

  after(async () => {
    await engine.close();
    await removeRepository(root);
  });

  test('an ensemble with a decoupled step is decoupled: its config says so, and unary infer refuses it as Triton does', async () => {
    const config = engine.modelConfig('limited') as { model_transaction_policy?: { decoupled?: boolean } };
    assert.equal(config.model_transaction_policy?.decoupled, true);
    await assert.rejects(engine.infer({ modelName: 'limited', inputs: [fixedTensor('COUNT', 'INT32', [1], Int32Array.of(1))] }),
      { code: 'DECOUPLED_UNARY', message: /^unary inference doesn't support models with decoupled transaction policy/ });
  });

  test('limit 2: every response arrives, and the consumer never runs more than 2 requests at once', async () => {
    const items = await collect(engine, 'limited', 12);
    assert.deepEqual(items.filter((i) => i.error), []);
    assert.deepEqual(outputs(items, 'Y').sort((a, b) => a - b), Array.from({ length: 12 }, (_, i) => i));
    const peaks = outputs(items, 'PEAK');
    assert.ok(Math.max(...peaks) <= 2, `peaks ${peaks.join(',')}`);
    assert.equal(items.at(-1)!.final, true);
    // As in Triton, each ensemble response carries the request's sequence flags (none here).
    assert.deepEqual(items[0]!.response!.parameters, { sequence_id: 0, sequence_start: false, sequence_end: false });
  });

  test('the limit is shared by concurrent requests of the ensemble', async () => {
    const all = await Promise.all([collect(engine, 'shared', 6), collect(engine, 'shared', 6), collect(engine, 'shared', 6)]);
    for (const items of all) assert.deepEqual(outputs(items, 'Y').sort((a, b) => a - b), [0, 1, 2, 3, 4, 5]);
    const peaks = all.flatMap((items) => outputs(items, 'PEAK'));
    assert.ok(Math.max(...peaks) <= 2, `peaks ${peaks.join(',')}`);
  });

  test('limit 0 is no limit: the same producer runs more than 2 consumer requests at once', async () => {
    const items = await collect(engine, 'free', 12);
    assert.deepEqual(outputs(items, 'Y').sort((a, b) => a - b), Array.from({ length: 12 }, (_, i) => i));
    assert.ok(Math.max(...outputs(items, 'PEAK')) > 2, `peaks ${outputs(items, 'PEAK').join(',')}`);
  });

  test('sequential requests get every slot back: ten runs in a row complete', async () => {
    for (let i = 0; i < 10; i++) assert.equal(outputs(await collect(engine, 'limited', 4), 'Y').length, 4);
  });
});

describe('max_inflight_requests and decoupled steps are checked at load', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['a negative limit', '-5', /max_inflight_requests: .*Expected integer, got: -/],
    ['a string', '"invalid_value"', /max_inflight_requests: .*Expected integer, got: "invalid_value"/],
    ['a value past uint32', '12345678901', /max_inflight_requests: .*Integer out of range \(12345678901\)/],
  ];
  for (const [what, value, message] of cases) {
    test(`${what} fails the ensemble's load with protobuf's words, as Triton's log shows them`, async () => {
      const root = await makeRepository({
        producer: { config: scriptConfig({ maxBatchSize: 0, inputs: [I32('COUNT')], outputs: [I32('VALUE')], extra: DECOUPLED_POLICY }), versions: {} },
        consumer: { config: scriptConfig({ maxBatchSize: 0, inputs: [I32('X')], outputs: [I32('Y'), I32('PEAK')] }), versions: {} },
        bad: { config: ensembleConfig('consumer', value), versions: { 1: null } },
      });
      await writeScripts(root, { producer: { 1: PRODUCER_SCRIPT }, consumer: { 1: CONSUMER_SCRIPT } });
      const engine = await startEngine(root, { strictReadiness: false });
      try {
        const entry = engine.repositoryIndex().find((e) => e.name === 'bad')!;
        assert.equal(entry.state, 'UNAVAILABLE');
        assert.match(entry.reason ?? '', message);
      } finally {
        await engine.close();
        await removeRepository(root);
      }
    });
  }

  test('a step reading the ensemble input and a decoupled output, which Triton refuses, loads (see ensemble-stream-broadcast.test.ts)', async () => {
    const root = await makeRepository({
      producer: { config: scriptConfig({ maxBatchSize: 0, inputs: [I32('COUNT')], outputs: [I32('VALUE')], extra: DECOUPLED_POLICY }), versions: {} },
      pair: { config: scriptConfig({ maxBatchSize: 0, inputs: [I32('A'), I32('B')], outputs: [I32('Y')] }), versions: {} },
      mixed: {
        config: `platform: "ensemble"
max_batch_size: 0
input [ { name: "COUNT" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "Y" data_type: TYPE_INT32 dims: [ 1 ] } ]
ensemble_scheduling { step [
  { model_name: "producer" model_version: -1 input_map { key: "COUNT" value: "COUNT" } output_map { key: "VALUE" value: "value" } },
  { model_name: "pair" model_version: -1 input_map { key: "A" value: "value" } input_map { key: "B" value: "COUNT" } output_map { key: "Y" value: "Y" } }
] }
`,
        versions: { 1: null },
      },
    });
    await writeScripts(root, { producer: { 1: PRODUCER_SCRIPT }, pair: { 1: 'export default class { execute(r: any[]) { return r.map((q) => ({ outputs: { Y: { shape: [1], data: q.inputs.A.data } } })); } }\n' } });
    const engine = await startEngine(root, { strictReadiness: false });
    try {
      const entry = engine.repositoryIndex().find((e) => e.name === 'mixed')!;
      assert.equal(entry.state, 'READY', entry.reason);
    } finally {
      await engine.close();
      await removeRepository(root);
    }
  });
});
