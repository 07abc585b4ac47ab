/**
 * The sequence batcher on a simulated clock with a hand-driven instance:
 * control tensors and implicit state value by value, the direct strategy's
 * slots, fillers, backlog and queue delay, idle expiry, Triton's errors,
 * START on an open sequence, cancellation, stop, and statistics.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SwitchyardError } from '../../../engine/errors.ts';
import { outputValue, sequenceConfig, sequenceHarness, type Row } from './sequence-harness.ts';

const row = (input: number, state: number, start: number, end: number, corrid: string): Row =>
  ({ input, state, start, end, ready: 1, corrid });
const FILLER: Row = { input: 0, state: 0, start: 0, end: 0, ready: 0, corrid: '0' };
const FILLER_STRING: Row = { ...FILLER, corrid: '' };

describe('control tensors and implicit state', () => {
  test('each request gets START, END, READY and CORRID for its row, and the state its previous request left', async () => {
    const h = sequenceHarness(sequenceConfig(4));
    const first = h.send(1, { sequence_id: 11, sequence_start: true });
    await h.settle();
    assert.equal(h.executions.length, 1);
    const [request] = h.executions[0]!.requests;
    assert.deepEqual(request!.inputs.map((t) => `${t.name}:${t.datatype}[${t.shape.join(',')}]`),
      ['INPUT:FP32[1,1]', 'START:INT32[1,1]', 'END:INT32[1,1]', 'READY:INT32[1,1]', 'CORRID:UINT64[1,1]', 'STATE_IN:FP32[1,1]']);
    assert.deepEqual(request!.outputs, ['OUTPUT', 'START_OUT', 'END_OUT', 'READY_OUT', 'CORRID_OUT', 'STATE_OUT'], 'the state output is asked for too');
    assert.deepEqual(h.executions[0]!.rows, [row(1, 0, 1, 0, '11')]);
    h.executions[0]!.finish();
    const answered = await first;
    assert.ok(!(answered instanceof Error));
    assert.deepEqual(answered.map((t) => t.name), ['OUTPUT', 'START_OUT', 'END_OUT', 'READY_OUT', 'CORRID_OUT'], 'clients never see the state');
    assert.equal(outputValue(answered), 1);

    const second = h.send(2, { sequence_id: 11 });
    await h.settle();
    assert.deepEqual(h.executions[1]!.rows, [row(2, 1, 0, 0, '11')]);
    h.executions[1]!.finish();
    assert.equal(outputValue(await second), 3);
    const last = h.send(3, { sequence_id: 11, sequence_end: true });
    await h.settle();
    assert.deepEqual(h.executions[2]!.rows, [row(3, 3, 0, 1, '11')]);
    h.executions[2]!.finish();
    assert.equal(outputValue(await last), 6);
    assert.equal(outputValue(await last, 'END_OUT'), 1);
  });

  test('a request both starting and ending its sequence gets START and END true; a uint64 ID past 2^53 reaches CORRID exactly', async () => {
    const h = sequenceHarness(sequenceConfig(2));
    const id = (1n << 64n) - 1n;
    const only = h.send(5, { sequence_id: id, sequence_start: true, sequence_end: true });
    await h.settle();
    assert.deepEqual(h.executions[0]!.rows, [row(5, 0, 1, 1, '18446744073709551615')]);
    h.executions[0]!.finish();
    assert.equal(outputValue(await only), 5);
    assert.equal(h.scheduler.inflightCount(), 0);
    const after = await h.send(1, { sequence_id: id });
    assert.equal((after as Error).message,
      "inference request for sequence 18446744073709551615 to model 'm' must specify the START flag on the first request of the sequence");
  });

  test('a string ID reaches a TYPE_STRING CORRID as its text; 5 and "5" are different sequences', async () => {
    const h = sequenceHarness(sequenceConfig(2).replace('TYPE_UINT64', 'TYPE_STRING'), { corridType: 'BYTES' });
    const a = h.send(1, { sequence_id: '5', sequence_start: true });
    const b = h.send(10, { sequence_id: 5, sequence_start: true });
    await h.settle();
    assert.deepEqual(h.executions[0]!.rows, [row(1, 0, 1, 0, '5')]);
    h.executions[0]!.finish();
    await a;
    await h.settle();
    assert.deepEqual(h.executions[1]!.rows, [FILLER_STRING, row(10, 0, 1, 0, '5')], 'the numeric 5 holds its own slot');
    h.executions[1]!.finish();
    assert.equal(outputValue(await b), 10);
  });
});


describe('direct strategy', () => {
  test('one row per slot up to the last slot that sends; idle slots get a not-ready filler', async () => {
    const h = sequenceHarness(sequenceConfig(4));
    const a1 = h.send(1, { sequence_id: 1, sequence_start: true });
    await h.settle();
    const b1 = h.send(10, { sequence_id: 2, sequence_start: true });
    const c1 = h.send(100, { sequence_id: 3, sequence_start: true });
    await h.settle();
    assert.equal(h.executions.length, 1, 'an instance runs one batch at a time');
    h.executions[0]!.finish();
    await a1;
    await h.settle();
    assert.deepEqual(h.executions[1]!.rows, [FILLER, row(10, 0, 1, 0, '2'), row(100, 0, 1, 0, '3')]);
    h.executions[1]!.finish();
    assert.deepEqual([outputValue(await b1), outputValue(await c1)], [10, 100]);
    const c2 = h.send(200, { sequence_id: 3 });
    await h.settle();
    assert.deepEqual(h.executions[2]!.rows, [FILLER, FILLER, row(200, 100, 0, 0, '3')]);
    h.executions[2]!.finish();
    assert.equal(outputValue(await c2), 300);
    assert.equal(h.executions[2]!.requests[0]!.outputs.length, 0, 'a filler asks for nothing');
  });

  test('sequences beyond the slots wait in the backlog, and a freed slot goes to the oldest with a fresh state', async () => {
    const h = sequenceHarness(sequenceConfig(2));
    const a1 = h.send(1, { sequence_id: 1, sequence_start: true });
    const b1 = h.send(2, { sequence_id: 2, sequence_start: true });
    const c1 = h.send(3, { sequence_id: 3, sequence_start: true });
    void h.send(4, { sequence_id: 4, sequence_start: true });
    await h.settle();
    assert.deepEqual(h.executions[0]!.rows.map((r) => r.input), [1], 'the first request went at once');
    assert.equal(h.scheduler.inflightCount(), 4);
    h.executions[0]!.finish();
    await a1;
    await h.settle();
    assert.deepEqual(h.executions[1]!.rows, [FILLER, row(2, 0, 1, 0, '2')], '3 and 4 have no slot');
    h.executions[1]!.finish();
    await b1;
    const c2 = h.send(30, { sequence_id: 3 });
    const aEnd = h.send(5, { sequence_id: 1, sequence_end: true });
    await h.settle();
    assert.deepEqual(h.executions[2]!.rows, [row(5, 1, 0, 1, '1')]);
    h.executions[2]!.finish();
    assert.equal(outputValue(await aEnd), 6);
    await h.settle();
    // Slot 0 went to sequence 3, the oldest in the backlog: its START, then its next request, with a fresh state.
    assert.deepEqual(h.executions[3]!.rows, [row(3, 0, 1, 0, '3')]);
    h.executions[3]!.finish();
    assert.equal(outputValue(await c1), 3);
    await h.settle();
    assert.deepEqual(h.executions[4]!.rows, [row(30, 3, 0, 0, '3')]);
    h.executions[4]!.finish();
    assert.equal(outputValue(await c2), 33);
    assert.equal(h.scheduler.inflightCount(), 1, 'sequence 4 still waits');
  });

  test('with max_queue_delay_microseconds and minimum_slot_utilization a partial batch waits for more rows or for the delay', async () => {
    const h = sequenceHarness(sequenceConfig(4, 'direct { max_queue_delay_microseconds: 10000 minimum_slot_utilization: 0.75 }'));
    void h.send(1, { sequence_id: 1, sequence_start: true });
    await h.settle();
    h.clock.advance(5);
    void h.send(2, { sequence_id: 2, sequence_start: true });
    await h.settle();
    assert.equal(h.executions.length, 0, '2 of 4 slots is under 0.75');
    void h.send(3, { sequence_id: 3, sequence_start: true });
    await h.settle();
    assert.deepEqual(h.executions[0]!.rows.map((r) => r.input), [1, 2, 3], '3 of 4 slots goes at once');
    h.executions[0]!.finish();
    await h.settle();
    void h.send(20, { sequence_id: 2 });
    await h.settle();
    h.clock.advance(9);
    assert.equal(h.executions.length, 1);
    h.clock.advance(1);
    await h.settle();
    assert.deepEqual(h.executions[1]!.rows.map((r) => r.input), [0, 20], 'after 10 ms the lone request goes, behind a filler');
    assert.equal(h.executions[1]!.rows[0]!.ready, 0);
  });

  test('sequences spread over instances before sharing one', async () => {
    const h = sequenceHarness(sequenceConfig(2), { instances: 2 });
    for (let id = 1; id <= 4; id++) void h.send(id, { sequence_id: id, sequence_start: true });
    await h.settle();
    assert.deepEqual(h.executions.map((e) => [e.instance, e.rows.map((r) => r.corrid)]), [['i0', ['1']], ['i1', ['2']]]);
    h.executions[0]!.finish();
    h.executions[1]!.finish();
    await h.settle();
    assert.deepEqual(h.executions.slice(2).map((e) => [e.instance, e.rows.map((r) => r.corrid)]), [['i0', ['0', '3']], ['i1', ['0', '4']]],
      'slot 0 of each instance first, then slot 1');
  });
});

describe('lifecycle', () => {
  test('a sequence with nothing queued or running for max_sequence_idle_microseconds expires; its slot goes to the backlog', async () => {
    // 5 s idle; the clock counts milliseconds.
    const h = sequenceHarness(sequenceConfig(1, '', 'max_sequence_idle_microseconds: 5000000'));
    const a1 = h.send(1, { sequence_id: 1, sequence_start: true });
    await h.settle();
    h.clock.advance(20);
    h.executions[0]!.finish();
    assert.equal(outputValue(await a1), 1, 'running longer than the idle time is not idle');
    const b1 = h.send(7, { sequence_id: 2, sequence_start: true });
    await h.settle();
    h.clock.advance(4999);
    const a2 = h.send(2, { sequence_id: 1 });
    await h.settle();
    h.executions[1]!.finish();
    assert.equal(outputValue(await a2), 3, 'a request within the idle time keeps the sequence');
    await h.settle();
    assert.equal(h.executions.length, 2, 'sequence 2 still waits for the slot');
    h.clock.advance(4999);
    await h.settle();
    assert.equal(h.executions.length, 2);
    h.clock.advance(1);
    await h.settle();
    assert.deepEqual(h.executions[2]!.rows, [row(7, 0, 1, 0, '2')], 'sequence 1 expired and sequence 2 took its slot');
    h.executions[2]!.finish();
    assert.equal(outputValue(await b1), 7);
    const late = await h.send(3, { sequence_id: 1 });
    assert.equal((late as Error).message, "inference request for sequence 1 to model 'm' must specify the START flag on the first request of the sequence");
    assert.equal((late as SwitchyardError).status, 'INVALID_ARG');
    const restarted = h.send(4, { sequence_id: 1, sequence_start: true });
    await h.settle();
    assert.equal(h.executions.length, 3, 'sequence 2 holds the only slot');
    h.clock.advance(5000);
    await h.settle();
    assert.equal(h.executions.length, 4, 'sequence 2 expired too, so sequence 1 got the slot back');
    assert.deepEqual(h.executions[3]!.rows, [row(4, 0, 1, 0, '1')], 'the expired state is gone');
    h.executions[3]!.finish();
    assert.equal(outputValue(await restarted), 4);
  });

  test('START on an open sequence ends it early: what it queued runs first, then the new sequence starts from a fresh state', async () => {
    const h = sequenceHarness(sequenceConfig(2));
    const outcomes = [
      h.send(1, { sequence_id: 9, sequence_start: true }),
      h.send(2, { sequence_id: 9 }),
      h.send(10, { sequence_id: 9, sequence_start: true }),
      h.send(5, { sequence_id: 9 }),
      h.send(1, { sequence_id: 9, sequence_start: true, sequence_end: true }),
    ];
    for (let i = 0; i < 5; i++) {
      await h.settle();
      assert.equal(h.executions.length, i + 1, `execution ${i + 1}`);
      assert.equal(h.executions[i]!.rows.length, 1, 'the new sequence took the old one\'s slot');
      h.executions[i]!.finish();
    }
    const values = await Promise.all(outcomes);
    assert.deepEqual(values.map((v) => outputValue(v)), [1, 3, 10, 15, 1]);
    assert.deepEqual(h.executions.map((e) => [e.rows[0]!.state, e.rows[0]!.start]), [[0, 1], [1, 0], [0, 1], [10, 0], [0, 1]]);
    assert.equal(h.scheduler.inflightCount(), 0);
  });

  test('END closes the sequence at once: a later request without START fails even while the END is queued', async () => {
    const h = sequenceHarness(sequenceConfig(2));
    const a1 = h.send(1, { sequence_id: 3, sequence_start: true });
    const end = h.send(2, { sequence_id: 3, sequence_end: true });
    const late = await h.send(3, { sequence_id: 3 });
    assert.match((late as Error).message, /sequence 3 to model 'm' must specify the START flag/);
    await h.settle();
    h.executions[0]!.finish();
    await h.settle();
    h.executions[1]!.finish();
    assert.deepEqual([outputValue(await a1), outputValue(await end)], [1, 3]);
  });

  test('a request cancelled while queued leaves its sequence, which goes on from the state before it', async () => {
    const h = sequenceHarness(sequenceConfig(2));
    const a1 = h.send(1, { sequence_id: 1, sequence_start: true });
    const controller = new AbortController();
    const a2 = h.send(2, { sequence_id: 1 }, { signal: controller.signal });
    const a3 = h.send(4, { sequence_id: 1 });
    await h.settle();
    controller.abort(new Error('client went away'));
    assert.equal((await a2 as SwitchyardError).message, "inference request for model 'm' was cancelled: client went away");
    h.executions[0]!.finish();
    assert.equal(outputValue(await a1), 1);
    await h.settle();
    h.executions[1]!.finish();
    assert.equal(outputValue(await a3), 5);
    assert.equal(h.executions.length, 2);
  });

  test('sequences whose requests were all cancelled before they got a slot leave the line', async () => {
    const h = sequenceHarness(sequenceConfig(1));
    const a1 = h.send(1, { sequence_id: 1, sequence_start: true });
    const dropB = new AbortController();
    const b = h.send(2, { sequence_id: 2, sequence_start: true, sequence_end: true }, { signal: dropB.signal });
    const c = h.send(3, { sequence_id: 3, sequence_start: true, sequence_end: true });
    // Two more starts on ID 1 chain behind it; the middle one is dropped.
    const dropMiddle = new AbortController();
    const middle = h.send(50, { sequence_id: 1, sequence_start: true }, { signal: dropMiddle.signal });
    const last = h.send(7, { sequence_id: 1, sequence_start: true, sequence_end: true });
    await h.settle();
    dropB.abort();
    dropMiddle.abort();
    assert.equal((await b as SwitchyardError).code, 'CANCELLED');
    assert.equal((await middle as SwitchyardError).code, 'CANCELLED');
    h.executions[0]!.finish();
    assert.equal(outputValue(await a1), 1);
    await h.settle();
    assert.deepEqual(h.executions[1]!.rows, [row(7, 0, 1, 1, '1')], 'the last START on ID 1 took its slot, fresh');
    h.executions[1]!.finish();
    assert.equal(outputValue(await last), 7);
    await h.settle();
    assert.deepEqual(h.executions[2]!.rows, [row(3, 0, 1, 1, '3')], 'then sequence 3; sequence 2 left the backlog');
    h.executions[2]!.finish();
    assert.equal(outputValue(await c), 3);
    assert.equal(h.scheduler.inflightCount(), 0);
    assert.equal(h.executions.length, 3);
  });

  test('stop ends every sequence: queued requests get UNAVAILABLE naming why, running ones finish, new ones are refused', async () => {
    const h = sequenceHarness(sequenceConfig(1));
    const a1 = h.send(1, { sequence_id: 1, sequence_start: true });
    const a2 = h.send(2, { sequence_id: 1 });
    const b1 = h.send(3, { sequence_id: 2, sequence_start: true });
    await h.settle();
    let stopped = false;
    const stopping = h.scheduler.stop('unloaded').then(() => { stopped = true; });
    const [ended, backlogged] = await Promise.all([a2, b1]) as SwitchyardError[];
    assert.equal(ended!.message, "sequence 1 of model 'm' was ended before this request ran: the model is stopping (unloaded)");
    assert.equal(ended!.status, 'UNAVAILABLE');
    assert.equal(ended!.httpStatus, 503);
    assert.equal(backlogged!.message, "sequence 2 of model 'm' was ended before this request ran: the model is stopping (unloaded)");
    await h.settle();
    assert.equal(stopped, false, 'stop waits for the running batch');
    h.executions[0]!.finish();
    assert.equal(outputValue(await a1), 1);
    await stopping;
    assert.equal(h.scheduler.inflightCount(), 0);
    const refused = await h.send(1, { sequence_id: 2, sequence_start: true });
    assert.equal((refused as SwitchyardError).code, 'SERVER_STOPPING');
    assert.equal(h.clock.pending, 0, 'no idle timer is left behind');
  });

  test('a failed batch fails its requests and leaves each sequence\'s state as it was', async () => {
    const h = sequenceHarness(sequenceConfig(2));
    const a1 = h.send(1, { sequence_id: 1, sequence_start: true });
    await h.settle();
    h.executions[0]!.finish();
    await a1;
    const a2 = h.send(2, { sequence_id: 1 });
    await h.settle();
    h.executions[1]!.failAll('boom');
    assert.match((await a2 as Error).message, /boom/);
    const a3 = h.send(4, { sequence_id: 1 });
    await h.settle();
    h.executions[2]!.finish();
    assert.equal(outputValue(await a3), 5);
  });
});

describe('errors in Triton\'s words', () => {
  const h = sequenceHarness(sequenceConfig(4));
  for (const [title, parameters, message] of [
    ['no correlation ID', {}, "inference request to model 'm' must specify a non-zero or non-empty correlation ID"],
    ['a zero ID', { sequence_id: 0, sequence_start: true }, "inference request to model 'm' must specify a non-zero or non-empty correlation ID"],
    ['an empty string ID', { sequence_id: '', sequence_start: true }, "inference request to model 'm' must specify a non-zero or non-empty correlation ID"],
    ['a sequence that never started', { sequence_id: 42 }, "inference request for sequence 42 to model 'm' must specify the START flag on the first request of the sequence"],
    ['a string sequence that never started', { sequence_id: 'user-7', sequence_end: true }, "inference request for sequence user-7 to model 'm' must specify the START flag on the first request of the sequence"],
    ['a negative ID', { sequence_id: -3 }, "invalid value type for 'sequence_id' parameter, expected an unsigned 64-bit integer or a string, got -3"],
    ['an ID past 2^64', { sequence_id: 1n << 64n }, "invalid value type for 'sequence_id' parameter, expected an unsigned 64-bit integer or a string, got 18446744073709551616"],
    ['a fractional ID', { sequence_id: 1.5 }, "invalid value type for 'sequence_id' parameter, expected an unsigned 64-bit integer or a string, got 1.5"],
    ['a START flag that is not a boolean', { sequence_id: 1, sequence_start: 'yes' }, "invalid value type for 'sequence_start' parameter, expected a boolean, got 'yes'"],
    ['an END flag that is not a boolean', { sequence_id: 1, sequence_end: 1 }, "invalid value type for 'sequence_end' parameter, expected a boolean, got 1"],
    ['a string ID for a model taking the ID as UINT64', { sequence_id: 'abc', sequence_start: true },
      "sequence abc has a string correlation ID, but model 'm' takes the correlation ID as UINT64 in its CONTROL_SEQUENCE_CORRID input 'CORRID'; send sequence_id as an unsigned integer"],
  ] as const) {
    test(title, async () => {
      const outcome = await h.send(1, parameters);
      assert.ok(outcome instanceof Error);
      assert.equal(outcome.message, message);
      assert.equal((outcome as SwitchyardError).status, 'INVALID_ARG');
    });
  }

  test('more than one row', async () => {
    const outcome = await h.send(1, { sequence_id: 1, sequence_start: true }, { rows: 3 });
    assert.equal((outcome as Error).message, "inference request to model 'm' must specify batch-size 1 due to requirements of sequence batcher");
    assert.equal(h.executions.length, 0);
    assert.equal(h.scheduler.inflightCount(), 0);
  });
});

test('statistics count requests, executions and batch sizes as the dynamic batcher does', async () => {
  const h = sequenceHarness(sequenceConfig(4));
  const a = h.send(1, { sequence_id: 1, sequence_start: true });
  await h.settle();
  const b = h.send(1, { sequence_id: 2, sequence_start: true });
  const c = h.send(1, { sequence_id: 3, sequence_start: true });
  h.clock.advance(3);
  h.executions[0]!.finish();
  await a;
  await h.settle();
  h.executions[1]!.finish();
  await Promise.all([b, c]);
  const stats = h.stats.snapshot('m', '1');
  assert.equal(stats.inference_count, 3);
  assert.equal(stats.execution_count, 2);
  assert.equal(stats.inference_stats.success.count, 3);
  assert.deepEqual(stats.batch_stats.map((s) => [s.batch_size, s.compute_infer.count]), [[1, 1], [2, 1]], 'fillers are not inferences');
  assert.equal(stats.inference_stats.queue.ns, 2 * 3e6, 'b and c waited 3 ms for the instance');
});
