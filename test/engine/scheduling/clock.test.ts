/**
 * The system clock's timers: a wait under a millisecond fires on the next
 * turn of the event loop rather than after setTimeout's 1 ms floor (a queue
 * delay of 100 µs used to cost a whole millisecond), and both kinds of
 * timer can be cancelled.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { systemClock } from '../../../engine/scheduling/clock.ts';

/** One turn of the event loop: immediates queued before this one have run when it resolves. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('a timer under a millisecond fires on the next turn of the event loop', async () => {
  let fired = false;
  systemClock.setTimer(() => { fired = true; }, 0.1);
  await nextTurn();
  assert.equal(fired, true);
});

test('a timer of a millisecond or more is a real timer: not fired on the next turn', async () => {
  let fired = false;
  const handle = systemClock.setTimer(() => { fired = true; }, 50);
  await nextTurn();
  assert.equal(fired, false);
  systemClock.clearTimer(handle);
});

test('both kinds can be cancelled', async () => {
  let fired = 0;
  const short = systemClock.setTimer(() => { fired++; }, 0.5);
  const long = systemClock.setTimer(() => { fired++; }, 1);
  systemClock.clearTimer(short);
  systemClock.clearTimer(long);
  // Past the 1 ms timer's time, waited on a timer that was queued after it.
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(fired, 0);
});
