/**
 * The oldest strategy on a simulated clock: batches form across an
 * instance's candidate sequences, oldest request first, at most one request
 * per sequence, with preferred sizes and the queue delay; sequences past
 * max_candidate_sequences wait in the backlog.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { outputValue, sequenceConfig, sequenceHarness } from './sequence-harness.ts';

test('a batch takes the oldest ready request of each sequence, never two of one sequence, and no fillers', async () => {
  const h = sequenceHarness(sequenceConfig(4, 'oldest { max_candidate_sequences: 4 }'));
  const a1 = h.send(1, { sequence_id: 1, sequence_start: true });
  await h.settle();
  h.clock.advance(1);
  const b1 = h.send(10, { sequence_id: 2, sequence_start: true });
  h.clock.advance(1);
  const a2 = h.send(2, { sequence_id: 1 });
  h.clock.advance(1);
  const c1 = h.send(100, { sequence_id: 3, sequence_start: true });
  h.clock.advance(1);
  const a3 = h.send(3, { sequence_id: 1 });
  h.clock.advance(1);
  const d1 = h.send(1000, { sequence_id: 4, sequence_start: true });
  await h.settle();
  assert.equal(h.executions.length, 1);
  h.executions[0]!.finish();
  assert.equal(outputValue(await a1), 1);
  await h.settle();
  assert.deepEqual(h.executions[1]!.rows.map((r) => [r.corrid, r.input, r.state, r.start]),
    [['2', 10, 0, 1], ['1', 2, 1, 0], ['3', 100, 0, 1], ['4', 1000, 0, 1]], 'oldest first; sequence 1 sends one request');
  assert.ok(h.executions[1]!.rows.every((r) => r.ready === 1));
  h.executions[1]!.finish();
  assert.deepEqual((await Promise.all([b1, a2, c1, d1])).map((o) => outputValue(o)), [10, 3, 100, 1000]);
  await h.settle();
  assert.deepEqual(h.executions[2]!.rows.map((r) => [r.corrid, r.input, r.state]), [['1', 3, 3]]);
  h.executions[2]!.finish();
  assert.equal(outputValue(await a3), 6);
});

test('a batch below the preferred size waits for more sequences or for the queue delay; the close reason is counted', async () => {
  const h = sequenceHarness(sequenceConfig(4, 'oldest { max_candidate_sequences: 4 preferred_batch_size: [ 2 ] max_queue_delay_microseconds: 5000 }'));
  const a1 = h.send(1, { sequence_id: 1, sequence_start: true });
  await h.settle();
  h.clock.advance(4);
  assert.equal(h.executions.length, 0);
  const b1 = h.send(2, { sequence_id: 2, sequence_start: true });
  await h.settle();
  assert.deepEqual(h.executions[0]!.rows.map((r) => r.corrid), ['1', '2'], 'a preferred size goes at once');
  h.executions[0]!.finish();
  await Promise.all([a1, b1]);
  const a2 = h.send(5, { sequence_id: 1 });
  await h.settle();
  h.clock.advance(4);
  assert.equal(h.executions.length, 1);
  h.clock.advance(1);
  await h.settle();
  assert.deepEqual(h.executions[1]!.rows.map((r) => [r.corrid, r.state]), [['1', 1]]);
  h.executions[1]!.finish();
  assert.equal(outputValue(await a2), 6);
  const reasons = h.stats.snapshot('m', '1').batch_close_reasons;
  assert.equal(reasons.preferred_batch_size, 1);
  assert.equal(reasons.queue_delay, 1);
});

test('sequences past max_candidate_sequences wait in the backlog until a candidate ends', async () => {
  const h = sequenceHarness(sequenceConfig(4, 'oldest { max_candidate_sequences: 2 }'));
  const a = h.send(1, { sequence_id: 1, sequence_start: true, sequence_end: true });
  const b = h.send(2, { sequence_id: 2, sequence_start: true });
  const c = h.send(3, { sequence_id: 3, sequence_start: true });
  await h.settle();
  assert.deepEqual(h.executions[0]!.rows.map((r) => r.corrid), ['1']);
  h.executions[0]!.finish();
  await a;
  await h.settle();
  assert.deepEqual(h.executions[1]!.rows.map((r) => r.corrid), ['2', '3'], 'sequence 1 ended, so sequence 3 became a candidate');
  h.executions[1]!.finish();
  assert.deepEqual((await Promise.all([b, c])).map((o) => outputValue(o)), [2, 3]);
});

test('without batching (max_batch_size 0) each batch is one request, oldest first', async () => {
  const h = sequenceHarness(sequenceConfig(0, 'oldest { max_candidate_sequences: 3 }'));
  const a1 = h.send(1, { sequence_id: 1, sequence_start: true });
  const b1 = h.send(2, { sequence_id: 2, sequence_start: true });
  const c1 = h.send(3, { sequence_id: 3, sequence_start: true });
  for (let i = 0; i < 3; i++) {
    await h.settle();
    assert.equal(h.executions[i]!.requests.length, 1);
    assert.deepEqual(h.executions[i]!.requests[0]!.inputs.find((t) => t.name === 'START')!.shape, [1], 'unbatched controls are [1]');
    h.executions[i]!.finish();
  }
  assert.deepEqual((await Promise.all([a1, b1, c1])).map((o) => outputValue(o)), [1, 2, 3]);
  assert.deepEqual(h.executions.map((e) => e.rows[0]!.corrid), ['1', '2', '3']);
});
