/** A sequence's lifecycle as an xstate actor, its idle timer on a ManualClock. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../../engine/scheduling/clock.ts';
import { SequenceActor, type SequenceEnd } from '../../../engine/sequence/sequence-machine.ts';

function actor(idleMs = 100) {
  const clock = new ManualClock();
  const ends: SequenceEnd[] = [];
  return { clock, ends, sequence: new SequenceActor({ idleMs, clock, onEnd: (end) => ends.push(end) }) };
}

test('waiting -> active.busy -> active.idle -> expired after the idle time, and a request in between restarts the wait', () => {
  const { clock, ends, sequence } = actor();
  assert.equal(sequence.state, 'waiting');
  sequence.send({ type: 'DRAINED' });
  assert.equal(sequence.state, 'waiting', 'no slot, no idle timer');
  assert.equal(clock.pending, 0);
  sequence.send({ type: 'SLOT' });
  assert.equal(sequence.state, 'active.busy');
  sequence.send({ type: 'DRAINED' });
  assert.equal(sequence.state, 'active.idle');
  clock.advance(60);
  sequence.send({ type: 'REQUEST' });
  assert.equal(sequence.state, 'active.busy');
  assert.equal(clock.pending, 0, 'leaving idle cancels the timer');
  sequence.send({ type: 'DRAINED' });
  clock.advance(99);
  assert.equal(sequence.state, 'active.idle');
  clock.advance(1);
  assert.equal(sequence.state, 'expired');
  assert.deepEqual(ends, ['expired']);
  assert.equal(sequence.running, false);
  sequence.send({ type: 'REQUEST' });
  assert.deepEqual(ends, ['expired'], 'a finished actor ignores events');
});

test('CLOSE leads to ending, which ends once drained; an ending sequence never expires', () => {
  const { clock, ends, sequence } = actor();
  sequence.send({ type: 'SLOT' });
  sequence.send({ type: 'CLOSE' });
  assert.equal(sequence.state, 'ending');
  clock.advance(1000);
  assert.equal(sequence.state, 'ending');
  sequence.send({ type: 'DRAINED' });
  assert.equal(sequence.state, 'ended');
  assert.deepEqual(ends, ['ended']);
});

test('a sequence closed while waiting for a slot ends once its requests ran; STOP ends any sequence', () => {
  const waiting = actor();
  waiting.sequence.send({ type: 'CLOSE' });
  waiting.sequence.send({ type: 'SLOT' });
  assert.equal(waiting.sequence.state, 'ending');
  waiting.sequence.send({ type: 'DRAINED' });
  assert.deepEqual(waiting.ends, ['ended']);
  const idle = actor();
  idle.sequence.send({ type: 'SLOT' });
  idle.sequence.send({ type: 'DRAINED' });
  idle.sequence.send({ type: 'STOP' });
  assert.equal(idle.sequence.state, 'stopped');
  assert.deepEqual(idle.ends, ['stopped']);
  assert.equal(idle.clock.pending, 0, 'stopping clears the idle timer');
});
