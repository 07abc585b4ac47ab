/**
 * The sequence START backlog is bounded (issue 15, class 13b): when every
 * sequence slot is taken, at most max_sequence_backlog new sequences wait
 * for one; the next START is refused at once with 503 / UNAVAILABLE in
 * Triton's queue-full wording, naming the parameter. A flood of STARTs
 * costs bounded memory, and the waiting sequences run once a slot frees.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { status } from '@grpc/grpc-js';
import { DEFAULT_MAX_SEQUENCE_BACKLOG } from '../../../engine/config/compile-sequence-batching.ts';
import { stateAccumulatorModel } from '../../../generator/models.ts';
import { makeRepository, removeRepository, startBoth, type DualFixture } from '../../helpers/fixture-repository.ts';
import { compileSequenceConfig, sequenceConfig } from './sequence-harness.ts';
import { RawGrpcClient } from '../../helpers/grpc-raw-client.ts';

/** The bound under test: two new sequences may wait. */
const BACKLOG = 2;
/** STARTs sent in the flood; all but BACKLOG are refused. */
const FLOOD = 2000;
/**
 * Memory still referenced after the flood and a full collection may grow this
 * much: 16 KiB per refused START would pass it, so state kept per refusal fails.
 * The server and its client share this process.
 */
const HELD_GROWTH_LIMIT = 32 * 1024 * 1024;
/** RSS, a coarser check: it also counts heap the allocator keeps reserved (more on Node 24 than on 20). */
const RSS_GROWTH_LIMIT = 192 * 1024 * 1024;

// Both measurements follow a full collection, so what is compared is memory still held, not garbage
// a young generation has yet to reclaim (Node 24's V8 sizes it larger than Node 20's).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/** Memory still referenced after a collection: the V8 heap and the buffers outside it. */
const held = (): number => {
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
};

/** One slot in all (max_batch_size 1, one instance), sequences that never expire on their own in the test's time. */
const accumulatorConfig = (parameter?: string): string => `max_batch_size: 1
sequence_batching {
  max_sequence_idle_microseconds: 600000000
  state [ { input_name: "STATE_IN" output_name: "STATE_OUT" data_type: TYPE_FP32 dims: [ 1 ] } ]
}
${parameter === undefined ? '' : `parameters { key: "max_sequence_backlog" value: { string_value: "${parameter}" } }`}
`;

