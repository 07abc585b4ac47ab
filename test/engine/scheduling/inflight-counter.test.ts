/**
 * idle() as an event: the counter itself, and the dynamic batcher's idle(),
 * which unload and shutdown wait on instead of polling the in-flight count.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { idleWithin, InflightCounter } from '../../../engine/scheduling/inflight-counter.ts';
import { harness, rows } from './scripted-instance.ts';

/** Whether `promise` has settled once pending callbacks ran. */
async function hasSettled(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(() => { settled = true; }, () => { settled = true; });
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

test('a counter is idle at once when nothing is in flight, and only once the last one leaves otherwise', async () => {
  const counter = new InflightCounter();
  assert.equal(await hasSettled(counter.idle()), true, 'nothing in flight');
  counter.enter();
  counter.enter();
  const idle = counter.idle();
  counter.leave();
  assert.equal(counter.count, 1);
  assert.equal(await hasSettled(idle), false, 'one still in flight');
  counter.leave();
  assert.equal(counter.count, 0);
  assert.equal(await hasSettled(idle), true, 'the last one left');
  assert.throws(() => counter.leave(), /without a matching enter/);
});

test('idleWithin gives up after its time limit and says so, and answers true when idle comes first', async () => {
  const counter = new InflightCounter();
  counter.enter();
  assert.equal(await idleWithin(counter.idle(), 10), false, 'still busy after 10 ms');
  const inTime = idleWithin(counter.idle(), 60_000);
  counter.leave();
  assert.equal(await inTime, true);
  assert.equal(await idleWithin(counter.idle(), Number.POSITIVE_INFINITY), true);
});

test('a dynamic batcher is idle once every request taken has been answered, queued ones and cancelled ones included', async () => {
  const h = harness('max_batch_size: 8\n');
  assert.equal(await hasSettled(h.scheduler.idle()), true, 'nothing taken yet');
  const first = h.send(rows(1));
  const controller = new AbortController();
  const cancelled = h.send(rows(2, 1, 4, undefined, controller.signal));
  const third = h.send(rows(3));
  await h.settle();
  assert.equal(h.scheduler.inflightCount(), 3);
  const idle = h.scheduler.idle();
  controller.abort(new Error('gone'));
  assert.ok((await cancelled) instanceof Error, 'answered at once');
  // The first two were handed to the instance (it takes two executions side by side); the cancelled one counts until its execution ends.
  assert.equal(h.executions.length, 2);
  assert.equal(h.scheduler.inflightCount(), 3);
  assert.equal(await hasSettled(idle), false, 'two requests are not answered yet');
  for (let i = 0; h.scheduler.inflightCount() > 0; i++) {
    await h.settle();
    h.executions[i]!.finish();
    await h.settle();
  }
  assert.deepEqual([await first, await third].map((r) => r instanceof Error), [false, false]);
  assert.equal(await hasSettled(idle), true);
});

test('a request cancelled while its batch executes is answered at once but counts until the batch is done with it', async () => {
  const h = harness('max_batch_size: 8\n');
  const controller = new AbortController();
  const running = h.send(rows(1, 1, 4, undefined, controller.signal));
  await h.settle();
  assert.equal(h.executions.length, 1, 'it is executing');
  const idle = h.scheduler.idle();
  controller.abort(new Error('gone'));
  assert.ok((await running) instanceof Error, 'answered at once');
  assert.equal(h.scheduler.inflightCount(), 1, 'its batch still runs on the instance');
  assert.equal(await hasSettled(idle), false, 'unload must not go ahead while the instance computes');
  h.executions[0]!.finish();
  await h.settle();
  assert.equal(h.scheduler.inflightCount(), 0);
  assert.equal(await hasSettled(idle), true);
});

test('a ticket leaves the count once, after its last hold', () => {
  const counter = new InflightCounter();
  const ticket = counter.ticket();
  ticket.hold();
  ticket.done();
  assert.equal(counter.count, 1);
  ticket.done();
  assert.equal(counter.count, 0);
  ticket.done();
  ticket.hold();
  assert.equal(counter.count, 0, 'a ticket that left stays out');
});