describe('the sequence backlog bound', () => {
  let root: string;
  let fixture: DualFixture;
  let client: RawGrpcClient;

  before(async () => {
    root = await makeRepository({
      bounded: { config: accumulatorConfig(String(BACKLOG)), versions: { 1: stateAccumulatorModel() } },
      no_wait: { config: accumulatorConfig('0'), versions: { 1: stateAccumulatorModel() } },
    });
    fixture = await startBoth(root);
    assert.deepEqual(fixture.engine.loadFailures(), []);
    client = new RawGrpcClient(fixture.grpcAddress);
  });

  after(async () => {
    client.close();
    await fixture.close();
    await removeRepository(root);
  });

  const step = async (model: string, id: number, value: number, flags: { start?: boolean; end?: boolean } = {}): Promise<{ status: number; body: string }> => {
    const res = await fetch(`${fixture.httpUrl}/v2/models/${model}/infer`, {
      method: 'POST',
      body: JSON.stringify({
        parameters: { sequence_id: id, ...(flags.start ? { sequence_start: true } : {}), ...(flags.end ? { sequence_end: true } : {}) },
        inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, 1], data: [value] }],
      }),
    });
    return { status: res.status, body: await res.text() };
  };
  const outputOf = (body: string): number => (JSON.parse(body) as { outputs: Array<{ name: string; data: number[] }> }).outputs.find((o) => o.name === 'OUTPUT')!.data[0]!;
  const backlogFull = /^\{"error":"Exceeds maximum queue size: every sequence slot of model 'bounded' is taken and 2 new sequence\(s\) already wait for one \(the model config parameter max_sequence_backlog\); retry the START later"\}$/;

  test(`at the bound ${BACKLOG} STARTs wait; one over is 503 at once (HTTP) and UNAVAILABLE (gRPC); a flood of ${FLOOD} stays bounded`, async (t) => {
    // Sequence 1 takes the only slot and keeps it.
    const first = await step('bounded', 1, 10, { start: true });
    assert.equal(first.status, 200, first.body);
    // At the bound: two new sequences wait, their STARTs unanswered until a slot frees.
    const waiting = [step('bounded', 2, 100, { start: true }), step('bounded', 3, 1000, { start: true })];
    // One over: refused now, while the two still wait (the refusal does not wait for them).
    const over = await step('bounded', 4, 1, { start: true });
    assert.equal(over.status, 503);
    assert.match(over.body, backlogFull);
    const overGrpc = await client.call('ModelInfer', {
      model_name: 'bounded', parameters: { sequence_id: { int64_param: 5 }, sequence_start: { bool_param: true } },
      inputs: [{ name: 'INPUT', datatype: 'FP32', shape: [1, 1], contents: { fp32_contents: [1] } }],
    });
    assert.equal(overGrpc.error?.code, status.UNAVAILABLE);
    assert.match(overGrpc.error!.details, /Exceeds maximum queue size: .*max_sequence_backlog/);

    gc();
    const rssBefore = process.memoryUsage().rss;
    const heldBefore = held();
    // 100 at a time: the client shares this process, and thousands of sockets at once would measure the client.
    const flood: Array<{ status: number; body: string }> = [];
    for (let i = 0; i < FLOOD; i += 100) {
      flood.push(...await Promise.all(Array.from({ length: 100 }, (_, j) => step('bounded', 1000 + i + j, 1, { start: true }))));
    }
    assert.ok(flood.every((r) => r.status === 503 && backlogFull.test(r.body)), 'every START of the flood was refused');
    gc();
    const growth = process.memoryUsage().rss - rssBefore;
    const heldGrowth = held() - heldBefore;
    t.diagnostic(`RSS growth: ${(growth / 1048576).toFixed(1)} MiB; held: ${(heldGrowth / 1048576).toFixed(1)} MiB`);
    assert.ok(heldGrowth < HELD_GROWTH_LIMIT, `held memory grew ${heldGrowth} bytes over ${FLOOD} refused STARTs; the bound is ${HELD_GROWTH_LIMIT}`);
    assert.ok(growth < RSS_GROWTH_LIMIT, `RSS grew ${growth} bytes over ${FLOOD} refused STARTs; the bound is ${RSS_GROWTH_LIMIT}`);
    assert.equal(fixture.engine.isModelReady('bounded'), true);

    // The slot frees: the waiting sequences run in arrival order, each from a fresh state.
    const ended = await step('bounded', 1, 5, { end: true });
    assert.equal(outputOf(ended.body), 15);
    const [second, third] = await Promise.all(waiting.map(async (w, i) => {
      const started = await w;
      assert.equal(started.status, 200, started.body);
      return { started, ended: await step('bounded', i + 2, 1, { end: true }) };
    }));
    assert.deepEqual([outputOf(second!.started.body), outputOf(third!.started.body)], [100, 1000]);
    // With the backlog empty again, a new sequence is taken.
    const again = await step('bounded', 6, 7, { start: true, end: true });
    assert.equal(again.status, 200);
    assert.equal(outputOf(again.body), 7);
  });

  test('max_sequence_backlog 0: a START that finds no free slot is refused instead of waiting', async () => {
    assert.equal((await step('no_wait', 1, 1, { start: true })).status, 200);
    const refused = await step('no_wait', 2, 1, { start: true });
    assert.equal(refused.status, 503);
    assert.match(refused.body, /and 0 new sequence\(s\) already wait/);
    // Requests of the sequence holding the slot still run, and a START after it ends is taken.
    assert.equal(outputOf((await step('no_wait', 1, 2, { end: true })).body), 3);
    assert.equal((await step('no_wait', 2, 1, { start: true, end: true })).status, 200);
  });
});

test(`the bound defaults to ${DEFAULT_MAX_SEQUENCE_BACKLOG}, and a bad value fails the load naming the parameter`, () => {
  const backlogOf = (parameter?: string): number => {
    const compiled = compileSequenceConfig(sequenceConfig(1, '', '') + (parameter === undefined ? ''
      : `parameters { key: "max_sequence_backlog" value: { string_value: "${parameter}" } }\n`));
    assert.equal(compiled.scheduling.kind, 'sequence');
    return compiled.scheduling.kind === 'sequence' ? compiled.scheduling.batching.maxBacklog : -1;
  };
  assert.equal(backlogOf(), DEFAULT_MAX_SEQUENCE_BACKLOG);
  assert.equal(backlogOf('0'), 0);
  assert.equal(backlogOf('250000'), 250000);
  assert.throws(() => backlogOf('-1'), /parameters\.max_sequence_backlog: is '-1'\. Fix: use the number of new sequences that may wait/);
  assert.throws(() => backlogOf('many'), /parameters\.max_sequence_backlog: is 'many'/);
});
